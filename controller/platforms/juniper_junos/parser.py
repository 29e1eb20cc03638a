"""Junos ``set`` lines: the syntax (:func:`set_lines`, as apply reads them) and their meaning, the CoS chain,
checked for dangling references.

Chain: firewall filter term ``M<k>-<JOURNEY>`` -> ``then dscp`` (or
``traffic-class`` for inet6) and ``then forwarding-class`` -> the DSCP
classifier must put that DSCP into the same forwarding class (else the
marking and the BA classification disagree downstream) -> on each WAN
interface, the scheduler map's scheduler for that forwarding class ->
``priority strict-high`` and ``transmit-rate`` (``percent N`` of the shaped or
physical rate, so already percent of the link; or an absolute rate in bps,
which is a share of the interface's ``shaping-rate``, unknown without one).

LAN ingresses: the input filter of a LAN unit runs its terms in order; a
journey's packet meets its own term and the terms of no other journey, and a
term's ``from dscp`` / ``from traffic-class`` tests the DSCP it arrived with.
The forwarding class and loss priority come from the filter, else from the
unit's DSCP classifier, else the queue-0 class; the WAN rewrite rule then
writes the code point it has for that (class, loss priority), and leaves the
DSCP alone when it has none. A filter whose last term sets a DSCP bleaches:
its units are untrusted.

Every referenced forwarding class, scheduler, scheduler map, classifier,
rewrite rule, drop profile and filter must be defined, else :class:`ParseError`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from controller.configtext import meaning
from controller.configtext.meaning import ControlTreatment, DeviceTreatment, ParseError, Scheduling, dscp_value

__all__ = ["control", "parse", "set_lines"]

TERM = re.compile(r"^M\d+-(.+)$")
KIND = {"inet": "dscp", "inet6": "dscp-ipv6"}
SET_DSCP = {"inet": "dscp", "inet6": "traffic-class"}

FcLp = tuple[str, str]


def set_lines(text: str) -> list[str]:
    """The ``set`` statements of a config (a rendered file or ``show configuration | display set``), white space
    folded; anything else a device prints around them is not configuration."""
    return [" ".join(line.split()) for line in text.replace("\r", "").splitlines() if line.startswith("set ")]


def _lines(text: str) -> list[list[str]]:
    """The words after ``set`` of every statement of a rendered file, which has nothing but set/delete lines."""
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() and line.split()[0] not in ("set", "delete"):
            raise ParseError(f"line {n} is not a set/delete command: {line!r}")
    return [line.split()[1:] for line in set_lines(text)]


@dataclass
class _Scheduler:
    priority: str | None = None
    percent: int | None = None  # transmit-rate percent N
    bps: int | None = None  # transmit-rate N (bits per second)
    rate_limit: bool = False
    early_drop: bool = False


@dataclass
class _Parsed:
    fc_queue: dict[str, int] = field(default_factory=dict)
    host_fc: str | None = None
    classifier: dict[tuple[str, str], dict[int, FcLp]] = field(default_factory=lambda: defaultdict(dict))
    rewrite: dict[tuple[str, str], dict[FcLp, int]] = field(default_factory=lambda: defaultdict(dict))
    drop_profiles: set[str] = field(default_factory=set)
    schedulers: dict[str, _Scheduler] = field(default_factory=lambda: defaultdict(_Scheduler))
    sched_maps: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    cos_if: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    unit_refs: list[tuple[str, str, str]] = field(default_factory=list)  # (ifd.unit, kind, name)
    filters: dict[tuple[str, str], dict[str, dict[str, list[str]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )
    filter_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (ifd.unit, family) -> input filter
    refs_fc: list[str] = field(default_factory=list)
    refs_drop: list[str] = field(default_factory=list)

    @property
    def default_fc(self) -> str:
        return next(fc for fc, q in self.fc_queue.items() if q == 0)

    def unit_ref(self, unit: str, kind: str) -> str | None:
        return next((name for u, k, name in self.unit_refs if u == unit and k == kind), None)


def _parse(files: dict[str, str]) -> _Parsed:
    p = _Parsed()
    for w in _lines(files["cos.set"]):
        if w[:3] == ["class-of-service", "forwarding-classes", "class"] and w[4] == "queue-num":
            p.fc_queue[w[3]] = int(w[5])
        elif w[:2] == ["class-of-service", "host-outbound-traffic"] and w[2] == "forwarding-class":
            p.host_fc = w[3]
            p.refs_fc.append(w[3])
        elif w[:2] == ["class-of-service", "classifiers"]:
            kind, name, fc, lp, code = w[2], w[3], w[5], w[7], w[9]
            assert w[4] == "forwarding-class" and w[6] == "loss-priority" and w[8] == "code-points", w
            d = dscp_value(code)
            if p.classifier[(kind, name)].setdefault(d, (fc, lp)) != (fc, lp):
                raise ParseError(f"classifier {name} puts DSCP {d} into two forwarding classes")
            p.refs_fc.append(fc)
        elif w[:2] == ["class-of-service", "rewrite-rules"]:
            assert w[4] == "forwarding-class" and w[6] == "loss-priority" and w[8] == "code-point", w
            p.rewrite[(w[2], w[3])][(w[5], w[7])] = dscp_value(w[9])
            p.refs_fc.append(w[5])
        elif w[:2] == ["class-of-service", "drop-profiles"]:
            p.drop_profiles.add(w[2])
        elif w[:2] == ["class-of-service", "schedulers"]:
            sc, rest = p.schedulers[w[2]], w[3:]
            if rest[0] == "priority":
                sc.priority = rest[1]
            elif rest[:2] == ["transmit-rate", "percent"]:
                sc.percent, sc.rate_limit = int(rest[2]), rest[3:] == ["rate-limit"]
            elif rest[0] == "transmit-rate":
                sc.bps, sc.rate_limit = int(rest[1]), rest[2:] == ["rate-limit"]
            elif rest[0] == "drop-profile-map":
                p.refs_drop.append(rest[-1])
                sc.early_drop = True
        elif w[:2] == ["class-of-service", "scheduler-maps"]:
            assert w[3] == "forwarding-class" and w[5] == "scheduler", w
            p.sched_maps[w[2]][w[4]] = w[6]
            p.refs_fc.append(w[4])
        elif w[:2] == ["class-of-service", "interfaces"]:
            ifd, rest = w[2], w[3:]
            if rest[0] == "unit":
                name, rest = f"{ifd}.{rest[1]}", rest[2:]
                if rest[0] in ("classifiers", "rewrite-rules"):
                    p.unit_refs.append((name, f"{rest[0]}:{rest[1]}", rest[2]))
                    continue
            else:
                name = ifd
            p.cos_if[name][rest[0]] = rest[1]
        elif w[0] == "firewall":
            family, fname, term, kind = w[2], w[4], w[6], w[7]
            p.filters[(family, fname)][term].setdefault(kind, []).append(" ".join(w[8:]))
        elif w[0] == "interfaces" and "filter" in w:
            family = w[w.index("family") + 1]
            p.filter_of[(f"{w[1]}.{w[3]}", family)] = w[-1]
    _check_refs(p)
    return p


def _link_kbps(settings: dict[str, str]) -> float | None:
    rate = settings.get("shaping-rate")
    return int(rate) / 1000.0 if rate else None


def _scheduling(p: _Parsed, fc: str) -> Scheduling:
    """(strict, early drop, share of each WAN link) of one forwarding class."""
    here: dict[str, tuple[bool, bool, float | None]] = {}
    for name, settings in p.cos_if.items():
        if "scheduler-map" not in settings:
            continue
        sched = p.sched_maps[settings["scheduler-map"]].get(fc)
        if sched is None:
            raise ParseError(f"{name}: scheduler map has no scheduler for forwarding class {fc}")
        sc = p.schedulers[sched]
        strict = sc.priority == "strict-high"
        if strict and not sc.rate_limit:
            raise ParseError(f"{name}: strict-high scheduler {sched} is not rate-limited: its share is unbounded")
        link = _link_kbps(settings)
        if sc.percent is not None:
            share: float | None = float(sc.percent)
        else:
            share = None if link is None or sc.bps is None else 100.0 * sc.bps / 1000.0 / link
        here[name] = (strict, sc.early_drop, share)
    return meaning.queue_scheduling(here, f"forwarding class {fc}")


def _egress(p: _Parsed, family: str, fc: str, lp: str, dscp: int) -> int:
    """The DSCP after the WAN units' rewrite rules (no entry for the class and loss priority: unchanged)."""
    seen = set()
    for _, kind, name in p.unit_refs:
        if kind == f"rewrite-rules:{KIND[family]}":
            seen.add(p.rewrite[(KIND[family], name)].get((fc, lp), dscp))
    if len(seen) > 1:
        raise ParseError(f"{fc}/{lp} is rewritten differently on different WAN units: {seen}")
    return seen.pop() if seen else dscp


