"""Meaning checks a network engineer cares about, beyond the schema.

Each check takes the immutable policy (and derived budgets) and returns
diagnostics; none of them stops the others, so the user sees everything at once.
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import functools
import ipaddress
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from controller.compile import NETWORK_CONTROL, Budget, ScopeKey, Scopes, class_name_for, ident, in_scope, marking_dscp
from controller.errors import Diagnostic, Location
from controller.model import (
    PRIORITY_RANK,
    Device,
    InteractiveTarget,
    Journey,
    Match,
    Origin,
    Policy,
    ServiceClass,
    Site,
    VideoTarget,
    VoiceTarget,
)
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
    names: dict[int, set[str]] = {}
    for s in numbered.values():
        names.setdefault(s.sdwan_site_id or 0, set()).add(s.name)
    if all(len(n) == 1 for n in names.values()):
        return []  # no site-id with two names, whatever the order: no need to locate every site in its file
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


@functools.lru_cache(maxsize=65536)
def _network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A prefix parsed once (the same prefixes are compared again and again)."""
    return ipaddress.ip_network(prefix)


def _ranges_overlap(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    if not a or not b:
        return True
    return any(x[0] <= y[1] and y[0] <= x[1] for x in a for y in b)


def _prefixes_overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a or not b:
        return True
    for x in a:
        nx = _network(x)
        for y in b:
            ny = _network(y)
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


Interval = tuple[int, int]
_V6_OFFSET = 1 << 33  # IPv6 addresses are put above every IPv4 address: one number line for both families


class _Intervals:
    """Closed intervals, kept by size class, so that those overlapping a query are found without a scan.

    Within one class (lengths of one bit length) an interval that overlaps
    ``[lo, hi]`` starts in ``[lo - longest, hi]``: two bisections per class,
    and few of what lies between them fails to overlap.
    """

    def __init__(self) -> None:
        self._pending: dict[int, list[tuple[int, int, int]]] = {}
        self._classes: list[tuple[list[int], list[int], list[int], int]] = []  # starts, ends, items, longest

    def add(self, lo: int, hi: int, item: int) -> None:
        self._pending.setdefault((hi - lo).bit_length(), []).append((lo, hi, item))

    def freeze(self) -> None:
        for rows in self._pending.values():
            rows.sort()
            self._classes.append(
                ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], max(r[1] - r[0] for r in rows))
            )
        self._pending = {}

    def count(self, lo: int, hi: int) -> int:
        """How many intervals :meth:`overlapping` looks at (an upper bound of how many overlap)."""
        return sum(
            bisect.bisect_right(starts, hi) - bisect.bisect_left(starts, lo - longest)
            for starts, _, _, longest in self._classes
        )

    def overlapping(self, lo: int, hi: int) -> Iterator[int]:
        for starts, ends, items, longest in self._classes:
            for i in range(bisect.bisect_left(starts, lo - longest), bisect.bisect_right(starts, hi)):
                if ends[i] >= lo:
                    yield items[i]


def _prefix_interval(prefix: str) -> Interval:
    net = _network(prefix)
    offset = _V6_OFFSET if net.version == 6 else 0
    return offset + int(net.network_address), offset + int(net.broadcast_address)


def _dimensions(m: Match) -> tuple[tuple[Interval, ...], ...]:
    """A match's intervals along each indexed dimension; empty: it matches anything there."""
    return (
        tuple(_prefix_interval(p) for p in m.destination_prefixes),
        tuple(m.destination_ports),
        tuple(_prefix_interval(p) for p in m.source_prefixes),
        tuple(m.source_ports),
    )


_PROTOCOLS = ("udp", "tcp", "icmp", "any")


