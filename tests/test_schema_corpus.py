"""The JSON Schema means what ``qoectl validate`` means, for a standard validator (issue 10, item 12).

Editors and CI jobs check policy files with standard JSON Schema tools, not with
qoectl. Each document in ``tests/schema_corpus/`` is checked both ways:

* ``qoectl validate`` on a minimal valid repository (``base/``) plus that one document;
* ``check-jsonschema --schemafile schema/qoectl-v1.schema.json`` on the document.

``valid/`` documents must be accepted by both, ``invalid/`` documents rejected by
both. ``beyond-schema/`` holds the single-document rules JSON Schema cannot state
(host bits of a prefix, comparing two fields, 2 vs 2.0): the schema's ``$comment``
names them, and this test notices when one becomes expressible.

The patterns that stand for Python parsers (ports, DSCP, prefixes, free text) are
also compared value by value with those parsers, with the ECMA-262 regex engine
check-jsonschema uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import regress
from click.testing import CliRunner

from controller.cli.main import cli
from controller.spec import types as t
from controller.spec import v1
from controller.spec.schema import json_schema
from tests.conftest import REPO

CORPUS = REPO / "tests" / "schema_corpus"
SCHEMA = REPO / "schema" / "qoectl-v1.schema.json"
EXPECTED = {"valid": (True, True), "invalid": (False, False), "beyond-schema": (False, True)}  # (validate, schema)
DOCS = sorted(p for group in EXPECTED for p in (CORPUS / group).glob("*.yaml"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@cache
def schema_errors() -> dict[str, list[dict[str, Any]]]:
    """check-jsonschema's errors per corpus file (one run for the whole corpus)."""
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "-o", "json", "--schemafile", str(SCHEMA), *map(str, DOCS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(proc.stdout)
    assert not report["parse_errors"], report["parse_errors"]
    errors: dict[str, list[dict[str, Any]]] = {str(p): [] for p in DOCS}
    for error in report["errors"]:
        errors[error["filename"]].append(error)
    return errors


def validate(doc: Path, tmp_path: Path) -> tuple[bool, str]:
    """``qoectl validate`` on the base repository plus ``doc``."""
    repo = tmp_path / "repo"
    shutil.copytree(CORPUS / "base", repo)
    shutil.copy(doc, repo / "doc.yaml")
    result = CliRunner().invoke(cli, ["validate", str(repo)])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code == 0, result.output + result.stderr


def test_the_corpus_covers_every_kind_both_ways() -> None:
    assert len(DOCS) >= 50
    for group in ("valid", "invalid"):
        kinds = {line for p in (CORPUS / group).glob("*.yaml") for line in p.read_text().splitlines()}
        for kind in ("Journey", "Inventory", "ServiceClasses", "Settings", "Adjustments"):
            assert f"kind: {kind}" in kinds, f"{group}/ has no {kind} document"


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_check_jsonschema_agrees_with_qoectl_validate(doc: Path, tmp_path: Path) -> None:
    want_validate, want_schema = EXPECTED[doc.parent.name]
    accepted, output = validate(doc, tmp_path)
    assert accepted == want_validate, f"qoectl validate {'rejected' if want_validate else 'accepted'} it:\n{output}"
    errors = schema_errors()[str(doc)]
    shown = json.dumps(errors, indent=1)
    if doc.parent.name == "beyond-schema":
        assert not errors, f"the schema now rejects it: move it to invalid/ and update the $comment\n{shown}"
    else:
        assert (not errors) == want_schema, f"check-jsonschema {'rejected' if want_schema else 'accepted'} it\n{shown}"


def test_schema_comment_names_what_it_cannot_express() -> None:
    comment = json_schema()["$comment"]
    for rule in ("host bits", "period", "port_speed_kbps", "low <= high", "2.0", "min_kbps", "real date"):
        assert rule in comment


def test_a_typo_is_reported_at_the_field_of_the_documents_kind() -> None:
    """``priority: critcal`` in a Journey: the error is the Journey's priority, not another kind's shape."""
    doc = CORPUS / "invalid" / "priority-typo.yaml"
    errors = schema_errors()[str(doc)]
    assert [(e["path"], e["message"]) for e in errors] == [
        ("$.spec.priority", "'critcal' is not one of ['critical', 'high', 'normal', 'low', 'scavenger']")
    ]
    text = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), str(doc)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    assert "$.spec.priority: 'critcal' is not one of ['critical'" in text
    assert "Additional properties" not in text and "not valid under any of the given schemas" not in text


