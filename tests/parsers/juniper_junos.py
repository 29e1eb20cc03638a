"""Junos ``set`` lines, read back into the CoS chain and checked for dangling references.

Chain: firewall filter term ``M<k>-<JOURNEY>`` -> ``then dscp`` (or
``traffic-class`` for inet6) and ``then forwarding-class`` -> the DSCP
classifier must put that DSCP into the same forwarding class (else the
marking and the BA classification disagree downstream) -> on each WAN
interface, the scheduler map's scheduler for that forwarding class ->
``priority strict-high`` and ``transmit-rate percent`` (percent of the shaped
or physical rate, so already percent of the link).

Every referenced forwarding class, scheduler, scheduler map, classifier,
rewrite rule, drop profile and filter must be defined, else :class:`ParseError`.
"""

from __future__ import annotations

import re
from collections import defaultdict

from tests.parsers import DeviceTreatment, ParseError, dscp_value, treatment

TERM = re.compile(r"^M\d+-(.+)$")


def _lines(text: str) -> list[list[str]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        words = line.split()
        if words[0] not in ("set", "delete"):
            raise ParseError(f"line {n} is not a set/delete command: {line!r}")
        if words[0] == "set":
            out.append(words[1:])
    return out


def parse(files: dict[str, str]) -> DeviceTreatment:
    fc_queue: dict[str, int] = {}
    classifier: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)  # (kind, name) -> dscp -> fc
    rewrite: dict[tuple[str, str], set[str]] = defaultdict(set)  # (kind, name) -> fcs
    drop_profiles: set[str] = set()
    schedulers: dict[str, dict[str, object]] = defaultdict(dict)
    sched_maps: dict[str, dict[str, str]] = defaultdict(dict)  # map -> fc -> scheduler
    cos_if: dict[str, dict[str, str]] = defaultdict(dict)  # interface (ifd or "ifd.unit") -> setting -> value
    unit_refs: list[tuple[str, str, str]] = []  # (interface, kind, name) classifiers/rewrite-rules on units
    filters: dict[tuple[str, str], dict[str, dict[str, list[str]]]] = defaultdict(lambda: defaultdict(dict))
    filter_refs: list[tuple[str, str]] = []  # (family, name) applied to interfaces
    refs_fc: list[str] = []
    refs_drop: list[str] = []
    for w in _lines(files["cos.set"]):
        if w[:3] == ["class-of-service", "forwarding-classes", "class"] and w[4] == "queue-num":
            fc_queue[w[3]] = int(w[5])
        elif w[:2] == ["class-of-service", "host-outbound-traffic"] and w[2] == "forwarding-class":
            refs_fc.append(w[3])
        elif w[:2] == ["class-of-service", "classifiers"]:
            kind, name, fc, code = w[2], w[3], w[5], w[9]
            assert w[4] == "forwarding-class" and w[6] == "loss-priority" and w[8] == "code-points", w
            d = dscp_value(code)
            if classifier[(kind, name)].setdefault(d, fc) != fc:
                raise ParseError(f"classifier {name} puts DSCP {d} into two forwarding classes")
            refs_fc.append(fc)
        elif w[:2] == ["class-of-service", "rewrite-rules"]:
            rewrite[(w[2], w[3])].add(w[5])
            refs_fc.append(w[5])
        elif w[:2] == ["class-of-service", "drop-profiles"]:
            drop_profiles.add(w[2])
        elif w[:2] == ["class-of-service", "schedulers"]:
            s, rest = w[2], w[3:]
            if rest[0] == "priority":
                schedulers[s]["priority"] = rest[1]
            elif rest[:2] == ["transmit-rate", "percent"]:
                schedulers[s]["percent"] = int(rest[2])
            elif rest[0] == "drop-profile-map":
                refs_drop.append(rest[-1])
            else:
                schedulers[s].setdefault("other", []).append(rest)  # type: ignore[union-attr]
        elif w[:2] == ["class-of-service", "scheduler-maps"]:
            assert w[3] == "forwarding-class" and w[5] == "scheduler", w
            sched_maps[w[2]][w[4]] = w[6]
            refs_fc.append(w[4])
        elif w[:2] == ["class-of-service", "interfaces"]:
            ifd, rest = w[2], w[3:]
            if rest[0] == "unit":
                name, rest = f"{ifd}.{rest[1]}", rest[2:]
                if rest[0] in ("classifiers", "rewrite-rules"):
                    unit_refs.append((name, f"{rest[0]}:{rest[1]}", rest[2]))
                    continue
            else:
                name = ifd
            cos_if[name][rest[0]] = rest[1]
        elif w[0] == "firewall":
            family, fname, term, kind = w[2], w[4], w[6], w[7]
            filters[(family, fname)][term].setdefault(kind, []).append(" ".join(w[8:]))
        elif w[0] == "interfaces" and "filter" in w:
            family = w[w.index("family") + 1]
            filter_refs.append((family, w[-1]))
    _check_refs(
        fc_queue,
        refs_fc,
        drop_profiles,
        refs_drop,
        schedulers,
        sched_maps,
        cos_if,
        unit_refs,
        classifier,
        rewrite,
        filters,
        filter_refs,
    )
    marks: dict[str, set[tuple[int, str]]] = {}
    for (family, fname), terms in filters.items():
        for term, parts in terms.items():
            m = TERM.match(term)
            if not m:
                continue
            actions = dict(a.split(" ", 1) for a in parts.get("then", []) if " " in a)
            dscp = dscp_value(actions["dscp" if family == "inet" else "traffic-class"])
            fc = actions["forwarding-class"]
            kind = "dscp" if family == "inet" else "dscp-ipv6"
            for (ckind, cname), table in classifier.items():
                if ckind == kind and table.get(dscp) != fc:
                    raise ParseError(f"filter {fname} marks DSCP {dscp} into {fc}, classifier {cname} disagrees")
            marks.setdefault(m.group(1), set()).add((dscp, fc))
    out: DeviceTreatment = {}
    for journey, seen in sorted(marks.items()):
        if len(seen) != 1:
            raise ParseError(f"journey {journey} is marked inconsistently: {sorted(seen)}")
        dscp, fc = seen.pop()
        per_if: dict[str, tuple[bool, float | None]] = {}
        for name, settings in cos_if.items():
            if "scheduler-map" not in settings:
                continue
            sched = sched_maps[settings["scheduler-map"]].get(fc)
            if sched is None:
                raise ParseError(f"{name}: scheduler map has no scheduler for forwarding class {fc}")
            sc = schedulers[sched]
            per_if[name] = (sc.get("priority") == "strict-high", float(sc["percent"]))  # type: ignore[arg-type]
        out[journey] = treatment(journey, dscp, per_if)
    return out