class _MatchIndex:
    """Every match of every journey, by protocol and along each dimension, to find the matches one can overlap.

    Two matches can only overlap when their protocols agree (or one is ``any``)
    and, along every dimension (destination prefixes, destination ports, source
    prefixes, source ports), an interval of one meets an interval of the other
    or one of them names nothing there. So the matches that could overlap a
    given one are all found along any single dimension; the index takes the
    dimension where the fewest are, and :func:`matches_overlap` decides.
    """

    def __init__(self, elements: list[tuple[Match, tuple[tuple[Interval, ...], ...]]]) -> None:
        self.elements = elements
        self._all: dict[str, list[int]] = {p: [] for p in _PROTOCOLS}
        self._trees: dict[tuple[str, int], _Intervals] = {}
        self._wild: dict[tuple[str, int], list[int]] = {}
        self._counts: dict[tuple[str, int, Interval], int] = {}
        for e, (m, dims) in enumerate(elements):
            self._all[m.protocol].append(e)
            for d, intervals in enumerate(dims):
                if intervals:
                    tree = self._trees.setdefault((m.protocol, d), _Intervals())
                    for lo, hi in intervals:
                        tree.add(lo, hi, e)
                else:
                    self._wild.setdefault((m.protocol, d), []).append(e)
        for tree in self._trees.values():
            tree.freeze()

    def _count(self, protocol: str, d: int, interval: Interval) -> int:
        key = (protocol, d, interval)
        found = self._counts.get(key)
        if found is None:
            tree = self._trees.get((protocol, d))
            found = self._counts[key] = tree.count(*interval) if tree else 0
        return found

    def candidates(self, e: int) -> set[int]:
        """Every match that could overlap match ``e`` (a superset; ``e`` itself included)."""
        m, dims = self.elements[e]
        out: set[int] = set()
        for protocol in _PROTOCOLS if m.protocol == "any" else (m.protocol, "any"):
            best, cost = -1, len(self._all[protocol])
            for d, intervals in enumerate(dims):
                if not intervals:
                    continue
                n = len(self._wild.get((protocol, d), ())) + sum(self._count(protocol, d, i) for i in intervals)
                if n < cost:
                    best, cost = d, n
            if best < 0:
                out.update(self._all[protocol])
                continue
            out.update(self._wild.get((protocol, best), ()))
            tree = self._trees.get((protocol, best))
            if tree is not None:
                for lo, hi in dims[best]:
                    out.update(tree.overlapping(lo, hi))
        return out


def check_overlaps(policy: Policy) -> list[Diagnostic]:
    """Two journeys that claim the same packets but treat them differently (class or DSCP).

    Pairs are found through :class:`_MatchIndex` rather than by comparing every
    pair of journeys; each pair found is then judged exactly as before (first
    overlapping match of the first journey by name, scopes that share a device),
    and reported in the same order (by the two names).
    """
    out = []
    catalogue = {c.name: c for c in policy.classes}
    journeys = sorted(policy.journeys, key=lambda j: j.name)
    treatment: list[tuple[str, int] | None] = []
    for j in journeys:
        cls = class_name_for(j)
        treatment.append((cls, marking_dscp(j, catalogue[cls])) if cls in catalogue else None)
    owner: list[tuple[int, int]] = []  # (journey position, match position) of each element
    elements = []
    for p, j in enumerate(journeys):
        if treatment[p] is None:
            continue
        for k, m in enumerate(j.matches):
            owner.append((p, k))
            elements.append((m, _dimensions(m)))
    index = _MatchIndex(elements)
    pairs: set[tuple[int, int]] = set()
    for e, (m, _) in enumerate(elements):
        pa = owner[e][0]
        for f in index.candidates(e):
            pb = owner[f][0]
            if pb <= pa or (pa, pb) in pairs or treatment[pa] == treatment[pb]:
                continue
            if matches_overlap(m, elements[f][0]):
                pairs.add((pa, pb))
    groups: list[tuple[Device, str]] | None = None  # only needed when two journeys' matches overlap
    for pa, pb in sorted(pairs):
        a, b = journeys[pa], journeys[pb]
        ta, tb = treatment[pa], treatment[pb]
        assert ta is not None and tb is not None
        (ca, da), (cb, db) = ta, tb
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

