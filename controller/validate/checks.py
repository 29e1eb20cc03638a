"""Meaning checks a network engineer cares about, beyond the schema.

Each check takes the immutable policy (and derived budgets) and returns
diagnostics; none of them stops the others, so the user sees everything at once.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations

from controller.compile.budgets import Budget
from controller.compile.compiler import LinkNeed, class_name_for, ident, in_scope, link_needs, marking_dscp
from controller.compile.scope import ScopeKey, Scopes
from controller.errors import Diagnostic, Location
from controller.model import Device, Journey, Match, Origin, Policy, ServiceClass, Site, VoiceTarget
from controller.model.catalogue import DEFAULT_CLASS
from controller.qoe import emodel
from controller.spec.types import dscp_name


def _in_file_order(items: Iterable[tuple[str, Origin]], key: tuple[str, ...]) -> list[tuple[str, Origin]]:
    """Items by where they are written, so "first" and "duplicate" do not depend on the read order."""

    def where(item: tuple[str, Origin]) -> tuple[bool, str, int, int, str]:
        loc = item[1].at(*key)
        return (item[1].doc is not None, loc.file, loc.line, loc.col, item[0])  # built-ins first

    return sorted(items, key=where)


def _duplicates(items: Iterable[tuple[str, Origin]], what: str, key: tuple[str, ...] = ("name",)) -> list[Diagnostic]:
    listed = list(items)
    if len({name for name, _ in listed}) == len(listed):
        return []  # nothing to report, whatever the order: no need to locate every item in its file
    seen: dict[str, Origin] = {}
    out = []
    for name, origin in _in_file_order(listed, key):
        if name in seen:
            out.append(
                Diagnostic(
                    origin.at(*key),
                    origin.field(*key),
                    f"duplicate {what} name '{name}'",
                    f"{what} names must be unique; rename one",
                    related=(seen[name].at(*key),),
                )
            )
        else:
            seen[name] = origin
    return out


def check_unique_names(policy: Policy) -> list[Diagnostic]:
    out = _duplicates(((j.name, j.origin) for j in policy.journeys), "journey", ("metadata", "name"))
    out += _duplicates(((s.name, s.origin) for s in policy.sites), "site")
    out += _duplicates(((t.name, t.origin) for t in policy.transports), "transport")
    out += _duplicates(((d.name, d.origin) for d in policy.devices), "device")
    for dev in policy.devices:
        out += _duplicates(((i.name, i.origin) for i in dev.interfaces), f"interface (device {dev.name})")
    return out + _duplicate_site_ids(policy)


def _duplicate_site_ids(policy: Policy) -> list[Diagnostic]:
    """Two sites with one SD-WAN site-id would put both in one site list: the overlay sees them as one site."""
    numbered = {id(s.origin): s for s in policy.sites if s.sdwan_site_id is not None}
    first: dict[int, Site] = {}
    out = []
    for _, origin in _in_file_order([(s.name, s.origin) for s in numbered.values()], ("sdwan_site_id",)):
        site = numbered[id(origin)]
        assert site.sdwan_site_id is not None
        seen = first.setdefault(site.sdwan_site_id, site)
        if seen.name != site.name:  # the same name twice is reported as a duplicate site already
            out.append(
                Diagnostic(
                    origin.at("sdwan_site_id"),
                    origin.field("sdwan_site_id"),
                    f"SD-WAN site-id {site.sdwan_site_id} of site {site.name} is already the site-id of site "
                    f"{seen.name}",
                    "each SD-WAN site needs its own site-id (the edges' system site-id)",
                    related=(seen.origin.at("sdwan_site_id"),),
                )
            )
    return out


def _ident_collisions(items: Iterable[tuple[str, Origin]], what: str, key: tuple[str, ...]) -> list[Diagnostic]:
    seen: dict[str, tuple[str, Origin]] = {}
    out = []
    for name, origin in _in_file_order(items, key):
        first = seen.get(ident(name))
        if first is None:
            seen[ident(name)] = (name, origin)
        elif first[0] != name:  # identical names are reported as duplicates already
            out.append(
                Diagnostic(
                    origin.at(*key),
                    origin.field(*key),
                    f"{what} name '{name}' and '{first[0]}' become the same config name {ident(name)}",
                    f"device configs use upper case and '_' for '.'; rename one {what}",
                    related=(first[1].at(*key),) if first[1].doc is not None else (),
                )
            )
    return out


def check_config_names(policy: Policy) -> list[Diagnostic]:
    """Names that differ only in case or in '.' versus '_' would merge into one class-map or ACL."""
    out = _ident_collisions(((j.name, j.origin) for j in policy.journeys), "journey", ("metadata", "name"))
    out += _ident_collisions(((c.name, c.origin) for c in policy.classes), "service class", ("name",))
    return out


def check_references(policy: Policy) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    sites = {s.name for s in policy.sites}
    transports = {t.name for t in policy.transports}
    tags = {t for d in policy.devices for t in d.tags}
    contexts = {s.context for s in policy.sites}
    classes = {c.name for c in policy.classes}

    def unknown(origin: Origin, parts: tuple[str | int, ...], what: str, value: str, known: set[str]) -> None:
        shown = ", ".join(sorted(known)) or "none defined"
        close = difflib.get_close_matches(value, sorted(known), n=1)
        hint = (f"did you mean '{close[0]}'? " if close else "") + f"known: {shown}"
        out.append(Diagnostic(origin.at(*parts), origin.field(*parts), f"unknown {what} '{value}'", hint))

    for dev in policy.devices:
        if dev.site not in sites:
            unknown(dev.origin, ("site",), "site", dev.site, sites)
        for k, iface in enumerate(dev.interfaces):
            if iface.transport and iface.transport not in transports:
                unknown(dev.origin, ("interfaces", k, "transport"), "transport", iface.transport, transports)
    for j in policy.journeys:
        scope = ("spec", "scope")
        for i, s in enumerate(j.sites):
            if s not in sites:
                unknown(j.origin, scope + ("sites", i), "site", s, sites)
        for i, t in enumerate(j.device_tags):
            if t not in tags:
                unknown(j.origin, scope + ("device_tags", i), "device tag", t, tags)
        for i, c in enumerate(j.contexts):
            if c not in contexts:
                unknown(j.origin, scope + ("contexts", i), "site context", c, contexts)
        if j.service_class and j.service_class not in classes:
            unknown(j.origin, ("spec", "service_class"), "service class", j.service_class, classes)
        for i, t in enumerate(j.preferred_transports):
            if t not in transports:
                unknown(j.origin, ("spec", "sdwan", "preferred_transports", i), "transport", t, transports)
    return out


def check_classes(policy: Policy) -> list[Diagnostic]:
    out = []
    owner: dict[int, str] = {}
    for c in policy.classes:
        for i, d in enumerate(c.dscps):
            if d in owner and owner[d] != c.name:
                out.append(
                    Diagnostic(
                        c.origin.at("dscp", i),
                        c.origin.field("dscp", i),
                        f"DSCP {dscp_name(d)} is already used by service class '{owner[d]}'",
                        "each DSCP may belong to one class only; remove it from one of them",
                    )
                )
            owner.setdefault(d, c.name)
    if policy.service_class(DEFAULT_CLASS) is None:  # pragma: no cover - the catalogue always has it
        out.append(Diagnostic(Location("<built-in>"), "", f"the '{DEFAULT_CLASS}' class is required", ""))
    return out


# --------------------------------------------------------------------------- overlapping traffic


def _ranges_overlap(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    if not a or not b:
        return True
    return any(x[0] <= y[1] and y[0] <= x[1] for x in a for y in b)


def _prefixes_overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a or not b:
        return True
    for x in a:
        nx = ipaddress.ip_network(x)
        for y in b:
            ny = ipaddress.ip_network(y)
            if nx.version == ny.version and nx.overlaps(ny):
                return True
    return False


def _families(m: Match) -> set[int]:
    """IP versions a match can see: those of its prefixes, or both when it names none."""
    versions = {6 if ":" in p else 4 for p in m.source_prefixes + m.destination_prefixes}
    return versions or {4, 6}


def matches_overlap(a: Match, b: Match) -> bool:
    if a.protocol != "any" and b.protocol != "any" and a.protocol != b.protocol:
        return False
    if not _families(a) & _families(b):
        return False
    if a.dscp is not None and b.dscp is not None and a.dscp != b.dscp:
        return False
    return (
        _ranges_overlap(a.source_ports, b.source_ports)
        and _ranges_overlap(a.destination_ports, b.destination_ports)
        and _prefixes_overlap(a.source_prefixes, b.source_prefixes)
        and _prefixes_overlap(a.destination_prefixes, b.destination_prefixes)
    )


def _scopes_overlap(a: Journey, b: Journey, policy: Policy, groups: list[tuple[Device, str]]) -> bool:
    """Does some device carry both journeys? Asked of one device per scope group (they all agree)."""
    for dev, ctx in groups:
        if in_scope(a, dev, ctx) and in_scope(b, dev, ctx):
            return True
    return not policy.devices


def _group_representatives(policy: Policy) -> list[tuple[Device, str]]:
    """The first device (and its context) of each scope group, in device order."""
    scopes = Scopes.of(policy.journeys)
    seen: set[ScopeKey] = set()
    out = []
    for dev in policy.devices:
        ctx = policy.context_of(dev)
        key = scopes.key(dev, ctx)
        if key not in seen:
            seen.add(key)
            out.append((dev, ctx))
    return out


def check_overlaps(policy: Policy) -> list[Diagnostic]:
    out = []
    catalogue = {c.name: c for c in policy.classes}
    groups: list[tuple[Device, str]] | None = None  # only needed when two journeys' matches overlap
    for a, b in combinations(sorted(policy.journeys, key=lambda j: j.name), 2):
        ca, cb = class_name_for(a), class_name_for(b)
        if ca not in catalogue or cb not in catalogue:
            continue
        da, db = marking_dscp(a, catalogue[ca]), marking_dscp(b, catalogue[cb])
        if (ca, da) == (cb, db):
            continue
        for ia, ma in enumerate(a.matches):
            hit = next((ib for ib, mb in enumerate(b.matches) if matches_overlap(ma, mb)), None)
            if hit is None:
                continue
            if groups is None:
                groups = _group_representatives(policy)
            if not _scopes_overlap(a, b, policy, groups):
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


# --------------------------------------------------------------------------- targets versus paths


def _paths(dev: Device, policy: Policy) -> list[tuple[str, float, float, float]]:
    out = []
    for iface in dev.wan_interfaces:
        t = policy.transport(iface.transport) if iface.transport else None
        delay = iface.base_delay_ms if iface.base_delay_ms is not None else (t.base_delay_ms if t else None)
        if delay is None:
            continue
        out.append((iface.name, delay, t.jitter_ms if t else 0.0, t.loss_pct if t else 0.0))
    return out


PathRow = tuple[str, float, float, float]  # interface, base delay, jitter, loss


class _FleetPaths:
    """Every device's WAN paths, and per scope group the bounds that let a check skip the whole group.

    A journey can only fail at a device whose best MOS is below its target or
    whose lowest-delay path is above its budget; when no device of a group is,
    the group is skipped without looking at its devices one by one.
    """

    def __init__(self, policy: Policy, keys: list[ScopeKey]) -> None:
        self.paths = [_paths(dev, policy) for dev in policy.devices]
        self.members: dict[ScopeKey, list[int]] = {}
        for i, key in enumerate(keys):
            if self.paths[i]:
                self.members.setdefault(key, []).append(i)
        self._mos: dict[tuple[float, float, float, str], float] = {}
        self._best: dict[tuple[int, str], tuple[float, str, float, float]] = {}
        self._lowest = [min(p, key=lambda row: row[1]) if p else None for p in self.paths]
        self._worst_mos: dict[tuple[ScopeKey, str], float] = {}
        self._worst_delay = {k: max(self.lowest(i)[1] for i in idx) for k, idx in self.members.items()}

    def mos(self, delay: float, jitter: float, loss: float, codec: str) -> float:
        key = (delay, jitter, loss, codec)
        if key not in self._mos:
            self._mos[key] = emodel.voice_quality(delay, jitter, loss, codec).mos
        return self._mos[key]

    def best(self, i: int, codec: str) -> tuple[float, str, float, float]:
        """The device's best path for a codec: (MOS, interface, base delay, loss)."""
        found = self._best.get((i, codec))
        if found is None:
            scored = [(self.mos(d, jit, loss, codec), n, d, loss) for n, d, jit, loss in self.paths[i]]
            found = self._best[(i, codec)] = max(scored)
        return found

    def lowest(self, i: int) -> PathRow:
        found = self._lowest[i]
        assert found is not None
        return found

    def worst_mos(self, key: ScopeKey, codec: str) -> float:
        """The lowest best-path MOS of any device (with paths) in the group."""
        found = self._worst_mos.get((key, codec))
        if found is None:
            found = self._worst_mos[(key, codec)] = min(self.best(i, codec)[0] for i in self.members[key])
        return found

    def worst_delay(self, key: ScopeKey) -> float:
        """The highest lowest-path base delay of any device (with paths) in the group."""
        return self._worst_delay[key]


