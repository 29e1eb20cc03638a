"""SD-WAN renderers: Cisco Catalyst SD-WAN (``cisco_sdwan``) and FortiOS (``fortios_sdwan``).

What is checked, and why:

* the one-way -> round-trip conversion and its rounding (the vendors measure
  round trips; a threshold must never be silently looser than the budget);
* the BDD data: the rendered SLA for voice, read back from the device text and
  converted to one way, allows no more than the plan's 150 ms;
* path preference (preferred / backup transports, strict vs fall back) as the
  device text states it;
* platform limits and unsupported needs are located errors, all at once, and
  ``qoectl validate`` exits 1 with them;
* vendor name-length limits, determinism and line structure for odd but legal
  names (nothing a YAML author writes adds a line);
* the platforms' parsers (``controller/platforms/<name>/parser.py``) fail on a chain that does not close.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.configtext.meaning import DeviceTreatment, ParseError, journey_key, parse
from controller.pipeline import Build, build, render_plan
from controller.plan import SlaClass
from controller.platforms.cisco_sdwan import parser as cisco_parser
from controller.platforms.fortios_sdwan import parser as fortios_parser
from controller.render import _sdwan as sd
from controller.spec.types import NAME_PATTERN
from tests.conftest import EXAMPLE_POLICIES
from tests.policy_builder import (
    PolicyRepo,
    bulk_journey,
    device,
    interactive_journey,
    inventory,
    lan,
    service_classes,
    site,
    transport,
    voice_journey,
    wan,
)

CISCO = "br3-edge1"
FORTI = "br4-fgt1"
SDWAN_TRANSPORTS = [
    transport("mpls", 20, 2, 0.01, cost=30),
    transport("biz-internet", 35, 5, 0.1, cost=5),
    transport("lte", 60, 15, 0.2, cost=50, metered=True),
]


def cisco_edge(name: str = "edge1", lan_trusted: bool = False) -> dict[str, object]:
    return device(
        name,
        "cisco_sdwan",
        "branch-1",
        interfaces=[
            wan("ge0/0", 20000, "mpls", port_speed_kbps=1_000_000),
            wan("ge0/1", 50000, "biz-internet"),
            wan("ge0/2", 20000, "lte"),
            lan("ge0/3", trust_dscp=lan_trusted),
        ],
    )


def fortigate(name: str = "fgt1") -> dict[str, object]:
    return device(
        name,
        "fortios_sdwan",
        "branch-1",
        interfaces=[
            wan("port1", 20000, "mpls"),
            wan("wan1", 100000, "biz-internet"),
            wan("wan2", 20000, "lte"),
            lan("internal"),
        ],
    )


def sdwan_repo(*devices: dict[str, object]) -> PolicyRepo:
    """One branch, three SD-WAN transports, voice + interactive + bulk journeys."""
    repo = PolicyRepo.standard(journeys=False)
    repo.files["inventory/sites.yaml"] = [
        inventory("lab-sites", sites=[site("branch-1"), site("hq", "campus")], transports=SDWAN_TRANSPORTS)
    ]
    repo.set_devices(list(devices) or [cisco_edge(), fortigate()])
    repo.add_journey(voice_journey("voice"))
    repo.add_journey(interactive_journey("crm-web", priority="high"))
    repo.add_journey(bulk_journey("backups"))
    return repo


def built(repo: PolicyRepo, tmp_path: Path) -> Build:
    return build(repo.write(tmp_path / "policies"))


def rendered(b: Build, device_name: str) -> dict[str, str]:
    plan = b.plan(device_name)
    assert plan is not None, [d.format() for d in b.errors]
    return render_plan(plan)


def block(text: str, header: str) -> list[str]:
    """The lines indented under ``header`` (exact line match), up to the next line at its level."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == header)
    depth = len(lines[start]) - len(lines[start].lstrip())
    out = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= depth:
            break
        out.append(line.strip())
    return out


def sdwan_block(text: str) -> fortios_parser.Block:
    """The ``config system sdwan`` block of a rendered FortiOS script, read by the platform's parser."""
    return fortios_parser.tree(text)["system sdwan"]


# --------------------------------------------------------------------------- conversion