def test_standard_validators_select_the_kind_without_openapi_discriminator() -> None:
    text = SCHEMA.read_text(encoding="utf-8")
    assert "discriminator" not in text
    schema = json.loads(text)
    selected = {rule["if"]["properties"]["kind"]["const"]: rule["then"]["$ref"] for rule in schema["allOf"]}
    kinds = ("Journey", "Inventory", "ServiceClasses", "Settings", "Adjustments", "Lab")  # Lab: qoectl lab files
    assert selected == {k: f"#/$defs/{k}Doc" for k in kinds}


# --------------------------------------------------------------------------- patterns against the Python parsers


def _pattern_in(node: Any, description: str) -> str:
    """The string pattern of the schema fragment whose description starts with ``description``."""
    found: list[str] = []

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            if str(n.get("description", "")).startswith(description):
                for part in [n, *n.get("anyOf", [])]:
                    if part.get("type") == "string" and "pattern" in part:
                        found.append(part["pattern"])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(node)
    assert found, f"no pattern for {description!r}"
    assert len(set(found)) == 1, found
    return found[0]


def _ecma(pattern: str) -> Any:
    return regress.Regex(pattern, flags="u")  # what check-jsonschema (and JavaScript editors) use


def _accepts(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def test_port_pattern_is_the_port_parser() -> None:
    regex = _ecma(_pattern_in(json_schema(), "A port 1-65535"))
    numbers = [*range(0, 70_000), 99_999, 100_000]
    texts = [str(n) for n in numbers] + [f"{n:05d}" for n in range(0, 70_000, 7)] + ["", "-", "1-", "+80", "80 "]
    texts += [f"{a}-{b}" for a in (0, 1, 80, 65535, 65536, 99999) for b in (0, 1, 443, 65535, 65536, 100000)]
    texts += ["00001-00080", "1--2", "1-2-3", "٤٤٣", "８０"]
    for text in texts:
        by_parser = _accepts(t._parse_port, text)
        reversed_range = by_parser is False and "-" in text and _accepts(t._parse_port, "-".join(text.split("-")[::-1]))
        if reversed_range:
            continue  # low <= high: beyond JSON Schema (see beyond-schema/port-range-reversed.yaml)
        assert (regex.find(text) is not None) == by_parser, text


def test_dscp_pattern_is_the_dscp_parser() -> None:
    schema = json_schema()
    regex = _ecma(_pattern_in(schema, "DSCP as a name"))

    def parse(text: str) -> int:
        value = t._parse_dscp(text)
        if not 0 <= value <= 63:
            raise ValueError(text)
        return int(value)

    names = list(t.DSCP_NAMES)
    texts = [str(n) for n in range(0, 200)] + [f"{n:05d}" for n in range(0, 100)] + ["000000", "ef ", " ef", "e f"]
    texts += names + [n.upper() for n in names] + [n.title() for n in names] + ["ef2", "cs8", "af14", "af51", "x"]
    for text in texts:
        assert (regex.find(text) is not None) == _accepts(parse, text), text



def test_every_dscp_name_the_hint_offers_is_accepted() -> None:
    """The error hint says "ef, af11-af43, cs0-cs7, le, default": each of those spellings must parse (cs0 is 0)."""
    offered = ["ef", "le", "default"] + [f"cs{i}" for i in range(8)]
    offered += [f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)]
    assert "cs0-cs7" in t._DSCP_HINT and "af11-af43" in t._DSCP_HINT
    assert {name: t._parse_dscp(name) for name in ("cs0", "cs1", "cs7", "af11", "af43")} == {
        "cs0": 0,
        "cs1": 8,
        "cs7": 56,
        "af11": 10,
        "af43": 38,
    }
    for name in offered:
        assert isinstance(t._parse_dscp(name), int), name
    assert t.dscp_name(0) == "default"  # rendering keeps writing 0 as before

