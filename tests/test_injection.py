"""Nothing a YAML author writes may add a line (or a comment, or a terminator) to a device config.

Three layers of evidence:

* every string field that can reach a config is attacked with line breaks,
  config metacharacters and Unicode line separators; each attack must be
  rejected at load time with a diagnostic at the exact file, line and field;
* the same for raw (unescaped) characters written straight into the YAML file;
* a hypothesis property: random names either fail validation (at that field)
  or render to configs whose line structure is exactly that of a harmless name.

Expected positions are computed with PyYAML's own composer, independently of
qoectl's located loader.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.compile.compiler import ident
from controller.errors import Diagnostic, PolicyError
from controller.pipeline import build, render_plan
from controller.spec.types import INTERFACE_PATTERN, NAME_PATTERN
from tests.policy_builder import LAB_NET_A, PolicyRepo, service_classes

ATTACKS = {
    "newline": "\n",
    "newline-command": "\ninterface Loopback666",
    "cr": "\r",
    "crlf": "\r\n",
    "semicolon": ";",
    "close-brace": "}",
    "open-brace": "{",
    "hash": "#",
    "bang": "!",
    "double-quote": '"',
    "single-quote": "'",
    "space": " ",
    "tab": "\t",
    "u2028-line-separator": "\u2028",
    "u2029-paragraph-separator": "\u2029",
    "u0085-next-line": "\x85",
    "nul": "\x00",
    "escape": "\x1b[2K",
}

# What a Renderer can see: (label, file, path inside the first document, a harmless value).
Field = tuple[str, str, tuple[str | int, ...], str]
JOURNEY = "journeys/voice.yaml"
DEVICES = "inventory/devices.yaml"
SITES = "inventory/sites.yaml"
CLASSES = "classes/classes.yaml"
M0 = ("spec", "traffic", "match", 0)
D0 = ("spec", "devices", 0)
FIELDS: list[Field] = [
    ("journey name", JOURNEY, ("metadata", "name"), "voice"),
    ("label value", JOURNEY, ("metadata", "labels", "team"), "uc"),
    ("application", JOURNEY, ("spec", "traffic", "application"), "webex"),
    ("category", JOURNEY, ("spec", "traffic", "category"), "voice"),
    ("destination prefix", JOURNEY, (*M0, "destination_prefixes", 0), LAB_NET_A),
    ("source prefix", JOURNEY, (*M0, "source_prefixes", 0), "198.18.9.0/24"),
    ("destination port", JOURNEY, (*M0, "destination_ports", 0), "16384-32767"),
    ("source port", JOURNEY, (*M0, "source_ports", 0), "5060"),
    ("match dscp", JOURNEY, (*M0, "dscp"), "ef"),
    ("service class ref", JOURNEY, ("spec", "service_class"), "telephony"),
    ("scope site", JOURNEY, ("spec", "scope", "sites", 0), "branch-1"),
    ("scope tag", JOURNEY, ("spec", "scope", "device_tags", 0), "wan-edge"),
    ("scope context", JOURNEY, ("spec", "scope", "contexts", 0), "branch"),
    ("preferred transport", JOURNEY, ("spec", "sdwan", "preferred_transports", 0), "mpls"),
    ("device name", DEVICES, (*D0, "name"), "br1-rtr1"),
    ("device site", DEVICES, (*D0, "site"), "branch-1"),
    ("device tag", DEVICES, (*D0, "tags", 0), "wan-edge"),
    ("device host", DEVICES, (*D0, "host"), "br1-rtr1.lab.example"),
    ("device feature", DEVICES, (*D0, "features", 0), "fq_codel"),
    ("interface name", DEVICES, (*D0, "interfaces", 0, "name"), "GigabitEthernet0/0/0"),
    ("interface transport", DEVICES, (*D0, "interfaces", 0, "transport"), "mpls"),
    ("username env", DEVICES, (*D0, "credentials", "username_env"), "QOECTL_USER"),
    ("site name", SITES, ("spec", "sites", 0, "name"), "branch-1"),
    ("site context", SITES, ("spec", "sites", 0, "context"), "branch"),
    ("site region", SITES, ("spec", "sites", 0, "region"), "emea"),
    ("transport name", SITES, ("spec", "transports", 0, "name"), "mpls"),
    ("class name", CLASSES, ("spec", "classes", 0, "name"), "gold"),
    ("class dscp", CLASSES, ("spec", "classes", 0, "dscp", 0), "5"),
    ("inventory name", SITES, ("metadata", "name"), "lab-sites"),
]
FREE_TEXT: list[Field] = [
    ("owner", JOURNEY, ("metadata", "owner"), "uc-team@lab.example"),
    ("description", JOURNEY, ("metadata", "description"), "Calls; must sound good!"),
    ("site description", SITES, ("spec", "sites", 0, "description"), "Branch #1 {main}"),
]
LINE_BREAKERS = ["newline", "newline-command", "cr", "crlf", "u2028-line-separator", "u2029-paragraph-separator"]
LINE_BREAKERS += ["u0085-next-line", "nul", "escape"]
# Descriptions may span lines (YAML | or >): they never reach a config, only people. Everything else that can
# forge or hide a line stays out of them.
DESCRIPTIONS = [f for f in FREE_TEXT if f[0].endswith("description")]
NOT_IN_DESCRIPTIONS = [a for a in LINE_BREAKERS if a not in ("newline", "newline-command")] + ["tab"]


def _repo() -> PolicyRepo:
    repo = PolicyRepo.standard()
    repo.add(CLASSES, service_classes([{"name": "gold", "dscp": [5]}]))  # DSCP 5: unused by the catalogue
    return repo


def _set(doc: Any, path: tuple[str | int, ...], value: str) -> None:
    """Put ``value`` at ``path``, creating mappings and one-item lists on the way."""
    node = doc
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(node, list):
            assert isinstance(part, int)
            node = node[part]
            continue
        if part not in node or node[part] is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list):
        assert isinstance(last, int)
        if last < len(node):
            node[last] = value
        else:
            node.append(value)
    else:
        node[last] = value


def expected_line(text: str, path: tuple[str | int, ...]) -> int:
    """Line of ``path`` in the first document, found with PyYAML's composer (not qoectl's loader).

    A mapping value is located at its key, a list item at the item itself (how editors show them).
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    mark = node.start_mark
    for part in path:
        if isinstance(part, int):
            node = node.value[part]
            mark = node.start_mark
        else:
            key, node = next((k, v) for k, v in node.value if k.value == part)
            mark = key.start_mark
    return int(mark.line) + 1