def _may_fail(j: Journey, bud: Budget, key: ScopeKey, fleet: _FleetPaths) -> bool:
    """Could some device of the group fail :func:`check_paths` for this journey? (False: none can.)"""
    t = j.target
    latency = bud.one_way_delay_ms is not None and fleet.worst_delay(key) > bud.one_way_delay_ms
    if isinstance(t, VoiceTarget) and t.mos is not None:
        return fleet.worst_mos(key, t.codec) < t.mos or ("one_way_delay_ms" in bud.pinned and latency)
    return latency


def check_paths(policy: Policy, budgets: dict[str, Budget]) -> list[Diagnostic]:
    """A target the path cannot meet: base delay above the budget, or MOS out of reach.

    Journeys are tested per scope group, and only groups where some device can
    fail are looked at device by device (in device order, as before): the checks
    and the order of the diagnostics are unchanged.
    """
    out = []
    keys, reach = Scopes.of(policy.journeys).groups(policy.devices, policy.context_of)
    fleet = _FleetPaths(policy, keys)
    reached = {k: frozenset(idx) for k, idx in reach.items()}
    for ji, j in enumerate(policy.journeys):
        bud = budgets.get(j.name)
        if bud is None:
            continue
        failing = [k for k, idx in reached.items() if k in fleet.members and ji in idx and _may_fail(j, bud, k, fleet)]
        for i in sorted(i for k in failing for i in fleet.members[k]):
            dev = policy.devices[i]
            t = j.target
            if isinstance(t, VoiceTarget) and t.mos is not None:
                best = fleet.best(i, t.codec)
                if best[0] < t.mos:
                    out.append(
                        Diagnostic(
                            j.origin.at("spec", "target", "voice", "mos"),
                            "spec.target.voice.mos",
                            f"MOS {t.mos} cannot be met at device {dev.name}: its best WAN path {best[1]} "
                            f"({best[2]:g} ms base delay, {best[3]:g} % loss) gives MOS {best[0]:.2f}",
                            "lower the target, or scope the journey away from this site",
                        )
                    )
                    continue
                # The MOS is reachable; a one-way budget pinned next to it must still fit the path.
                if "one_way_delay_ms" not in bud.pinned:
                    continue
            if bud.one_way_delay_ms is None:
                continue
            best_path = fleet.lowest(i)
            if best_path[1] > bud.one_way_delay_ms:
                field = "spec.target." + j.kind
                pinned = "one_way_delay_ms" in bud.pinned
                out.append(
                    Diagnostic(
                        j.origin.at(*field.split("."), *(("one_way_delay_ms",) if pinned else ())),
                        field + (".one_way_delay_ms" if pinned else ""),
                        f"latency budget {bud.one_way_delay_ms:g} ms one-way is below the base delay of every WAN "
                        f"path at device {dev.name} (best: {best_path[0]}, {best_path[1]:g} ms)",
                        "relax the target, or scope the journey away from this site",
                    )
                )
    return out