def _term_tests(parts: dict[str, list[str]], family: str) -> list[int] | None:
    """The DSCPs a term's ``from`` tests for (None: it does not test the DSCP)."""
    word = SET_DSCP[family]
    found = [dscp_value(c.split()[1]) for c in parts.get("from", []) if c.split()[0] == word]
    return found or None


def _ingress(p: _Parsed, unit: str, family: str, dscp: int, own: str | None) -> int:
    """The DSCP a packet arriving on a LAN unit leaves the WAN with (``own``: its journey's term)."""
    fc: str | None = None
    lp = "low"
    fname = p.filter_of.get((unit, family))
    for term, parts in p.filters[(family, fname)].items() if fname else ():
        if TERM.match(term) and term != own:
            continue  # another journey's traffic
        if term != own and any(c.split()[0] != SET_DSCP[family] for c in parts.get("from", [])):
            continue  # conditions an arbitrary packet does not meet
        tests = _term_tests(parts, family)
        if tests is not None and dscp not in tests:
            continue
        actions = {a.partition(" ")[0]: a.partition(" ")[2] for a in parts.get("then", [])}
        if SET_DSCP[family] in actions:
            dscp = dscp_value(actions[SET_DSCP[family]])
        fc = actions.get("forwarding-class", fc)
        lp = actions.get("loss-priority", lp)
        if "accept" in actions or "discard" in actions or "reject" in actions:
            break
    if fc is None:
        ba = p.unit_ref(unit, f"classifiers:{KIND[family]}")
        fc, lp = p.classifier[(KIND[family], ba)].get(dscp, (p.default_fc, "low")) if ba else (p.default_fc, "low")
    return _egress(p, family, fc, lp, dscp)


