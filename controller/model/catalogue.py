"""The built-in service-class catalogue, after RFC 4594 (Figure 3) and RFC 8622 (LE).

A policy repository can override any class or add its own with a
``kind: ServiceClasses`` document; classes are matched by name.
"""

from __future__ import annotations

from controller.model import ServiceClass
from controller.spec.types import DSCP_NAMES as D


def _c(
    name: str,
    dscps: tuple[str, ...],
    *,
    strict: bool = False,
    aqm: bool = False,
    fair: bool = False,
    depth: int = 64,
    scavenger: bool = False,
    text: str = "",
) -> ServiceClass:
    return ServiceClass(
        name=name,
        dscps=tuple(D[d] for d in dscps),
        strict_priority=strict,
        aqm=aqm,
        fair_queue=fair,
        queue_depth=depth,
        scavenger=scavenger,
        description=text,
    )


RFC4594: tuple[ServiceClass, ...] = (
    _c("network-control", ("cs6",), depth=64, text="Routing and network control (RFC 4594 4.1)"),
    _c("telephony", ("ef",), strict=True, depth=16, text="IP telephony bearer: priority queue (RFC 4594 4.2)"),
    _c("signaling", ("cs5",), depth=32, text="Call signaling (RFC 4594 4.3)"),
    _c(
        "multimedia-conferencing",
        ("af41", "af42", "af43"),
        aqm=True,
        depth=64,
        text="Interactive video: rate queue with AQM (RFC 4594 4.4)",
    ),
    _c("real-time-interactive", ("cs4",), depth=32, text="Inelastic interactive, e.g. gaming (RFC 4594 4.5)"),
    _c(
        "multimedia-streaming",
        ("af31", "af32", "af33"),
        aqm=True,
        depth=128,
        text="Buffered streaming video: rate queue with AQM (RFC 4594 4.6)",
    ),
    _c("broadcast-video", ("cs3",), depth=64, text="Inelastic broadcast video (RFC 4594 4.7)"),
    _c(
        "low-latency-data",
        ("af21", "af22", "af23"),
        aqm=True,
        fair=True,
        depth=64,
        text="Transactional / interactive data (RFC 4594 4.8)",
    ),
    _c("oam", ("cs2",), depth=64, text="Operations, administration and management (RFC 4594 4.9)"),
    _c(
        "high-throughput-data",
        ("af11", "af12", "af13"),
        aqm=True,
        fair=True,
        depth=128,
        text="Bulk elastic data (RFC 4594 4.10)",
    ),
    _c("standard", ("default",), aqm=True, fair=True, depth=128, text="Best effort (RFC 4594 4.11)"),
    _c(
        "low-priority-data",
        ("le", "cs1"),
        aqm=True,
        depth=64,
        scavenger=True,
        text="Scavenger / lower effort (RFC 8622, RFC 4594 4.12)",
    ),
)

DEFAULT_CLASS = "standard"
