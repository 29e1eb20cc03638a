"""The platform contract's declarations: capabilities, limits, and what a platform states about a plan.

A leaf below compile, render and validate: :mod:`controller.compile.capabilities`
checks each plan against a platform's :class:`Capabilities` and the renderer
(:class:`controller.render.base.Renderer`, a subclass) adds the templates. The
platforms themselves are found through :mod:`controller.registry`;
:func:`declared` is the capabilities of a registered platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from controller import registry
from controller.plan import DevicePlan

if TYPE_CHECKING:
    from controller.errors import Diagnostic
    from controller.model import Device, Policy

# Capabilities a plan may need.
MARKING = "marking"  # classify by 5-tuple and set DSCP
DSCP_CLASSIFY = "dscp_classify"  # queue by DSCP
STRICT_PRIORITY = "strict_priority"
SHAPING = "shaping"
AQM = "aqm"
FAIR_QUEUE = "fair_queue"
PORT_RANGES = "port_ranges"
IPV6 = "ipv6"
SDWAN_SLA = "sdwan_sla"
SDWAN_PATH = "sdwan_path"
QUEUING = "queuing"
SERVICE_VPN = "service_vpn"

CAPABILITY_TEXT = {
    MARKING: "marking traffic by protocol, ports and prefixes",
    DSCP_CLASSIFY: "queuing by DSCP",
    STRICT_PRIORITY: "a strict-priority (LLQ) queue",
    SHAPING: "shaping to a sub-rate link",
    AQM: "active queue management (WRED/fq_codel)",
    FAIR_QUEUE: "flow-fair queuing within a class",
    PORT_RANGES: "matching port ranges",
    IPV6: "matching IPv6 prefixes",
    SDWAN_SLA: "SD-WAN SLA classes",
    SDWAN_PATH: "SD-WAN path preference",
    QUEUING: "per-class queues and bandwidth",
    SERVICE_VPN: "app-route policies scoped to the LAN interfaces' service VPNs (interfaces[].vpn)",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_classes: int = 8
    max_strict_classes: int = 1
    min_bandwidth_pct: float = 1.0  # smallest guarantee the platform can express
    sla_latency_ms: tuple[float, float] = (1, 1000)
    sla_jitter_ms: tuple[float, float] = (1, 1000)
    sla_loss_pct: tuple[float, float] = (0, 100)
    # Range of an interface shaper (kbit/s); None: no documented bound to check.
    min_shape_kbps: int | None = None
    max_shape_kbps: int | None = None
    # Names of the limits above that are qoectl's own (its renderer does not support more *yet*), not the
    # device's: their messages say "qoectl's <platform> renderer does not support ... yet".
    qoectl_limits: frozenset[str] = frozenset()


class Capabilities:
    """What a platform can express and its limits: the part of a renderer that compile and validate read."""

    platform: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    limits: ClassVar[Limits] = Limits()
    # Capabilities that may be missing with a documented fallback: capability -> what happens instead.
    degradable: ClassVar[Mapping[str, str]] = {}
    # Capabilities the platform documents but this renderer does not render yet: capability -> where the
    # platform documents it. Missing ones are reported as qoectl's limit, never as the device's; every other
    # capability the renderer lacks is a limit of the device itself.
    not_rendered_yet: ClassVar[Mapping[str, str]] = {}
    # Optional features a device can declare in the inventory (device.features) that add capabilities.
    feature_capabilities: ClassVar[Mapping[str, frozenset[str]]] = {}
    # The plan owns the device's egress queues: its plans get the network-control class
    # (DevicePlan.network_control), which the renderer must express. SD-WAN edges keep False: their
    # platform queues its own control traffic (e.g. Cisco SD-WAN's BFD/OMP on queue 0).
    network_control: ClassVar[bool] = False

    def capabilities_for(self, features: tuple[str, ...]) -> frozenset[str]:
        caps = set(self.capabilities)
        for f in features:
            caps |= self.feature_capabilities.get(f, frozenset())
        return frozenset(caps)

    def sdwan_edge(self, device: Device) -> bool:
        """Whether ``device`` gets SLA classes and path preferences in its plan (default: its platform has SLA classes).

        A platform that steers only devices with several WAN transports (linux) says so here.
        """
        return SDWAN_SLA in self.capabilities_for(device.features)

    def check(self, plan: DevicePlan, device: Device, policy: Policy) -> list[Diagnostic]:
        """Platform rules the generic capabilities and limits cannot state (default: none).

        For example a Cisco SD-WAN transport must be named after a TLOC colour. Each problem
        is a located diagnostic, reported with all the others before anything is rendered.
        """
        return []

    def notes(self, plan: DevicePlan) -> tuple[str, ...]:
        """What the engineer should know about this device's output that is not an error.

        By default: that LAN interfaces' service VPNs are not used where the platform has no use for them.
        """
        if SERVICE_VPN in self.capabilities or not any(i.vpn is not None for i in plan.interfaces):
            return ()
        return (
            f"interfaces[].vpn is not used on {self.platform}: its QoS applies to the interface whatever "
            "VPN/VRF it is in (service VPNs scope Cisco SD-WAN app-route policies)",
        )


def declared(platform: str) -> Capabilities | None:
    """The declarations of a registered platform (its renderer), or ``None`` if no platform has that name."""
    renderer = registry.attribute(platform, "renderer")
    if renderer is None:
        return None
    if not isinstance(renderer, Capabilities):
        where = registry.registered()[platform].where()
        raise registry.PlatformError(f"{where}: RENDERER is not a controller.render.base.Renderer")
    return renderer