def _diagnostics(root: Path) -> list[Diagnostic]:
    try:
        result = build(root)
    except PolicyError as exc:
        return exc.diagnostics
    return result.errors


def _field_text(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _attack_all(fields: list[Field], value_for: Callable[[str], str], tmp_path: Path) -> None:
    """Attack every field at once; each needs its own located diagnostic."""
    repo = _repo()
    for _, rel, path, base in fields:
        _set(repo.docs(rel)[0], path, value_for(base))
    root = repo.write(tmp_path)
    diags = _diagnostics(root)
    assert diags, "attacked policy was accepted"
    missing = []
    for label, rel, path, _ in fields:
        want_field = _field_text(path)
        line = expected_line(repo.text(rel), path)
        hits = [d for d in diags if d.location.file.endswith(rel) and d.field.startswith(want_field)]
        if not hits:
            missing.append(f"{label}: no diagnostic for {want_field}")
        elif not any(d.location.line == line for d in hits):
            missing.append(f"{label}: {want_field} reported at {[d.location.line for d in hits]}, expected {line}")
        elif not all(d.hint for d in hits):
            missing.append(f"{label}: diagnostic without a hint")
        for d in hits:
            assert "\n" not in d.format() and "\r" not in d.format(), "a diagnostic must stay on one line"
    assert not missing, "\n".join(missing) + "\nall diagnostics:\n" + "\n".join(d.format() for d in diags)


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_attack_suffix_rejected_in_every_config_field(attack: str, tmp_path: Path) -> None:
    _attack_all(FIELDS, lambda base: base + ATTACKS[attack], tmp_path)


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_attack_inside_value_rejected_in_every_config_field(attack: str, tmp_path: Path) -> None:
    _attack_all(FIELDS, lambda base: base[:2] + ATTACKS[attack] + base[2:], tmp_path)


@pytest.mark.parametrize("attack", LINE_BREAKERS, ids=LINE_BREAKERS)
def test_free_text_rejects_line_breaks(attack: str, tmp_path: Path) -> None:
    fields = FREE_TEXT if attack in NOT_IN_DESCRIPTIONS else [f for f in FREE_TEXT if f not in DESCRIPTIONS]
    _attack_all(fields, lambda base: base + ATTACKS[attack] + "more", tmp_path)


@pytest.mark.parametrize("attack", NOT_IN_DESCRIPTIONS, ids=NOT_IN_DESCRIPTIONS)
def test_multi_line_descriptions_reject_every_other_line_breaker(attack: str, tmp_path: Path) -> None:
    _attack_all(DESCRIPTIONS, lambda base: base + "\nsecond line" + ATTACKS[attack] + "more", tmp_path)


def test_multi_line_descriptions_never_reach_a_config(tmp_path: Path) -> None:
    """A description with a config command on its own line is accepted, and every rendered file is unchanged."""

    def rendered(descriptions: bool, folder: Path) -> dict[str, str]:
        repo = _repo()
        if descriptions:
            for _, rel, path, base in DESCRIPTIONS:
                _set(repo.docs(rel)[0], path, base + ATTACKS["newline-command"] + "\n!\nend\n")
        result = build(repo.write(folder))
        assert result.ok, [d.format() for d in result.errors]
        return {f"{p.device}/{name}": text for p in result.plans for name, text in render_plan(p).items()}

    assert rendered(True, tmp_path / "with") == rendered(False, tmp_path / "without")


def test_free_text_keeps_ordinary_punctuation(tmp_path: Path) -> None:
    """Free text is for people: ';', '#', '!' and braces are fine there (it never reaches a config)."""
    repo = _repo()
    for _, rel, path, base in FREE_TEXT:
        _set(repo.docs(rel)[0], path, base)
    result = build(repo.write(tmp_path))
    assert result.ok, [d.format() for d in result.errors]


@pytest.mark.parametrize(
    "raw",
    ["voice\u2028interface Loopback666", "voice\x85end", "voice\u2029x"],
    ids=["raw-u2028", "raw-u0085", "raw-u2029"],
)
def test_raw_unicode_line_breaks_written_into_the_file(raw: str, tmp_path: Path) -> None:
    """YAML 1.1 itself treats NEL/LS/PS as line breaks; written raw they must not sneak a name through."""
    repo = _repo()
    text = repo.text(JOURNEY).replace("name: voice", f"name: {raw}", 1)
    repo.add_raw(JOURNEY, text)
    diags = _diagnostics(repo.write(tmp_path))
    assert diags, "a raw line separator in a name was accepted"
    assert any(d.location.file.endswith(JOURNEY) and d.location.line == 4 for d in diags), [d.format() for d in diags]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("fe80::%eth0/64", "zone id"),
        ("fe80::%a;b/64", "zone id with metacharacter"),
        ("198.18.0.0/24 ", "trailing blank"),
        (" 198.18.0.0/24", "leading blank"),
        ("198.18.0.0/24\n", "trailing newline"),
        ("198.18.0.1/24", "host bits set"),
        ("198.18.0.0/33", "prefix too long"),
    ],
)
def test_prefix_spellings_rejected(value: str, why: str, tmp_path: Path) -> None:
    repo = _repo()
    _set(repo.docs(JOURNEY)[0], (*M0, "destination_prefixes", 0), value)
    diags = _diagnostics(repo.write(tmp_path))
    field = _field_text((*M0, "destination_prefixes", 0))
    assert [d for d in diags if d.field == field], f"{why}: {[d.format() for d in diags]}"


