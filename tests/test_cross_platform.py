"""One journey set, the same meaning on every platform - checked from each platform's own output.

The bundled example is compiled once per platform with every device retargeted
to that platform (same links, same journeys), rendered, and parsed back by the
platforms' parsers (``controller/platforms/<name>/parser.py``, which read only the text: never the plan
or the renderer). Every registered platform is compared. For every
journey the test then requires, across all platforms and devices:

* the same DSCP,
* the same strict / non-strict treatment,
* the same bandwidth share of each WAN link as the Linux rendering (HTB rates
  in kbit/s, the most exact form) within ``SHARE_TOLERANCE_PCT``: whole-percent
  rounding, which is how IOS-XE, Junos and EOS state shares; a strict class's
  cap (its policer / rate limit) exactly, since excess priority traffic above
  it would take bandwidth the plan gives to others;
* on every LAN ingress, trusted or not, the journey's DSCP on the WAN for a
  packet arriving with the DSCP the journey matches: the example gets two
  journeys that match by DSCP (``tests/example_policy.py``), so a platform that
  bleaches an untrusted LAN before it classifies shows a different DSCP.

Where the plan owns the queues (``CONTROL_PARSERS``) every platform must also
state the plan's network-control rule the same way: CS6 and CS7, and the
router's own traffic, in one class of their own that is neither strict
(policed) nor the default class, without early drop, with the same share of
each link as on Linux; and DSCPs no journey claims leave as they arrived from a
trusted LAN and as CS0 from an untrusted one.

On the two SD-WAN platforms the same journey must also prefer the same
transport (:func:`test_same_preferred_transport_on_both_sdwan_platforms`),
journeys with an SLA target and without one alike, read back by the path
parsers (each SD-WAN platform parser's ``paths``).

Where the rendered text does not state a link rate (IOS-XE and EOS write no
shaper on a link that is not sub-rate) the share cannot be read back and is
skipped for that interface only; a platform that cannot express shares at all
would be listed in ``NO_SHARES`` with the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from controller.configtext import meaning
from controller.configtext.meaning import ControlParser, ControlTreatment, DeviceTreatment, PathParser, journey_key
from controller.load.loader import load_policy
from controller.pipeline import Build, compile_policy, render_plan
from controller.plan import DevicePlan
from controller.render import platforms
from tests.conftest import EXAMPLE_POLICIES
from tests.example_policy import MARKED_JOURNEYS, example_with

# Every registered platform: the registry refuses one without a parser, so none is left out or skipped.
PARSERS: dict[str, meaning.Parser] = {p: meaning.parser_of(p).parse for p in platforms()}
CONTROL_PARSERS: dict[str, ControlParser] = {p: c for p in platforms() if (c := meaning.control_parser(p))}
PATH_PARSERS: dict[str, PathParser] = {p: c for p in platforms() if (c := meaning.path_parser(p))}

# Whole-percent rounding (plus float noise from converting "remaining" shares back to the link).
SHARE_TOLERANCE_PCT = 1.0 + 1e-6
REFERENCE = "linux"
# Platforms whose text states the link rate only through an interface shaper (Junos: for absolute rates).
RATE_FROM_SHAPER = {"cisco_iosxe", "arista_eos", "juniper_junos"}
# A strict class's cap must be the plan's to the kbit/s (plus float noise).
STRICT_CAP_TOLERANCE_KBPS = 1e-3
CS6, CS7 = 48, 56
# Platforms that cannot express a bandwidth share at all: platform -> why (none so far).
NO_SHARES: dict[str, str] = {}

Rendered = dict[str, tuple[DevicePlan, DeviceTreatment]]


def _retargeted(platform: str, example: Path = EXAMPLE_POLICIES) -> Build:
    """Every device switched to ``platform``, its interfaces renamed eth0, eth1, ... (valid everywhere, Linux too),
    each WAN interface with a gateway (a Linux edge with two transports routes through them; others ignore it).

    Eight hardware queues hold six journey classes next to the default and the plan's network-control
    class, and the example's branches use seven: for the comparison, training-video shares the
    high-throughput-data class (both are elastic TCP; RFC 5127 aggregates them as assured elastic), on
    every platform alike.
    """
    policy, problems = load_policy(example)
    journeys = tuple(
        dataclasses.replace(j, service_class="high-throughput-data") if j.name == "training-video" else j
        for j in policy.journeys
    )
    policy = dataclasses.replace(policy, journeys=journeys)
    devices = tuple(
        dataclasses.replace(
            d,
            platform=platform,
            interfaces=tuple(
                dataclasses.replace(i, name=f"eth{k}", gateway=f"198.18.200.{k + 1}" if i.role == "wan" else None)
                for k, i in enumerate(d.interfaces)
            ),
        )
        for d in policy.devices
    )
    return compile_policy(dataclasses.replace(policy, devices=devices), problems)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example plus journeys that match by DSCP."""
    return example_with(tmp_path_factory.mktemp("example"), {"journeys/marked.yaml": MARKED_JOURNEYS})


