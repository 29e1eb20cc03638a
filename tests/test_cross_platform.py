"""One journey set, the same meaning on every platform - checked from each platform's own output.

The bundled example is compiled once per platform with every device retargeted
to that platform (same links, same journeys), rendered, and parsed back by the
independent parsers in ``tests/parsers`` (never from the plan). For every
journey the test then requires, across all platforms and devices:

* the same DSCP,
* the same strict / non-strict treatment,
* the same bandwidth share of each WAN link as the Linux rendering (HTB rates
  in kbit/s, the most exact form) within ``SHARE_TOLERANCE_PCT``: whole-percent
  rounding, which is how IOS-XE, Junos and EOS state shares.

On the two SD-WAN platforms the same journey must also prefer the same
transport (:func:`test_same_preferred_transport_on_both_sdwan_platforms`),
journeys with an SLA target and without one alike, read back by the path
parsers (``tests/parsers/sdwan_paths.py``).

Where the rendered text does not state a link rate (IOS-XE and EOS write no
shaper on a link that is not sub-rate) the share cannot be read back and is
skipped for that interface only; a platform that cannot express shares at all
would be listed in ``NO_SHARES`` with the reason.
"""

from __future__ import annotations

import dataclasses

import pytest

from controller.compile.plan import DevicePlan
from controller.load.loader import load_policy
from controller.pipeline import Build, compile_policy, render_plan
from controller.render import platforms
from tests.conftest import EXAMPLE_POLICIES
from tests.parsers import PARSERS, DeviceTreatment, journey_key
from tests.parsers.sdwan_paths import PATH_PARSERS

# Whole-percent rounding (plus float noise from converting "remaining" shares back to the link).
SHARE_TOLERANCE_PCT = 1.0 + 1e-6
REFERENCE = "linux"
# Platforms whose text states the link rate only through an interface shaper.
RATE_FROM_SHAPER = {"cisco_iosxe", "arista_eos"}
# Platforms that cannot express a bandwidth share at all: platform -> why (none so far).
NO_SHARES: dict[str, str] = {}

Rendered = dict[str, tuple[DevicePlan, DeviceTreatment]]


def _retargeted(platform: str) -> Build:
    """Every device switched to ``platform``, its interfaces renamed eth0, eth1, ... (valid everywhere, Linux too)."""
    policy, problems = load_policy(EXAMPLE_POLICIES)
    devices = tuple(
        dataclasses.replace(
            d,
            platform=platform,
            interfaces=tuple(dataclasses.replace(i, name=f"eth{k}") for k, i in enumerate(d.interfaces)),
        )
        for d in policy.devices
    )
    return compile_policy(dataclasses.replace(policy, devices=devices), problems)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Rendered]:
    """platform -> device -> (plan, treatment parsed from that platform's rendered text)."""
    out: dict[str, Rendered] = {}
    for platform in sorted(PARSERS):
        build = _retargeted(platform)
        assert build.ok, f"{platform}: " + "\n".join(d.format() for d in build.errors)
        out[platform] = {p.device: (p, PARSERS[platform](render_plan(p))) for p in build.plans}
    return out


def test_every_platform_with_a_renderer_has_a_parser() -> None:
    missing = sorted(set(platforms()) - set(PARSERS))
    if missing:
        pytest.skip(f"no parser in tests/parsers for {', '.join(missing)}: their meaning is not compared yet")


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


def test_bundled_example_as_is_agrees_across_devices(example_build: Build) -> None:
    """The example as shipped (IOS-XE, Linux, Junos, EOS side by side): one DSCP and one treatment per journey."""
    seen: dict[str, dict[str, tuple[int, bool]]] = {}
    for plan in example_build.plans:
        if plan.platform not in PARSERS:
            continue
        for journey, t in PARSERS[plan.platform](render_plan(plan)).items():
            seen.setdefault(journey, {})[f"{plan.platform}/{plan.device}"] = (t.dscp, t.strict)
    platforms_seen = {where.split("/")[0] for s in seen.values() for where in s}
    assert {"linux", "cisco_iosxe", "juniper_junos", "arista_eos"} <= platforms_seen
    for journey, where in seen.items():
        assert len(set(where.values())) == 1, f"{journey}: {where}"


def test_same_preferred_transport_on_both_sdwan_platforms(rendered: dict[str, Rendered]) -> None:
    """Cisco SD-WAN and FortiOS send each journey over the same transport while every path is healthy.

    Read back from each platform's text: Cisco's app-route actions (TLOC colours are the transport names),
    FortiOS's SD-WAN rules (member interfaces, mapped to transports from the inventory). Journeys with an
    SLA target and journeys without one (bulk, scavenger) must both be compared, and every journey must have
    a preference the device acts on.
    """
    assert set(PATH_PARSERS) == {"cisco_sdwan", "fortios_sdwan"}
    compared = {"with an SLA target": 0, "without an SLA target": 0}
    problems = []
    for device, (cisco_plan, _) in rendered["cisco_sdwan"].items():
        forti_plan, _ = rendered["fortios_sdwan"][device]
        cisco = PATH_PARSERS["cisco_sdwan"](render_plan(cisco_plan))
        forti = PATH_PARSERS["fortios_sdwan"](render_plan(forti_plan))
        transport_of = {i.name: str(i.transport) for i in forti_plan.wan_interfaces if i.transport}
        targeted = {journey_key(j) for s in cisco_plan.sla_classes for j in s.journeys}
        expected = {journey_key(p.journey) for p in cisco_plan.path_preferences}
        assert set(cisco) == set(forti) == expected, f"{device}: cisco {sorted(cisco)}, fortios {sorted(forti)}"
        for journey, choice in sorted(cisco.items()):
            fortios = frozenset(transport_of[i] for i in forti[journey].preferred)
            kind = "with an SLA target" if journey in targeted else "without an SLA target"
            compared[kind] += 1
            if not choice.preferred or choice.preferred != fortios:
                problems.append(
                    f"{device} {journey} ({kind}): cisco_sdwan prefers {sorted(choice.preferred) or 'nothing'}, "
                    f"fortios_sdwan {sorted(fortios) or 'nothing'}"
                )
    assert not problems, "preferred transports differ:\n" + "\n".join(problems)
    assert all(compared.values()), f"not every kind of journey was compared: {compared}"