# One WAN path of a device: interface, transport, base delay, jitter, loss.
PathRow = tuple[str, str | None, float, float, float]
# All of a device's paths. Devices with the same rows fail the same way: work is done once per distinct one.
PathSet = tuple[PathRow, ...]


@dataclass(frozen=True, slots=True)
class _Dim:
    name: str  # the target's field
    label: str  # in messages
    unit: str
    of_path: str  # what the path has


_DIMS = (
    _Dim("one_way_delay_ms", "one-way", "ms", "base delay"),
    _Dim("jitter_ms", "jitter", "ms", "jitter"),
    _Dim("loss_pct", "loss", "%", "loss"),
)


def _figure(row: PathRow, d: int) -> float:
    """The path's figure along ``_DIMS[d]``."""
    return (row[2], row[3], row[4])[d]


def _paths(dev: Device, policy: Policy) -> PathSet:
    """Every WAN path of a device: the interface's own base delay if it has one, else its transport's figures."""
    out = []
    for iface in dev.wan_interfaces:
        t = policy.transport(iface.transport) if iface.transport else None
        delay = iface.base_delay_ms if iface.base_delay_ms is not None else (t.base_delay_ms if t else None)
        if delay is None:
            continue
        out.append((iface.name, iface.transport, delay, t.jitter_ms if t else 0.0, t.loss_pct if t else 0.0))
    return tuple(out)


def _allowed(j: Journey, paths: PathSet) -> PathSet:
    """The paths the journey may take. Nothing in the policy language excludes a transport yet: all of them."""
    return paths


def _states_targets(t: object, bud: Budget) -> bool:
    """Does the journey state a target of its own (an experience, or a pinned budget)?

    The rule of ``qoectl verify`` (``controller/evaluate/checks.py``): derived
    budgets decide only for a journey that states nothing measurable itself
    (video conferencing with just a bitrate); otherwise they are secondary.
    """
    if bud.pinned:
        return True
    if isinstance(t, VoiceTarget):
        return t.mos is not None
    if isinstance(t, VideoTarget):
        return t.startup_s is not None or t.rebuffering_pct is not None
    return isinstance(t, InteractiveTarget)


@dataclass(frozen=True, slots=True)
class _Need:
    """What a path must give one journey: hard limits (dimension, budget, pinned) and, for voice, a MOS."""

    kind: str
    limits: tuple[tuple[int, float, bool], ...]
    mos: float | None
    codec: str


def _need(j: Journey, bud: Budget) -> _Need:
    """The budgets a path is held to, as ``qoectl verify`` judges a journey.

    Pinned budgets always; derived jitter and loss only when the journey states
    no target of its own (:func:`_states_targets`): otherwise they are one split
    of what it states, and that (for voice, the E-model's MOS at the path's own
    figures) is what the path must reach. The one-way budget is a floor no
    queue can remove, so it is checked whenever there is one, except under a
    voice MOS, which the E-model checks with the delay in it.
    """
    t = j.target
    voice_mos = t.mos if isinstance(t, VoiceTarget) else None
    states = _states_targets(t, bud)
    limits = []
    for d, dim in enumerate(_DIMS):
        value = getattr(bud, dim.name)
        if value is None:
            continue
        pinned = dim.name in bud.pinned
        if pinned or not states or (d == 0 and voice_mos is None):
            limits.append((d, float(value), pinned))
    codec = t.codec if isinstance(t, VoiceTarget) else ""
    return _Need(j.kind, tuple(limits), voice_mos, codec)


def _sla_limits(bud: Budget) -> tuple[tuple[int, float, bool], ...]:
    """Every budget, derived or pinned: the thresholds of the journey's SD-WAN SLA class."""
    out = []
    for d, dim in enumerate(_DIMS):
        value = getattr(bud, dim.name)
        if value is not None:
            out.append((d, float(value), dim.name in bud.pinned))
    return tuple(out)


def _misses(row: PathRow, limits: tuple[tuple[int, float, bool], ...]) -> list[str]:
    out = []
    for d, budget, _ in limits:
        dim = _DIMS[d]
        value = _figure(row, d)
        if value > budget:
            out.append(f"{dim.label} {value:g} {dim.unit} > {budget:g} {dim.unit}")
    return out