def _sla(latency: float | None, jitter: float | None, loss: float | None, mos: float | None = None) -> SlaClass:
    return SlaClass("voice", "VOICE", latency, jitter, loss, mos, ("voice",), codec="g711")


def test_one_way_budgets_become_round_trip_thresholds() -> None:
    cisco = sd.thresholds(_sla(150, 9.9, 2.0), "X", min_latency=1, min_jitter=1, min_loss=1, with_mos=False)
    assert (cisco.latency_ms, cisco.jitter_ms) == (300, 19)  # 2 x 150; 2 x 9.9 = 19.8 rounded toward stricter
    assert cisco.loss_pct == 3  # 1 - 0.98^2 = 3.96 % round trip, rounded down
    assert cisco.notes == ()
    assert sd.one_way_ms(sd.rtt_ms(62.5)) == 62.5
    assert sd.rtt_loss_pct(0.0) == 0.0


def test_sub_percent_loss_cannot_be_stricter_than_one_percent_and_says_so() -> None:
    cisco = sd.thresholds(_sla(150, None, 0.26), "X", min_latency=1, min_jitter=1, min_loss=1, with_mos=False)
    forti = sd.thresholds(_sla(150, None, 0.26), "X", min_latency=0, min_jitter=0, min_loss=0, with_mos=True)
    for t in (cisco, forti):
        assert t.loss_pct == 1
        assert any("looser than the budget" in n and "0.26 % one-way" in n for n in t.notes)
    # A zero-loss budget: FortiOS can say 0, Cisco's smallest SLA loss is 1 % (and the config says so).
    assert (
        sd.thresholds(_sla(None, None, 0.0), "X", min_latency=0, min_jitter=0, min_loss=0, with_mos=False).loss_pct == 0
    )
    zero = sd.thresholds(_sla(None, None, 0.0), "X", min_latency=1, min_jitter=1, min_loss=1, with_mos=False)
    assert zero.loss_pct == 1 and zero.notes


def test_mos_threshold_is_rounded_up_to_one_decimal() -> None:
    assert (
        sd.thresholds(_sla(150, 10, 0.5, 4.0), "X", min_latency=0, min_jitter=0, min_loss=0, with_mos=True).mos == "4.0"
    )
    assert (
        sd.thresholds(_sla(150, 10, 0.5, 4.05), "X", min_latency=0, min_jitter=0, min_loss=0, with_mos=True).mos
        == "4.1"
    )
    assert (
        sd.thresholds(_sla(150, 10, 0.5, 4.05), "X", min_latency=0, min_jitter=0, min_loss=0, with_mos=False).mos
        is None
    )


def test_bounded_names_are_stable_unique_and_short() -> None:
    a, b = sd.bounded("QOECTL-" + "A" * 60 + "-1-DST", 32), sd.bounded("QOECTL-" + "A" * 60 + "-2-DST", 32)
    assert len(a) <= 32 and len(b) <= 32 and a != b
    assert a == sd.bounded("QOECTL-" + "A" * 60 + "-1-DST", 32)
    assert sd.bounded("SHORT", 32) == "SHORT"


# --------------------------------------------------------------------------- the bundled example


def test_voice_sla_allows_no_more_than_the_plans_150_ms_one_way(example_build: Build) -> None:
    """BDD data: read the threshold back from each device's text, convert it to one way, compare with the plan."""
    plan = example_build.plan(CISCO)
    assert plan is not None
    budget = next(s for s in plan.sla_classes if s.journeys == ("voice",))
    assert budget.latency_ms == 150.0
    cisco = render_plan(plan)["centralized-policy.cfg"]
    latency = int(next(v for v in block(cisco, "sla-class QOECTL-SLA-VOICE") if v.startswith("latency")).split()[1])
    assert sd.one_way_ms(latency) == 150.0
    forti_plan = example_build.plan(FORTI)
    assert forti_plan is not None
    check = sdwan_block(render_plan(forti_plan)["fortios.conf"]).table("health-check")["QOECTL-VOICE"]
    assert check.get("mos-codec") == "g711" and check.get("detect-mode") == "passive"
    voice_sla = check.table("sla")["1"]
    assert sd.one_way_ms(int(voice_sla.get("latency-threshold"))) == 150.0
    assert voice_sla.get("mos-threshold") == "4.0"
    assert voice_sla.words("link-cost-factor") == ("latency", "jitter", "packet-loss", "mos")


