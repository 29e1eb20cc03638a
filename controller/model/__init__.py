"""The internal policy model: version-free, immutable, typed.

The loader turns any supported spec version into these objects; the validator,
compiler and everything after work only on them. Each object keeps an
:class:`Origin` so a problem found later still points at the user's YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal, TypeVar

from controller.locations import Location, YamlDocument, dotted
from controller.locations import YamlPath as Path

Priority = Literal["critical", "high", "normal", "low", "scavenger"]
TargetKind = Literal["voice", "video", "interactive", "bulk"]

PRIORITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "normal": 2, "low": 3, "scavenger": 4}
C = TypeVar("C", bound=type)


def pickled_as_call(cls: C) -> C:
    """Pickle ``cls`` as a call with its fields, unpickled by ``__init__``, instead of the state that dataclasses
    give a slotted class (their ``__setstate__`` looks the fields up again for every object): the loader's workers
    send a fleet's devices, interfaces and their origins back to the main process (about twice as fast)."""
    names = tuple(f.name for f in fields(cls))

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, tuple(getattr(self, name) for name in names)

    cls.__reduce__ = __reduce__  # type: ignore[assignment]
    return cls


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object was written: a YAML document and the path inside it."""

    doc: YamlDocument | None
    path: Path = ()

    def at(self, *parts: str | int) -> Location:
        if self.doc is None:
            return Location("<built-in>")
        return self.doc.locate(self.path + tuple(parts))

    def field(self, *parts: str | int) -> str:
        return dotted(self.path + tuple(parts))

    @property
    def file(self) -> str:
        return self.doc.file if self.doc else "<built-in>"


BUILTIN = Origin(None)


@dataclass(frozen=True, slots=True)
class Match:
    protocol: Literal["udp", "tcp", "icmp", "any"]
    source_ports: tuple[tuple[int, int], ...] = ()
    destination_ports: tuple[tuple[int, int], ...] = ()
    source_prefixes: tuple[str, ...] = ()
    destination_prefixes: tuple[str, ...] = ()
    dscp: int | None = None


@dataclass(frozen=True, slots=True)
class VoiceTarget:
    codec: str
    mos: float | None
    one_way_delay_ms: float | None
    jitter_ms: float | None
    loss_pct: float | None


@dataclass(frozen=True, slots=True)
class VideoTarget:
    mode: Literal["conferencing", "streaming"]
    bitrate_kbps: float
    startup_s: float | None
    rebuffering_pct: float | None
    one_way_delay_ms: float | None
    jitter_ms: float | None
    loss_pct: float | None


@dataclass(frozen=True, slots=True)
class InteractiveTarget:
    apdex_t_ms: float
    apdex: float
    response_time_ms: float | None
    error_rate_pct: float | None
    round_trips: int
    network_share: float


@dataclass(frozen=True, slots=True)
class BulkTarget:
    min_throughput_kbps: float
    scavenger: bool


Target = VoiceTarget | VideoTarget | InteractiveTarget | BulkTarget


def target_kind(target: Target) -> TargetKind:
    if isinstance(target, VoiceTarget):
        return "voice"
    if isinstance(target, VideoTarget):
        return "video"
    if isinstance(target, InteractiveTarget):
        return "interactive"
    return "bulk"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    per_flow_kbps: float | None
    concurrent_flows: int | None
    share_pct: float | None

    def kbps_on(self, link_kbps: float) -> float:
        if self.share_pct is not None:
            return link_kbps * self.share_pct / 100.0
        assert self.per_flow_kbps is not None and self.concurrent_flows is not None
        return self.per_flow_kbps * self.concurrent_flows


@dataclass(frozen=True, slots=True)
class CompositeWeights:
    """Weights of the composite journey QoE score; see docs/qoe-models.md."""

    objective: float = 0.6
    survey_mos: float = 0.2
    csat: float = 0.1
    nps: float = 0.1


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """How measurements of one journey are judged (``spec.verify``); defaults when the YAML says nothing."""

    window_s: float = 300.0
    objective_pct: float = 99.0
    period_s: float = 30 * 86400.0
    queries: tuple[tuple[str, str], ...] = ()  # (metric, PromQL), sorted by metric
    weights: CompositeWeights = CompositeWeights()
    min_responses: int = 5
    errors_frustrated: bool = True


@dataclass(frozen=True, slots=True)
class LoopLimits:
    """What ``qoectl loop`` may change for a journey (``spec.loop``); see docs/loop.md."""

    max_kbps: float | None = None  # raise the guarantee up to this; None: never above the bandwidth as written
    min_kbps: float | None = None  # squeeze the guarantee down to this; None: never below it (scavenger: 0)
    strict_priority: bool = False  # may be moved into the strict-priority class


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    owner: str | None
    description: str | None
    application: str | None
    category: str | None
    matches: tuple[Match, ...]
    target: Target
    priority: Priority
    bandwidth: Bandwidth
    sites: tuple[str, ...]
    device_tags: tuple[str, ...]
    contexts: tuple[str, ...]
    service_class: str | None
    sdwan_strict: bool
    preferred_transports: tuple[str, ...]
    origin: Origin = field(default=BUILTIN, compare=False)
    verify: VerifySettings = VerifySettings()
    loop: LoopLimits = LoopLimits()

    @property
    def kind(self) -> TargetKind:
        return target_kind(self.target)


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Site:
    name: str
    context: str
    region: str | None
    sdwan_site_id: int | None = None
    origin: Origin = field(default=BUILTIN, compare=False)


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Transport:
    name: str
    base_delay_ms: float
    jitter_ms: float
    loss_pct: float
    metered: bool
    cost: int
    origin: Origin = field(default=BUILTIN, compare=False)


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    role: Literal["wan", "lan"]
    bandwidth_kbps: int | None
    port_speed_kbps: int | None
    transport: str | None
    base_delay_ms: float | None
    trust_dscp: bool
    vpn: int | None = None
    origin: Origin = field(default=BUILTIN, compare=False)
    min_kbps: int | None = None  # the lowest rate qoectl loop may shape a WAN link to; None: bandwidth_kbps
    max_kbps: int | None = None  # the highest; None: bandwidth_kbps
    gateway: str | None = None  # WAN: the transport's next hop (linux SD-WAN edges route through it)

    @property
    def shaper_range(self) -> tuple[int, int] | None:
        """The rates ``qoectl loop`` may shape this WAN interface to (``None`` for a LAN interface)."""
        if self.bandwidth_kbps is None:
            return None
        low = self.min_kbps if self.min_kbps is not None else self.bandwidth_kbps
        high = self.max_kbps if self.max_kbps is not None else self.bandwidth_kbps
        return low, high


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Credentials:
    username_env: str | None = None
    password_env: str | None = None
    key_file: str | None = None
    become: str | None = None  # "sudo": become root after logging in (Linux routers)
    become_password_env: str | None = None


@pickled_as_call
@dataclass(frozen=True, slots=True)
class Device:
    name: str
    platform: str
    host: str
    port: int
    site: str
    tags: tuple[str, ...]
    credentials: Credentials
    interfaces: tuple[Interface, ...]
    features: tuple[str, ...]
    origin: Origin = field(default=BUILTIN, compare=False)

    @property
    def wan_interfaces(self) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.role == "wan")

    @property
    def lan_interfaces(self) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.role == "lan")


@dataclass(frozen=True, slots=True)
class SdwanController:
    """A Cisco SD-WAN controller (vSmart); ``mode`` "manager": SD-WAN Manager owns its configuration."""

    name: str
    host: str
    port: int
    credentials: Credentials
    mode: str = "cli"
    origin: Origin = field(default=BUILTIN, compare=False)


@dataclass(frozen=True, slots=True)
class ServiceClass:
    """A service class of the catalogue (RFC 4594 by default)."""

    name: str
    dscps: tuple[int, ...]
    strict_priority: bool
    aqm: bool
    fair_queue: bool
    queue_depth: int
    scavenger: bool
    description: str = ""
    origin: Origin = field(default=BUILTIN, compare=False)

    @property
    def dscp(self) -> int:
        return self.dscps[0]


@dataclass(frozen=True, slots=True)
class VoiceSplit:
    delay_share: float = 0.6
    jitter_fraction: float = 0.1


@dataclass(frozen=True, slots=True)
class Settings:
    priority_cap_pct: float = 33.0
    guaranteed_cap_pct: float = 100.0
    default_class_min_pct: float = 5.0
    voice_split: VoiceSplit = VoiceSplit()
    origin: Origin = field(default=BUILTIN, compare=False)


@dataclass(frozen=True, slots=True)
class ShaperChange:
    device: str
    interface: str
    kbps: int


@dataclass(frozen=True, slots=True)
class BandwidthChange:
    journey: str
    device: str
    kbps: float


@dataclass(frozen=True, slots=True)
class StrictPriorityChange:
    journey: str


@dataclass(frozen=True, slots=True)
class MarkingChange:
    journey: str
    device: str


@dataclass(frozen=True, slots=True)
class PathChange:
    journey: str
    device: str
    transport: str


Change = ShaperChange | BandwidthChange | StrictPriorityChange | MarkingChange | PathChange
CHANGE_FIELD: dict[type, str] = {
    ShaperChange: "shaper",
    BandwidthChange: "bandwidth",
    StrictPriorityChange: "strict_priority",
    MarkingChange: "marking",
    PathChange: "path",
}


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One entry of an ``Adjustments`` document: a change on top of the journeys, and why.

    ``document`` is the name of the document it came from (``qoectl loop`` owns the one named
    ``qoectl-loop``); ``origin`` points at the entry.
    """

    change: Change
    reason: str
    measurements: tuple[tuple[str, float], ...]  # as written
    time: str  # ISO 8601 UTC, e.g. 2025-05-01T10:00:00Z
    document: str = ""
    origin: Origin = field(default=BUILTIN, compare=False)

    @property
    def change_field(self) -> str:
        """The entry's key for its change: shaper, bandwidth, strict_priority, marking or path."""
        return CHANGE_FIELD[type(self.change)]

    @property
    def key(self) -> tuple[str, ...]:
        """What the change is to: two entries with one key change the same thing."""
        c = self.change
        if isinstance(c, ShaperChange):
            return ("shaper", c.device, c.interface)
        if isinstance(c, BandwidthChange):
            return ("bandwidth", c.journey, c.device)
        if isinstance(c, StrictPriorityChange):
            return ("strict_priority", c.journey)
        if isinstance(c, PathChange):
            return ("path", c.journey, c.device)
        return ("marking", c.journey, c.device)