def _path_name(row: PathRow) -> str:
    return f"{row[0]} ({row[1]})" if row[1] else row[0]


@dataclass(frozen=True, slots=True)
class _PathProblem:
    """A problem of one journey at every device with one set of paths; ``{device}`` is filled in per device."""

    field: tuple[str, ...]
    message: str
    hint: str


class _PathJudge:
    """Judges a journey's needs against sets of paths, remembering each answer (devices share path sets)."""

    def __init__(self) -> None:
        self._mos: dict[tuple[float, float, float, str], float] = {}
        self._answers: dict[tuple[_Need, PathSet], tuple[_PathProblem, ...]] = {}

    def mos(self, row: PathRow, codec: str) -> float:
        key = (row[2], row[3], row[4], codec)
        found = self._mos.get(key)
        if found is None:
            found = self._mos[key] = emodel.voice_quality(row[2], row[3], row[4], codec).mos
        return found

    def problems(self, need: _Need, paths: PathSet) -> tuple[_PathProblem, ...]:
        key = (need, paths)
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = self._judge(need, paths)
        return found

    def _judge(self, need: _Need, paths: PathSet) -> tuple[_PathProblem, ...]:
        reaches = [need.mos is None or self.mos(row, need.codec) >= need.mos for row in paths]
        if any(ok and not _misses(row, need.limits) for row, ok in zip(paths, reaches, strict=True)):
            return ()
        target = ("spec", "target", need.kind)
        out = []
        if need.mos is not None and not any(reaches):
            mos, name, delay, loss = max((self.mos(r, need.codec), r[0], r[2], r[4]) for r in paths)
            out.append(
                _PathProblem(
                    (*target, "mos"),
                    f"MOS {need.mos} cannot be met at device {{device}}: its best WAN path {name} "
                    f"({delay:g} ms base delay, {loss:g} % loss) gives MOS {mos:.2f}",
                    "lower the target, or scope the journey away from this site",
                )
            )
        for d, budget, pinned in need.limits:
            dim = _DIMS[d]
            best = min(paths, key=operator.itemgetter(2 + d))  # the figure along _DIMS[d]
            value = _figure(best, d)
            if value <= budget:
                continue
            if d == 0:
                text = f"latency budget {budget:g} ms one-way is below the base delay of every WAN path"
            else:
                text = f"{dim.label} budget {budget:g} {dim.unit} is below the {dim.of_path} of every WAN path"
            hint = (
                f"raise {dim.name} to at least {value:g} {dim.unit} (the best path's), "
                if pinned
                else "relax the target, "
            )
            out.append(
                _PathProblem(
                    (*target, dim.name) if pinned else target,
                    f"{text} at device {{device}} (best: {_path_name(best)}, {value:g} {dim.unit})",
                    hint + "or scope the journey away from this site",
                )
            )
        if out or (need.mos is not None and not any(reaches)):
            return tuple(out)
        # Each budget alone is met by some path, but no one path meets them all.
        wanted = [f"{_DIMS[d].label} {b:g} {_DIMS[d].unit}" for d, b, _ in need.limits]
        if need.mos is not None:
            wanted.append(f"MOS {need.mos}")
        misses = []
        for row, ok in zip(paths, reaches, strict=True):
            missed = _misses(row, need.limits)
            if not ok:
                missed.append(f"MOS {self.mos(row, need.codec):.2f} < {need.mos}")
            misses.append(f"{_path_name(row)}: {', '.join(missed)}")
        return (
            _PathProblem(
                target,
                f"no WAN path at device {{device}} meets every budget ({', '.join(wanted)}): {'; '.join(misses)}",
                "relax a budget so that one path meets them all, or scope the journey away from this site",
            ),
        )