def test_example_path_preferences_as_the_devices_state_them(example_build: Build) -> None:
    plan = example_build.plan(CISCO)
    assert plan is not None
    aar = render_plan(plan)["centralized-policy.cfg"]
    # voice (critical): lowest delay first; lte misses the 9.9 ms jitter budget, so it is no backup.
    voice = aar[aar.index("! journey voice (") : aar.index(" lists")]
    assert "sla-class QOECTL-SLA-VOICE preferred-color mpls\n" in voice
    assert "backup-sla-preferred-color biz-internet\n" in voice and "lte" not in voice
    # backups and os-updates (low priority, no budget): the cheapest transport, read back by what the actions mean.
    # Cisco applies backup-sla-preferred-color only when an SLA class is not met, so a preference without a
    # budget needs an SLA class every usable path meets: the thresholds admit every transport of the inventory.
    paths = cisco_parser.paths(render_plan(plan))
    assert paths["VOICE"].preferred == {"mpls"}
    for journey in ("BACKUPS", "OS-UPDATES"):
        choice = paths[journey]
        assert choice.preferred == {"biz-internet"}, f"{journey}: {choice}"
        assert choice.sla is not None, f"{journey}: no SLA class, so no preference the edge acts on"
        for t in example_build.policy.transports:
            measured = {"latency": sd.rtt_ms(t.base_delay_ms), "jitter": sd.rtt_ms(t.jitter_ms)}
            measured["loss"] = sd.rtt_loss_pct(t.loss_pct)
            missed = {k: v for k, v in measured.items() if k in choice.sla and v > choice.sla[k]}
            assert not missed, f"{journey}: {t.name} misses the preference's SLA class on {missed}"
    # FortiOS: the same order, as member sequence numbers -> interfaces -> transports.
    forti_plan = example_build.plan(FORTI)
    assert forti_plan is not None
    text = render_plan(forti_plan)["fortios.conf"]
    sdwan = sdwan_block(text)
    member_if = {k: m.get("interface") for k, m in sdwan.table("members").items()}
    transport_of = {i.name: i.transport for i in forti_plan.wan_interfaces}
    voice_rule = next(r for r in sdwan.table("service").values() if r.get("name") == "QOECTL-VOICE-1")
    assert voice_rule.get("mode") == "sla" and "QOECTL-VOICE" in voice_rule.table("sla")
    assert [transport_of[member_if[s]] for s in voice_rule.words("priority-members")] == [
        "mpls",
        "biz-internet",
    ]
    backup_rule = next(r for r in sdwan.table("service").values() if r.get("name") == "QOECTL-BACKUPS-1")
    assert backup_rule.get("mode") == "manual"
    assert transport_of[member_if[backup_rule.words("priority-members")[0]]] == "biz-internet"
    assert voice_rule.get("dscp-forward-tag") == voice_rule.get("dscp-reverse-tag") == "101110"


def test_lan_trust_is_rendered(example_build: Build) -> None:
    """Cisco edge LAN is untrusted: unrecognised traffic is re-marked 0. FortiGate LAN is trusted: EF -> voice class."""
    cisco = example_build.plan(CISCO)
    forti = example_build.plan(FORTI)
    assert cisco is not None and forti is not None
    local = render_plan(cisco)["localized-policy.cfg"]
    assert "access-list QOECTL-MARK-UNTRUSTED in" in local and "access-list QOECTL-MARK in" not in local
    tail = block(local, "access-list QOECTL-MARK-UNTRUSTED")[-9:]
    assert tail[:3] == ["match", "source-ip 0.0.0.0/0", "!"] and "set dscp 0" in tail
    text = render_plan(forti)["fortios.conf"]
    policies = fortios_parser.tree(text)["firewall shaping-policy"].entries or {}
    ef = next(p for p in policies.values() if p.get("tos") == "0xb8")
    voice = next(p for p in policies.values() if p.get("comment") == "qoectl journey voice")
    assert ef.get("class-id") == voice.get("class-id") and ef.words("srcintf") == ("internal",)