_PREFIX_TABLE = """
10.0.0.0/8 10.0.0.0/33 10.0.0.0/32 10.0.0.0/032 10.0.0.0/0 10.0.0.0/00 10.0.0.0/ 10.0.0.0/1234 10.0.0.0 256.0.0.0/8
010.0.0.0/8 1.2.3/24 1.2.3.4.5 0.0.0.0/0 255.255.255.255 1.2.3.04 ::/0 ::/128 ::/0128 ::/129 :: 2001:db8::/32
2001:DB8::/32 2001:db8:0:0:0:0:0:0/128 fe80::1 1:2:3:4:5:6:7:8 1:2:3:4:5:6:7:8:9 1:2:3:4:5:6:7:: ::2:3:4:5:6:7:8
1::2::3 1:::2 1:2:3:4:5:6:7::8 12345:: 01234:: ::ffff:10.0.0.0/104 ::1.2.3.4 1:2:3:4:5:6:1.2.3.4 1:2:3:4:5::1.2.3.4
1:2:3:4:5:6::1.2.3.4 1:2:3:4:5:6:7:1.2.3.4 ::ffff:256.0.0.0 ::ffff:1.2.3 fe80::%eth0/64 g:: 2001:db8::/0064 : 1: :1
1::2:3:4:5:6:7 1::2:3:4:5:6:7:8 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 0:0:0:0:0:0:0:0/128 ::1/1280 1::/-1
"""
PREFIXES = [*_PREFIX_TABLE.split(), "2001:db8::/64 ", " 10.0.0.0/8", "10.0.0.0/8\n", "", "1"]


def test_prefix_pattern_is_the_prefix_parser_apart_from_host_bits() -> None:
    regex = _ecma(_pattern_in(json_schema(), "An IPv4 or IPv6 prefix"))

    def spelled_right(text: str) -> bool:  # host bits set: beyond JSON Schema (beyond-schema/prefix-host-bits-set)
        try:
            t._parse_prefix(text)
        except ValueError as exc:
            return "has host bits set" in str(exc)
        return True

    for text in [*PREFIXES, "10.0.0.1/8", "2001:db8::1/32"]:
        assert (regex.find(text) is not None) == spelled_right(text), text


def test_window_pattern_is_the_window_rule() -> None:
    regex = _ecma(v1.WINDOW_PATTERN)
    for unit in "smhd":
        for n in range(1, 90_000):
            text = f"{n}{unit}"
            by_model = _accepts(lambda w: v1.VerifySpec.model_validate({"window": w, "period": "9999999d"}), text)
            assert (regex.find(text) is not None) == by_model, text


@pytest.mark.parametrize(("description", "multi_line"), [("Free text for people", False), ("Text for people", True)])
def test_free_text_patterns_are_the_free_text_rules(description: str, multi_line: bool) -> None:
    """Every code point: the schema's pattern accepts exactly the characters the loader accepts."""
    regex = _ecma(_pattern_in(json_schema(), description))
    check = t._no_control_but_newlines if multi_line else t._no_control
    rejected = [c for c in map(chr, range(0x110000)) if not 0xD800 <= ord(c) <= 0xDFFF and not _accepts(check, c)]
    assert "\n" in rejected or multi_line
    assert set(rejected) >= {"\r", "\x85", "\u2028", "\u2029", "\u202e", "\x00", "\t"}
    for c in rejected:
        assert regex.find(f"a{c}b") is None, repr(c)
    for c in ("a", " ", ";", "#", "!", "{", "é", "\u200b", "😀", *(["\n"] if multi_line else [])):
        assert regex.find(f"a{c}b") is not None, repr(c)