def check_paths(policy: Policy, budgets: dict[str, Budget]) -> list[Diagnostic]:
    """A target the paths cannot meet, at each device a journey reaches; a preferred transport that cannot.

    At every device in scope, some WAN path must meet the journey's budgets at
    once (see :func:`_need`), or it is an error at the budget's line. Each
    ``preferred_transports`` entry is held to every budget (the journey's SD-WAN
    SLA class): one that cannot meet them is a warning naming it. Devices are
    grouped by scope and by their set of paths, so each journey is judged once
    per distinct set; diagnostics come per journey, in device order.
    """
    out: list[Diagnostic] = []
    keys, reach = Scopes.of(policy.journeys).groups(policy.devices, policy.context_of)
    paths = [_paths(dev, policy) for dev in policy.devices]
    members: dict[ScopeKey, dict[PathSet, list[int]]] = {}
    for i, key in enumerate(keys):
        if paths[i]:
            members.setdefault(key, {}).setdefault(paths[i], []).append(i)
    groups_of: dict[int, list[ScopeKey]] = {}
    for key, idx in reach.items():
        if key in members:
            for ji in idx:
                groups_of.setdefault(ji, []).append(key)
    judge = _PathJudge()
    for ji, j in enumerate(policy.journeys):
        bud = budgets.get(j.name)
        if bud is None:
            continue
        need = _need(j, bud)
        found: list[tuple[int, _PathProblem]] = []
        if need.limits or need.mos is not None:
            for key in groups_of.get(ji, ()):
                for path_set, devices in members[key].items():
                    problems = judge.problems(need, _allowed(j, path_set))
                    found += [(i, p) for i in devices for p in problems]
        for i, p in sorted(found, key=lambda item: item[0]):
            message = p.message.replace("{device}", policy.devices[i].name)
            out.append(Diagnostic(j.origin.at(*p.field), ".".join(p.field), message, p.hint))
        if j.preferred_transports:
            out += _preferred(j, bud, policy, [members[k] for k in groups_of.get(ji, ())])
    return out


def _preferred(j: Journey, bud: Budget, policy: Policy, groups: list[dict[PathSet, list[int]]]) -> list[Diagnostic]:
    """A warning for each preferred transport that misses a budget on a path the journey can take.

    The paths are those of that transport at the devices the journey reaches (the
    first device in inventory order that misses is named); when none of them has
    it, the transport's own figures in the inventory.
    """
    limits = _sla_limits(bud)
    out = []
    for n, name in enumerate(j.preferred_transports):
        transport = policy.transport(name)
        if transport is None:
            continue  # an unknown transport is reported by check_references
        first: tuple[int, PathRow, list[str]] | None = None  # device, path, what it misses
        seen = False
        for group in groups:
            for path_set, devices in group.items():
                for row in _allowed(j, path_set):
                    if row[1] != name:
                        continue
                    seen = True
                    missed = _misses(row, limits)
                    if missed and (first is None or devices[0] < first[0]):
                        first = (devices[0], row, missed)
        if first is not None:
            where = f" at device {policy.devices[first[0]].name} ({first[1][0]})"
            missed = first[2]
        elif not seen:
            row = ("", name, transport.base_delay_ms, transport.jitter_ms, transport.loss_pct)
            missed, where = _misses(row, limits), ""
        else:
            continue
        if not missed:
            continue
        field = ("spec", "sdwan", "preferred_transports", n)
        out.append(
            Diagnostic(
                j.origin.at(*field),
                j.origin.field(*field),
                f"preferred transport {name} cannot meet the journey's budgets{where}: {', '.join(missed)}",
                "SD-WAN moves the journey off a path out of its SLA class (or drops it, with sdwan.strict): "
                "prefer a transport that meets the budgets, or relax the target",
                severity="warning",
            )
        )
    return out


# --------------------------------------------------------------------------- bandwidth


def _counted_class(j: Journey, catalogue: dict[str, ServiceClass]) -> str | None:
    """The class a journey's bandwidth is counted in.

    Its own; when it names an unknown class (an error reported by itself), the
    class its target and priority give, so its load is not left out of the links.
    """
    name = class_name_for(j)
    if name not in catalogue and j.service_class:
        name = class_name_for(dataclasses.replace(j, service_class=None))
    return name if name in catalogue else None