def test_strict_class_is_queue_zero_llq_and_capped(example_build: Build) -> None:
    plan = example_build.plan(CISCO)
    assert plan is not None
    local = render_plan(plan)["localized-policy.cfg"]
    assert "class QOECTL-TELEPHONY queue 0" in local
    assert block(local, "qos-scheduler QOECTL-GE0-0-Q0")[:5] == [
        "class QOECTL-TELEPHONY",
        "bandwidth-percent 9",  # 20 x 90 kbit/s on 20 Mbit/s
        "buffer-percent 9",
        "scheduling llq",
        "drops tail-drop",
    ]
    assert "shaping-rate 20000" in block(local, "interface ge0/0")


def test_parsed_meaning_matches_linux_shares_on_the_example() -> None:
    """The harness compares shares for the platforms listed there; this covers the two SD-WAN renderers."""

    from tests.test_cross_platform import _retargeted  # the harness's own "same links on every platform"

    def parsed(platform: str) -> dict[str, DeviceTreatment]:
        b = _retargeted(platform)
        assert b.ok, [d.format() for d in b.errors]
        return {p.device: parse(platform, render_plan(p)) for p in b.plans}

    linux = parsed("linux")
    for platform in ("cisco_sdwan", "fortios_sdwan"):
        compared = 0
        for dev, treatment in parsed(platform).items():
            for journey, t in treatment.items():
                ref = linux[dev][journey]
                assert (t.dscp, t.strict) == (ref.dscp, ref.strict), f"{platform} {dev} {journey}"
                for iface, share in t.shares:
                    exact = ref.share(iface)
                    assert share is not None and exact is not None, f"{platform} {dev} {iface}"
                    assert abs(share - exact) <= 1.0 + 1e-6, f"{platform} {dev} {iface} {journey}: {share} vs {exact}"
                    compared += 1
        assert compared >= 50


# --------------------------------------------------------------------------- strict journeys and limits


def test_strict_journey_drops_on_cisco_and_is_refused_on_fortios(tmp_path: Path) -> None:
    repo = sdwan_repo(cisco_edge())
    repo.remove("journeys/voice.yaml").add_journey(voice_journey("voice", sdwan={"strict": True}))
    aar = rendered(built(repo, tmp_path / "c"), "edge1")["centralized-policy.cfg"]
    voice = aar[aar.index("! journey voice (") :]
    assert "sla-class QOECTL-SLA-VOICE strict preferred-color mpls" in voice
    assert "backup-sla-preferred-color" not in voice.split("sequence", 2)[1]

    repo.set_devices([fortigate()])
    b = built(repo, tmp_path / "f")
    errors = [d for d in b.errors if "fortios_sdwan" in d.message]
    assert len(errors) == 1
    line = repo.line_of("journeys/voice.yaml", r"^\s+strict: true")
    assert (errors[0].location.line, errors[0].field) == (line, "spec.sdwan.strict")
    assert "cannot drop journey 'voice'" in errors[0].message


def test_platform_limits_are_located_errors_reported_together(tmp_path: Path) -> None:
    repo = sdwan_repo(
        device("edge1", "cisco_sdwan", "branch-1", interfaces=[wan("ge0/0", 20000, "internet"), lan("ge0/1")])
    )
    repo.files["inventory/sites.yaml"] = [
        inventory("lab-sites", sites=[site("branch-1")], transports=[*SDWAN_TRANSPORTS, transport("internet", 35)])
    ]
    # A pinned 600 ms one-way budget is 1200 ms round trip: above the controller's 1000 ms.
    repo.remove("journeys/voice.yaml").add_journey(
        voice_journey("voice", mos=None, target={"voice": {"one_way_delay_ms": 600, "jitter_ms": 10, "loss_pct": 1}})
    )
    repo.add_journey(interactive_journey("ipv6-app", prefix="2001:db8:18::/48"))
    b = built(repo, tmp_path)
    by_text = {d.message: d for d in b.errors}
    colour = next(d for m, d in by_text.items() if "is not a Cisco SD-WAN colour" in m)
    assert colour.field == "spec.devices[0].interfaces[0].transport"
    assert colour.location.line == repo.line_of("inventory/devices.yaml", r"transport: internet")
    latency = next(d for m, d in by_text.items() if m.startswith("SLA latency threshold 600"))
    assert "cisco_sdwan accepts (0.5-500)" in latency.message and latency.location.file.endswith("voice.yaml")
    ipv6 = next(d for m, d in by_text.items() if "matching IPv6 prefixes" in m)
    assert ipv6.location.file.endswith("ipv6-app.yaml") and ipv6.location.line > 0
    # The CLI reports all of them and exits 1.
    qoectl = Path(sys.executable).with_name("qoectl")
    run = subprocess.run([str(qoectl), "validate", str(tmp_path / "policies")], capture_output=True, text=True)
    assert run.returncode == 1
    out = run.stdout + run.stderr
    for needle in ("not a Cisco SD-WAN colour", "SLA latency threshold 600", "matching IPv6 prefixes"):
        assert needle in out
    assert re.search(r"devices\.yaml:\d+:\d+: spec\.devices\[0\]\.interfaces\[0\]\.transport: ", out)


