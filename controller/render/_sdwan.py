"""Helpers shared by the SD-WAN renderers (Cisco Catalyst SD-WAN and FortiOS).

Why this module exists: both vendors measure path quality with *round-trip*
probes, while the plan carries *one-way* budgets (that is what the E-model,
ITU-T G.114 and the journey targets speak). The conversion, and the rounding to
the whole numbers the devices accept, must be the same everywhere, so it lives
here once. The leading underscore keeps the renderer registry from treating it
as a platform.

Conversion (documented in the rendered configs as well):

* latency: round-trip = 2 x one-way. Cisco BFD measures the round-trip time of
  an echo request and reply; FortiOS health checks report the round-trip time
  of their probes. A symmetric path is assumed, as the journey budgets do.
* jitter: round-trip jitter <= 2 x one-way jitter (the delay variation of a
  round trip is the sum of the variations of its two legs), so 2 x the budget
  never rejects a path that meets the budget in both directions.
* loss: a probe is lost when either leg loses it: 1 - (1 - p)^2.

Rounding: the devices take whole milliseconds and whole percent. Thresholds are
rounded toward the stricter value (down), except where that would demand zero
loss (or go below the platform minimum) for a budget that is not zero; then the
smallest value the platform accepts is used and a note says the threshold is
looser than the budget. qoectl's verify stage still checks the real budget.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

from controller.plan import Allocation, DevicePlan, InterfacePlan, QosClass, SlaClass
from controller.render.base import network


def bounded(name: str, limit: int) -> str:
    """``name`` if it fits ``limit`` characters, else a truncation plus a stable 6-hex suffix.

    Vendors cap object-name lengths (Cisco lists 32, FortiOS rules 35); journey
    names may be up to 63 characters. The suffix keeps truncated names unique
    and deterministic.
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-_')}-{digest}"


def rtt_ms(one_way_ms: float) -> float:
    """Round-trip equivalent of a one-way delay or jitter budget (symmetric path)."""
    return 2.0 * one_way_ms


def one_way_ms(rtt: float) -> float:
    """Inverse of :func:`rtt_ms`: what a rendered round-trip threshold means one way."""
    return rtt / 2.0


def rtt_loss_pct(one_way_pct: float) -> float:
    """Round-trip probe loss when each leg loses ``one_way_pct`` percent."""
    p = one_way_pct / 100.0
    return (1.0 - (1.0 - p) ** 2) * 100.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One SLA class in a platform's own (round-trip, whole-number) terms."""

    name: str
    sla: SlaClass
    latency_ms: int | None
    jitter_ms: int | None
    loss_pct: int | None
    mos: str | None  # one decimal, rounded up (stricter); None when the target has no MOS
    notes: tuple[str, ...]  # where the platform cannot be as strict as the budget

    @property
    def budget(self) -> str:
        """The one-way budget in words, for the comment above the rendered thresholds."""
        parts = []
        if self.sla.latency_ms is not None:
            parts.append(f"latency {self.sla.latency_ms:g} ms")
        if self.sla.jitter_ms is not None:
            parts.append(f"jitter {self.sla.jitter_ms:g} ms")
        if self.sla.loss_pct is not None:
            parts.append(f"loss {self.sla.loss_pct:g} %")
        return ", ".join(parts) or "none"


def _stricter(value: float, minimum: int, what: str, budget: str, notes: list[str]) -> int:
    whole = math.floor(value + 1e-9)
    if whole >= minimum:
        return whole
    notes.append(
        f"{what} {budget} needs a round-trip threshold of {value:.3g}; the platform accepts at least "
        f"{minimum}, so {minimum} is used (looser than the budget)"
    )
    return minimum


def thresholds(
    sla: SlaClass, name: str, *, min_latency: int, min_jitter: int, min_loss: int, with_mos: bool
) -> Thresholds:
    """Convert one plan SLA class (one-way budgets) to a platform's round-trip thresholds."""
    notes: list[str] = []
    latency = jitter = loss = None
    if sla.latency_ms is not None:
        latency = _stricter(rtt_ms(sla.latency_ms), min_latency, "latency", f"{sla.latency_ms:g} ms one-way", notes)
    if sla.jitter_ms is not None:
        jitter = _stricter(rtt_ms(sla.jitter_ms), min_jitter, "jitter", f"{sla.jitter_ms:g} ms one-way", notes)
    if sla.loss_pct is not None:
        exact = rtt_loss_pct(sla.loss_pct)
        floor = max(min_loss, 1) if sla.loss_pct > 0 else min_loss
        loss = _stricter(exact, floor, "loss", f"{sla.loss_pct:g} % one-way", notes)
    mos = None
    if with_mos and sla.mos is not None:
        mos = f"{math.ceil(sla.mos * 10 - 1e-9) / 10:.1f}"
    return Thresholds(name, sla, latency, jitter, loss, mos, tuple(notes))


def whole_percent_shares(plan: DevicePlan, iface: InterfacePlan) -> dict[str, int]:
    """Each class's guarantee on one link in whole percent, rounded *up*; the default class gets the rest.

    Rounding up matters: the strict class is capped at its guarantee, so rounding it
    down would police voice below what it needs. The capability check already refuses
    links where the rounded guarantees leave less than one percent for the default class.
    """
    assert iface.link_kbps
    return dict(class_shares(plan.classes, iface.allocations, iface.link_kbps))


@functools.lru_cache(maxsize=4096)
def class_shares(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], link_kbps: int
) -> tuple[tuple[str, int], ...]:
    """:func:`whole_percent_shares` as items; memoised, as devices with the same classes and link share it."""
    alloc = {a.class_name: a for a in reversed(allocations)}  # the first per class, as InterfacePlan.allocation
    out: dict[str, int] = {}
    for c in classes:
        a = alloc.get(c.name)
        if c.is_default or a is None:
            continue
        out[c.name] = max(1, math.ceil(100.0 * a.guaranteed_kbps / link_kbps - 1e-9))
    default = next(c for c in classes if c.is_default)
    out[default.name] = max(1, 100 - sum(out.values()))
    return tuple(out.items())


def port_text(r: tuple[int, int]) -> str:
    lo, hi = r
    return str(lo) if lo == hi else f"{lo}-{hi}"


def protocol_number(protocol: str) -> int | None:
    """IANA protocol number for a plan protocol; None for "any"."""
    return {"icmp": 1, "tcp": 6, "udp": 17}.get(protocol)


def prefix_token(prefix: str) -> str:
    """A name-safe spelling of a prefix: 10.0.0.0/8 -> 10.0.0.0-8 (digits, dots, dashes only)."""
    net = network(prefix)
    return f"{net.network_address}-{net.prefixlen}"
