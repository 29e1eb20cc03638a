"""The vendor-neutral QoS plan: one frozen object per device.

Templates see only this, never the YAML. Everything is sorted so that the same
policy always gives byte-identical plans and configs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from controller.spec.types import dscp_name


class _HashOnce:
    """Base of the plan objects that key memo caches: their hash, computed once per object.

    Renderers and checks memoise work per journey by looking plan objects up by
    value, once per device; a dataclass recomputes its hash (recursively, through
    every match) on each lookup, which had become a large part of building
    contexts. The value is exactly the dataclass's own (the hash of the tuple
    of fields); it is kept in a slot outside the fields, so equality, ``repr``,
    ``asdict`` and pickling do not see it. A subclass must assign
    ``__hash__ = _HashOnce.__hash__`` in its body, or ``@dataclass`` replaces it.
    """

    __slots__ = ("_hash",)
    _hash: int

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            value = hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))  # type: ignore[arg-type]
            object.__setattr__(self, "_hash", value)
            return value


@dataclass(frozen=True, slots=True)
class PlanMatch(_HashOnce):
    """One classifier: every given field must match (empty tuples match anything)."""

    __hash__ = _HashOnce.__hash__

    protocol: Literal["udp", "tcp", "icmp", "any"]
    family: Literal["ipv4", "ipv6", "any"]
    source_prefixes: tuple[str, ...]
    destination_prefixes: tuple[str, ...]
    source_ports: tuple[tuple[int, int], ...]
    destination_ports: tuple[tuple[int, int], ...]
    dscp: int | None

    @property
    def dscp_name(self) -> str | None:
        return None if self.dscp is None else dscp_name(self.dscp)


@dataclass(frozen=True, slots=True)
class MarkingRule(_HashOnce):
    """Traffic of one journey, recognised at the edge and marked with ``dscp``."""

    __hash__ = _HashOnce.__hash__

    journey: str
    ident: str  # config-safe upper-case identifier, e.g. VOICE-UC
    class_name: str
    dscp: int
    matches: tuple[PlanMatch, ...]
    application: str | None
    category: str | None

    @property
    def dscp_name(self) -> str:
        return dscp_name(self.dscp)


@dataclass(frozen=True, slots=True)
class QosClass(_HashOnce):
    __hash__ = _HashOnce.__hash__

    name: str  # catalogue name, e.g. telephony
    ident: str  # config-safe upper-case identifier, e.g. TELEPHONY
    queue: int  # 0-based queue index: strict classes first, default last
    dscp: int  # the marking value
    dscps: tuple[int, ...]  # every DSCP classified into this class
    strict: bool
    aqm: bool
    fair_queue: bool
    queue_depth: int
    scavenger: bool
    is_default: bool
    journeys: tuple[str, ...]
    # The plan's network-control class (RFC 4594 4.1): CS6/CS7 and the router's own routing traffic, never strict
    # (so never policed with a journey), no early drop, a guarantee of its own. See DevicePlan.network_control.
    network_control: bool = False

    @property
    def dscp_name(self) -> str:
        return dscp_name(self.dscp)

    @property
    def dscp_names(self) -> tuple[str, ...]:
        return tuple(dscp_name(d) for d in self.dscps)


@dataclass(frozen=True, slots=True)
class Allocation(_HashOnce):
    """What one class gets on one egress interface."""

    __hash__ = _HashOnce.__hash__

    class_name: str
    guaranteed_kbps: int
    guaranteed_pct: float  # of the shaped/link rate
    max_kbps: int
    police_kbps: int | None  # strict classes are policed to their guarantee


@dataclass(frozen=True, slots=True)
class InterfacePlan:
    name: str
    role: Literal["wan", "lan"]
    link_kbps: int | None
    port_kbps: int | None
    shape_kbps: int | None  # set when the usable rate is below the port speed (or always on Linux)
    transport: str | None
    trust_dscp: bool
    allocations: tuple[Allocation, ...]
    vpn: int | None = None  # the service VPN / VRF of a LAN interface, when the inventory gives one
    gateway: str | None = None  # a WAN interface's next hop, when the inventory gives one (linux SD-WAN edges)

    def allocation(self, class_name: str) -> Allocation | None:
        return next((a for a in self.allocations if a.class_name == class_name), None)


@dataclass(frozen=True, slots=True)
class SlaClass(_HashOnce):
    __hash__ = _HashOnce.__hash__

    name: str
    ident: str
    latency_ms: float | None  # one-way budget
    jitter_ms: float | None
    loss_pct: float | None
    mos: float | None
    journeys: tuple[str, ...]
    codec: str | None = None  # voice codec the MOS target assumes (platforms with a MOS threshold need it)


@dataclass(frozen=True, slots=True)
class PathPreference(_HashOnce):
    __hash__ = _HashOnce.__hash__

    journey: str
    ident: str
    application: str | None
    category: str | None
    dscp: int
    matches: tuple[PlanMatch, ...]
    sla_class: str | None
    preferred: tuple[str, ...]
    backup: tuple[str, ...]
    strict: bool
    priority: str

    @property
    def dscp_name(self) -> str:
        return dscp_name(self.dscp)


@dataclass(frozen=True, slots=True)
class DevicePlan:
    device: str
    platform: str
    site: str
    context: str
    tags: tuple[str, ...]
    features: tuple[str, ...]
    classes: tuple[QosClass, ...]
    markings: tuple[MarkingRule, ...]
    interfaces: tuple[InterfacePlan, ...]
    sla_classes: tuple[SlaClass, ...]
    path_preferences: tuple[PathPreference, ...]
    notes: tuple[str, ...]
    sdwan_site_id: int | None = None  # SD-WAN edges: the site's SD-WAN site-id, when the inventory gives one

    @property
    def wan_interfaces(self) -> tuple[InterfacePlan, ...]:
        return tuple(i for i in self.interfaces if i.role == "wan")

    @property
    def lan_interfaces(self) -> tuple[InterfacePlan, ...]:
        return tuple(i for i in self.interfaces if i.role == "lan")

    def qos_class(self, name: str) -> QosClass:
        return next(c for c in self.classes if c.name == name)

    @property
    def strict_classes(self) -> tuple[QosClass, ...]:
        return tuple(c for c in self.classes if c.strict)

    @property
    def network_control(self) -> QosClass | None:
        """The network-control class, on platforms whose plan owns the queues (capability ``network_control``).

        One rule every such renderer expresses: CS6 and CS7 (and the router's own traffic, where the
        platform lets the config place it) queue in this class, which is not strict, has no early drop and
        keeps a guarantee of its own; and DSCPs the plan does not own leave as they arrived unless the LAN
        they came from is untrusted (``trust_dscp: false``), where what no journey claims is bleached.
        """
        return next((c for c in self.classes if c.network_control), None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