def test_two_strict_classes_do_not_fit_one_llq(tmp_path: Path) -> None:
    repo = sdwan_repo(cisco_edge(), fortigate())
    repo.add(
        "classes.yaml",
        service_classes([{"name": "signaling", "dscp": ["cs5"], "strict_priority": True, "queue_depth": 32}]),
    )
    repo.add_journey(interactive_journey("sip", port=5060, service_class="signaling", priority="high"))
    b = built(repo, tmp_path)
    strict = {str(re.search(r"device (\S+)", d.message)[1]): d for d in b.errors if "strict-priority" in d.message}
    assert set(strict) == {"edge1", "fgt1"}
    assert all(d.location.file.endswith(".yaml") and d.location.line > 0 for d in strict.values())
    # Cisco's queue 0 is its only LLQ (the edge's limit); one strict class is qoectl's bound on FortiOS.
    assert "cisco_sdwan allows 1" in strict["edge1"].message
    assert strict["fgt1"].message.startswith("qoectl's fortios_sdwan renderer does not support more than 1 strict")


def test_more_than_seven_weighted_classes_need_queue_zero(tmp_path: Path) -> None:
    """Queue 0 is the LLQ: with telephony made non-strict the example needs 8 WRR queues on 7."""
    root = tmp_path / "policies"
    shutil.copytree(EXAMPLE_POLICIES, root)
    (root / "classes.yaml").write_text(
        "apiVersion: qoectl/v1\nkind: ServiceClasses\nmetadata:\n  name: no-llq\nspec:\n  classes:\n"
        "    - name: telephony\n      dscp: [ef]\n      queue_depth: 16\n",
        encoding="utf-8",
    )
    b = build(root)
    errors = [d for d in b.errors if "non-priority queues" in d.message]
    assert len(errors) == 1 and errors[0].message.startswith(f"device {CISCO} needs 8 non-priority queues")
    assert errors[0].field == "spec.devices[0].platform" and errors[0].location.file.endswith("devices-sdwan.yaml")


# --------------------------------------------------------------------------- names, lines, determinism


def test_long_and_dotted_names_stay_within_vendor_limits(tmp_path: Path) -> None:
    long_name = "a" * 40 + ".b_c-" + "d" * 17  # 63 characters, the longest a Name may be
    repo = sdwan_repo(cisco_edge(), fortigate())
    repo.add_journey(interactive_journey(long_name, port=8443))
    b = built(repo, tmp_path)
    cisco, forti = rendered(b, "edge1"), rendered(b, "fgt1")
    for text in cisco.values():
        for m in re.finditer(r"^\s*(?:data-prefix-list|sla-class|vpn-list) (\S+)$", text, re.M):
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", m.group(1)), m.group(1)
    for m in re.finditer(r'^\s*(?:set name|edit) "([^"]+)"$', forti["fortios.conf"], re.M):
        assert len(m.group(1)) <= 79
    for m in re.finditer(r'^\s*set name "([^"]+)"$', forti["fortios.conf"], re.M):
        assert len(m.group(1)) <= 35
    key = journey_key(long_name)
    assert key in cisco_parser.parse(cisco) and key in fortios_parser.parse(forti)
    again = built(repo, tmp_path / "again")
    assert rendered(again, "edge1") == cisco and rendered(again, "fgt1") == forti