def _counting_order(j: Journey) -> tuple[int, str, int, str]:
    """Journeys are added to a link by business priority, then as they are written (file, document)."""
    doc = j.origin.doc
    return (PRIORITY_RANK[j.priority], doc.file if doc else "", doc.index if doc else -1, j.name)


@dataclass(frozen=True, slots=True)
class _LinkLoad:
    """What the journeys of one scope group put on a link of one rate: (journey, kbps) in counting order."""

    strict: tuple[tuple[int, float], ...]
    guaranteed: tuple[tuple[int, float], ...]


def _tipping(rows: tuple[tuple[int, float], ...], cap: float) -> tuple[int, float, float] | None:
    """The journey whose kbps takes the running total over ``cap``: (journey, total before it, full total)."""
    total = sum(kbps for _, kbps in rows)
    if total <= cap:
        return None
    before = 0.0
    for ji, kbps in rows:
        if before + kbps > cap:
            return ji, before, total
        before += kbps
    return rows[-1][0], before - rows[-1][1], total  # pragma: no cover - the sums above agree


@dataclass
class _Oversubscribed:
    """One over-subscription: the journey that tips it, its worst link and how many links it tips."""

    journey: int
    pct: float
    total: float
    before: float
    link: int
    device: int
    interface: int
    names: tuple[str, ...]
    links: int = 1
    reserve_pct: float = 0.0  # of the link kept for the plan's network-control class