@pytest.fixture(scope="module")
def rendered(example: Path) -> dict[str, Rendered]:
    """platform -> device -> (plan, treatment parsed from that platform's rendered text)."""
    out: dict[str, Rendered] = {}
    for platform in sorted(PARSERS):
        build = _retargeted(platform, example)
        assert build.ok, f"{platform}: " + "\n".join(d.format() for d in build.errors)
        out[platform] = {p.device: (p, PARSERS[platform](render_plan(p))) for p in build.plans}
    return out


@pytest.fixture(scope="module")
def controls(rendered: dict[str, Rendered]) -> dict[str, dict[str, tuple[DevicePlan, ControlTreatment]]]:
    """platform -> device -> (plan, what its text does with traffic no journey claims), where the plan owns queues."""
    return {
        platform: {
            d: (plan, CONTROL_PARSERS[platform](render_plan(plan))) for d, (plan, _) in rendered[platform].items()
        }
        for platform in sorted(CONTROL_PARSERS)
    }


def test_every_registered_platform_is_compared(rendered: dict[str, Rendered]) -> None:
    assert set(rendered) == set(platforms()) == set(PARSERS), "a registered platform is not compared"
    assert len(rendered) >= 6


def test_every_journey_is_found_in_every_output(rendered: dict[str, Rendered]) -> None:
    for platform, devices in rendered.items():
        for device, (plan, treatment) in devices.items():
            expected = {journey_key(m.journey) for m in plan.markings}
            assert set(treatment) == expected, f"{platform} {device}: parsed {sorted(treatment)}"
            assert expected, f"{platform} {device}: no journeys at all"


def _by_journey(rendered: dict[str, Rendered]) -> dict[str, dict[tuple[str, str], DeviceTreatment]]:
    out: dict[str, dict[tuple[str, str], DeviceTreatment]] = {}
    for platform, devices in rendered.items():
        for device, (_, treatment) in devices.items():
            for journey in treatment:
                out.setdefault(journey, {})[(platform, device)] = treatment
    return out


def test_same_dscp_on_every_platform(rendered: dict[str, Rendered]) -> None:
    for journey, seen in _by_journey(rendered).items():
        dscps = {where: t[journey].dscp for where, t in seen.items()}
        assert len(set(dscps.values())) == 1, f"{journey}: DSCP differs: {dscps}"


def test_same_strictness_on_every_platform(rendered: dict[str, Rendered]) -> None:
    for journey, seen in _by_journey(rendered).items():
        strict = {where: t[journey].strict for where, t in seen.items()}
        assert len(set(strict.values())) == 1, f"{journey}: strict/non-strict differs: {strict}"
    assert any(t[j].strict for seen in _by_journey(rendered).values() for t in seen.values() for j in t), (
        "the example has no strict journey, so strictness is not really compared"
    )


def _share_params() -> list[str]:
    return [p for p in sorted(PARSERS) if p != REFERENCE]


@pytest.mark.parametrize("platform", _share_params())
def test_same_bandwidth_share_as_linux(platform: str, rendered: dict[str, Rendered]) -> None:
    if platform in NO_SHARES:
        pytest.skip(f"{platform} cannot express shares: {NO_SHARES[platform]}")
    compared = 0
    problems = []
    for device, (plan, treatment) in rendered[platform].items():
        _, reference = rendered[REFERENCE][device]
        for journey, t in treatment.items():
            for iface, share in t.shares:
                exact = reference[journey].share(iface)
                assert exact is not None, f"linux states every link rate, yet {device} {iface} has none"
                if share is None:
                    shaped = next(i.shape_kbps for i in plan.interfaces if i.name == iface)
                    assert platform in RATE_FROM_SHAPER and not shaped, f"{platform} {device} {iface}: no share"
                    continue
                compared += 1
                if abs(share - exact) > SHARE_TOLERANCE_PCT:
                    problems.append(f"{device} {iface} {journey}: {share:.2f} % (linux {exact:.2f} %)")
    assert not problems, f"{platform} shares differ from linux by more than whole-percent rounding:\n" + "\n".join(
        problems
    )
    assert compared >= 20, f"only {compared} shares compared for {platform}"


