"""Queue state of an interface, read from the kernel with ``tc -s -d``: what sits in each queue, what it dropped.

A reading is one ``tc -s -d -j qdisc show`` (exact byte counts) and one ``tc -s -d class show`` (HTB
classes, which this iproute2 does not print as JSON) per interface, taken inside the namespace in one
shell. :func:`window` turns the readings of a measurement window into :class:`QueueStats`: the backlog
at the end and the most seen, and what was sent and dropped *during* the window.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace

MARK = "@@qoectl-lab@@"
_CLASS_HEAD = re.compile(r"^class (\S+) (\S+) (?:parent (\S+)|root)(.*)$")
_SENT = re.compile(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)")
_BACKLOG = re.compile(r"backlog (\S+) (\d+)p")
_RATE = re.compile(r"\b(rate|ceil) ([0-9.]+)([KMGT]?)bit\b")
_PRIO = re.compile(r"\bprio (\d+)\b")
_LEAF = re.compile(r"\bleaf (\S+)")
_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


@dataclass(frozen=True, slots=True)
class Reading:
    """One qdisc or class as ``tc`` showed it once (counters since it was created)."""

    kind: str  # htb, bfifo, pfifo, noqueue ...
    handle: str  # qdisc handle ("1:") or class id ("1:10")
    parent: str | None  # None: the root
    is_class: bool
    sent_bytes: int
    sent_packets: int
    drops: int
    overlimits: int
    backlog_bytes: int
    backlog_packets: int
    rate_kbps: float | None = None  # HTB classes
    ceil_kbps: float | None = None
    prio: int | None = None
    leaf: str | None = None  # an HTB leaf class's qdisc handle


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One qdisc or class over a measurement window.

    ``backlog_*``: at the end of the window; ``max_backlog_*``: the most any reading saw;
    ``drops``, ``sent_*``: during the window (counter differences between the first and last reading).
    """

    kind: str
    handle: str
    parent: str | None
    is_class: bool
    backlog_bytes: int
    backlog_packets: int
    max_backlog_bytes: int
    max_backlog_packets: int
    drops: int
    sent_bytes: int
    sent_packets: int
    rate_kbps: float | None
    ceil_kbps: float | None
    prio: int | None


def _size(text: str) -> int:
    """tc's backlog sizes: ``1234b``, ``12Kb``, ``1Mb`` (powers of 1024)."""
    m = re.fullmatch(r"([0-9.]+)([KMG]?)b", text)
    if not m:
        return 0
    return int(float(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)])


def parse_qdiscs(text: str) -> list[Reading]:
    """``tc -s -d -j qdisc show dev X`` -> readings (empty for no output)."""
    text = text.strip()
    if not text:
        return []
    out = []
    for q in json.loads(text):
        out.append(
            Reading(
                kind=str(q.get("kind", "")),
                handle=str(q.get("handle", "")),
                parent=None if q.get("root") else str(q.get("parent", "")) or None,
                is_class=False,
                sent_bytes=int(q.get("bytes", 0)),
                sent_packets=int(q.get("packets", 0)),
                drops=int(q.get("drops", 0)),
                overlimits=int(q.get("overlimits", 0)),
                backlog_bytes=int(q.get("backlog", 0)),
                backlog_packets=int(q.get("qlen", 0)),
            )
        )
    return out


def parse_classes(text: str) -> list[Reading]:
    """``tc -s -d class show dev X`` -> readings (text: this iproute2 prints HTB classes only as text)."""
    out: list[Reading] = []
    blocks = re.split(r"\n(?=class )", text.strip())
    for block in blocks:
        lines = block.splitlines()
        head = _CLASS_HEAD.match(lines[0].strip()) if lines else None
        if head is None:
            continue
        rest = block[len(lines[0]) :]
        sent, backlog = _SENT.search(rest), _BACKLOG.search(rest)
        rates = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] / 1000.0 for m in _RATE.finditer(lines[0])}
        prio, leaf = _PRIO.search(lines[0]), _LEAF.search(lines[0])
        out.append(
            Reading(
                kind=head.group(1),
                handle=head.group(2),
                parent=head.group(3),
                is_class=True,
                sent_bytes=int(sent.group(1)) if sent else 0,
                sent_packets=int(sent.group(2)) if sent else 0,
                drops=int(sent.group(3)) if sent else 0,
                overlimits=int(sent.group(4)) if sent else 0,
                backlog_bytes=_size(backlog.group(1)) if backlog else 0,
                backlog_packets=int(backlog.group(2)) if backlog else 0,
                rate_kbps=rates.get("rate"),
                ceil_kbps=rates.get("ceil"),
                prio=int(prio.group(1)) if prio else None,
                leaf=leaf.group(1) if leaf else None,
            )
        )
    return out


def script(devices: Sequence[str]) -> str:
    """A shell script printing one reading of every device, each part after a marker line."""
    parts = []
    for dev in devices:
        d = shlex.quote(dev)
        parts.append(f"echo '{MARK} qdisc {dev}'; tc -s -d -j qdisc show dev {d}")
        parts.append(f"echo '{MARK} class {dev}'; tc -s -d class show dev {d}")
    return "; ".join(parts)


def parse_script_output(text: str) -> dict[str, list[Reading]]:
    """The output of :func:`script` -> readings per device.

    A leaf class's backlog is its qdisc's, which tc prints rounded for classes (``12Kb``) but exactly in the
    qdisc JSON: leaf classes get the exact figure.
    """
    found: dict[str, list[Reading]] = {}
    qdiscs: dict[str, list[Reading]] = {}
    for chunk in text.split(MARK)[1:]:
        head, _, body = chunk.partition("\n")
        what, _, dev = head.strip().partition(" ")
        if what == "qdisc":
            qdiscs[dev] = parse_qdiscs(body)
            found.setdefault(dev, []).extend(qdiscs[dev])
        elif what == "class":
            by_handle = {q.handle: q for q in qdiscs.get(dev, [])}
            for c in parse_classes(body):
                leaf = by_handle.get(c.leaf or "")
                if leaf is not None:
                    c = replace(c, backlog_bytes=leaf.backlog_bytes, backlog_packets=leaf.backlog_packets)
                found.setdefault(dev, []).append(c)
    return found


def window(readings: Sequence[Sequence[Reading]]) -> list[QueueStats]:
    """Readings of one device over a window (oldest first) -> stats per qdisc/class of the last reading.

    A queue that appeared during the window (a new tree was pushed) counts from zero.
    """
    if not readings:
        return []
    last = readings[-1]

    def key(r: Reading) -> tuple[bool, str]:
        return (r.is_class, r.handle)

    first = {key(r): r for r in readings[0]}
    out = []
    for r in last:
        seen = [x for reading in readings for x in reading if key(x) == key(r) and x.kind == r.kind]
        base = first.get(key(r))
        if base is None or base.kind != r.kind or base.sent_bytes > r.sent_bytes:
            base = None
        out.append(
            QueueStats(
                kind=r.kind,
                handle=r.handle,
                parent=r.parent,
                is_class=r.is_class,
                backlog_bytes=r.backlog_bytes,
                backlog_packets=r.backlog_packets,
                max_backlog_bytes=max(x.backlog_bytes for x in seen),
                max_backlog_packets=max(x.backlog_packets for x in seen),
                drops=r.drops - (base.drops if base else 0),
                sent_bytes=r.sent_bytes - (base.sent_bytes if base else 0),
                sent_packets=r.sent_packets - (base.sent_packets if base else 0),
                rate_kbps=r.rate_kbps,
                ceil_kbps=r.ceil_kbps,
                prio=r.prio,
            )
        )
    return out
