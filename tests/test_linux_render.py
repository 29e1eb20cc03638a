"""The Linux renderer against the real kernel tools: nft and tc accept what it writes, and mean it.

For every Linux device of the bundled example and for small policies written
here (IPv6, protocol any/icmp, port ranges, untrusted LANs, a shaped second
WAN, a device with ``features: [fq_codel]``):

* ``nft -c -f`` accepts the ruleset, ``nft -f`` loads it twice, and the loaded
  ``inet qoectl`` table holds exactly the marking, trust and classification
  rules the plan asks for;
* ``tc -batch`` loads into a throw-away namespace whose interfaces carry the
  plan's names, and ``tc class show`` / ``tc qdisc show`` then match the plan
  (rates, ceilings, prio 0 for strict classes, leaf qdiscs, default class);
* loading twice gives the same tree, and re-loading after a journey was
  removed leaves no stale class or rule.

The expected values are computed from the plan here, not taken from the
renderer's template context, so a renderer bug cannot hide behind itself. The
first tests are pure unit tests of the renderer's helpers and need no root.
"""

from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.pipeline import Build, build, render_plan
from controller.plan import DevicePlan, PlanMatch, QosClass
from controller.platforms.linux import renderer as linux
from controller.spec.types import DSCP_NAMES
from tests.conftest import EXAMPLE_POLICIES
from tests.lab.netns import Lab, Netns, requires_netns

# --------------------------------------------------------------------------- pure helpers


def _m(
    protocol: str = "any",
    src: tuple[str, ...] = (),
    dst: tuple[str, ...] = (),
    sports: tuple[tuple[int, int], ...] = (),
    dports: tuple[tuple[int, int], ...] = (),
    dscp: int | None = None,
) -> PlanMatch:
    prefixes = src + dst
    family = "any" if not prefixes else ("ipv6" if ":" in prefixes[0] else "ipv4")
    return PlanMatch(protocol, family, src, dst, sports, dports, dscp)  # type: ignore[arg-type]


def _cls(queue: int, *, strict: bool = False, scavenger: bool = False, is_default: bool = False) -> QosClass:
    return QosClass(
        name=f"c{queue}",
        ident=f"C{queue}",
        queue=queue,
        dscp=0,
        dscps=(0,),
        strict=strict,
        aqm=False,
        fair_queue=False,
        queue_depth=64,
        scavenger=scavenger,
        is_default=is_default,
        journeys=(),
    )


def test_nft_match_udp_ports_and_ipv4_prefixes() -> None:
    m = _m("udp", dst=("198.18.2.0/24",), sports=((5004, 5004),), dports=((16384, 32767), (5060, 5060)))
    assert linux.families(m) == ("ipv4",)
    assert linux.nft_match(m, "ipv4") == "udp sport 5004 udp dport { 16384-32767, 5060 } ip daddr 198.18.2.0/24"


def test_nft_match_ipv6_prefixes_use_ip6() -> None:
    m = _m("tcp", src=("2001:db8:1::/48", "2001:db8:2::/48"), dports=((443, 443),))
    assert linux.families(m) == ("ipv6",)
    assert linux.nft_match(m, "ipv6") == "tcp dport 443 ip6 saddr { 2001:db8:1::/48, 2001:db8:2::/48 }"


def test_nft_match_icmp_per_family() -> None:
    m = _m("icmp")
    assert linux.families(m) == ("ipv4", "ipv6")
    assert linux.nft_match(m, "ipv4") == "meta l4proto icmp"
    assert linux.nft_match(m, "ipv6") == "meta l4proto ipv6-icmp"


def test_nft_match_protocol_without_ports_and_any() -> None:
    assert linux.nft_match(_m("udp"), "ipv4") == "meta l4proto udp"
    assert linux.nft_match(_m("any"), "ipv6") == ""  # everything of that family
    assert linux.nft_match(_m("any", dscp=34), "ipv6") == "ip6 dscp af41"