@pytest.mark.parametrize("platform", sorted(set(CONTROL_PARSERS) - {REFERENCE}))
def test_strict_cap_is_the_plans_exactly(platform: str, rendered: dict[str, Rendered]) -> None:
    """Issue 10 item 3: a strict queue is capped at its guarantee, not at a rounded share of the link."""
    compared = 0
    problems = []
    for device, (plan, treatment) in rendered[platform].items():
        _, reference = rendered[REFERENCE][device]
        for journey, t in treatment.items():
            if not t.strict:
                continue
            for iface, share in t.shares:
                exact = reference[journey].share(iface)
                link = next(i.shape_kbps or i.link_kbps for i in plan.interfaces if i.name == iface)
                if share is None or exact is None or link is None:
                    continue
                compared += 1
                if abs(share - exact) * link / 100.0 > STRICT_CAP_TOLERANCE_KBPS:
                    problems.append(
                        f"{device} {iface} {journey}: capped at {share * link / 100:.1f} kbit/s "
                        f"(linux {exact * link / 100:.1f} kbit/s)"
                    )
    assert not problems, f"{platform} caps strict classes elsewhere than the plan:\n" + "\n".join(problems)
    assert compared >= 2, f"only {compared} strict caps compared for {platform}"


def test_dscp_matched_journeys_keep_their_marking_on_every_lan(rendered: dict[str, Rendered]) -> None:
    """Issue 10 item 1: a journey that matches the arriving DSCP is recognised on untrusted LANs too."""
    problems = []
    untrusted_seen = 0
    for platform in sorted(CONTROL_PARSERS):
        for device, (plan, treatment) in rendered[platform].items():
            untrusted = any(not i.trust_dscp for i in plan.lan_interfaces)
            for journey, t in treatment.items():
                assert t.lan, f"{platform} {device} {journey}: no LAN ingress read back"
                wrong = [(ingress, d) for ingress, d in t.lan if d != t.dscp]
                if wrong:
                    problems.append(f"{platform} {device} {journey} (DSCP {t.dscp}): leaves as {wrong}")
            if untrusted and {"MARKED-VOICE", "MARKED-VIDEO"} <= set(treatment):
                untrusted_seen += 1
    assert not problems, "journeys lose their marking on a LAN ingress:\n" + "\n".join(problems)
    assert untrusted_seen >= 4 * len(CONTROL_PARSERS), "too few untrusted LANs with DSCP-matched journeys compared"


def _queue_journeys(t: DeviceTreatment, c: ControlTreatment) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for journey, jt in t.items():
        out.setdefault(c.queue_of[jt.dscp], set()).add(journey)
    return out


def test_network_control_has_a_protected_class_of_its_own(
    rendered: dict[str, Rendered], controls: dict[str, dict[str, tuple[DevicePlan, ControlTreatment]]]
) -> None:
    """Issue 10 item 2: CS6/CS7 and the router's own traffic share one class: not strict, not default, no RED."""
    problems = []
    for platform, devices in controls.items():
        for device, (_, c) in devices.items():
            where = f"{platform} {device}"
            nc = c.queue_of[CS6]
            q = c.queues[nc]
            if c.queue_of[CS7] != nc:
                problems.append(f"{where}: CS6 in {nc}, CS7 in {c.queue_of[CS7]}")
            if nc == c.queue_of[0]:
                problems.append(f"{where}: CS6 shares {nc} with best effort (DSCP 0)")
            if q.strict:
                problems.append(f"{where}: CS6 is in strict (policed) queue {nc}")
            if q.early_drop:
                problems.append(f"{where}: CS6 queue {nc} drops early (RED/AQM)")
            if any(share is not None and share <= 0 for _, share in q.shares):
                problems.append(f"{where}: CS6 queue {nc} has no guarantee: {q.shares}")
            journeys = _queue_journeys(rendered[platform][device][1], c).get(nc, set())
            if journeys:
                problems.append(f"{where}: CS6 queue {nc} also carries journeys {sorted(journeys)}")
            if c.host_queue is not None and c.host_queue != nc:
                problems.append(f"{where}: the router's own traffic goes to {c.host_queue}, not {nc}")
            if (c.host[CS6], c.host[CS7]) != (CS6, CS7):
                problems.append(f"{where}: the router's own CS6/CS7 leave as {c.host[CS6]}/{c.host[CS7]}")
    assert not problems, "network control is not protected:\n" + "\n".join(problems)