def _check_refs(
    fc_queue: dict[str, int],
    refs_fc: list[str],
    drop_profiles: set[str],
    refs_drop: list[str],
    schedulers: dict[str, dict[str, object]],
    sched_maps: dict[str, dict[str, str]],
    cos_if: dict[str, dict[str, str]],
    unit_refs: list[tuple[str, str, str]],
    classifier: dict[tuple[str, str], dict[int, str]],
    rewrite: dict[tuple[str, str], set[str]],
    filters: dict[tuple[str, str], dict[str, dict[str, list[str]]]],
    filter_refs: list[tuple[str, str]],
) -> None:
    problems: list[str] = []
    for fc in refs_fc:
        if fc not in fc_queue:
            problems.append(f"forwarding class {fc} is used but not defined")
    for (_, fname), terms in filters.items():
        for term, parts in terms.items():
            for a in parts.get("then", []):
                if a.startswith("forwarding-class ") and a.split()[1] not in fc_queue:
                    problems.append(f"filter {fname} term {term} uses undefined forwarding class {a.split()[1]}")
    for p in refs_drop:
        if p not in drop_profiles:
            problems.append(f"drop profile {p} is used but not defined")
    for m, entries in sched_maps.items():
        for s in entries.values():
            if s not in schedulers:
                problems.append(f"scheduler map {m} uses undefined scheduler {s}")
        if set(entries) != set(fc_queue):
            problems.append(f"scheduler map {m} does not schedule every forwarding class")
        if sum(schedulers.get(s, {}).get("priority") == "strict-high" for s in entries.values()) > 1:
            problems.append(f"scheduler map {m} has more than one strict-high queue")
    for s, settings in schedulers.items():
        if "percent" not in settings or "priority" not in settings:
            problems.append(f"scheduler {s} lacks a transmit-rate or priority")
    for name, settings in cos_if.items():
        if "scheduler-map" in settings and settings["scheduler-map"] not in sched_maps:
            problems.append(f"{name} uses undefined scheduler map {settings['scheduler-map']}")
    for name, kind, ref in unit_refs:
        what, sub = kind.split(":")
        table = classifier if what == "classifiers" else rewrite
        if (sub, ref) not in table:
            problems.append(f"{name} uses undefined {what} {sub} {ref}")
    for family, fname in filter_refs:
        if (family, fname) not in filters:
            problems.append(f"filter {family} {fname} is applied but not defined")
    if len(set(fc_queue.values())) != len(fc_queue):
        problems.append("two forwarding classes share a queue")
    if problems:
        raise ParseError("; ".join(problems))