def test_families_split_a_dual_stack_match_and_drop_impossible_ones() -> None:
    # The policy language rejects such matches; plans built in code must still render valid nft.
    mixed = _m("udp", dst=("198.18.2.0/24", "2001:db8:2::/48"))
    assert linux.families(mixed) == ("ipv4", "ipv6")
    assert linux.nft_match(mixed, "ipv4") == "meta l4proto udp ip daddr 198.18.2.0/24"
    assert linux.nft_match(mixed, "ipv6") == "meta l4proto udp ip6 daddr 2001:db8:2::/48"
    assert linux.families(_m("udp", src=("198.18.1.0/24",), dst=("2001:db8:2::/48",))) == ()


def test_nft_dscp_names_and_numbers() -> None:
    assert [linux.nft_dscp(v) for v in (46, 34, 0, 8, 1, 44, 63)] == ["ef", "af41", "0", "cs1", "1", "44", "63"]


def test_ports_quantum_prio_and_classid() -> None:
    assert linux._ports(((80, 80),)) == "80"
    assert linux._ports(((80, 80), (8000, 8099))) == "{ 80, 8000-8099 }"
    assert linux._quantum(1) == 1514  # never below one full-size Ethernet frame
    assert linux._quantum(8_000) == 8_000 * 1000 // 8 // linux.R2Q  # rate in bytes/s over r2q
    assert linux._quantum(100_000_000) == 200_000  # HTB's own upper bound for a sane DRR round
    strict, scav, dflt = _cls(0, strict=True), _cls(10, scavenger=True), _cls(11, is_default=True)
    assert [linux._htb_prio(c) for c in (strict, scav, dflt)] == [0, 3, 2]
    assert [linux.classid(c) for c in (strict, scav, dflt)] == ["1:10", "1:1a", "1:1b"]


# --------------------------------------------------------------------------- policies for the kernel tests

INVENTORY = """\
apiVersion: qoectl/v1
kind: Inventory
metadata: {name: lab}
spec:
  sites:
    - {name: lab, context: branch}
  devices:
    - name: edge
      platform: linux
      host: edge.lab.example
      site: lab
      interfaces:
        - {name: wan0, role: wan, bandwidth_kbps: 50000}
        - {name: wan1, role: wan, bandwidth_kbps: 8000, port_speed_kbps: 100000}
        - {name: lan0, role: lan, trust_dscp: false}
        - {name: lan1, role: lan}
    - name: edge-fq
      platform: linux
      host: edge-fq.lab.example
      site: lab
      features: [fq_codel]
      interfaces:
        - {name: wan0, role: wan, bandwidth_kbps: 20000}
        - {name: lan0, role: lan, trust_dscp: false}
"""


def _journey(name: str, body: str) -> str:
    return f"apiVersion: qoectl/v1\nkind: Journey\nmetadata: {{name: {name}}}\nspec:\n{body}"


JOURNEYS = {
    "voice6": """\
  traffic:
    match:
      - protocol: udp
        source_ports: ["10000-10999", 5004]
        destination_ports: ["16384-32767"]
        destination_prefixes: ["2001:db8:20::/48", "2001:db8:21::/48"]
      - protocol: udp
        destination_ports: ["16384-32767"]
        destination_prefixes: [198.18.20.0/24]
  target: {voice: {codec: g711, mos: 4.0}}
  priority: critical
  bandwidth: {per_flow_kbps: 90, concurrent_flows: 10}
""",
    "pings": """\
  traffic:
    match:
      - protocol: icmp
  target: {interactive: {apdex_t_ms: 500, apdex: 0.9}}
  priority: high
  bandwidth: {share_pct: 1}
""",
    "mgmt6": """\
  traffic:
    match:
      - protocol: any
        source_prefixes: ["2001:db8:99::/64"]
  target: {interactive: {apdex_t_ms: 500, apdex: 0.9}}
  priority: high
  bandwidth: {share_pct: 2}
""",
    "mgmt4": """\
  traffic:
    match:
      - protocol: any
        destination_prefixes: [198.18.99.0/24]
  target: {interactive: {apdex_t_ms: 500, apdex: 0.9}}
  priority: high
  bandwidth: {share_pct: 2}
""",
    "video": """\
  traffic:
    match:
      - protocol: udp
        destination_ports: [9000]
        destination_prefixes: [198.18.40.0/24]
      - protocol: udp
        destination_ports: [9001]
        dscp: af41
  target: {video: {mode: conferencing, bitrate_kbps: 1500}}
  priority: high
  bandwidth: {per_flow_kbps: 1800, concurrent_flows: 2}
""",
    "backup": """\
  traffic:
    match:
      - protocol: tcp
        source_ports: ["1024-65535"]
        destination_ports: [8400, "8500-8599"]
        destination_prefixes: [198.18.50.0/24]
  target: {bulk: {min_throughput_kbps: 2000}}
  priority: low
  bandwidth: {share_pct: 10}
""",
    "updates": """\
  traffic:
    match:
      - protocol: tcp
        destination_ports: [80, 443]
        destination_prefixes: [198.18.80.0/24, 198.18.81.0/24]
  target: {bulk: {scavenger: true}}
  priority: scavenger
  bandwidth: {share_pct: 1}
""",
}