def _bleaches(p: _Parsed, family: str, fname: str) -> bool:
    terms = list(p.filters[(family, fname)].values())
    return bool(terms) and any(a.split()[0] == SET_DSCP[family] for a in terms[-1].get("then", []))


def parse(files: dict[str, str]) -> DeviceTreatment:
    p = _parse(files)
    marks: dict[str, set[tuple[int, str]]] = {}
    for (family, fname), terms in p.filters.items():
        for term, parts in terms.items():
            m = TERM.match(term)
            if not m:
                continue
            actions = dict(a.split(" ", 1) for a in parts.get("then", []) if " " in a)
            dscp = dscp_value(actions[SET_DSCP[family]])
            fc = actions["forwarding-class"]
            for (ckind, cname), table in p.classifier.items():
                if ckind == KIND[family] and table.get(dscp, (None,))[0] != fc:
                    raise ParseError(f"filter {fname} marks DSCP {dscp} into {fc}, classifier {cname} disagrees")
            marks.setdefault(m.group(1), set()).add((dscp, fc))
    lan: dict[str, dict[str, set[int]]] = {}
    for (unit, family), fname in sorted(p.filter_of.items()):
        for term, parts in p.filters[(family, fname)].items():
            m = TERM.match(term)
            if m:
                arrives = (_term_tests(parts, family) or [0])[0]
                lan.setdefault(m.group(1), {}).setdefault(unit, set()).add(_ingress(p, unit, family, arrives, term))
    out: DeviceTreatment = {}
    for journey, seen in sorted(marks.items()):
        if len(seen) != 1:
            raise ParseError(f"journey {journey} is marked inconsistently: {sorted(seen)}")
        dscp, fc = next(iter(seen))
        strict, _, shares = _scheduling(p, fc)
        per_if = {name: (strict, share) for name, share in shares.items()}
        out[journey] = meaning.treatment(journey, dscp, per_if, lan.get(journey, {}))
    return out