def _line_shapes(journey: str, root: Path) -> dict[str, Counter[tuple[int, str]]]:
    """Per output file: how many lines start with which keyword at which indentation."""
    repo = sdwan_repo(cisco_edge(), fortigate())
    repo.add_journey(interactive_journey(journey, port=8443))
    b = build(repo.write(root))
    assert b.ok, [d.format() for d in b.errors]
    out: dict[str, Counter[tuple[int, str]]] = {}
    for dev in ("edge1", "fgt1"):
        for f, text in rendered(b, dev).items():
            out[f"{dev}/{f}"] = Counter(
                (len(line) - len(line.lstrip()), line.split()[0]) for line in text.splitlines() if line.strip()
            )
    return out


@functools.lru_cache(maxsize=1)
def _probe_shapes() -> dict[str, Counter[tuple[int, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        return _line_shapes("probe", Path(tmp))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.from_regex(NAME_PATTERN, fullmatch=True))
def test_any_legal_journey_name_renders_the_same_line_structure(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Names only ever fill a token: the same lines, keywords and indentation as for a plain name."""
    if journey_key(name) in {"VOICE", "CRM-WEB", "BACKUPS", "PROBE"}:
        return
    assert _line_shapes(name, tmp_path_factory.mktemp("p")) == _probe_shapes()


# --------------------------------------------------------------------------- the parsers can fail


def test_parsers_reject_chains_that_do_not_close(example_build: Build) -> None:
    cisco_plan, forti_plan = example_build.plan(CISCO), example_build.plan(FORTI)
    assert cisco_plan is not None and forti_plan is not None
    cisco, forti = render_plan(cisco_plan), render_plan(forti_plan)
    cisco_parser.parse(cisco)
    fortios_parser.parse(forti)
    broken = [
        (
            cisco_parser,
            {
                **cisco,
                "localized-policy.cfg": cisco["localized-policy.cfg"].replace("  class QOECTL-TELEPHONY queue 0\n", ""),
            },
        ),
        (
            cisco_parser,
            {**cisco, "centralized-policy.cfg": cisco["centralized-policy.cfg"].replace("dscp 46\n", "dscp 47\n")},
        ),
        (
            cisco_parser,
            {
                **cisco,
                "localized-policy.cfg": cisco["localized-policy.cfg"].replace(
                    "bandwidth-percent 9\n", "bandwidth-percent 19\n", 1
                ),
            },
        ),
        (
            fortios_parser,
            {"fortios.conf": forti["fortios.conf"].replace("        set class-id 2\n", "        set class-id 77\n")},
        ),
        (
            fortios_parser,
            {"fortios.conf": forti["fortios.conf"].replace('edit "QOECTL-VOICE"\n', 'edit "QOECTL-V"\n', 1)},
        ),
        (
            fortios_parser,
            {"fortios.conf": forti["fortios.conf"].replace("dscp-forward-tag 001110", "dscp-forward-tag 001100", 1)},
        ),
    ]
    for parser, files in broken:
        with pytest.raises(ParseError):
            parser.parse(files)


# --------------------------------------------------------------------------- Cisco SD-WAN: apply-policy per site


def _sites_with_ids(*ids: int | None) -> PolicyRepo:
    """``sdwan_repo`` with sites branch-1, branch-2 ... given these SD-WAN site-ids (None: no site-id)."""
    repo = sdwan_repo()
    sites = [site(f"branch-{k}") | ({"sdwan_site_id": i} if i is not None else {}) for k, i in enumerate(ids, 1)]
    repo.files["inventory/sites.yaml"] = [inventory("lab-sites", sites=sites, transports=SDWAN_TRANSPORTS)]
    return repo


def test_a_site_id_applies_the_app_route_policy_to_the_site(tmp_path: Path) -> None:
    repo = _sites_with_ids(1001)
    repo.set_devices([cisco_edge("edge1"), cisco_edge("edge2")])  # two edges of one site: one policy for both
    b = built(repo, tmp_path)
    assert b.ok, [d.format() for d in b.errors]
    texts = [rendered(b, name)["centralized-policy.cfg"] for name in ("edge1", "edge2")]
    assert texts[0].replace("edge1", "EDGE") == texts[1].replace("edge2", "EDGE")
    text = texts[0]
    assert block(text, "site-list QOECTL-SITE-1001") == ["site-id 1001"]
    assert block(text, "apply-policy") == ["site-list QOECTL-SITE-1001", "app-route-policy QOECTL-AAR-SITE-1001", "!"]
    assert " app-route-policy QOECTL-AAR-SITE-1001" in text.splitlines()
    assert text.rstrip().endswith("!") and text.index(" lists") < text.index("apply-policy")
    files = rendered(b, "edge1")
    assert cisco_parser.parse(files)  # the independent parser: every list and policy apply-policy names exists
    with pytest.raises(ParseError, match="undefined site-list QOECTL-SITE-1001"):
        cisco_parser.parse({**files, "centralized-policy.cfg": text.replace("  site-list QOECTL-SITE-1001\n", "  x\n")})
    with pytest.raises(ParseError, match="undefined app-route-policy"):
        cisco_parser.parse(
            {
                **files,
                "centralized-policy.cfg": text.replace("  app-route-policy QOECTL-AAR-SITE", "  app-route-policy X"),
            }
        )
    assert not any("apply-policy" in n for p in b.plans for n in p.notes)


def test_without_a_site_id_nothing_is_applied_and_the_plan_says_so(tmp_path: Path) -> None:
    b = built(_sites_with_ids(None), tmp_path)
    text = rendered(b, "edge1")["centralized-policy.cfg"]
    assert "apply-policy" not in text.replace("! ", "") and "site-list" not in text
    assert " app-route-policy QOECTL-AAR-EDGE1" in text.splitlines()
    plan = b.plan("edge1")
    assert plan is not None and any("no sdwan_site_id" in n for n in plan.notes)
    forti = b.plan("fgt1")
    assert forti is not None and not any("sdwan_site_id" in n for n in forti.notes)


def test_edges_of_one_site_that_need_different_policies_are_an_error(tmp_path: Path) -> None:
    repo = _sites_with_ids(1001)
    repo.set_devices([cisco_edge("edge1"), cisco_edge("edge2") | {"tags": ["wan-edge", "vip"]}])
    repo.add_journey(interactive_journey("vip-web", port=8443, scope={"device_tags": ["vip"]}))
    b = built(repo, tmp_path)
    problems = [d for d in b.errors if "share site branch-1" in d.message]
    assert len(problems) == 1, [d.format() for d in b.errors]
    p = problems[0]
    assert "edge1 and edge2" in p.message and "SD-WAN site-id 1001" in p.message and "journeys differ" in p.message
    assert p.location.file.endswith("devices.yaml") and p.field.endswith("devices[1].site") and p.location.line > 0
    assert p.related and p.related[0].line < p.location.line


def test_two_sites_with_one_site_id_are_an_error_with_both_places(tmp_path: Path) -> None:
    repo = _sites_with_ids(1001, 1002, 1001)
    root = repo.write(tmp_path / "policies")
    from click.testing import CliRunner

    from controller.cli.main import cli

    result = CliRunner().invoke(cli, ["validate", str(root)])
    assert result.exit_code == 1
    line = repo.line_of("inventory/sites.yaml", "sdwan_site_id: 1001", nth=1)
    assert f"sites.yaml:{line}:" in result.stderr
    assert "SD-WAN site-id 1001 of site branch-3 is already the site-id of site branch-1" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_site_id_must_be_a_whole_positive_number(tmp_path: Path) -> None:
    for bad in ("0", "-4", "'1001\\n!'", "1.5", "4294967296"):
        repo = _sites_with_ids(None)
        text = repo.dump(repo.files["inventory/sites.yaml"]).replace(
            "name: branch-1\n", f"name: branch-1\n    sdwan_site_id: {bad}\n", 1
        )
        repo.add_raw("inventory/sites.yaml", text)
        from controller.errors import PolicyError

        with pytest.raises(PolicyError) as exc:
            built(repo, tmp_path / bad.replace("\\", "_"))
        assert any("sdwan_site_id" in d.field for d in exc.value.diagnostics), [
            d.format() for d in exc.value.diagnostics
        ]


# --------------------------------------------------------------------------- Cisco SD-WAN: service VPNs


def _edge_in_vpns(name: str, *vpns: int | None) -> dict[str, object]:
    lans = [lan(f"ge0/{3 + k}") | ({"vpn": v} if v is not None else {}) for k, v in enumerate(vpns)]
    return device(
        name,
        "cisco_sdwan",
        "branch-1",
        interfaces=[wan("ge0/0", 20000, "mpls", port_speed_kbps=1_000_000), wan("ge0/1", 50000, "biz-internet")] + lans,
    )


def test_lan_interfaces_service_vpns_are_what_the_app_route_policy_covers(tmp_path: Path) -> None:
    b = built(sdwan_repo(_edge_in_vpns("edge1", 10, 20, 10)), tmp_path)
    files = rendered(b, "edge1")
    central, local = files["centralized-policy.cfg"], files["localized-policy.cfg"]
    lists = central.split("\n lists\n", 1)[1]
    assert block(lists, "vpn-list QOECTL-VPN10-20") == ["vpn 10", "vpn 20"]
    assert " app-route-policy QOECTL-AAR-EDGE1" in central.splitlines()
    assert "  vpn-list QOECTL-VPN10-20" in central.splitlines()
    assert "vpn 1\n" not in local
    assert [line for line in block(local, "vpn 10") if line.startswith("interface")] == [
        "interface ge0/3",
        "interface ge0/5",
    ]
    assert [line for line in block(local, "vpn 20") if line.startswith("interface")] == ["interface ge0/4"]
    assert cisco_parser.parse(files)
    # Without vpn the LAN side stays in VPN 1, as before.
    default = rendered(built(sdwan_repo(_edge_in_vpns("edge1", None)), tmp_path / "d"), "edge1")
    assert block(default["centralized-policy.cfg"].split("\n lists\n", 1)[1], "vpn-list QOECTL-VPN1") == ["vpn 1"]


def test_a_service_vpn_on_a_platform_without_one_is_noted_and_changes_nothing(tmp_path: Path) -> None:
    ios = device("rtr1", "cisco_iosxe", "branch-1")
    plain = rendered(built(sdwan_repo(ios, cisco_edge()), tmp_path / "plain"), "rtr1")
    ios["interfaces"][1]["vpn"] = 10  # type: ignore[index]
    b = built(sdwan_repo(ios, cisco_edge()), tmp_path / "vpn")
    assert b.ok, [d.format() for d in b.errors]
    plan = b.plan("rtr1")
    assert plan is not None
    assert [n for n in plan.notes if "vpn" in n] == [
        "interfaces[].vpn is not used on cisco_iosxe: its QoS applies to the interface whatever VPN/VRF it is in "
        "(service VPNs scope Cisco SD-WAN app-route policies)"
    ]
    assert rendered(b, "rtr1") == plain
    edge = b.plan("edge1")
    assert edge is not None and not any("vpn is not used" in n for n in edge.notes)


@pytest.mark.parametrize(
    ("interface", "message"),
    [
        (
            {"name": "ge0/9", "role": "wan", "bandwidth_kbps": 1000, "vpn": 10},
            "a wan interface is in the transport VPN 0",
        ),
        ({"name": "ge0/9", "role": "lan", "vpn": 512}, "VPN 512 is the management VPN"),
        ({"name": "ge0/9", "role": "lan", "vpn": 0}, "greater than or equal to 1"),
    ],
)
def test_impossible_service_vpns_are_refused(tmp_path: Path, interface: dict[str, object], message: str) -> None:
    from controller.errors import PolicyError

    edge = cisco_edge()
    edge["interfaces"] = [*edge["interfaces"], interface]  # type: ignore[list-item]
    with pytest.raises(PolicyError) as exc:
        built(sdwan_repo(edge), tmp_path)
    assert any(message in d.message for d in exc.value.diagnostics), [d.format() for d in exc.value.diagnostics]


def test_edges_of_one_site_in_different_service_vpns_are_an_error(tmp_path: Path) -> None:
    repo = _sites_with_ids(1001)
    repo.set_devices([_edge_in_vpns("edge1", 10), _edge_in_vpns("edge2", 20)])
    b = built(repo, tmp_path)
    problems = [d for d in b.errors if "share site branch-1" in d.message]
    assert len(problems) == 1 and "their service VPNs differ" in problems[0].message, [d.format() for d in b.errors]
