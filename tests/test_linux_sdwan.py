"""A Linux SD-WAN edge, from the policy to the rendered text and back (no root needed).

The inventory's ``gateway`` (validated at the user's line), which devices steer (two or more WAN
transports), and what the rendered nftables marks, ip rules and tables *mean*, read back with the
platform's parser (controller/platforms/linux/parser.py): each journey's transports in the plan's order, strict
journeys dropped rather than sent elsewhere, the mark byte qoectl owns and nothing more. The data plane
(real packets through namespaces) is tests/test_linux_sdwan_dataplane.py; apply is tests/test_apply_linux.py.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.configtext.meaning import ParseError, journey_key
from controller.errors import PolicyError
from controller.pipeline import Build, build, render_plan
from controller.plan import DevicePlan
from controller.platforms.linux import parser
from controller.platforms.linux import renderer as linux
from controller.spec import types as t
from controller.spec.schema import json_schema
from tests.policy_builder import PolicyRepo, bulk_journey, device, interactive_journey, lan, wan

GW = {"mpls": "198.18.7.1", "internet": "2001:db8:18::1"}


def edge(gateways: dict[str, str | None] | None = None, transports: tuple[str, ...] = ("mpls", "internet")) -> dict:
    gws = GW if gateways is None else gateways
    wans = []
    for k, name in enumerate(transports):
        w = wan(f"wan{k}", 20000, name)
        if gws.get(name):
            w["gateway"] = gws[name]
        wans.append(w)
    return device("hq-rtr1", "linux", "hq", interfaces=[*wans, lan("lan0", trust_dscp=False)])


def repo_with(dev: dict, *journeys: dict) -> PolicyRepo:
    repo = PolicyRepo.standard()
    repo.set_devices([device("br1-rtr1"), dev])
    for j in journeys:
        repo.add_journey(j)
    return repo


PINNED = bulk_journey("pinned-sync", port=8873, sdwan={"strict": True, "preferred_transports": ["internet"]})
BOTH = interactive_journey("portal", port=8443, sdwan={"preferred_transports": ["internet", "mpls"]})


def built(repo: PolicyRepo, tmp_path: Path) -> Build:
    b = build(repo.write(tmp_path / "policy"))
    assert b.ok, "\n".join(d.format() for d in b.errors)
    return b


def the_plan(b: Build) -> DevicePlan:
    plan = b.plan("hq-rtr1")
    assert plan is not None
    return plan


# -- inventory: the gateway ------------------------------------------------------------------------------


def test_a_missing_gateway_is_reported_at_each_interface_with_what_to_write(tmp_path: Path) -> None:
    repo = repo_with(edge({"mpls": None, "internet": None}))
    root = repo.write(tmp_path / "policy")
    res = CliRunner().invoke(cli, ["validate", str(root)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if ".gateway:" in line]
    assert len(lines) == 2, res.output  # every problem at once
    for k, transport in enumerate(("mpls", "internet")):
        line = repo.line_of("inventory/devices.yaml", rf"name: wan{k}$")
        expect = f"devices.yaml:{line}:"
        hit = next(x for x in lines if f"interfaces[{k}].gateway" in x)
        assert expect in hit and f"transport {transport}" in hit and "hint: add 'gateway: <address" in hit, hit


def test_one_missing_gateway_only_that_one(tmp_path: Path) -> None:
    b = build(repo_with(edge({"mpls": "198.18.7.1", "internet": None})).write(tmp_path / "policy"))
    assert [d.field for d in b.errors] == ["spec.devices[1].interfaces[1].gateway"]


@pytest.mark.parametrize(
    ("gateway", "says"),
    [
        ("198.18.7.0/24", "is not an IPv4 or IPv6 address"),
        ("fe80::1%wan0", "zone ids"),
        ("224.0.0.9", "cannot be a next hop"),
        ("0.0.0.0", "cannot be a next hop"),
        ("198.18.7.1\nrule add", "is not an IPv4 or IPv6 address"),
    ],
)
def test_a_gateway_must_be_a_unicast_address(tmp_path: Path, gateway: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        build(repo_with(edge({"mpls": gateway, "internet": "198.18.8.1"})).write(tmp_path / "policy"))
    problems = [d for d in caught.value.diagnostics if d.field.endswith("interfaces[0].gateway")]
    assert problems and says in problems[0].message, str(caught.value)


def test_a_lan_interface_has_no_gateway(tmp_path: Path) -> None:
    dev = edge()
    dev["interfaces"][-1]["gateway"] = "198.18.9.1"
    with pytest.raises(PolicyError, match="a lan interface has none"):
        build(repo_with(dev).write(tmp_path / "policy"))


def test_address_pattern_is_the_address_parser_apart_from_what_schema_cannot_say() -> None:
    from tests.test_schema_corpus import PREFIXES, _ecma, _pattern_in

    regex = _ecma(_pattern_in(json_schema(), "An IPv4 or IPv6 unicast address"))
    for text in [*(p.split("/")[0] for p in PREFIXES), *PREFIXES, "198.18.0.1", "fe80::1", "::", "ff02::1"]:
        try:
            t._parse_address(text)
            ok = True
        except ValueError as exc:
            ok = "cannot be a next hop" in str(exc)  # unspecified/loopback/multicast: the schema's $comment
        assert (regex.find(text) is not None) == ok, text


# -- which devices steer ---------------------------------------------------------------------------------


def test_one_transport_renders_as_before_and_plans_no_paths(tmp_path: Path) -> None:
    b = built(repo_with(edge(transports=("mpls",))), tmp_path)
    plan = the_plan(b)
    assert plan.path_preferences == () and plan.sla_classes == ()
    files = render_plan(plan)
    assert sorted(files) == ["nftables.nft", "tc.batch"]
    assert "prerouting" not in files["nftables.nft"] and parser.steering(files) == {}


def test_two_transports_steer_every_journey_in_the_plans_order(tmp_path: Path) -> None:
    plan = the_plan(built(repo_with(edge(), PINNED, BOTH), tmp_path))
    files = render_plan(plan)
    assert sorted(files) == ["nftables.nft", "routing.batch", "routing6.batch", "tc.batch"]
    device_of = {"mpls": "wan0", "internet": "wan1"}
    v4, v6 = parser.steering(files, "4"), parser.steering(files, "6")
    assert set(v4) == {journey_key(p.journey) for p in plan.path_preferences}
    for p in plan.path_preferences:
        want = tuple(device_of[x] for x in p.preferred + (() if p.strict else p.backup))
        # Each family's file routes only through the transports with a gateway of that family.
        assert v4[journey_key(p.journey)].order == tuple(d for d in want if d == "wan0"), p
        assert v6[journey_key(p.journey)].order == tuple(d for d in want if d == "wan1"), p
        assert v4[journey_key(p.journey)].strict == p.strict
    assert v4["PINNED-SYNC"].strict and v6["PINNED-SYNC"].order == ("wan1",)
    assert v6["PORTAL"].order == ("wan1",) and v4["PORTAL"].order == ("wan0",)  # internet, then mpls
    # The mark byte 0x0000ff00 is written, every other bit of the packet's mark kept; one mark per journey.
    assert {p.mask for p in v4.values()} == {0xFF00}
    assert len({p.mark for p in v4.values()}) == len(v4)
    assert parser.path_ingresses_skipped(files) == {"wan0", "wan1"}
    assert any("enforced by qoectl loop" in n for n in plan.notes)


def test_a_reordered_preference_is_rendered_as_given_never_resorted(tmp_path: Path) -> None:
    """The loop reorders ``preferred`` per device; the renderer keeps the order it is given."""
    plan = the_plan(built(repo_with(edge({"mpls": "198.18.7.1", "internet": "198.18.8.1"}), BOTH), tmp_path))
    before = parser.steering(render_plan(plan))["PORTAL"].order
    prefs = tuple(
        dataclasses.replace(p, preferred=p.preferred[::-1]) if p.journey == "portal" else p
        for p in plan.path_preferences
    )
    after = parser.steering(render_plan(dataclasses.replace(plan, path_preferences=prefs)))["PORTAL"].order
    assert before == ("wan1", "wan0") and after == ("wan0", "wan1")


def test_the_parser_sees_a_wrong_rule_order_and_foreign_mark_bits(tmp_path: Path) -> None:
    """The read-back can fail: rule priorities swapped, or a rule testing bits qoectl does not own."""
    plan = the_plan(built(repo_with(edge({"mpls": "198.18.7.1", "internet": "198.18.8.1"}), BOTH), tmp_path))
    files = render_plan(plan)
    swapped = re.sub(
        r"priority (\d+)(\d) fwmark",
        lambda m: f"priority {m.group(1)}{9 - int(m.group(2))} fwmark",
        files["routing.batch"],
    )
    assert parser.steering({**files, "routing.batch": swapped})["PORTAL"].order == ("wan0", "wan1")
    wide = files["routing.batch"].replace("/0x0000ff00", "/0x0001ff00", 1)
    with pytest.raises(ParseError, match="mark bits"):
        parser.steering({**files, "routing.batch": wide})


# -- nothing the author writes reaches a line of its own -------------------------------------------------


@pytest.mark.parametrize("field", ["transport", "gateway", "journey"])
def test_a_plan_built_in_code_cannot_inject_a_line(tmp_path: Path, field: str) -> None:
    plan = the_plan(built(repo_with(edge({"mpls": "198.18.7.1", "internet": "198.18.8.1"}), BOTH), tmp_path))
    evil = "x\nrule add priority 1 lookup main"
    if field == "journey":
        plan = dataclasses.replace(
            plan, path_preferences=tuple(dataclasses.replace(p, journey=evil) for p in plan.path_preferences)
        )
    else:
        ifaces = tuple(dataclasses.replace(i, **{field: evil}) if i.name == "wan1" else i for i in plan.interfaces)
        plan = dataclasses.replace(plan, interfaces=ifaces)
    with pytest.raises(ValueError):
        linux.RENDERER.render(plan)


# -- apply: a routing file beyond what qoectl owns is refused before any connection -------------------------


@pytest.mark.parametrize(
    "line",
    [
        "rule add priority 100 fwmark 0x100/0xff00 lookup 29101",  # below the range: e.g. before local routes
        "rule add priority 30100 fwmark 0x100/0xff00 lookup 254",  # qoectl's rule sending to main
        "rule add priority 30100 fwmark 0x100/0xffff lookup 29101",  # tests other software's mark bits
        "route add default via 198.18.7.1 dev wan0 table 254",  # the main table
        "route flush table all",
    ],
)
def test_the_driver_refuses_routing_beyond_its_ranges(tmp_path: Path, line: str) -> None:
    from controller.apply.connection import Timeouts
    from controller.apply.drivers.base import DriverContext
    from controller.apply.errors import ApplyError
    from controller.platforms.linux.driver import LinuxDriver

    b = built(repo_with(edge({"mpls": "198.18.7.1", "internet": "198.18.8.1"}), BOTH), tmp_path)
    files = render_plan(the_plan(b))
    dev = next(d for d in b.policy.devices if d.name == "hq-rtr1")
    ctx = DriverContext(run_id="t", timeouts=Timeouts())
    LinuxDriver(dev, files, ctx)  # as rendered: accepted
    with pytest.raises(ApplyError, match="beyond what qoectl owns") as caught:
        LinuxDriver(dev, {**files, "routing.batch": files["routing.batch"] + line + "\n"}, ctx)
    assert caught.value.kind == "precondition"