def test_network_control_share_as_linux(
    controls: dict[str, dict[str, tuple[DevicePlan, ControlTreatment]]],
) -> None:
    compared = 0
    problems = []
    for platform, devices in controls.items():
        for device, (_, c) in devices.items():
            _, ref = controls[REFERENCE][device]
            exact = dict(ref.queues[ref.queue_of[CS6]].shares)
            for iface, share in c.queues[c.queue_of[CS6]].shares:
                if share is None:
                    continue
                compared += 1
                if abs(share - exact[iface]) > SHARE_TOLERANCE_PCT:
                    problems.append(f"{platform} {device} {iface}: {share:.2f} % (linux {exact[iface]:.2f} %)")
    assert not problems, "network-control shares differ from linux:\n" + "\n".join(problems)
    assert compared >= 20


def test_unclaimed_dscps_are_kept_from_trusted_lans_and_bleached_from_untrusted(
    controls: dict[str, dict[str, tuple[DevicePlan, ControlTreatment]]],
) -> None:
    """Issue 10 item 2: nothing rewrites a DSCP the plan does not own, unless the LAN is untrusted."""
    problems = []
    identity = {d: d for d in range(64)}
    for platform, devices in controls.items():
        for device, (plan, c) in devices.items():
            where = f"{platform} {device}"
            if any(i.trust_dscp for i in plan.lan_interfaces):
                changed = {d: out for d, out in c.trusted.items() if out != d}
                if not c.trusted or changed:
                    problems.append(f"{where}: trusted LAN rewrites {changed or 'everything (none read back)'}")
            if any(not i.trust_dscp for i in plan.lan_interfaces) and c.untrusted != dict.fromkeys(identity, 0):
                kept = {d: out for d, out in c.untrusted.items() if out != 0}
                problems.append(f"{where}: untrusted LAN keeps {kept or 'nothing read back'}")
    assert not problems, "\n".join(problems)


def test_bundled_example_as_is_agrees_across_devices(example_build: Build) -> None:
    """The example as shipped (IOS-XE, Linux, Junos, EOS side by side): one DSCP and one treatment per journey."""
    seen: dict[str, dict[str, tuple[int, bool]]] = {}
    for plan in example_build.plans:
        for journey, t in PARSERS[plan.platform](render_plan(plan)).items():
            seen.setdefault(journey, {})[f"{plan.platform}/{plan.device}"] = (t.dscp, t.strict)
    platforms_seen = {where.split("/")[0] for s in seen.values() for where in s}
    assert {"linux", "cisco_iosxe", "juniper_junos", "arista_eos"} <= platforms_seen
    for journey, where in seen.items():
        assert len(set(where.values())) == 1, f"{journey}: {where}"