def control(files: dict[str, str]) -> ControlTreatment:
    p = _parse(files)
    tables = [t for (kind, _), t in p.classifier.items() if kind == "dscp"]
    if any(t != tables[0] for t in tables):
        raise ParseError("DSCP classifiers disagree")
    table = tables[0] if tables else {}
    queue_of = {d: table.get(d, (p.default_fc, "low"))[0] for d in range(64)}
    maps: dict[bool, list[dict[int, int]]] = {True: [], False: []}
    for (unit, family), fname in sorted(p.filter_of.items()):
        maps[_bleaches(p, family, fname)].append({d: _ingress(p, unit, family, d, None) for d in range(64)})
    trusted, untrusted = meaning.lan_maps(maps, "LAN units")
    host_fc = p.host_fc or p.default_fc
    host = {d: _egress(p, "inet", host_fc, "low", d) for d in range(64)}
    return ControlTreatment(
        queues=meaning.queues(
            set(queue_of.values()) | ({p.host_fc} if p.host_fc else set()), lambda fc: _scheduling(p, fc)
        ),
        queue_of=queue_of,
        trusted=trusted,
        untrusted=untrusted,
        host_queue=p.host_fc,
        host=host,
    )


def _check_refs(p: _Parsed) -> None:
    problems: list[str] = []
    for fc in p.refs_fc:
        if fc not in p.fc_queue:
            problems.append(f"forwarding class {fc} is used but not defined")
    for (_, fname), terms in p.filters.items():
        for term, parts in terms.items():
            for a in parts.get("then", []):
                if a.startswith("forwarding-class ") and a.split()[1] not in p.fc_queue:
                    problems.append(f"filter {fname} term {term} uses undefined forwarding class {a.split()[1]}")
    for prof in p.refs_drop:
        if prof not in p.drop_profiles:
            problems.append(f"drop profile {prof} is used but not defined")
    for m, entries in p.sched_maps.items():
        for s in entries.values():
            if s not in p.schedulers:
                problems.append(f"scheduler map {m} uses undefined scheduler {s}")
        if set(entries) != set(p.fc_queue):
            problems.append(f"scheduler map {m} does not schedule every forwarding class")
        if sum(s in p.schedulers and p.schedulers[s].priority == "strict-high" for s in entries.values()) > 1:
            problems.append(f"scheduler map {m} has more than one strict-high queue")
    for s, sc in p.schedulers.items():
        if (sc.percent is None and sc.bps is None) or sc.priority is None:
            problems.append(f"scheduler {s} lacks a transmit-rate or priority")
    for name, settings in p.cos_if.items():
        if "scheduler-map" in settings and settings["scheduler-map"] not in p.sched_maps:
            problems.append(f"{name} uses undefined scheduler map {settings['scheduler-map']}")
    for name, kind, ref in p.unit_refs:
        what, sub = kind.split(":")
        defined = p.classifier if what == "classifiers" else p.rewrite
        if (sub, ref) not in defined:
            problems.append(f"{name} uses undefined {what} {sub} {ref}")
    for (_, family), fname in p.filter_of.items():
        if (family, fname) not in p.filters:
            problems.append(f"filter {family} {fname} is applied but not defined")
    if len(set(p.fc_queue.values())) != len(p.fc_queue):
        problems.append("two forwarding classes share a queue")
    if 0 not in p.fc_queue.values():
        problems.append("no forwarding class on queue 0 (where Junos puts what no classifier claims)")
    if problems:
        raise ParseError("; ".join(problems))