@dataclass(frozen=True)
class Policy:
    """Everything one policy repository says, after loading."""

    journeys: tuple[Journey, ...]
    sites: tuple[Site, ...]
    transports: tuple[Transport, ...]
    devices: tuple[Device, ...]
    classes: tuple[ServiceClass, ...]
    settings: Settings
    # Journeys whose document failed its schema, rebuilt from the parts that passed (no traffic): counted in
    # link totals only, so that an over-subscribed link is reported with its full load (see the loader).
    unchecked_journeys: tuple[Journey, ...] = ()
    # Entries of the Adjustments documents, in file order: applied by the compiler on top of the journeys.
    adjustments: tuple[Adjustment, ...] = ()
    # Cisco SD-WAN controllers of the inventory (qoectl apply pushes the merged centralized policy to them).
    sdwan_controllers: tuple[SdwanController, ...] = ()

    @cached_property
    def _sites(self) -> dict[str, Site]:
        return {s.name: s for s in reversed(self.sites)}

    @cached_property
    def _transports(self) -> dict[str, Transport]:
        return {t.name: t for t in reversed(self.transports)}

    @cached_property
    def _classes(self) -> dict[str, ServiceClass]:
        return {c.name: c for c in self.classes}

    @cached_property
    def _journeys(self) -> dict[str, Journey]:
        return {j.name: j for j in reversed(self.journeys)}

    @cached_property
    def _devices_by_site(self) -> dict[str, tuple[Device, ...]]:
        by_site: dict[str, list[Device]] = {}
        for d in self.devices:
            by_site.setdefault(d.site, []).append(d)
        return {site: tuple(devices) for site, devices in by_site.items()}

    def journey(self, name: str) -> Journey | None:
        return self._journeys.get(name)

    def devices_at(self, site: str) -> tuple[Device, ...]:
        """The devices at a site, in inventory order."""
        return self._devices_by_site.get(site, ())

    def site(self, name: str) -> Site | None:
        return self._sites.get(name)

    def service_class(self, name: str) -> ServiceClass | None:
        return self._classes.get(name)

    def transport(self, name: str) -> Transport | None:
        return self._transports.get(name)

    def context_of(self, device: Device) -> str:
        site = self.site(device.site)
        return site.context if site else ""
