"""``qoectl validate``: every problem at once, each located at the YAML the user wrote.

Raw YAML snippets carry their line numbers in the text itself, so an expected
position is read off the test, not computed by the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.errors import Diagnostic, PolicyError
from controller.pipeline import build
from tests.policy_builder import (
    LAB_NET_A,
    PolicyRepo,
    device,
    interactive_journey,
    service_classes,
    settings,
    video_journey,
    voice_journey,
    wan,
)

FORMAT = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?:(?P<field>[^:\n ]+): )?(?P<msg>.+); hint: .+$")


def diagnostics(root: Path) -> list[Diagnostic]:
    """All errors of a repository, whether the loader stopped early or the checks ran."""
    try:
        result = build(root)
    except PolicyError as exc:
        return exc.diagnostics
    return result.errors


def only(diags: list[Diagnostic], *, field: str | None = None, contains: str = "") -> Diagnostic:
    hits = [d for d in diags if (field is None or d.field == field) and contains in d.message]
    assert len(hits) == 1, f"expected one diagnostic (field={field}, {contains!r}), got:\n" + "\n".join(
        d.format() for d in diags
    )
    return hits[0]


def at(d: Diagnostic) -> tuple[str, int, int]:
    return (Path(d.location.file).name, d.location.line, d.location.col)


def write_raw(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


RAW_JOURNEY = """\
apiVersion: qoectl/v1
kind: Journey
metadata:
  name: calls
spec:
  traffic:
    match:
      - protocol: udp
        destination_ports: ["16384-32767"]
  target:
    voice:
      codec: g711
      mos: 4.0
  priorty: high
  bandwidth:
    per_flow_kbps: 90
    concurrent_flows: 2