@pytest.mark.parametrize("value", ["\u0665\u0660\u0666\u0660", "5060 ", "50-60 ", "\uff15\uff10\uff16\uff10", "+5060"])
def test_port_spellings_rejected(value: str, tmp_path: Path) -> None:
    """Only ASCII digits: Unicode digits (Arabic-Indic, full-width) are not ports in a config."""
    repo = _repo()
    _set(repo.docs(JOURNEY)[0], (*M0, "destination_ports", 0), value)
    diags = _diagnostics(repo.write(tmp_path))
    assert [d for d in diags if d.field == _field_text((*M0, "destination_ports", 0))], [d.format() for d in diags]


def test_mixed_address_families_in_one_match_rejected(tmp_path: Path) -> None:
    """An IPv6 prefix next to an IPv4 one used to land in the IPv4 ACL as 'host 2001:db8::'."""
    repo = _repo()
    match = repo.docs(JOURNEY)[0]["spec"]["traffic"]["match"][0]
    match["source_prefixes"] = ["198.18.7.0/24"]
    match["destination_prefixes"] = ["2001:db8::/32"]
    diags = _diagnostics(repo.write(tmp_path))
    hits = [d for d in diags if d.field == "spec.traffic.match[0]"]
    assert hits and "IPv4 and IPv6" in hits[0].message, [d.format() for d in diags]
    assert hits[0].location.line == expected_line(repo.text(JOURNEY), M0)