def _write_policy(root: Path, journeys: list[str]) -> Build:
    root.mkdir(parents=True)
    (root / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    docs = [_journey(name, JOURNEYS[name]) for name in journeys]
    (root / "journeys.yaml").write_text("---\n".join(docs), encoding="utf-8")
    result = build(root)
    assert result.ok, "\n".join(d.format() for d in result.errors)
    return result


def _example_linux_devices() -> list[str]:
    return [p.device for p in build(EXAMPLE_POLICIES).plans if p.platform == "linux"]


def _kernel_has_fq_codel() -> bool:
    """True only when fq_codel is already in the kernel; this test never loads a module."""
    if Path("/sys/module/sch_fq_codel").exists():
        return True
    try:
        with gzip.open("/proc/config.gz", "rt") as fh:
            return "CONFIG_NET_SCH_FQ_CODEL=y\n" in fh.read()
    except OSError:
        return False


# --------------------------------------------------------------------------- kernel helpers


@dataclass
class Router:
    """A throw-away namespace with one veth per plan interface, named like the plan's (peers elsewhere)."""

    ns: Netns
    peer: Netns
    folder: Path

    def write(self, files: dict[str, str]) -> dict[str, Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, text in files.items():
            out[name] = self.folder / name
            out[name].write_text(text, encoding="utf-8")
        return out


def _router(lab: Lab, plan: DevicePlan, folder: Path) -> Router:
    ns, peer = lab.host("dut"), lab.host("peer")
    for iface in plan.interfaces:
        ns.exec("ip", "link", "add", iface.name, "type", "veth", "peer", "name", iface.name, "netns", peer.name)
        ns.exec("ip", "link", "set", iface.name, "up")
        peer.exec("ip", "link", "set", iface.name, "up")
    return Router(ns, peer, folder)


def _rate_bits(text: str) -> int:
    """tc's printed rate ("1800Kbit", "20Mbit", "999bit") in bit/s; tc prints SI units, exact below 1 Gbit/s."""
    for unit, factor in (("Tbit", 10**12), ("Gbit", 10**9), ("Mbit", 10**6), ("Kbit", 10**3), ("bit", 1)):
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    raise AssertionError(f"unexpected rate {text!r}")


def htb_classes(ns: Netns, dev: str) -> dict[str, dict[str, Any]]:
    """``tc -d class show`` as classid -> fields (tc prints HTB classes as text only)."""
    out: dict[str, dict[str, Any]] = {}
    for line in ns.exec("tc", "-d", "class", "show", "dev", dev).stdout.splitlines():
        words = line.split()
        if len(words) < 3 or words[:2] != ["class", "htb"]:
            continue
        fields: dict[str, Any] = {"parent": None}
        for key, value in itertools.pairwise(words[3:]):
            if key in ("parent", "leaf"):
                fields[key] = value
            elif key in ("prio", "quantum"):
                fields[key] = int(value)
            elif key in ("rate", "ceil"):
                fields[key] = _rate_bits(value)
        out[words[2]] = fields
    return out


def qdiscs(ns: Netns, dev: str) -> list[dict[str, Any]]:
    return list(json.loads(ns.exec("tc", "-j", "qdisc", "show", "dev", dev).stdout))


def expected_tree(plan: DevicePlan, fq_codel: bool) -> dict[str, tuple[dict[str, dict[str, Any]], dict[str, Any]]]:
    """Per WAN interface: the HTB classes and leaf qdiscs the plan calls for, derived from the plan."""
    trees = {}
    for iface in plan.wan_interfaces:
        if not iface.link_kbps:
            continue
        link = iface.shape_kbps or iface.link_kbps
        classes: dict[str, dict[str, Any]] = {"1:1": {"parent": None, "rate": link * 1000, "ceil": link * 1000}}
        leaves: dict[str, Any] = {}
        for c in plan.classes:
            a = iface.allocation(c.name)
            assert a is not None
            minor = f"{0x10 + c.queue:x}"
            classes[f"1:{minor}"] = {
                "parent": "1:1",
                "leaf": f"{minor}:",
                "rate": a.guaranteed_kbps * 1000,
                "ceil": min(a.max_kbps, link) * 1000,
                "prio": 0 if c.strict else (3 if c.scavenger else (2 if c.is_default else 1)),
            }
            if c.strict:
                assert a.guaranteed_kbps == a.max_kbps, "a strict class must be capped at its guarantee"
            if fq_codel and (c.aqm or c.fair_queue) and not c.strict:
                leaves[f"1:{minor}"] = ("fq_codel", max(c.queue_depth, 64))
            else:
                leaves[f"1:{minor}"] = ("pfifo", c.queue_depth)
        default = next(c for c in plan.classes if c.is_default)
        trees[iface.name] = (classes, {"default": f"0x{0x10 + default.queue:x}", "leaves": leaves})
    return trees


def assert_tree_matches(ns: Netns, plan: DevicePlan) -> None:
    fq = "fq_codel" in plan.features
    for dev, (classes, extra) in expected_tree(plan, fq).items():
        shown = htb_classes(ns, dev)
        assert sorted(shown) == sorted(classes), f"{dev}: classes differ (stale or missing)"
        for cid, want in classes.items():
            got = {k: shown[cid].get(k) for k in want}
            assert got == want, f"{dev} class {cid}"
            if cid != "1:1":
                assert shown[cid]["quantum"] >= 1514, f"{dev} class {cid}: quantum below one frame"
        qs = qdiscs(ns, dev)
        roots = [q for q in qs if q.get("root")]
        assert len(roots) == 1 and roots[0]["kind"] == "htb" and roots[0]["handle"] == "1:", roots
        assert roots[0]["options"]["default"] == extra["default"]
        leaves = {q["parent"]: (q["kind"], q["options"]["limit"]) for q in qs if q.get("parent", "").startswith("1:")}
        assert leaves == extra["leaves"], f"{dev}: leaf qdiscs"


DSCP_VALUE = {**DSCP_NAMES, "cs0": 0, "lephb": 1}  # nft names: cs0 for 0, lephb for LE (1)


def _dscp(value: Any) -> int:
    return value if isinstance(value, int) else DSCP_VALUE[value]


def nft_rules(ns: Netns) -> list[dict[str, Any]]:
    data = json.loads(ns.exec("nft", "-j", "list", "table", "inet", "qoectl").stdout)["nftables"]
    return [
        {k: v for k, v in item["rule"].items() if k != "handle"} for item in data if "rule" in item
    ]  # handles differ between loads; everything else must not


def _mangle(rule: dict[str, Any]) -> tuple[str, Any]:
    for e in rule["expr"]:
        if "mangle" in e:
            key = e["mangle"]["key"]
            what = key["payload"]["protocol"] if "payload" in key else key["meta"]["key"]
            return what, e["mangle"]["value"]
    raise AssertionError(f"rule without a statement: {rule}")


def _matched_set(rule: dict[str, Any], field: str) -> set[int]:
    for e in rule["expr"]:
        left = e.get("match", {}).get("left", {})
        if left.get("payload", {}).get("field") == field:
            right = e["match"]["right"]
            items = right["set"] if isinstance(right, dict) and "set" in right else [right]
            return {_dscp(i) for i in items}
    return set()


def assert_ruleset_matches(ns: Netns, plan: DevicePlan) -> None:
    rules = nft_rules(ns)
    by_comment: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        by_comment.setdefault(r.get("comment", ""), []).append(r)
    expected_comments = {""}  # the two jumps of the base chain
    for rule in plan.markings:
        comment = f"journey {rule.journey}"
        expected_comments.add(comment)
        want = sorted(
            ("ip" if fam == "ipv4" else "ip6", rule.dscp) for m in rule.matches for fam in _expected_families(m)
        )
        got = sorted((what, _dscp(value)) for what, value in map(_mangle, by_comment.get(comment, [])))
        assert got == want, f"marking rules of journey {rule.journey}"
    for iface in plan.lan_interfaces:
        comment = f"untrusted lan {iface.name}"
        if not iface.trust_dscp:
            expected_comments.add(comment)
            got = sorted((what, _dscp(v)) for what, v in map(_mangle, by_comment.get(comment, [])))
            assert got == [("ip", 0), ("ip6", 0)], comment
    for c in plan.classes:
        if c.is_default:
            continue
        comment = f"class {c.name}"
        expected_comments.add(comment)
        found = by_comment.get(comment, [])
        assert len(found) == 2, comment
        for r in found:
            assert _mangle(r) == ("priority", f"1:{0x10 + c.queue:x}"), comment
            assert _matched_set(r, "dscp") == set(c.dscps), comment
    assert set(by_comment) == expected_comments, "unexpected or stale rules"


def _expected_families(m: PlanMatch) -> list[str]:
    """The families a match must be marked in: those of its prefixes (the spec forbids mixing), or both."""
    prefixes = m.source_prefixes + m.destination_prefixes
    if not prefixes:
        return ["ipv4", "ipv6"]
    return sorted({"ipv6" if ":" in p else "ipv4" for p in prefixes})


def load_and_check(router: Router, plan: DevicePlan, *, load_tc: bool = True) -> None:
    files = router.write(render_plan(plan))
    nft, tc = str(files["nftables.nft"]), str(files["tc.batch"])
    router.ns.exec("nft", "-c", "-f", nft)
    router.ns.exec("nft", "-f", nft)
    first = nft_rules(router.ns)
    router.ns.exec("nft", "-f", nft)  # twice: the file replaces the table, it does not add to it
    assert nft_rules(router.ns) == first
    assert_ruleset_matches(router.ns, plan)
    if not load_tc:
        return
    router.ns.exec("tc", "-batch", tc)
    assert_tree_matches(router.ns, plan)
    snapshot = {i.name: (htb_classes(router.ns, i.name), qdiscs(router.ns, i.name)) for i in plan.wan_interfaces}
    router.ns.exec("tc", "-batch", tc)  # idempotent
    assert {i.name: (htb_classes(router.ns, i.name), qdiscs(router.ns, i.name)) for i in plan.wan_interfaces} == (
        snapshot
    )


# --------------------------------------------------------------------------- kernel tests


# protocol "any" journeys overlap everything else in the validator's (conservative) eyes, so they get
# their own policy, together with the ICMP journey of the same class and DSCP.
ANY_PROTOCOL = ["mgmt6", "mgmt4", "pings"]
MAIN = [j for j in JOURNEYS if j not in ANY_PROTOCOL[:2]]


@pytest.fixture
def policy(tmp_path: Path) -> Build:
    return _write_policy(tmp_path / "policy", MAIN)


@requires_netns
@pytest.mark.root
@pytest.mark.parametrize("device", _example_linux_devices())
def test_example_device_loads_and_matches_plan(device: str, example_build: Build, lab: Lab, tmp_path: Path) -> None:
    plan = example_build.plan(device)
    assert plan is not None
    # A device with fq_codel leaves is only loaded into tc where the kernel already has fq_codel.
    load_tc = "fq_codel" not in plan.features or _kernel_has_fq_codel()
    load_and_check(_router(lab, plan, tmp_path), plan, load_tc=load_tc)


@requires_netns
@pytest.mark.root
def test_dual_stack_icmp_ranges_untrusted_lan_and_shaped_wan(policy: Build, lab: Lab, tmp_path: Path) -> None:
    plan = policy.plan("edge")
    assert plan is not None
    assert {i.name for i in plan.wan_interfaces} == {"wan0", "wan1"}
    assert next(i for i in plan.interfaces if i.name == "wan1").shape_kbps == 8000  # port 100 Mbit/s
    load_and_check(_router(lab, plan, tmp_path), plan)


@requires_netns
@pytest.mark.root
def test_protocol_any_and_icmp_in_both_families(lab: Lab, tmp_path: Path) -> None:
    plan = _write_policy(tmp_path / "policy", ANY_PROTOCOL).plan("edge")
    assert plan is not None
    matches = {r.journey: r.matches[0] for r in plan.markings}
    assert linux.nft_match(matches["mgmt6"], "ipv6") == "ip6 saddr 2001:db8:99::/64"
    assert linux.nft_match(matches["mgmt4"], "ipv4") == "ip daddr 198.18.99.0/24"
    load_and_check(_router(lab, plan, tmp_path), plan)


@requires_netns
@pytest.mark.root
def test_fq_codel_device_renders_valid_nft_and_fq_codel_leaves(policy: Build, lab: Lab, tmp_path: Path) -> None:
    plan = policy.plan("edge-fq")
    assert plan is not None and "fq_codel" in plan.features
    tc = render_plan(plan)["tc.batch"]
    for c in plan.classes:
        leaf = next(line for line in tc.splitlines() if f"parent 1:{0x10 + c.queue:x} handle" in line)
        wants_fq = (c.aqm or c.fair_queue) and not c.strict
        assert (" fq_codel " in leaf) == wants_fq, leaf
    assert any(" fq_codel " in line for line in tc.splitlines())
    # nft is checked everywhere; the tc tree only where the kernel already has fq_codel (never loaded here).
    load_and_check(_router(lab, plan, tmp_path), plan, load_tc=_kernel_has_fq_codel())


@requires_netns
@pytest.mark.root
def test_reload_after_removing_a_journey_leaves_nothing_stale(policy: Build, lab: Lab, tmp_path: Path) -> None:
    before = policy.plan("edge")
    assert before is not None
    smaller = _write_policy(tmp_path / "smaller", [j for j in MAIN if j != "video"])
    after = smaller.plan("edge")
    assert after is not None
    gone = {c.name for c in before.classes} - {c.name for c in after.classes}
    assert gone == {"multimedia-conferencing"}, "the test needs a class to disappear"
    router = _router(lab, before, tmp_path / "before")
    load_and_check(router, before)
    load_and_check(Router(router.ns, router.peer, tmp_path / "after"), after)  # checks exact class/rule sets


@requires_netns
@pytest.mark.root
def test_tree_loads_over_an_ingress_or_clsact_qdisc(policy: Build, lab: Lab, tmp_path: Path) -> None:
    """ingress/clsact own handle ffff:; replacing the root must neither fail nor remove them."""
    plan = policy.plan("edge")
    assert plan is not None
    router = _router(lab, plan, tmp_path)
    router.ns.exec("tc", "qdisc", "add", "dev", "wan0", "clsact")
    router.ns.exec("tc", "qdisc", "add", "dev", "wan1", "ingress")
    router.ns.exec("tc", "qdisc", "replace", "dev", "wan1", "root", "handle", "1:", "pfifo")  # a foreign root
    load_and_check(router, plan)
    kinds = {d: {q["kind"] for q in qdiscs(router.ns, d)} for d in ("wan0", "wan1")}
    assert "clsact" in kinds["wan0"] and "ingress" in kinds["wan1"], kinds
