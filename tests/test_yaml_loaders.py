"""The fast YAML loader (libyaml events, :mod:`controller.load.fastyaml`) agrees with the careful one.

:func:`controller.load.yamlsrc.load_documents` takes the fast path for plain files and the careful,
pure-Python path (``yamlsrc._load_documents``) for everything else. On generated documents (nested
block and flow mappings and lists; plain, quoted, literal and folded scalars of every YAML 1.1 kind;
comments; anchors and aliases; tags; several documents; unicode) every file the fast path accepts must
give the careful path's data and the same (line, column) for every data path, with no problem found;
and whatever the fast path declines, ``load_documents`` must give the careful path's result.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.load import fastyaml
from controller.load.yamlsrc import MAX_DEPTH, _load_documents, _PolicyLoader, load_documents

pytestmark = pytest.mark.skipif(not fastyaml.AVAILABLE, reason="PyYAML without libyaml: only the careful path")

# Scalars as written in a file: every kind PyYAML's resolver tells apart, in the forms people write.
PLAIN_SCALARS = (
    "42", "-7", "+12", "0", "0x1F", "0o17", "017", "1_000", "0b101", "190:20:30",
    "1.5", "-2.0e3", "1e3", "6.8523015e+5", ".inf", "-.Inf", ".NaN", "1_0.5",
    "true", "False", "yes", "No", "on", "OFF", "y", "n",
    "~", "null", "Null",
    "2025-01-01", "2025-01-01 10:00:00", "2025-01-01T10:00:00Z", "2025-01-01t10:00:00.5+02:00",
    "hello", "hello world", "tcp/443", "a:b", "-x", "über", "中文", "emoji 🎉", "1.2.3", "10.0.0.0/8",
    "=", "v1", "2001:db8::1",
)  # fmt: skip
QUOTED_SCALARS = (
    "'it''s'", "'42'", "''", "'true'", '"tab\\tand\\u00e9"', '"line\\nbreak"', '""', '"\\x41\\U0001F600"',
    "'single # not a comment'", '"double: colon"', "'~'",
)  # fmt: skip
BLOCK_SCALARS = ("|", "|-", "|+", ">", ">-", ">+", "|2")
WORDS = ("name", "site", "hosts", "a", "b-c", "ключ", "x_y", "Value", "1", "true", "null", "on", "3.5", "")


def _flow_scalar(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from([*PLAIN_SCALARS, *QUOTED_SCALARS]))
    return text if text.isascii() and "," not in text and ":" not in text else json.dumps(text)


def _key(draw: st.DrawFn, word: str) -> str:
    style = draw(st.integers(0, 4))
    if style == 0 or not word:
        return "'" + word.replace("'", "''") + "'"
    if style == 1:
        return json.dumps(word)
    return word


@st.composite
def scalar_text(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        text = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12))
        return json.dumps(text, ensure_ascii=draw(st.booleans()))  # JSON strings are YAML double-quoted scalars
    if kind == 1:
        return draw(st.sampled_from(QUOTED_SCALARS))
    return draw(st.sampled_from(PLAIN_SCALARS))


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> Any:
    """("map", [(key, tree)]), ("seq", [tree]) or ("scalar", text)."""
    kind = draw(st.sampled_from(["scalar", "scalar", "map", "seq"] if depth < 4 else ["scalar"]))
    if kind == "scalar":
        return ("scalar", draw(scalar_text()))
    size = draw(st.integers(0, 4))
    if kind == "map":
        words = draw(st.permutations(WORDS))[:size]  # distinct words; '1' and 1, or 'true' and true, may meet
        if draw(st.integers(0, 20)) == 0 and words:
            words.append(words[0])  # a duplicate key
        return ("map", [(_key(draw, word), draw(trees(depth + 1))) for word in words])
    return ("seq", [draw(trees(depth + 1)) for _ in range(size)])


def flow(draw: st.DrawFn, tree: Any) -> str:
    kind, body = tree
    if kind == "scalar":
        return _flow_scalar(draw) if draw(st.integers(0, 3)) == 0 else _flow_safe(body)
    sep = draw(st.sampled_from([", ", ",", " , ", ",\n    "]))
    if kind == "map":
        return "{" + sep.join(f"{_flow_safe(k)}: {flow(draw, v)}" for k, v in body) + "}"
    return "[" + sep.join(flow(draw, item) for item in body) + "]"


def _flow_safe(text: str) -> str:
    """A scalar that means the same inside a flow collection."""
    if text.startswith(("'", '"')) or (text and text.isascii() and not any(c in text for c in ",:[]{}#")):
        return text
    return json.dumps(text)


def block(draw: st.DrawFn, tree: Any, indent: int, out: list[str], prefix: str) -> None:
    """Lines of ``tree`` in block style; ``prefix`` is what precedes it on its first line ("key:" or "-")."""
    kind, body = tree
    pad = " " * indent
    comment = draw(st.sampled_from(["", "", "", "  # note", " #x"]))
    if kind == "scalar" or not body or draw(st.integers(0, 5)) == 0:
        if kind == "scalar" and prefix and draw(st.integers(0, 6)) == 0:  # a literal or folded block scalar
            header = draw(st.sampled_from(BLOCK_SCALARS))
            out.append(f"{prefix} {header}{comment}")
            inner = " " * (indent + 2)
            for line in draw(
                st.lists(st.sampled_from(["text", "more  text", "", "  indented", "ü # not"]), min_size=1, max_size=4)
            ):
                out.append(inner + line if line else "")
            return
        text = body if kind == "scalar" else flow(draw, tree)
        if kind == "scalar" and text == "" and not prefix:
            text = "''"
        out.append(f"{prefix} {text}{comment}".rstrip() if prefix else f"{pad}{text}{comment}")
        return
    if prefix:
        out.append(f"{prefix}{comment}")
    if draw(st.integers(0, 6)) == 0:
        out.append(f"{pad}# a comment line")
    if kind == "map":
        for key, value in body:
            anchor = " &a1" if draw(st.integers(0, 30)) == 0 else ""
            block(draw, value, indent + 2, out, f"{pad}{key}:{anchor}")
    else:
        for item in body:
            block(draw, item, indent + 2, out, f"{pad}-")


@st.composite
def yaml_files(draw: st.DrawFn) -> str:
    docs = []
    for _ in range(draw(st.integers(1, 3))):
        lines: list[str] = []
        tree = draw(trees())
        if tree[0] == "scalar" or draw(st.integers(0, 4)) == 0:
            lines.append(flow(draw, tree))
        else:
            block(draw, tree, 0, lines, "")
        extra = draw(st.integers(0, 40)) if lines[-1:] and not lines[0].startswith(("-", "[", "{")) else -1
        if tree[0] != "map" or lines[0].startswith("{"):
            extra = -1  # what follows is added to a block mapping at the top
        if extra == 4:
            lines.append("<<: {merged: 1}")
        elif extra == 5:
            lines.append("value: <<")
        elif extra == 0:
            lines.append("alias: *a1")
        elif extra == 1:
            lines.insert(0, "!!map")
        elif extra == 2:
            lines.append("tagged: !!str 12")
        elif extra == 3:
            lines.append("deep: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
        docs.append("\n".join(lines))
    start = draw(st.sampled_from(["", "---\n", "# head comment\n---\n", "%YAML 1.1\n---\n"]))
    end = draw(st.sampled_from(["\n", "", "\n...\n", "\n\n"]))
    return start + "\n---\n".join(docs) + end


def _same(a: Any, b: Any) -> bool:
    """Equal data, NaN equal to NaN, and the same types (1 is not True, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=1500, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_files())