# --------------------------------------------------------------------------- property test

SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
RISKY = " ;#!{}\"'\n\r\t\u2028\u2029\x85\x00%\\/:,()<>|&$`*=@\u200b\u202e"
WORD = re.compile(r"[A-Za-z0-9_.:/-]+")


def _put_name(repo: PolicyRepo, field: str, x: str) -> None:
    """Give one kind of name the value ``x`` everywhere it is defined and referenced."""
    journey = repo.docs(JOURNEY)[0]
    devices = repo.docs(DEVICES)[0]["spec"]["devices"]
    inventory = repo.docs(SITES)[0]["spec"]
    if field == "journey":
        journey["metadata"]["name"] = x
    elif field == "application":
        journey["spec"]["traffic"]["application"] = x
    elif field == "category":
        journey["spec"]["traffic"]["category"] = x
    elif field == "label":
        journey["metadata"]["labels"] = {"team": x}
    elif field == "device":
        devices[0]["name"] = x
    elif field == "site":
        inventory["sites"][0]["name"] = x
        devices[0]["site"] = x
    elif field == "transport":
        inventory["transports"][0]["name"] = x
        for dev in devices:
            for iface in dev["interfaces"]:
                if iface.get("transport") == "mpls":
                    iface["transport"] = x
    elif field == "interface":  # the IOS-XE router's WAN (Linux has its own, stricter kernel-name rule)
        devices[0]["interfaces"][0]["name"] = x
    elif field == "class":
        repo.docs(CLASSES)[0]["spec"]["classes"][0]["name"] = x
        crm = repo.docs("journeys/crm-web.yaml")[0]
        crm["spec"]["service_class"] = x
    elif field == "tag":
        devices[0]["tags"] = ["wan-edge", x]
        journey["spec"]["scope"] = {"device_tags": [x]}
    else:  # pragma: no cover - test table error
        raise AssertionError(field)


PROPERTY_FIELDS = {
    # field: (pattern, where the diagnostic must be, names already taken (compared as config identifiers))
    "journey": (NAME_PATTERN, (JOURNEY, "metadata.name"), {"VOICE", "CRM-WEB"}),
    "application": (NAME_PATTERN, (JOURNEY, "spec.traffic.application"), set()),
    "category": (NAME_PATTERN, (JOURNEY, "spec.traffic.category"), set()),
    "label": (NAME_PATTERN, (JOURNEY, "metadata.labels.team"), set()),
    "device": (NAME_PATTERN, (DEVICES, "spec.devices[0].name"), {"BR1-RTR1", "HQ-RTR1"}),
    "site": (NAME_PATTERN, (SITES, "spec.sites[0].name"), {"BRANCH-1", "HQ"}),
    "transport": (NAME_PATTERN, (SITES, "spec.transports[0].name"), {"MPLS", "INTERNET", "SATELLITE"}),
    "interface": (INTERFACE_PATTERN, (DEVICES, "spec.devices[0].interfaces[0].name"), {"GIGABITETHERNET0/0/1"}),
    "class": (NAME_PATTERN, (CLASSES, "spec.classes[0].name"), set()),
    "tag": (NAME_PATTERN, (DEVICES, "spec.devices[0].tags[1]"), {"WAN-EDGE", "CORE"}),
}
_BASELINES: dict[str, dict[str, Counter[str]]] = {}


