"""The measurement vocabulary: every metric a sample may carry, with its unit and plausible range.

The names are the same in every source (CSV and JSON columns, OpenMetrics
``qoectl_<name>`` families, the keys of a journey's ``verify.queries``), so a
value means one thing wherever it comes from. A value outside the range is bad
data and is reported, never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    low: float
    high: float
    description: str
    integer: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("one_way_delay_ms", "ms", 0, 60_000, "one-way delay, sender to receiver"),
    Metric("jitter_ms", "ms", 0, 60_000, "packet delay variation (RFC 3550 interarrival jitter)"),
    Metric("loss_pct", "%", 0, 100, "packet loss"),
    Metric("throughput_kbps", "kbit/s", 0, 1e9, "throughput of one flow"),
    Metric("response_time_ms", "ms", 0, 3_600_000, "one transaction's response time (Apdex input)"),
    Metric("errors", "count", 0, 1e12, "failed transactions (count as frustrated in Apdex)"),
    Metric("apdex", "", 0, 1, "an Apdex score measured elsewhere (e.g. from a histogram)"),
    Metric("error_rate_pct", "%", 0, 100, "failed transactions as a share of all"),
    Metric("startup_s", "s", 0, 3600, "video start-up delay (initial loading)"),
    Metric("rebuffering_pct", "%", 0, 100, "stall time after start-up over playing plus stalled time"),
    Metric("stall_s", "s", 0, 86_400, "one stall's length; needs session and position_s"),
    Metric("session_duration_s", "s", 0, 1e7, "media duration played in a session (P.1203.3 T)"),
    Metric("dscp", "", 0, 63, "DSCP seen on arrival", integer=True),
    Metric("users", "count", 0, 1e9, "active users of the journey in the segment"),
    Metric("reorder_pct", "%", 0, 100, "packets arriving after a later-sent packet"),
)

NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
INDEX: dict[str, int] = {m.name: i for i, m in enumerate(METRICS)}
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
OPENMETRICS_PREFIX = "qoectl_"


def code(name: str) -> int:
    return INDEX[name]
