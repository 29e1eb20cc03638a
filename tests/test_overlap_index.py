"""Overlapping traffic found through an index, with the same diagnostics as comparing every pair (issue 10, item 7).

``check_overlaps`` used to compare every pair of journeys (2,000 journeys took
21 s, 50,000 never finished). It now puts each match in an index over its
protocol, ports and prefixes and compares only the pairs the index puts
together. The reference below is the old pairwise check, kept here on
purpose: generated policies must give exactly its diagnostics, in its order.
No timing is asserted; the work done (pairs compared) is.
"""

from __future__ import annotations

import ipaddress
import random
from itertools import combinations
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.compile.compiler import class_name_for, in_scope, marking_dscp
from controller.errors import Diagnostic
from controller.load.yamlsrc import YamlDocument
from controller.model import (
    Bandwidth,
    BulkTarget,
    Credentials,
    Device,
    InteractiveTarget,
    Journey,
    Match,
    Origin,
    Policy,
    Settings,
    Site,
    Target,
    VideoTarget,
    VoiceTarget,
)
from controller.model.catalogue import RFC4594
from controller.spec.types import dscp_name
from controller.validate import checks

# --------------------------------------------------------------------------- the reference: every pair


def _ref_ranges(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    if not a or not b:
        return True
    return any(x[0] <= y[1] and y[0] <= x[1] for x in a for y in b)


def _ref_prefixes(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a or not b:
        return True
    nets_a = [ipaddress.ip_network(x) for x in a]
    nets_b = [ipaddress.ip_network(y) for y in b]
    return any(x.version == y.version and x.overlaps(y) for x in nets_a for y in nets_b)


def _ref_families(m: Match) -> set[int]:
    return {6 if ":" in p else 4 for p in m.source_prefixes + m.destination_prefixes} or {4, 6}


def _ref_overlap(a: Match, b: Match) -> bool:
    if a.protocol != "any" and b.protocol != "any" and a.protocol != b.protocol:
        return False
    if not _ref_families(a) & _ref_families(b):
        return False
    if a.dscp is not None and b.dscp is not None and a.dscp != b.dscp:
        return False
    return (
        _ref_ranges(a.source_ports, b.source_ports)
        and _ref_ranges(a.destination_ports, b.destination_ports)
        and _ref_prefixes(a.source_prefixes, b.source_prefixes)
        and _ref_prefixes(a.destination_prefixes, b.destination_prefixes)
    )


def reference_overlaps(policy: Policy) -> list[Diagnostic]:
    """The pairwise check as it was: every pair of journeys by name, first overlapping match of each."""
    out = []
    catalogue = {c.name: c for c in policy.classes}
    for a, b in combinations(sorted(policy.journeys, key=lambda j: j.name), 2):
        ca, cb = class_name_for(a), class_name_for(b)
        if ca not in catalogue or cb not in catalogue:
            continue
        da, db = marking_dscp(a, catalogue[ca]), marking_dscp(b, catalogue[cb])
        if (ca, da) == (cb, db):
            continue
        for ia, ma in enumerate(a.matches):
            hit = next((ib for ib, mb in enumerate(b.matches) if _ref_overlap(ma, mb)), None)
            if hit is None:
                continue
            shared = not policy.devices or any(
                in_scope(a, d, policy.context_of(d)) and in_scope(b, d, policy.context_of(d)) for d in policy.devices
            )
            if not shared:
                break
            out.append(
                Diagnostic(
                    b.origin.at("spec", "traffic", "match", hit),
                    b.origin.field("spec", "traffic", "match", hit),
                    f"journey '{b.name}' claims traffic that journey '{a.name}' also claims "
                    f"({b.name}: {cb}/{dscp_name(db)}, {a.name}: {ca}/{dscp_name(da)})",
                    "narrow one match (ports, prefixes, protocol) or give both journeys the same class",
                    related=(a.origin.at("spec", "traffic", "match", ia),),
                )
            )
            break
    return out


# --------------------------------------------------------------------------- generated policies

V4 = ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.3.0/24", "10.1.2.4/32", "10.2.0.0/16", "192.168.0.0/24")
V6 = ("2001:db8::/32", "2001:db8:1::/48", "2001:db8:2::/48", "2001:db8:1:5::/64")
SITES = (Site("s1", "branch", None), Site("s2", "campus", None), Site("s3", "branch", None))
TARGETS: tuple[Target, ...] = (
    VoiceTarget("g711", 4.0, None, None, None),
    VideoTarget("conferencing", 1500, None, None, None, None, None),
    VideoTarget("streaming", 2500, 4, None, None, None, None),
    InteractiveTarget(1000, 0.9, None, None, 4, 0.5),
    BulkTarget(1000, False),
    BulkTarget(0, True),
)


def _journey(
    name: str, ms: tuple[Match, ...], target: Target, priority: str, sites: tuple[str, ...] = (), **more: Any
) -> Journey:
    """A journey of the model (no YAML), with a document of its own so that every location differs."""
    return Journey(
        name=name,
        owner=None,
        description=None,
        application=None,
        category=None,
        matches=ms,
        target=target,
        priority=priority,  # type: ignore[arg-type]
        bandwidth=Bandwidth(None, None, 1.0),
        sites=sites,
        device_tags=more.get("device_tags", ()),
        contexts=more.get("contexts", ()),
        service_class=more.get("service_class"),
        sdwan_strict=False,
        preferred_transports=(),
        origin=_origin(name, len(ms)),
    )


def _origin(name: str, matches: int) -> Origin:
    """A document per journey whose match entries sit on lines 10, 11, ... (so every location differs)."""
    positions: dict[tuple[str | int, ...], tuple[int, int]] = {(): (1, 1)}
    for k in range(matches):
        positions[("spec", "traffic", "match", k)] = (10 + k, 7)
    return Origin(YamlDocument(f"{name}.yaml", 0, None, positions), ())


ranges = st.lists(
    st.tuples(st.integers(1, 14), st.integers(0, 4)).map(lambda t: (t[0], t[0] + t[1])), min_size=0, max_size=2
).map(tuple)


@st.composite
def matches(draw: Any) -> Match:
    protocol = draw(st.sampled_from(["udp", "tcp", "icmp", "any"]))
    l4 = protocol in ("udp", "tcp")
    family = draw(st.sampled_from([V4, V6]))
    prefixes = st.lists(st.sampled_from(family), max_size=2).map(tuple)
    return Match(
        protocol=protocol,
        source_ports=draw(ranges) if l4 and draw(st.booleans()) else (),
        destination_ports=draw(ranges) if l4 else (),
        source_prefixes=draw(prefixes) if draw(st.integers(0, 3)) == 0 else (),
        destination_prefixes=draw(prefixes),
        dscp=draw(st.sampled_from([None, None, None, 0, 46])),
    )


@st.composite
def journeys(draw: Any, name: str) -> Journey:
    return _journey(
        name,
        tuple(draw(st.lists(matches(), min_size=1, max_size=3))),
        draw(st.sampled_from(TARGETS)),
        draw(st.sampled_from(["critical", "high", "normal", "low", "scavenger"])),
        tuple(draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), max_size=2, unique=True))),
        device_tags=tuple(draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=1))),
        contexts=tuple(draw(st.lists(st.sampled_from(["branch", "campus"]), max_size=1))),
        service_class=draw(st.sampled_from([None, None, None, "signaling", "no-such-class"])),
    )