def test_same_preferred_transport_on_every_sdwan_platform(rendered: dict[str, Rendered]) -> None:
    """Cisco SD-WAN, FortiOS and a Linux edge send each journey over the same transport while every path is
    healthy; FortiOS and Linux also fall back through the same transports in the same order.

    Read back from each platform's text: Cisco's app-route actions (TLOC colours are the transport names),
    FortiOS's SD-WAN rules (member interfaces, mapped to transports from the inventory), Linux's path marks,
    ip rules and per-transport tables (devices, mapped the same way). Journeys with an SLA target and journeys
    without one (bulk, scavenger) must both be compared, and every journey must have a preference the device
    acts on. A Linux device with one transport steers nothing (and states nothing).
    """
    assert set(PATH_PARSERS) == {"cisco_sdwan", "fortios_sdwan", "linux"}
    compared = {"with an SLA target": 0, "without an SLA target": 0, "on a linux edge": 0}
    problems = []
    for device, (cisco_plan, _) in rendered["cisco_sdwan"].items():
        forti_plan, _ = rendered["fortios_sdwan"][device]
        linux_plan, _ = rendered["linux"][device]
        cisco = PATH_PARSERS["cisco_sdwan"](render_plan(cisco_plan))
        forti = PATH_PARSERS["fortios_sdwan"](render_plan(forti_plan))
        linux = PATH_PARSERS["linux"](render_plan(linux_plan))
        transport_of = {i.name: str(i.transport) for i in forti_plan.wan_interfaces if i.transport}
        assert transport_of == {i.name: str(i.transport) for i in linux_plan.wan_interfaces if i.transport}
        targeted = {journey_key(j) for s in cisco_plan.sla_classes for j in s.journeys}
        expected = {journey_key(p.journey) for p in cisco_plan.path_preferences}
        assert set(cisco) == set(forti) == expected, f"{device}: cisco {sorted(cisco)}, fortios {sorted(forti)}"
        steers = len(set(transport_of.values())) >= 2
        assert set(linux) == (expected if steers else set()), f"{device}: linux {sorted(linux)}"
        for journey, choice in sorted(cisco.items()):
            fortios = frozenset(transport_of[i] for i in forti[journey].preferred)
            kind = "with an SLA target" if journey in targeted else "without an SLA target"
            compared[kind] += 1
            if not choice.preferred or choice.preferred != fortios:
                problems.append(
                    f"{device} {journey} ({kind}): cisco_sdwan prefers {sorted(choice.preferred) or 'nothing'}, "
                    f"fortios_sdwan {sorted(fortios) or 'nothing'}"
                )
            if not steers:
                continue
            compared["on a linux edge"] += 1
            on_linux = linux[journey]
            preferred = frozenset(transport_of[i] for i in on_linux.preferred)
            if preferred != choice.preferred:
                problems.append(
                    f"{device} {journey}: linux prefers {sorted(preferred)}, cisco {sorted(choice.preferred)}"
                )
            forti_order = tuple(dict.fromkeys(transport_of[i] for i in forti[journey].order or ()))
            linux_order = tuple(transport_of[i] for i in on_linux.order or ())
            if linux_order != forti_order:
                problems.append(f"{device} {journey}: linux falls back {linux_order}, fortios_sdwan {forti_order}")
    assert not problems, "preferred transports differ:\n" + "\n".join(problems)
    assert all(compared.values()), f"not every kind of journey was compared: {compared}"


def test_the_lan_walk_sees_a_bleach_that_runs_before_the_journeys(rendered: dict[str, Rendered]) -> None:
    """The comparison can fail: the old Linux order (bleach, then journeys) reads back as a lost marking."""
    plan, _ = rendered["linux"]["br2-rtr1"]
    files = render_plan(plan)
    lines = files["nftables.nft"].splitlines()
    bleach = [line for line in lines if "untrusted lan" in line]
    rest = [line.replace(" return comment", " comment") for line in lines if line not in bleach]
    at = next(k for k, line in enumerate(rest) if "chain qoe_mark {" in line) + 1
    old_order = "\n".join(rest[:at] + bleach + rest[at:])
    t = PARSERS["linux"]({**files, "nftables.nft": old_order})["MARKED-VOICE"]
    assert t.dscp == 46 and (("eth1", 0) in t.lan), t.lan


def test_the_control_walk_sees_a_rewrite_of_the_default_class(rendered: dict[str, Rendered]) -> None:
    """The comparison can fail: Junos rewrite entries for the default class read back as bleaching CS2 and CS6."""
    plan, _ = rendered["juniper_junos"]["br2-rtr2"]
    cos = render_plan(plan)["cos.set"]
    bleaching = cos + "".join(
        f"set class-of-service rewrite-rules {kind} {rule} forwarding-class {fc} loss-priority low code-point 000000\n"
        for kind, rule in (("dscp", "QOECTL-REWRITE"), ("dscp-ipv6", "QOECTL-REWRITE6"))
        for fc in ("QOECTL-STANDARD", "QOECTL-NETWORK-CONTROL")
    )
    before, after = (
        CONTROL_PARSERS["juniper_junos"]({"cos.set": cos}),
        CONTROL_PARSERS["juniper_junos"]({"cos.set": bleaching}),
    )
    assert (before.trusted[16], before.host[CS6]) == (16, CS6)
    assert (after.trusted[16], after.host[CS6]) == (0, 0)
