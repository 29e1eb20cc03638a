"""A small policy and observation builders for the tests of ``controller.adjust`` (the loop's decision core).

The policy: branch-1 (br1-rtr1, IOS-XE, one 20 Mbit/s WAN) and hq (hq-rtr1, Linux, wan0 at 20 Mbit/s that the
loop may shape down to 8 Mbit/s). Journeys:

==========  =========  ==========================  ==================  ======================================
journey     priority   class                       bandwidth           loop limits
==========  =========  ==========================  ==================  ======================================
voice       critical   telephony (strict, EF)      10 x 90 = 900       max_kbps 2400
crm-web     high       low-latency-data (AF21)     5 % = 1000          max_kbps 3000, strict_priority
bulk        low        high-throughput-data        4 x 1000 = 4000     min_kbps 1000
scav        scavenger  low-priority-data (LE)      5 % = 1000          (scavenger: squeezable to 0)
==========  =========  ==========================  ==================  ======================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from controller.adjust import ClassQueue, DeviceDrift, JourneyFigures, Observation, QueueState, SegmentStatus
from controller.pipeline import Build, build
from tests.policy_builder import PolicyRepo, bulk_journey, interactive_journey, lan, settings, voice_journey, wan

T0 = 1_746_093_600.0  # 2025-05-01T10:00:00Z
STEP_S = 15.0


def loop_repo(
    *, min_kbps: int | None = 8000, max_kbps: int | None = None, crm: Mapping[str, Any] | None = None, **extra: Any
) -> PolicyRepo:
    repo = PolicyRepo.standard(journeys=False)
    devices = repo.devices()
    uplink = wan("wan0", 20000, "mpls")
    if min_kbps is not None:
        uplink["min_kbps"] = min_kbps
    if max_kbps is not None:
        uplink["max_kbps"] = max_kbps
    devices[1]["interfaces"] = [uplink, lan("lan0", trust_dscp=False)]
    repo.set_devices(devices)
    repo.add_journey(voice_journey("voice", loop={"max_kbps": 2400}))
    repo.add_journey(
        interactive_journey("crm-web", priority="high", loop=dict(crm or {"max_kbps": 3000, "strict_priority": True}))
    )
    repo.add_journey(
        bulk_journey("bulk", bandwidth={"per_flow_kbps": 1000, "concurrent_flows": 4}, loop={"min_kbps": 1000})
    )
    repo.add_journey(bulk_journey("scav", port=8500, scavenger=True, bandwidth={"share_pct": 5}))
    if "settings" in extra:
        repo.add("settings.yaml", settings(**extra["settings"]))
    return repo


def built(repo: PolicyRepo, root: Path) -> Build:
    result = build(repo.write(root))
    assert result.ok, [d.format() for d in result.errors]
    return result


def observe(
    cycle: int,
    verdicts: Mapping[str, str],
    *,
    figures: Iterable[JourneyFigures] = (),
    queues: Iterable[QueueState] = (),
    drift: Iterable[DeviceDrift] = (),
    gaps: Mapping[str, str] | None = None,
) -> Observation:
    """Cycle ``cycle`` (1-based, STEP_S apart) with verdicts per ``journey@segment``."""
    gaps = gaps or {}
    segments = tuple(
        SegmentStatus(key.split("@")[0], key.split("@")[1], verdict, (), gaps.get(key))  # type: ignore[arg-type]
        for key, verdict in sorted(verdicts.items())
    )
    return Observation(T0 + STEP_S * (cycle - 1), segments, tuple(figures), tuple(queues), tuple(drift))


def hq_queue(
    *,
    backlog_bytes: int = 0,
    delivered_kbps: float | None = None,
    capacity_kbps: float | None = None,
    classes: Mapping[str, tuple[int, int]] | None = None,
) -> QueueState:
    """hq-rtr1 wan0; ``classes``: class -> (backlog bytes, drops)."""
    rows = tuple(ClassQueue(name, b, d) for name, (b, d) in sorted((classes or {}).items()))
    return QueueState("hq-rtr1", "wan0", backlog_bytes, 0, rows, delivered_kbps, capacity_kbps)


def delay(journey: str, p50: float, segment: str = "hq", **more: Any) -> JourneyFigures:
    return JourneyFigures(journey, segment, one_way_delay_p50_ms=p50, one_way_delay_p99_ms=p50 * 1.5, **more)


def link(result: Build, device: str = "hq-rtr1", iface: str = "wan0") -> Any:
    plan = result.plan(device)
    assert plan is not None
    return next(i for i in plan.interfaces if i.name == iface)


def guarantee(result: Build, class_name: str, device: str = "hq-rtr1", iface: str = "wan0") -> int:
    alloc = link(result, device, iface).allocation(class_name)
    assert alloc is not None
    return int(alloc.guaranteed_kbps)
