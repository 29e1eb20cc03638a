"""The small renderer interface every platform implements.

A renderer declares its platform name, the capabilities it can express, its
limits and its template folder; it turns one :class:`DevicePlan` into named
config files. The compiler checks each plan against these declarations and
reports everything unsupported at once, before anything is rendered.
"""

from __future__ import annotations

import functools
import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import jinja2

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


def templates_root() -> Path:
    """``templates/`` in a source checkout, or the copy packaged inside ``controller``."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "templates"
    if packaged.is_dir():
        return packaged
    return here.parent / "templates"


def _kbps(value: float) -> str:
    return f"{int(value)}kbit"


class _Environment(jinja2.Environment):
    """Jinja's environment with a faster ``x.key`` on plain dicts (the contexts are dicts).

    Jinja tries ``getattr(obj, key)`` first and only then ``obj[key]``; on a dict
    every ``{{ row.name }}`` therefore raised and caught an AttributeError, which
    was about half of all rendering time. A plain ``dict`` has no attributes but
    those of its type, so looking the key up first whenever ``key`` is not such
    an attribute gives exactly the same result (``d.items`` is still the method).
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


_DICT_ATTRIBUTES = frozenset(dir(dict))


@functools.lru_cache(maxsize=4096)
def network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``ipaddress.ip_network(prefix)``, memoised.

    Every device's config repeats the same few journey prefixes, and parsing them
    again for each device was the largest cost of building render contexts.
    Network objects are immutable, so sharing them is safe.
    """
    return ipaddress.ip_network(prefix)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = _Environment(
        loader=jinja2.FileSystemLoader(str(templates_root())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # device configs, not HTML; inputs are restricted at load (S701)
        auto_reload=False,
    )
    env.filters["kbit"] = _kbps
    return env


class Renderer(ABC):
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

    @property
    def template_dir(self) -> str:
        return self.platform

    def template(self, name: str) -> jinja2.Template:
        return environment().get_template(f"{self.template_dir}/{name}")

    # Output files: (file name, template name inside the platform's template folder).
    outputs: ClassVar[tuple[tuple[str, str], ...]]

    @abstractmethod
    def context(self, plan: DevicePlan) -> dict[str, Any]:
        """What the templates see: the plan plus platform-specific derived names/values."""

    def render(self, plan: DevicePlan) -> dict[str, str]:
        """Config files for one device: file name -> text."""
        return self.render_context(self.context(plan))

    def render_context(self, ctx: dict[str, Any]) -> dict[str, str]:
        """Render from a precomputed context (also the benchmark's floor)."""
        return {name: self.template(tpl).render(ctx) for name, tpl in self.outputs}

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        """Words that identify a journey's config lines (its marking and its class)."""
        tokens = [journey]
        for rule in plan.markings:
            if rule.journey == journey:
                tokens += [rule.ident, rule.class_name]
                tokens += [c.ident for c in plan.classes if c.name == rule.class_name]
        return tokens

    def journey_lines(self, files: dict[str, str], plan: DevicePlan, journey: str) -> dict[str, list[str]]:
        tokens = self.explain_tokens(plan, journey)
        found = {name: lines_mentioning(text, tokens) for name, text in files.items()}
        return {name: lines for name, lines in found.items() if lines}


def percent_split(values: list[float]) -> list[int]:
    """Whole percentages proportional to ``values`` that sum to exactly 100, each at least 1.

    Shares below 1 % are raised to exactly 1 % and the others share what is
    left; then the largest-remainder method rounds them, so the result is
    deterministic and as close to the exact shares as whole numbers allow.
    """
    n = len(values)
    if n == 0:
        return []
    if n > 100:
        raise ValueError("cannot give more than 100 shares at least 1 % each")
    total = sum(values) or 1.0
    exact = [max(v, 0.0) / total * 100.0 for v in values]
    floored: set[int] = set()
    while True:
        free = [i for i in range(n) if i not in floored]
        free_total = sum(exact[i] for i in free)
        budget = 100.0 - len(floored)
        scaled = {i: (exact[i] / free_total * budget if free_total else budget / len(free)) for i in free}
        small = {i for i, v in scaled.items() if v < 1.0}
        if not small:
            break
        floored |= small
    out = [1 if i in floored else int(scaled[i]) for i in range(n)]
    order = sorted(free, key=lambda i: (-(scaled[i] - out[i]), i))
    for k in range(100 - sum(out)):
        out[order[k % len(order)]] += 1
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def lines_mentioning(text: str, tokens: list[str]) -> list[str]:
    """Lines that mention any token (as a whole word), each with the block indented under it."""
    import re

    if not tokens:
        return []
    pattern = re.compile("|".join(rf"(?<![A-Za-z0-9_-]){re.escape(t)}(?![A-Za-z0-9_-])" for t in sorted(set(tokens))))
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if pattern.search(line):
            out.append(line)
            depth = _indent(line)
            j = i + 1
            while j < len(lines) and lines[j].strip() and _indent(lines[j]) > depth and line.lstrip()[:1] != "#":
                if lines[j].lstrip().startswith(("class ", "table ", "chain ")):
                    break
                out.append(lines[j])
                j += 1
            i = j
            continue
        i += 1
    return out