def test_the_fast_yaml_loader_agrees_with_the_careful_one(text: str) -> None:
    careful, careful_problems = _load_documents(text, "p.yaml", _PolicyLoader)
    fast = fastyaml.plain_documents(text, MAX_DEPTH)
    event("fast path: " + ("declined" if fast is None else "took it"))
    event("careful path: " + ("problems" if careful_problems else "clean"))
    if fast is not None:
        assert careful_problems == [], "the fast path took a file the careful path finds problems in"
        assert [d.index for d in careful] == [index for index, _, _ in fast]
        for doc, (_, data, positions) in zip(careful, fast, strict=True):
            assert _same(data, doc.data), (data, doc.data)
            assert positions == doc.positions
    if any(char in text for char in "\x85\u2028\u2029"):
        return  # refused before either path parses it (yamlsrc._hidden_breaks)
    docs, problems = load_documents(text, "p.yaml")
    assert [d.format() for d in problems] == [d.format() for d in careful_problems]
    assert len(docs) == len(careful)
    for got, doc in zip(docs, careful, strict=True):
        assert got.index == doc.index and _same(got.data, doc.data) and got.positions == doc.positions


def test_the_positions_of_a_files_documents_come_from_one_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation reads every document's positions (items sorted in file order): one parse per file, not per doc."""
    text = "\n---\n".join(f"kind: Journey\nmetadata: {{name: j{i}}}\nspec: {{x: [{i}, 2]}}" for i in range(40)) + "\n"
    docs, problems = load_documents(text, "p.yaml")
    assert problems == [] and len(docs) == 40
    parses: list[str] = []
    real = fastyaml.plain_documents

    def counted(text: str, max_depth: int, positions: bool = True) -> Any:
        parses.append(text)
        return real(text, max_depth, positions)

    monkeypatch.setattr(fastyaml, "plain_documents", counted)
    careful, _ = _load_documents(text, "p.yaml", _PolicyLoader)
    for doc, expected in zip(docs, careful, strict=True):
        assert doc.locate(("metadata", "name")) == expected.locate(("metadata", "name"))
        assert doc.positions == expected.positions
    assert len(parses) == 1