def _device(name: str, site: str, tags: tuple[str, ...]) -> Device:
    return Device(name, "linux", f"{name}.lab.example", 22, site, tags, Credentials(), (), ())


@st.composite
def policies(draw: Any) -> Policy:
    names = draw(st.lists(st.sampled_from([f"j{i}" for i in range(16)]), min_size=2, max_size=12))
    js = tuple(draw(journeys(n)) for n in names)  # duplicate names on purpose: the order must still agree
    sites, tags = st.sampled_from(["s1", "s2", "s3", "s9"]), st.sets(st.sampled_from(["t1", "t2"]))
    devs = tuple(_device(f"d{i}", draw(sites), tuple(draw(tags))) for i in range(draw(st.integers(0, 4))))
    return Policy(journeys=js, sites=SITES, transports=(), devices=devs, classes=RFC4594, settings=Settings())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_the_indexed_check_reports_what_the_pairwise_check_reports(policy: Policy) -> None:
    assert checks.check_overlaps(policy) == reference_overlaps(policy)


def _random_policy(n: int, seed: int) -> Policy:
    """``n`` journeys over a small space of ports and prefixes, so that many pairs overlap, and a few devices."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ms = []
        for _ in range(rng.randint(1, 3)):
            protocol = rng.choice(["udp", "tcp", "tcp", "icmp", "any"])
            l4 = protocol in ("udp", "tcp")
            family = rng.choice([V4, V4, V6])
            lo = rng.randint(1, 400)
            ms.append(
                Match(
                    protocol=protocol,  # type: ignore[arg-type]
                    source_ports=((lo, lo + rng.randint(0, 50)),) if l4 and rng.random() < 0.2 else (),
                    destination_ports=((lo, lo + rng.choice([0, 0, 3, 100])),) if l4 and rng.random() < 0.8 else (),
                    destination_prefixes=tuple(rng.sample(family, rng.randint(0, 2))),
                    dscp=rng.choice([None, None, 0, 46]),
                )
            )
        target, priority = rng.choice(TARGETS), rng.choice(["critical", "high", "normal", "low"])
        out.append(
            _journey(f"r{i:04d}", tuple(ms), target, priority, tuple(rng.sample(["s1", "s2", "s3"], rng.randint(0, 1))))
        )
    devs = (_device("d1", "s1", ()), _device("d2", "s2", ()))
    return Policy(tuple(out), SITES, (), devs, RFC4594, Settings())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_few_hundred_journeys_agree_with_the_pairwise_check(seed: int) -> None:
    policy = _random_policy(300, seed)
    expected = reference_overlaps(policy)
    assert len(expected) > 100  # the generated space is small on purpose: many real conflicts
    assert checks.check_overlaps(policy) == expected


def test_disjoint_journeys_are_not_compared_pair_by_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 journeys to their own prefixes (and 200 to their own UDP port): each match meets few others.

    The pairwise check compared 1.6 million pairs of matches; the index compares
    a match only with those it could overlap, a few per match.
    """
    calls = [0]
    real = checks.matches_overlap

    def counting(a: Match, b: Match) -> bool:
        calls[0] += 1
        return real(a, b)

    monkeypatch.setattr(checks, "matches_overlap", counting)
    js = []
    for i in range(2200):
        if i < 2000:
            net = str(ipaddress.ip_network(f"10.{i // 256}.{i % 256}.0/24"))
            m = Match("tcp", destination_ports=((443, 443),), destination_prefixes=(net,))
        else:
            m = Match("udp", destination_ports=((40000 + i, 40000 + i),))
        js.append(_journey(f"app-{i:04d}", (m,), TARGETS[3], ("high", "normal", "low")[i % 3]))  # AF21/22/23
    wide = Match("tcp", destination_ports=((443, 443),), destination_prefixes=("10.0.0.0/8",))
    js.append(_journey("web-all", (wide,), TARGETS[4], "low"))  # high-throughput-data AF13
    policy = Policy(tuple(js), SITES, (), (), RFC4594, Settings())
    found = checks.check_overlaps(policy)
    assert len(found) == 2000  # the wide journey claims every journey's traffic, once per pair
    assert {d.message.split("'")[1] for d in found} == {"web-all"}
    assert calls[0] <= 5 * len(js), f"{calls[0]} match comparisons for {len(js)} journeys"