# --------------------------------------------------------------------------- bandwidth


@dataclass(frozen=True, slots=True)
class _LinkLoad:
    """What the journeys of one scope group put on a link of one rate (the same on every such link)."""

    needs: tuple[LinkNeed, ...]
    strict_kbps: float
    strict_journeys: tuple[str, ...]
    total_kbps: float
    all_journeys: tuple[str, ...]


def _link_load(journeys: list[Journey], catalogue: dict[str, ServiceClass], link: int) -> _LinkLoad:
    needs = link_needs(journeys, catalogue, link)
    strict = [n for n in needs if catalogue[n.class_name].strict_priority]
    return _LinkLoad(
        tuple(needs),
        sum(n.kbps for n in strict),
        tuple(sorted({j for n in strict for j in n.journeys})),
        sum(n.kbps for n in needs if n.class_name != DEFAULT_CLASS),
        tuple(sorted({j for n in needs for j in n.journeys})),
    )


def check_bandwidth(policy: Policy) -> list[Diagnostic]:
    """Strict-priority share per link against the cap, and total guarantees against 100 %.

    The load a link carries depends only on its rate and on the journeys that
    reach its device, so it is worked out once per scope group and link rate.
    """
    out = []
    s = policy.settings
    catalogue = {c.name: c for c in policy.classes}
    keys, reach = Scopes.of(policy.journeys).groups(policy.devices, policy.context_of)
    journeys_of = {key: [policy.journeys[i] for i in idx] for key, idx in reach.items()}
    loads: dict[tuple[ScopeKey, int], _LinkLoad] = {}
    for dev, key in zip(policy.devices, keys, strict=True):
        journeys = journeys_of[key]
        for k, iface in enumerate(dev.interfaces):
            if iface.role != "wan" or not iface.bandwidth_kbps:
                continue
            link = iface.bandwidth_kbps
            load = loads.get((key, link))
            if load is None:
                load = loads[(key, link)] = _link_load(journeys, catalogue, link)
            strict_kbps = load.strict_kbps
            if strict_kbps > link * s.priority_cap_pct / 100.0:
                names = load.strict_journeys
                related = tuple(jj.origin.at("spec", "bandwidth") for jj in journeys if jj.name in names)
                out.append(
                    Diagnostic(
                        dev.origin.at("interfaces", k, "bandwidth_kbps"),
                        dev.origin.field("interfaces", k, "bandwidth_kbps"),
                        f"strict-priority traffic on {dev.name} {iface.name} is {strict_kbps:.0f} kbps = "
                        f"{100 * strict_kbps / link:.1f} % of the {link} kbps link, above the "
                        f"{s.priority_cap_pct:g} % cap (journeys: {', '.join(names)})",
                        "lower concurrent_flows or per_flow_kbps, raise the link bandwidth, or change "
                        "priority_cap_pct in Settings",
                        related=related,
                    )
                )
            total = load.total_kbps
            cap = link * (s.guaranteed_cap_pct - s.default_class_min_pct) / 100.0
            if total > cap:
                all_names = load.all_journeys
                out.append(
                    Diagnostic(
                        dev.origin.at("interfaces", k, "bandwidth_kbps"),
                        dev.origin.field("interfaces", k, "bandwidth_kbps"),
                        f"guaranteed bandwidth on {dev.name} {iface.name} is {total:.0f} kbps = "
                        f"{100 * total / link:.1f} % of the link; at most "
                        f"{s.guaranteed_cap_pct - s.default_class_min_pct:g} % "
                        f"can be guaranteed ({s.default_class_min_pct:g} % stays for class-default) "
                        f"(journeys: {', '.join(all_names)})",
                        "lower the journeys' bandwidth needs or raise the link bandwidth",
                        related=tuple(jj.origin.at("spec", "bandwidth") for jj in journeys if jj.name in all_names),
                    )
                )
    return out


POLICY_CHECKS: tuple[Callable[[Policy], list[Diagnostic]], ...] = (
    check_unique_names,
    check_config_names,
    check_references,
    check_classes,
    check_overlaps,
    check_bandwidth,
)


def run_checks(policy: Policy, budgets: dict[str, Budget]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for check in POLICY_CHECKS:
        out += check(policy)
    out += check_paths(policy, budgets)
    return out