def _class_taken() -> set[str]:
    from controller.model.catalogue import RFC4594

    return {ident(c.name) for c in RFC4594}


def _build_with(field: str, x: str) -> tuple[list[Diagnostic], dict[str, str]]:
    repo = _repo()
    _put_name(repo, field, x)
    with tempfile.TemporaryDirectory(prefix="qoectl-prop-") as tmp:
        try:
            result = build(repo.write(Path(tmp)))
        except PolicyError as exc:
            return exc.diagnostics, {}
    if not result.ok:
        return result.errors, {}
    files = {f"{p.device}/{name}": text for p in result.plans for name, text in render_plan(p).items()}
    return [], files


def _skeleton(text: str) -> Counter[str]:
    """Each line with every name-like word replaced by 'w': what is left is the config's structure."""
    return Counter(WORD.sub("w", line) for line in text.split("\n"))


def _structure(files: dict[str, str]) -> dict[str, Counter[str]]:
    """Skeletons per file name (summed over devices), so renaming a device does not move anything."""
    out: dict[str, Counter[str]] = {}
    for name, text in files.items():
        out.setdefault(name.split("/", 1)[1], Counter()).update(_skeleton(text))
    return out


def _baseline(field: str) -> dict[str, Counter[str]]:
    if field not in _BASELINES:
        harmless = "Zz0/0/9" if field == "interface" else "zz-harmless.0"
        diags, files = _build_with(field, harmless)
        assert not diags, [d.format() for d in diags]
        _BASELINES[field] = _structure(files)
    return _BASELINES[field]


names = st.one_of(
    st.text(alphabet=SAFE, min_size=1, max_size=30),
    st.tuples(
        st.text(alphabet=SAFE, min_size=0, max_size=12),
        st.sampled_from(RISKY),
        st.text(alphabet=SAFE, min_size=0, max_size=12),
    ).map("".join),
    st.text(min_size=1, max_size=16),
)


# Reproducible in CI: the same examples every run, and no example database written into the repository.
@settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(field=st.sampled_from(sorted(PROPERTY_FIELDS)), x=names)
@example(field="journey", x="voice2")
@example(field="site", x="hq\n! injected")
@example(field="interface", x="GigabitEthernet0/0/0.100")
@example(field="class", x="j-voice")
@example(field="journey", x="Voice")
@example(field="transport", x="mpls;")
def test_names_either_fail_validation_or_keep_config_structure(field: str, x: str) -> None:
    pattern, (rel, where), taken = PROPERTY_FIELDS[field]
    if field == "class":
        taken = _class_taken()
    well_formed = re.fullmatch(pattern, x) is not None
    harmless = well_formed and ident(x) not in {ident(t) for t in taken} and x.upper() not in taken
    diags, files = _build_with(field, x)
    if diags:
        assert not harmless, f"a valid, unused {field} name {x!r} was rejected: {[d.format() for d in diags]}"
        if not well_formed:
            located = [d for d in diags if d.location.file.endswith(rel) and d.field.startswith(where)]
            assert located, f"{x!r} rejected, but not at {rel} {where}: {[d.format() for d in diags]}"
        return
    assert well_formed, f"{field} {x!r} does not match {pattern} but was accepted"
    if harmless:
        assert _structure(files) == _baseline(field), f"{field} {x!r} changed the line structure of a config"
    for text in files.values():
        assert "\r" not in text and "\x85" not in text and "\u2028" not in text and "\u2029" not in text