def check_bandwidth(policy: Policy, reserved_pct: Callable[[Device], float] = lambda _d: 0.0) -> list[Diagnostic]:
    """Strict-priority share per link against the cap, and total guarantees against what a link can guarantee.

    ``reserved_pct(device)``: the percent of each of the device's links the
    plan keeps for itself (the network-control class on platforms whose plan
    owns the queues), less what journeys in that class already guarantee it.

    One error per over-subscription, at the journey that takes the link over
    (journeys counted by business priority, then in file order), with the full
    total and a ``see`` to the worst such link; journeys that have errors of their
    own (a schema error elsewhere in the document, an unknown service class) are
    counted too. The load on a link depends only on its rate and on the journeys
    that reach its device, so it is worked out once per scope group and rate.
    """
    s = policy.settings
    catalogue = {c.name: c for c in policy.classes}
    journeys = policy.journeys + policy.unchecked_journeys
    counted = [_counted_class(j, catalogue) for j in journeys]
    order = [_counting_order(j) for j in journeys]
    keys, reach = Scopes.of(journeys).groups(policy.devices, policy.context_of)
    loads: dict[tuple[ScopeKey, int], _LinkLoad] = {}
    found: dict[tuple[str, int], _Oversubscribed] = {}

    def load_of(key: ScopeKey, link: int) -> _LinkLoad:
        load = loads.get((key, link))
        if load is None:
            strict, guaranteed = [], []
            for ji in sorted(reach[key], key=order.__getitem__):
                cls = counted[ji]
                if cls is None or cls == DEFAULT_CLASS:
                    continue
                kbps = journeys[ji].bandwidth.kbps_on(link)
                guaranteed.append((ji, kbps))
                if catalogue[cls].strict_priority:
                    strict.append((ji, kbps))
            load = loads[(key, link)] = _LinkLoad(tuple(strict), tuple(guaranteed))
        return load

    tipping: dict[tuple[int, float], tuple[int, float, float] | None] = {}  # (id of rows kept in loads, cap)

    def record(
        what: str, rows: tuple[tuple[int, float], ...], cap: float, link: int, i: int, k: int, reserve: float = 0.0
    ) -> None:
        counted_at = (id(rows), cap)  # most links of a scope group and rate have the same cap: counted once
        tip = tipping[counted_at] if counted_at in tipping else tipping.setdefault(counted_at, _tipping(rows, cap))
        if tip is None:
            return
        ji, before, total = tip
        pct = 100 * total / link
        seen = found.get((what, ji))
        if seen is not None:
            seen.links += 1
            if pct <= seen.pct:
                return
        names = tuple(sorted({journeys[j].name for j, _ in rows}))
        found[(what, ji)] = _Oversubscribed(
            ji, pct, total, before, link, i, k, names, seen.links if seen else 1, 100 * reserve / link
        )

    controlled: dict[int, float] = {}  # id of a load kept in loads -> what its network-control journeys guarantee
    for i, (dev, key) in enumerate(zip(policy.devices, keys, strict=True)):
        for k, iface in enumerate(dev.interfaces):
            if iface.role != "wan" or not iface.bandwidth_kbps:
                continue
            link = iface.bandwidth_kbps
            load = load_of(key, link)
            record("strict", load.strict, link * s.priority_cap_pct / 100.0, link, i, k)
            # the plan's own reserve is what the network-control class gets beyond the journeys already in it
            in_control = controlled.get(id(load))
            if in_control is None:
                in_control = controlled[id(load)] = sum(
                    kbps for ji, kbps in load.guaranteed if counted[ji] == NETWORK_CONTROL
                )
            reserve = max(0.0, link * reserved_pct(dev) / 100.0 - in_control)
            cap = link * (s.guaranteed_cap_pct - s.default_class_min_pct) / 100.0 - reserve
            record("guaranteed", load.guaranteed, cap, link, i, k, reserve)
    out = []
    for (what, _), o in found.items():
        j, dev = journeys[o.journey], policy.devices[o.device]
        where = f"{dev.name} {dev.interfaces[o.interface].name}"
        if o.before:
            tipped = f"; this journey takes it over: {o.before:.0f} kbps = {100 * o.before / o.link:.1f} % without it"
        else:
            tipped = "; this journey alone is over the cap"
        if o.links > 1:
            tipped += f"; also on {o.links - 1} other WAN link{'s' if o.links > 2 else ''}"
        if what == "strict":
            message = (
                f"strict-priority traffic on {where} is {o.total:.0f} kbps = {o.pct:.1f} % of the {o.link} kbps "
                f"link, above the {s.priority_cap_pct:g} % cap (journeys: {', '.join(o.names)})"
            )
            hint = (
                "lower concurrent_flows or per_flow_kbps, raise the link bandwidth, or change "
                "priority_cap_pct in Settings"
            )
        else:
            reserve = round(o.reserve_pct, 2)
            kept = f"{s.default_class_min_pct:g} % stays for class-default" + (
                f", {reserve:g} % for network control (CS6/CS7, routing protocols)" if reserve else ""
            )
            message = (
                f"guaranteed bandwidth on {where} is {o.total:.0f} kbps = {o.pct:.1f} % of the link; at most "
                f"{s.guaranteed_cap_pct - s.default_class_min_pct - reserve:g} % can be guaranteed "
                f"({kept}) (journeys: {', '.join(o.names)})"
            )
            hint = "lower the journeys' bandwidth needs or raise the link bandwidth"
        out.append(
            Diagnostic(
                j.origin.at("spec", "bandwidth"),
                j.origin.field("spec", "bandwidth"),
                message + tipped,
                hint,
                related=(dev.origin.at("interfaces", o.interface, "bandwidth_kbps"),),
            )
        )
    return out


POLICY_CHECKS: tuple[Callable[[Policy], list[Diagnostic]], ...] = (
    check_unique_names,
    check_config_names,
    check_references,
    check_classes,
    check_overlaps,
)


def run_checks(
    policy: Policy, budgets: dict[str, Budget], reserved_pct: Callable[[Device], float] = lambda _d: 0.0
) -> list[Diagnostic]:
    """Every policy-wide check; ``reserved_pct`` as in :func:`check_bandwidth`."""
    out: list[Diagnostic] = []
    for check in POLICY_CHECKS:
        out += check(policy)
    out += check_bandwidth(policy, reserved_pct)
    out += check_paths(policy, budgets)
    return out
