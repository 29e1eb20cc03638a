"""A transport's health as an SD-WAN edge measures it, and whether it meets an SLA class.

SD-WAN edges probe each transport between their own addresses on it (BFD between TLOCs of one colour) and
compare the mean latency, the jitter and the loss with each SLA class. :class:`TransportHealth` is one such
measurement, from one device over one transport; :func:`sla_verdict` the comparison with a plan's
:class:`~controller.plan.SlaClass` (its one-way latency, jitter and loss budgets). The lab's probes
(``controller.lab.measure``) and the loop's path steering (``controller.adjust.paths``) both use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from controller.plan import SlaClass

SlaVerdict = Literal["pass", "fail", "unknown"]


@dataclass(frozen=True, slots=True)
class TransportHealth:
    """One device's measurement of one transport over the cycle (None: not measured)."""

    device: str
    transport: str
    delay_ms: float | None = None  # one-way, mean over the probes (as SD-WAN SLA classes read latency)
    jitter_ms: float | None = None
    loss_pct: float | None = None
    peer: str | None = None  # the device at the other end
    error: str | None = None  # the probe could not run

    def measurements(self, prefix: str = "") -> dict[str, float]:
        out = {}
        for name in ("delay_ms", "jitter_ms", "loss_pct"):
            value = getattr(self, name)
            if value is not None and math.isfinite(value):
                out[f"{prefix}{name}"] = round(float(value), 3)
        return out


def sla_verdict(sla: SlaClass, health: TransportHealth | None) -> tuple[SlaVerdict, tuple[str, ...]]:
    """``pass`` when every budget of the SLA class is met, ``fail`` with what misses, ``unknown`` without data."""
    if health is None or health.error is not None or health.delay_ms is None:
        why = health.error if health is not None and health.error else "no measurement"
        return "unknown", (why,)
    misses = []
    for label, value, budget in (
        ("delay", health.delay_ms, sla.latency_ms),
        ("jitter", health.jitter_ms, sla.jitter_ms),
        ("loss", health.loss_pct, sla.loss_pct),
    ):
        if budget is None:
            continue
        if value is None:
            return "unknown", (f"{label} not measured",)
        if value > budget:
            unit = "%" if label == "loss" else " ms"
            misses.append(f"{label} {value:.3g}{unit} > {budget:.3g}{unit}")
    return ("fail", tuple(misses)) if misses else ("pass", ())