"""


# --------------------------------------------------------------------------- schema


def test_unknown_key_is_located_and_gets_did_you_mean(tmp_path: Path) -> None:
    write_raw(tmp_path, "j.yaml", RAW_JOURNEY)
    d = only(diagnostics(tmp_path), field="spec.priorty")
    assert at(d) == ("j.yaml", 14, 3)
    assert d.message == "unknown field 'priorty'"
    assert "did you mean 'priority'?" in d.hint


@pytest.mark.parametrize(
    ("line_text", "replacement", "field", "line", "hint_part"),
    [
        ("      mos: 4.0", '      mos: "4.0"', "spec.target.voice.mos", 13, "got str '4.0'"),
        ("    concurrent_flows: 2", "    concurrent_flows: 2.5", "spec.bandwidth.concurrent_flows", 16, "got float"),
        ("    concurrent_flows: 2", '    concurrent_flows: "2"', "spec.bandwidth.concurrent_flows", 16, "got str"),
        ("      codec: g711", "      codec: opus", "spec.target.voice.codec", 12, "'g711', 'g711-plc' or 'g729a'"),
        ("      mos: 4.0", "      mos: 5", "spec.target.voice.mos", 13, "fit the range"),
        ("      mos: 4.0", "      mos: true", "spec.target.voice.mos", 13, "got bool"),
        ("        destination_ports: [\"16384-32767\"]", "        destination_ports: [70000]",
         "spec.traffic.match[0].destination_ports[0]", 9, "1-65535"),
        ("      - protocol: udp", "      - protocol: sctp", "spec.traffic.match[0].protocol", 8, "'udp', 'tcp'"),
    ],
)  # fmt: skip
def test_strict_types_and_ranges(
    tmp_path: Path, line_text: str, replacement: str, field: str, line: int, hint_part: str
) -> None:
    text = RAW_JOURNEY.replace("  priorty: high\n", "")
    assert line_text in text
    write_raw(tmp_path, "j.yaml", text.replace(line_text, replacement, 1))
    d = only(diagnostics(tmp_path), field=field)
    assert d.location.line == line, d.format()
    assert hint_part in d.hint, d.format()


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    write_raw(tmp_path, "bad.yaml", "apiVersion: qoectl/v1\nkind: Journey\nmetadata:\n  name: [calls\n  owner: x\n")
    d = only(diagnostics(tmp_path), contains="YAML syntax error")
    assert d.location.file.endswith("bad.yaml") and d.location.line in (4, 5, 6)
    assert d.hint


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = RAW_JOURNEY.replace("  priorty: high\n", "  priority: high\n  priority: low\n")
    write_raw(tmp_path, "j.yaml", text)
    d = only(diagnostics(tmp_path), contains="duplicate key")
    assert at(d) == ("j.yaml", 15, 3)
    assert d.field == "spec.priority"
    assert "first defined on line 14" in d.message


def test_a_key_with_a_line_break_cannot_forge_diagnostic_lines(tmp_path: Path) -> None:
    """The unknown key is echoed escaped; raw, it printed a fake 'file:line: ...' line into CI logs."""
    fake = "x\\nj.yaml:1:1: all good"
    write_raw(tmp_path, "j.yaml", RAW_JOURNEY.replace("  priorty: high", f'  "{fake}": 1'))
    d = only(diagnostics(tmp_path), contains="unknown field")
    assert "\n" not in d.format() and "\\n" in d.format()
    assert d.location.line == 14
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert [line for line in result.stderr.splitlines() if line.startswith("j.yaml:1:1")] == []


@pytest.mark.parametrize(
    "value",
    [
        '!!python/object/apply:os.system ["touch {s}"]',
        "!!python/object/apply:subprocess.check_call [[touch, {s}]]",
        '!!python/object/new:os.system ["touch {s}"]',
        "!!python/name:os.system",
        '!custom "touch {s}"',
    ],
)
def test_python_tags_are_rejected_without_running(tmp_path: Path, value: str) -> None:
    sentinel = tmp_path / "PWNED"
    text = RAW_JOURNEY.replace("  name: calls", "  name: " + value.format(s=sentinel))
    write_raw(tmp_path, "policy/j.yaml", text)
    diags = diagnostics(tmp_path / "policy")
    assert not sentinel.exists(), "a YAML tag ran code"
    d = only(diags, contains="unsupported YAML tag")
    assert d.location.line == 4 and d.field == "metadata.name"
    # No follow-up "wrong type" noise for the value that was refused.
    assert not [x for x in diags if x.field == "metadata.name" and x is not d]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1, 2]\nb: *x\n", "YAML aliases (*x) are not supported"),
        ("a: &x [*x]\n", "YAML aliases (*x) are not supported"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "nesting deeper than"),
    ],
    ids=["alias", "self-alias", "deep-nesting"],
)
def test_aliases_and_absurd_nesting_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """A self-referencing alias used to crash with RecursionError; a billion-laughs file took GBs."""
    write_raw(tmp_path, "a.yaml", text)
    d = only(diagnostics(tmp_path), contains=message)
    assert d.location.line in (1, 2) and d.hint


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    write_raw(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    d = only(diagnostics(tmp_path), contains="aliases")
    assert d.location.line == 2


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "message"),
    [
        ("apiVersion: qoectl/v1", "apiVersion: qoectl/v2", "apiVersion", 1, "unsupported apiVersion 'qoectl/v2'"),
        ("apiVersion: qoectl/v1\n", "", "apiVersion", 1, "apiVersion is missing"),
        ("kind: Journey", "kind: Jurney", "kind", 2, "unknown kind 'Jurney'"),
    ],
)
def test_wrong_api_version_or_kind(tmp_path: Path, old: str, new: str, field: str, line: int, message: str) -> None:
    write_raw(tmp_path, "j.yaml", RAW_JOURNEY.replace("  priorty: high\n", "").replace(old, new, 1))
    d = only(diagnostics(tmp_path), field=field)
    assert d.location.line == line and message in d.message
    if "Jurney" in message:
        assert "did you mean 'Journey'?" in d.hint


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list.yaml", "- a\n- b\n", "must be a mapping"),
        ("latin1.yaml", "name: caf\xe9\n", "cannot read file"),
    ],
)
def test_unreadable_documents(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_bytes(content.encode("latin-1"))
    assert only(diagnostics(tmp_path), contains=message).hint


def test_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    assert only(diagnostics(tmp_path / "nope"), contains="no such file or directory").hint
    assert only(diagnostics(tmp_path), contains="no policy documents found").hint


def test_hidden_folders_are_not_policy(tmp_path: Path) -> None:
    """A repository root has .github/ workflows and .pre-commit-config.yaml: not policy documents."""
    root = PolicyRepo.standard().write(tmp_path)
    write_raw(root, ".github/workflows/ci.yaml", "on: push\njobs: {}\n")
    write_raw(root, ".pre-commit-config.yaml", "repos: []\n")
    assert build(root).ok


def test_every_problem_in_every_file_at_once(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    broken = voice_journey("broken-a", port=5004, patch={"spec": {"bandwith": {"share_pct": 5}}})
    repo.add_journey(broken)
    other = interactive_journey("broken-b", port=9443, patch={"spec": {"priority": "urgent"}})
    repo.add_journey(other)
    repo.add_journey(interactive_journey("lost", port=9444, scope={"sites": ["branch-9"]}))
    root = repo.write(tmp_path)
    diags = diagnostics(root)
    fields = {(Path(d.location.file).name, d.field) for d in diags}
    assert ("broken-a.yaml", "spec.bandwith") in fields
    assert ("broken-b.yaml", "spec.priority") in fields
    assert ("lost.yaml", "spec.scope.sites[0]") in fields, "semantic checks must still run"
    for d in diags:
        assert FORMAT.match(d.format()), d.format()


# --------------------------------------------------------------------------- bandwidth


def _voice_on_20m(flows: int) -> PolicyRepo:
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(voice_journey("voice", flows=flows, per_flow_kbps=90))
    return repo


def test_strict_priority_above_default_cap(tmp_path: Path) -> None:
    repo = _voice_on_20m(80)  # 7200 kbps of 20000 = 36 % > 33 %
    diags = diagnostics(repo.write(tmp_path))
    hits = [d for d in diags if "strict-priority" in d.message]
    assert len(hits) == 1, [d.format() for d in diags]  # both routers have a 20 Mbit/s WAN: one over-subscription
    d = hits[0]
    assert at(d)[:2] == ("voice.yaml", repo.line_of("journeys/voice.yaml", r"^  bandwidth:"))
    assert d.field == "spec.bandwidth"
    assert "36.0 %" in d.message and "33 % cap" in d.message and "voice" in d.message
    assert "br1-rtr1" in d.message and "also on 1 other WAN link" in d.message
    line = repo.line_of("inventory/devices.yaml", r"bandwidth_kbps: 20000", 0)
    assert [(Path(r.file).name, r.line) for r in d.related] == [("devices.yaml", line)]


def test_strict_priority_just_below_cap_passes(tmp_path: Path) -> None:
    assert build(_voice_on_20m(73).write(tmp_path)).ok  # 6570 kbps = 32.9 %


@pytest.mark.parametrize(("cap", "ok"), [(40, True), (30, False)])
def test_priority_cap_is_configurable_in_settings(tmp_path: Path, cap: float, ok: bool) -> None:
    repo = _voice_on_20m(70)  # 6300 kbps = 31.5 %
    repo.add("settings.yaml", settings(priority_cap_pct=cap))
    diags = diagnostics(repo.write(tmp_path))
    assert (not [d for d in diags if "strict-priority" in d.message]) == ok, [d.format() for d in diags]
    if not ok:
        assert any(f"above the {cap} % cap" in d.message for d in diags)


def test_guarantees_above_what_the_link_can_give(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add_journey(interactive_journey("erp", port=3200, bandwidth={"share_pct": 60}))
    repo.add_journey(video_journey("tv", "streaming", port=8080, startup_s=5))
    repo.docs("journeys/tv.yaml")[0]["spec"]["bandwidth"] = {"share_pct": 40}
    diags = diagnostics(repo.write(tmp_path))
    hits = [d for d in diags if "guaranteed bandwidth" in d.message]
    assert len(hits) == 1, [d.format() for d in diags]
    d = hits[0]
    assert "at most 93 %" in d.message and "journeys: crm-web, erp, tv, voice" in d.message
    # counted by priority: voice (critical) and tv (high) first, then crm-web and erp (normal) as written
    assert at(d)[:2] == ("erp.yaml", repo.line_of("journeys/erp.yaml", r"^  bandwidth:")), d.format()
    assert "21900 kbps = 109.5 %" in d.message and "9900 kbps = 49.5 % without it" in d.message
    assert [Path(r.file).name for r in d.related] == ["devices.yaml"]


@pytest.mark.parametrize(("guaranteed_cap", "default_min", "ok"), [(100, 5, True), (80, 5, False), (100, 30, False)])
def test_guarantee_caps_are_configurable(tmp_path: Path, guaranteed_cap: float, default_min: float, ok: bool) -> None:
    repo = PolicyRepo.standard()  # voice 900 kbps + crm-web 5 % of 20 Mbit/s = 1900 kbps
    repo.add_journey(interactive_journey("erp", port=3200, bandwidth={"share_pct": 70}))  # 16900 kbps = 84.5 %
    repo.add("settings.yaml", settings(guaranteed_cap_pct=guaranteed_cap, default_class_min_pct=default_min))
    diags = diagnostics(repo.write(tmp_path))
    hits = [d for d in diags if "guaranteed bandwidth" in d.message]
    assert (not hits) == ok, [d.format() for d in diags]
    if hits:  # both devices of the standard repo (IOS-XE, Linux) keep 2 % for network control
        assert f"at most {guaranteed_cap - default_min - 2:g} %" in hits[0].message


# --------------------------------------------------------------------------- overlapping traffic


def test_two_journeys_claiming_the_same_traffic_name_both_files(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    clash = video_journey("softphone-video", port=20000)
    clash["spec"]["traffic"]["match"] = [
        {"protocol": "udp", "destination_ports": ["20000-20100"], "destination_prefixes": ["198.18.0.0/16"]}
    ]
    repo.add_journey(clash)
    diags = diagnostics(repo.write(tmp_path))
    d = only(diags, contains="claims traffic")
    files = {Path(d.location.file).name} | {Path(r.file).name for r in d.related}
    assert files == {"voice.yaml", "softphone-video.yaml"}
    lines = {Path(d.location.file).name: d.location.line} | {Path(r.file).name: r.line for r in d.related}
    assert lines["voice.yaml"] == repo.line_of("journeys/voice.yaml", r"^    - protocol: udp")
    assert lines["softphone-video.yaml"] == repo.line_of("journeys/softphone-video.yaml", r"^    - protocol: udp")
    text = d.format()
    assert "voice.yaml" in text and "softphone-video.yaml" in text
    assert "telephony/ef" in text and "multimedia-conferencing/af41" in text


@pytest.mark.parametrize(
    ("match", "scope"),
    [
        ({"protocol": "udp", "destination_ports": [40000], "destination_prefixes": [LAB_NET_A]}, {}),
        ({"protocol": "tcp", "destination_ports": [20000], "destination_prefixes": [LAB_NET_A]}, {}),
        ({"protocol": "udp", "destination_ports": [20000], "destination_prefixes": ["198.19.0.0/24"]}, {}),
        ({"protocol": "udp", "destination_ports": [20000], "destination_prefixes": [LAB_NET_A]}, {"sites": ["hq"]}),
    ],
    ids=["other-port", "other-protocol", "other-prefix", "other-site"],
)
def test_disjoint_traffic_is_not_a_conflict(tmp_path: Path, match: dict[str, object], scope: dict[str, object]) -> None:
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(voice_journey("voice", port="16384-32767", scope={"sites": ["branch-1"]}))
    other = video_journey("meet", port=9000)
    other["spec"]["traffic"]["match"] = [match]
    if scope:
        other["spec"]["scope"] = scope
    repo.add_journey(other)
    result = build(repo.write(tmp_path))
    assert result.ok, [d.format() for d in result.errors]


def test_same_treatment_is_not_a_conflict(tmp_path: Path) -> None:
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(voice_journey("desk-phones"))
    repo.add_journey(voice_journey("soft-phones", flows=5))
    assert build(repo.write(tmp_path)).ok


# --------------------------------------------------------------------------- targets that cannot be met


def test_mos_above_codec_best_is_an_error_at_the_mos_line(tmp_path: Path) -> None:
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(voice_journey("contact-centre", mos=4.2, codec="g729a"))
    d = only(diagnostics(repo.write(tmp_path)), field="spec.target.voice.mos")
    assert at(d)[:2] == ("contact-centre.yaml", repo.line_of("journeys/contact-centre.yaml", r"^      mos: 4.2"))
    assert "MOS 4.2 cannot be reached with g729a" in d.message and "is 4.10" in d.message
    assert "4.09" in d.hint


def test_mos_the_path_cannot_deliver(tmp_path: Path) -> None:
    repo = PolicyRepo.standard(journeys=False)
    devices = repo.devices()
    devices[0]["interfaces"][0]["transport"] = "satellite"  # 300 ms, 20 ms jitter, 0.5 % loss
    repo.set_devices(devices)
    repo.add_journey(voice_journey("voice", mos=4.0, scope={"sites": ["branch-1"]}))
    d = only(diagnostics(repo.write(tmp_path)), field="spec.target.voice.mos")
    assert "cannot be met at device br1-rtr1" in d.message and "GigabitEthernet0/0/0" in d.message


def test_latency_budget_below_the_path_base_delay(tmp_path: Path) -> None:
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(interactive_journey("trading", target={"interactive": {"apdex_t_ms": 40, "apdex": 0.9}}))
    diags = diagnostics(repo.write(tmp_path))
    hits = [d for d in diags if "below the base delay" in d.message]
    assert {h.message.split("at device ")[1].split(" ")[0] for h in hits} == {"br1-rtr1", "hq-rtr1"}
    line = repo.line_of("journeys/trading.yaml", r"^    interactive:")
    assert all(at(h)[:2] == ("trading.yaml", line) and h.field == "spec.target.interactive" for h in hits)
    assert "5 ms one-way" in hits[0].message and "20 ms" in hits[0].message


def test_pinned_voice_delay_below_the_path_base_delay(tmp_path: Path) -> None:
    """A MOS the path can reach does not excuse a pinned one-way budget the path cannot (was not checked)."""
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(voice_journey("voice", target={"voice": {"codec": "g711", "mos": 4.0, "one_way_delay_ms": 10}}))
    diags = diagnostics(repo.write(tmp_path))
    hits = [d for d in diags if d.field == "spec.target.voice.one_way_delay_ms"]
    assert hits and all("below the base delay" in d.message for d in hits), [d.format() for d in diags]
    assert hits[0].location.line == repo.line_of("journeys/voice.yaml", r"one_way_delay_ms: 10")


# --------------------------------------------------------------------------- references and names


def test_unknown_references_with_suggestions(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add_journey(
        interactive_journey(
            "lost",
            port=9999,
            scope={"sites": ["branch1"], "device_tags": ["wan-egde"], "contexts": ["campsu"]},
            service_class="low-latency-dat",
            sdwan={"preferred_transports": ["mlps"]},
        )
    )
    devices = repo.devices()
    devices[0]["site"] = "brnch-1"
    devices[0]["interfaces"][0]["transport"] = "internt"
    repo.set_devices(devices)
    diags = diagnostics(repo.write(tmp_path))
    expect = {
        "spec.scope.sites[0]": ("unknown site 'branch1'", "did you mean 'branch-1'?"),
        "spec.scope.device_tags[0]": ("unknown device tag 'wan-egde'", "did you mean 'wan-edge'?"),
        "spec.scope.contexts[0]": ("unknown site context 'campsu'", "did you mean 'campus'?"),
        "spec.service_class": ("unknown service class 'low-latency-dat'", "did you mean 'low-latency-data'?"),
        "spec.sdwan.preferred_transports[0]": ("unknown transport 'mlps'", "did you mean 'mpls'?"),
        "spec.devices[0].site": ("unknown site 'brnch-1'", "did you mean 'branch-1'?"),
        "spec.devices[0].interfaces[0].transport": ("unknown transport 'internt'", "did you mean 'internet'?"),
    }
    for field, (message, hint) in expect.items():
        d = only(diags, field=field)
        assert d.message == message and hint in d.hint, d.format()
    lost = "journeys/lost.yaml"
    assert only(diags, field="spec.scope.sites[0]").location.line == repo.line_of(lost, r"- branch1")
    assert only(diags, field="spec.service_class").location.line == repo.line_of(lost, r"service_class:")
    dev = only(diags, field="spec.devices[0].site")
    assert dev.location.line == repo.line_of("inventory/devices.yaml", r"site: brnch-1")


def test_duplicate_names_point_at_both(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add("journeys/more.yaml", voice_journey("voice", port=5004))
    repo.add("inventory/more.yaml", {
        "apiVersion": "qoectl/v1", "kind": "Inventory", "metadata": {"name": "more"},
        "spec": {
            "sites": [{"name": "hq"}],
            "transports": [{"name": "mpls", "base_delay_ms": 5}],
            "devices": [device("br1-rtr1", "linux", "hq", interfaces=[wan("wan0", 10000), wan("wan0", 10000)])],
        },
    })  # fmt: skip
    repo.add("classes.yaml", service_classes([{"name": "gold", "dscp": [5]}, {"name": "gold", "dscp": [6]}]))
    diags = diagnostics(repo.write(tmp_path))
    # Files are read in sorted order, so the later one (by path) is the duplicate.
    for what, file in [
        ("journey name 'voice'", "voice.yaml"),
        ("site name 'hq'", "sites.yaml"),
        ("transport name 'mpls'", "sites.yaml"),
        ("device name 'br1-rtr1'", "more.yaml"),
        ("interface (device br1-rtr1) name 'wan0'", "more.yaml"),
        ("service class name 'gold'", "classes.yaml"),
    ]:
        d = only(diags, contains=f"duplicate {what}")
        assert Path(d.location.file).name == file and d.related, d.format()
    j = only(diags, contains="duplicate journey name")
    assert (j.location.line, j.related[0].line) == (4, 4)
    assert j.related[0].file.endswith("journeys/more.yaml")


def test_names_that_become_the_same_config_identifier(tmp_path: Path) -> None:
    """'voice' and 'Voice' (or 'a.b' and 'a_b') would merge into one class-map and ACL on a device."""
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("Voice", port=5004), rel="journeys/voice2.yaml")
    repo.add_journey(interactive_journey("erp.app", port=8443))
    repo.add_journey(interactive_journey("erp_app", port=8444))
    repo.add("classes.yaml", service_classes([{"name": "Telephony", "dscp": [5]}]))
    diags = diagnostics(repo.write(tmp_path))
    assert "config name VOICE" in only(diags, contains="'Voice' and 'voice'").message
    assert "config name ERP_APP" in only(diags, contains="'erp_app' and 'erp.app'").message
    assert only(diags, contains="'Telephony' and 'telephony'").location.file.endswith("classes.yaml")


def test_more_than_one_settings_document(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add("a-settings.yaml", settings())
    repo.add("b-settings.yaml", settings(priority_cap_pct=50))
    d = only(diagnostics(repo.write(tmp_path)), contains="more than one Settings")
    assert d.location.file.endswith("b-settings.yaml") and d.related[0].file.endswith("a-settings.yaml")


# --------------------------------------------------------------------------- the command


def test_validate_command_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("contact-centre", mos=4.2, codec="g729a", port=5004))
    write_raw(repo.write(tmp_path), "journeys/typo.yaml", RAW_JOURNEY)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    summary = lines.pop()
    assert re.match(r"^\d+ error\(s\) in \d+ file\(s\)$", summary)
    assert lines, result.stderr
    for line in lines:
        assert FORMAT.match(line), line
    assert any(line.split(":")[0].endswith("typo.yaml") and ":14:3: spec.priorty: " in line for line in lines)


def test_validate_json_lists_every_diagnostic(tmp_path: Path) -> None:
    write_raw(tmp_path, "j.yaml", RAW_JOURNEY.replace("      mos: 4.0", "      mos: 9"))
    result = CliRunner().invoke(cli, ["validate", "--json", str(tmp_path)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    by_field = {d["field"]: d for d in data["diagnostics"]}
    assert set(by_field) == {"spec.priorty", "spec.target.voice.mos"}
    mos = by_field["spec.target.voice.mos"]
    assert (mos["line"], mos["col"], mos["severity"]) == (13, 7, "error")
    assert mos["file"].endswith("j.yaml") and mos["hint"] and mos["message"]
    assert set(mos) == {"file", "line", "col", "field", "message", "hint", "severity", "related"}


def test_validate_json_ok(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--json", str(PolicyRepo.standard().write(tmp_path))])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == {"ok": True, "journeys": 2, "devices": 2, "diagnostics": []}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("password_env", "s3cr3t-P@ss!word"),
        ("username_env", "admin:s3cr3t-P@ss!word"),
        (
            "key_file",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAs3cr3t\n-----END OPENSSH PRIVATE KEY-----",
        ),
        ("password_env", 12345678),
    ],
    ids=["password-instead-of-name", "user-and-password", "private-key-pasted", "numeric-pin"],
)
def test_a_secret_pasted_into_credentials_is_never_echoed(tmp_path: Path, key: str, value: object) -> None:
    repo = PolicyRepo.standard()
    devices = repo.devices()
    devices[0]["credentials"][key] = value
    repo.set_devices(devices)
    root = repo.write(tmp_path / "p")
    d = only(diagnostics(root), field=f"spec.devices[0].credentials.{key}")
    assert d.location.line == repo.line_of("inventory/devices.yaml", rf"^      {key}:")
    secret = "s3cr3t" if isinstance(value, str) else str(value)
    assert secret not in d.format()
    for args in (
        ["validate", str(root)],
        ["validate", "--json", str(root)],
        ["plan", str(root), "--out", str(tmp_path / "o")],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert secret not in result.output + result.stderr, args


def test_a_sudo_password_without_become_is_refused_where_it_is_written(tmp_path: Path) -> None:
    repo = PolicyRepo.standard(journeys=False)
    devices = repo.devices()
    devices[1]["credentials"]["become_password_env"] = "QOECTL_SUDO_PASSWORD"
    devices[0]["credentials"]["become"] = "su"
    repo.set_devices(devices)
    diags = diagnostics(repo.write(tmp_path))
    become = only(diags, field="spec.devices[0].credentials.become")
    assert "'sudo'" in become.message or "sudo" in become.hint
    pw = only(diags, field="spec.devices[1].credentials")
    assert "become_password_env is only used with become: sudo" in pw.message
