"""The ``qoectl/v1`` policy language: what network engineers write in Git.

Every model forbids unknown keys and uses strict types, so a typo is an error
with the right spelling suggested, never a silently ignored setting. These
models are converted into :mod:`controller.model` right after loading; nothing
downstream of the loader sees a spec version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from controller import registry
from controller.spec.rules import absent, equals, given, nonempty, rules, when
from controller.spec.types import (
    Address,
    Description,
    Dscp,
    EnvVarName,
    FilePath,
    FreeText,
    Host,
    InterfaceName,
    Name,
    PortRange,
    Prefix,
)

API_VERSION = "qoectl/v1"


def _registered_platform(value: str) -> str:
    """A platform name is any platform registered in the ``qoectl.platforms`` entry point group."""
    names = registry.names()
    if value not in names:
        raise ValueError(f"unknown platform {value!r}: registered platforms are {', '.join(names)}")
    return value


class RegisteredPlatform:
    """JSON Schema of a platform name: an enum of the platforms registered where the schema is generated."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        schema["enum"] = registry.names()
        return schema

    @staticmethod
    def reference_text() -> str:
        return " / ".join(f"`{name}`" for name in registry.names())


Platform = Annotated[str, AfterValidator(_registered_platform), RegisteredPlatform]
Priority = Literal["critical", "high", "normal", "low", "scavenger"]
Codec = Literal["g711", "g711-plc", "g729a"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Metadata(Strict):
    name: Name
    owner: FreeText | None = None
    description: Description | None = None
    labels: dict[Name, Name] = Field(default_factory=dict)


# --------------------------------------------------------------------------- Journey


_IPV4_TEXT = {"type": "string", "pattern": "^[^:]*$"}  # a prefix of the right spelling is IPv6 if it has a ':'
_IPV6_TEXT = {"type": "string", "pattern": ":"}


def _contains(key: str, item: dict[str, str]) -> dict[str, object]:
    return {"required": [key], "properties": {key: {"contains": item}}}


class TrafficMatch(Strict):
    """One way to recognise the journey's packets (all given fields must match)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            when(
                {"anyOf": [nonempty("source_ports"), nonempty("destination_ports")]},
                {"required": ["protocol"], "properties": {"protocol": {"enum": ["udp", "tcp"]}}},
            ),
            {
                "not": {
                    "allOf": [
                        {"anyOf": [_contains(k, _IPV4_TEXT) for k in ("source_prefixes", "destination_prefixes")]},
                        {"anyOf": [_contains(k, _IPV6_TEXT) for k in ("source_prefixes", "destination_prefixes")]},
                    ]
                }
            },
        )
    )
    protocol: Literal["udp", "tcp", "icmp", "any"] = "any"
    source_ports: list[PortRange] = Field(default_factory=list)
    destination_ports: list[PortRange] = Field(default_factory=list)
    source_prefixes: list[Prefix] = Field(default_factory=list)
    destination_prefixes: list[Prefix] = Field(default_factory=list)
    dscp: Dscp | None = Field(default=None, description="Match packets arriving with this DSCP.")

    @model_validator(mode="after")
    def _ports_need_l4(self) -> TrafficMatch:
        if (self.source_ports or self.destination_ports) and self.protocol not in ("udp", "tcp"):
            raise ValueError("ports can only be matched with protocol udp or tcp")
        return self

    @model_validator(mode="after")
    def _one_address_family(self) -> TrafficMatch:
        # One match becomes one IPv4 or one IPv6 rule; a mix cannot be expressed (an IPv6 prefix would
        # end up in an IPv4 access list).
        versions = {p.version for p in (*self.source_prefixes, *self.destination_prefixes)}
        if len(versions) > 1:
            raise ValueError(
                "a match mixes IPv4 and IPv6 prefixes; put the IPv4 and the IPv6 prefixes in separate match entries"
            )
        return self


class Traffic(Strict):
    application: Name | None = Field(default=None, description="Application name for SD-WAN app lists.")
    category: Name | None = Field(default=None, description="Application category, e.g. voice, collaboration.")
    match: list[TrafficMatch] = Field(min_length=1)


class VoiceTarget(Strict):
    model_config = ConfigDict(
        json_schema_extra=rules({"anyOf": [given("mos"), given("one_way_delay_ms", "jitter_ms", "loss_pct")]})
    )

    codec: Codec = "g711"
    mos: float | None = Field(default=None, ge=1.0, le=4.5, description="Minimum MOS (E-model, G.107).")
    one_way_delay_ms: float | None = Field(default=None, gt=0, le=1000)
    jitter_ms: float | None = Field(default=None, ge=0, le=500)
    loss_pct: float | None = Field(default=None, ge=0, le=50)

    @model_validator(mode="after")
    def _mos_or_budgets(self) -> VoiceTarget:
        budgets = (self.one_way_delay_ms, self.jitter_ms, self.loss_pct)
        if self.mos is None and any(b is None for b in budgets):
            raise ValueError("give a mos target, or all of one_way_delay_ms, jitter_ms and loss_pct")
        return self


class VideoTarget(Strict):
    mode: Literal["conferencing", "streaming"]
    bitrate_kbps: float = Field(gt=0, le=100_000_000)
    startup_s: float | None = Field(default=None, gt=0, le=60)
    rebuffering_pct: float | None = Field(default=None, ge=0, le=100)
    one_way_delay_ms: float | None = Field(default=None, gt=0, le=5000)
    jitter_ms: float | None = Field(default=None, ge=0, le=1000)
    loss_pct: float | None = Field(default=None, ge=0, le=50)


class InteractiveTarget(Strict):
    apdex_t_ms: float = Field(gt=0, le=60_000, description="Apdex threshold T: satisfied at or below it.")
    apdex: float = Field(ge=0, le=1, description="Target Apdex score, e.g. 0.9.")
    response_time_ms: float | None = Field(default=None, gt=0, le=600_000)
    error_rate_pct: float | None = Field(default=None, ge=0, le=100)
    round_trips: int = Field(default=4, ge=1, le=100, description="Network round trips per transaction.")
    network_share: float = Field(default=0.5, gt=0, le=1, description="Share of T the network may use.")


class BulkTarget(Strict):
    min_throughput_kbps: float = Field(default=0, ge=0, le=100_000_000)
    scavenger: bool = False


class Target(Strict):
    model_config = ConfigDict(
        json_schema_extra=rules({"oneOf": [given(k) for k in ("voice", "video", "interactive", "bulk")]})
    )

    voice: VoiceTarget | None = None
    video: VideoTarget | None = None
    interactive: InteractiveTarget | None = None
    bulk: BulkTarget | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [k for k in ("voice", "video", "interactive", "bulk") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one target kind: voice, video, interactive or bulk"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


class Bandwidth(Strict):
    model_config = ConfigDict(
        json_schema_extra=rules(
            {
                "oneOf": [
                    {"allOf": [given("per_flow_kbps", "concurrent_flows"), absent("share_pct")]},
                    {"allOf": [given("share_pct"), absent("per_flow_kbps", "concurrent_flows")]},
                ]
            }
        )
    )

    per_flow_kbps: float | None = Field(default=None, gt=0, le=100_000_000)
    concurrent_flows: int | None = Field(default=None, ge=1, le=1_000_000)
    share_pct: float | None = Field(default=None, gt=0, le=100, description="Share of each WAN link.")

    @model_validator(mode="after")
    def _one_form(self) -> Bandwidth:
        flows = self.per_flow_kbps is not None or self.concurrent_flows is not None
        if flows and self.share_pct is not None:
            raise ValueError("give per_flow_kbps x concurrent_flows, or share_pct, not both")
        if flows and (self.per_flow_kbps is None or self.concurrent_flows is None):
            raise ValueError("per_flow_kbps and concurrent_flows go together")
        if not flows and self.share_pct is None:
            raise ValueError("give per_flow_kbps and concurrent_flows, or share_pct")
        return self


class Scope(Strict):
    sites: list[Name] = Field(default_factory=list, description="Empty: every site.")
    device_tags: list[Name] = Field(default_factory=list, description="Empty: every device.")
    contexts: list[Name] = Field(default_factory=list, description="Site contexts, e.g. branch, remote-users.")


class SdwanIntent(Strict):
    strict: bool = Field(default=False, description="Drop rather than use a path out of SLA.")
    preferred_transports: list[Name] = Field(default_factory=list)


VerifyMetric = Literal[
    "one_way_delay_ms",
    "jitter_ms",
    "loss_pct",
    "throughput_kbps",
    "response_time_ms",
    "errors",
    "apdex",
    "error_rate_pct",
    "startup_s",
    "rebuffering_pct",
    "stall_s",
    "session_duration_s",
    "dscp",
    "users",
    "reorder_pct",
]
DURATION_PATTERN = r"^[1-9][0-9]{0,6}[smhd]$"
Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN),
    Field(description="A duration: a whole number and s, m, h or d, e.g. 30s, 5m, 6h, 30d."),
]


# DURATION_PATTERN up to one day (86400s, 1440m, 24h, 1d): the window rule of VerifySpec, for the JSON Schema.
WINDOW_PATTERN = (
    "^(?:(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)s"
    "|(?:[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m|(?:[1-9]|1[0-9]|2[0-4])h|1d)$"
)


def duration_seconds(text: str) -> float:
    """``5m`` -> 300.0 (the text already matched DURATION_PATTERN)."""
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


class CompositeWeights(Strict):
    """Weights of the composite journey QoE score (0-100 %); components without data are left out."""

    model_config = ConfigDict(
        json_schema_extra=rules({"not": {"allOf": [equals(k, 0) for k in ("objective", "survey_mos", "csat", "nps")]}})
    )

    objective: float = Field(default=0.6, ge=0, le=1, description="The measured QoE model score.")
    survey_mos: float = Field(default=0.2, ge=0, le=1, description="Mean survey MOS (1-5).")
    csat: float = Field(default=0.1, ge=0, le=1, description="CSAT: share of 4-5 answers on a 1-5 scale.")
    nps: float = Field(default=0.1, ge=0, le=1, description="Net Promoter Score from 0-10 answers.")

    @model_validator(mode="after")
    def _some_weight(self) -> CompositeWeights:
        if self.objective + self.survey_mos + self.csat + self.nps <= 0:
            raise ValueError("at least one weight must be above 0")
        return self


class VerifySpec(Strict):
    """How ``qoectl verify`` judges the journey from measurements (all optional)."""

    window: Duration = Field(
        default="5m",
        description="Length of one evaluation window, at most 1d.",
        json_schema_extra={"pattern": WINDOW_PATTERN},
    )
    objective_pct: float = Field(default=99.0, gt=0, le=100, description="Share of windows that must be in target.")
    period: Duration = Field(default="30d", description="Error-budget period the objective applies to.")
    queries: dict[VerifyMetric, FreeText] = Field(
        default_factory=dict,
        description="PromQL per metric for --prometheus; series carry a site or context label.",
    )
    weights: CompositeWeights = Field(default_factory=CompositeWeights)
    min_responses: int = Field(default=5, ge=1, le=100_000, description="Survey answers needed to use feedback.")
    errors_frustrated: bool = Field(default=True, description="Count failed transactions as frustrated in Apdex.")

    @model_validator(mode="after")
    def _period_covers_window(self) -> VerifySpec:
        if duration_seconds(self.window) > 86400:
            raise ValueError(f"window {self.window} is longer than a day: use at most 1d")
        if duration_seconds(self.period) < duration_seconds(self.window):
            raise ValueError(f"period {self.period} is shorter than window {self.window}")
        return self


class LoopLimits(Strict):
    """What ``qoectl loop`` may change for this journey (docs/loop.md). Without a limit, the loop leaves that alone."""

    max_kbps: float | None = Field(
        default=None,
        gt=0,
        le=100_000_000,
        description="The guarantee (kbit/s on a WAN link) the loop may raise this journey to when it is out of "
        "target; without it, the loop never raises it above its bandwidth.",
    )
    min_kbps: float | None = Field(
        default=None,
        ge=0,
        le=100_000_000,
        description="The guarantee the loop may squeeze this journey down to, to make room for a journey of higher "
        "priority; without it, never below its bandwidth (scavenger journeys: down to 0).",
    )
    strict_priority: bool = Field(
        default=False,
        description="The loop may move this journey into the strict-priority class (critical and high journeys "
        "only), while every link keeps the priority cap.",
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> LoopLimits:
        if self.min_kbps is not None and self.max_kbps is not None and self.min_kbps > self.max_kbps:
            raise ValueError("loop.min_kbps is above loop.max_kbps")
        return self


class JourneySpec(Strict):
    model_config = ConfigDict(
        json_schema_extra=rules(
            when(
                {"required": ["loop"], "properties": {"loop": equals("strict_priority", True)}},
                {"required": ["priority"], "properties": {"priority": {"enum": ["critical", "high"]}}},
            )
        )
    )

    traffic: Traffic
    target: Target
    priority: Priority = "normal"
    bandwidth: Bandwidth
    scope: Scope = Field(default_factory=Scope)
    service_class: Name | None = Field(default=None, description="Override the derived service class.")
    sdwan: SdwanIntent = Field(default_factory=SdwanIntent)
    verify: VerifySpec = Field(default_factory=VerifySpec)
    loop: LoopLimits = Field(default_factory=LoopLimits)

    @model_validator(mode="after")
    def _strict_needs_priority(self) -> JourneySpec:
        if self.loop.strict_priority and self.priority not in ("critical", "high"):
            raise ValueError(
                f"loop.strict_priority is for critical and high journeys; this one is {self.priority}: "
                "raise its priority or leave loop.strict_priority out"
            )
        return self


class JourneyDoc(Strict):
    apiVersion: Literal["qoectl/v1"]
    kind: Literal["Journey"]
    metadata: Metadata
    spec: JourneySpec


# --------------------------------------------------------------------------- Inventory


class Site(Strict):
    name: Name
    context: Name = Field(default="branch", description="branch, campus, datacenter, remote-users, ...")
    region: Name | None = None
    description: Description | None = None
    sdwan_site_id: int | None = Field(
        default=None,
        ge=1,
        le=4_294_967_295,
        description="The Cisco SD-WAN system site-id of this site's edges. With it, the centralized policy is "
        "applied to the site (apply-policy site-list); without it, activate the policy in SD-WAN Manager.",
    )


class Transport(Strict):
    name: Name = Field(description="SD-WAN colour / transport name, e.g. mpls, biz-internet, lte.")
    base_delay_ms: float = Field(ge=0, le=2000, description="Expected one-way delay of the path.")
    jitter_ms: float = Field(default=0, ge=0, le=1000)
    loss_pct: float = Field(default=0, ge=0, le=100)
    metered: bool = False
    cost: int = Field(default=10, ge=0, le=1000, description="Lower is cheaper.")


class Credentials(Strict):
    model_config = ConfigDict(json_schema_extra=rules(when(given("become_password_env"), given("become"))))

    username_env: EnvVarName | None = None
    password_env: EnvVarName | None = None
    key_file: FilePath | None = None
    become: Literal["sudo"] | None = Field(
        default=None,
        description="Linux routers: log in as an unprivileged user and become root with 'sudo -s' "
        "(nft, tc and unshare need root).",
    )
    become_password_env: EnvVarName | None = Field(
        default=None,
        description="The environment variable holding the sudo password; without it sudo must not ask (NOPASSWD).",
    )

    @model_validator(mode="after")
    def _become_password_needs_become(self) -> Credentials:
        if self.become_password_env is not None and self.become is None:
            raise ValueError("become_password_env is only used with become: sudo")
        return self


class Interface(Strict):
    model_config = ConfigDict(
        json_schema_extra=rules(
            when(equals("role", "wan"), {"allOf": [given("bandwidth_kbps"), absent("vpn")]}),
            when(equals("role", "lan"), absent("min_kbps", "max_kbps", "gateway")),
            {"properties": {"vpn": {"not": {"const": 512}}}},
        )
    )

    name: InterfaceName
    role: Literal["wan", "lan"]
    bandwidth_kbps: int | None = Field(default=None, ge=64, le=400_000_000, description="Usable link rate.")
    port_speed_kbps: int | None = Field(default=None, ge=64, le=400_000_000)
    transport: Name | None = None
    base_delay_ms: float | None = Field(default=None, ge=0, le=2000)
    trust_dscp: bool = True
    vpn: int | None = Field(
        default=None,
        ge=1,
        le=65530,
        description="SD-WAN service VPN of a LAN interface (Cisco SD-WAN; default 1). The edge's app-route policy "
        "covers the service VPNs of its LAN interfaces. 512 is the management VPN; WAN interfaces are in VPN 0.",
    )
    gateway: Address | None = Field(
        default=None,
        description="WAN: the next hop of this transport (IPv4 or IPv6, e.g. the ISP's router). A linux edge with "
        "two or more WAN transports routes each transport's steered journeys through its own table "
        "(default via gateway dev this interface, onlink), so there every WAN interface with a transport needs it.",
    )
    min_kbps: int | None = Field(
        default=None,
        ge=64,
        le=400_000_000,
        description="WAN: the lowest rate qoectl loop may shape the link to when the bottleneck is downstream "
        "(docs/loop.md); without it, never below bandwidth_kbps.",
    )
    max_kbps: int | None = Field(
        default=None,
        ge=64,
        le=400_000_000,
        description="WAN: the highest rate qoectl loop may shape the link to when headroom returns; without it, "
        "never above bandwidth_kbps.",
    )

    @model_validator(mode="after")
    def _wan_has_rate(self) -> Interface:
        if self.role == "wan" and self.bandwidth_kbps is None:
            raise ValueError("a wan interface needs bandwidth_kbps (the usable link rate)")
        if self.vpn is not None and self.role == "wan":
            raise ValueError("vpn is for lan interfaces: a wan interface is in the transport VPN 0")
        if self.vpn == 512:
            raise ValueError("VPN 512 is the management VPN, not a service VPN: use 1-511 or 513-65530")
        if (
            self.port_speed_kbps is not None
            and self.bandwidth_kbps is not None
            and (self.bandwidth_kbps > self.port_speed_kbps)
        ):
            raise ValueError("bandwidth_kbps cannot exceed port_speed_kbps")
        if self.role == "lan" and (self.min_kbps is not None or self.max_kbps is not None):
            raise ValueError("min_kbps and max_kbps bound the shaper of a wan interface; a lan interface has none")
        if self.role == "lan" and self.gateway is not None:
            raise ValueError("gateway is the next hop of a wan interface's transport; a lan interface has none")
        if self.bandwidth_kbps is not None:
            if self.min_kbps is not None and self.min_kbps > self.bandwidth_kbps:
                raise ValueError("min_kbps cannot exceed bandwidth_kbps (the loop lowers the shaper from there)")
            if self.max_kbps is not None and self.max_kbps < self.bandwidth_kbps:
                raise ValueError("max_kbps cannot be below bandwidth_kbps (the loop raises the shaper from there)")
        if self.max_kbps is not None and self.port_speed_kbps is not None and self.max_kbps > self.port_speed_kbps:
            raise ValueError("max_kbps cannot exceed port_speed_kbps")
        return self


class Device(Strict):
    name: Name
    platform: Platform
    host: Host
    port: int = Field(default=22, ge=1, le=65535)
    site: Name
    tags: list[Name] = Field(default_factory=list)
    credentials: Credentials = Field(default_factory=Credentials)
    interfaces: list[Interface] = Field(min_length=1)
    features: list[Name] = Field(default_factory=list, description="Optional platform features, e.g. fq_codel.")


class SdwanController(Strict):
    """A Cisco SD-WAN controller (vSmart) that holds the centralized policy of every cisco_sdwan edge."""

    name: Name
    host: Host
    port: int = Field(default=22, ge=1, le=65535)
    credentials: Credentials = Field(default_factory=Credentials)
    mode: Literal["cli", "manager"] = Field(
        default="cli",
        description="cli: a vSmart in CLI mode; qoectl apply pushes the merged centralized policy over SSH. "
        "manager: SD-WAN Manager owns its configuration (vManage mode, which refuses CLI policy); qoectl apply "
        "writes the merged policy to its run folder for SD-WAN Manager instead.",
    )


class InventorySpec(Strict):
    sites: list[Site] = Field(default_factory=list)
    transports: list[Transport] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    sdwan_controllers: list[SdwanController] = Field(
        default_factory=list,
        description="Cisco SD-WAN controllers: qoectl apply merges the cisco_sdwan edges' centralized policies "
        "into one and pushes it to each controller in CLI mode; without one, it exports the file for SD-WAN Manager.",
    )


class InventoryDoc(Strict):
    apiVersion: Literal["qoectl/v1"]
    kind: Literal["Inventory"]
    metadata: Metadata
    spec: InventorySpec


# --------------------------------------------------------------------------- Service classes


class ServiceClassDef(Strict):
    name: Name
    dscp: list[Dscp] = Field(min_length=1, description="First is the marking value; all are matched.")
    strict_priority: bool = False
    aqm: bool = False
    fair_queue: bool = False
    queue_depth: int = Field(default=64, ge=2, le=100_000, description="Queue depth in packets.")
    scavenger: bool = False
    description: Description | None = None


class ServiceClassesSpec(Strict):
    classes: list[ServiceClassDef] = Field(min_length=1)


class ServiceClassesDoc(Strict):
    apiVersion: Literal["qoectl/v1"]
    kind: Literal["ServiceClasses"]
    metadata: Metadata
    spec: ServiceClassesSpec


# --------------------------------------------------------------------------- Settings


class VoiceSplit(Strict):
    delay_share: float = Field(default=0.6, gt=0, lt=1, description="Share of R headroom for delay+jitter.")
    jitter_fraction: float = Field(default=0.1, ge=0, lt=0.5, description="Share of the delay budget for jitter.")


class SettingsSpec(Strict):
    priority_cap_pct: float = Field(default=33, gt=0, le=100, description="Max strict-priority share of a link.")
    guaranteed_cap_pct: float = Field(default=100, gt=0, le=100)
    default_class_min_pct: float = Field(default=5, ge=0, le=50, description="Kept free for class-default.")
    voice_split: VoiceSplit = Field(default_factory=VoiceSplit)


class SettingsDoc(Strict):
    apiVersion: Literal["qoectl/v1"]
    kind: Literal["Settings"]
    metadata: Metadata
    spec: SettingsSpec


# --------------------------------------------------------------------------- Adjustments

TIME_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"


def _real_time(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:  # 2025-02-30: the pattern cannot tell
        raise ValueError(f"{text} is not a real date and time") from None
    return text


UtcTime = Annotated[
    str,
    StringConstraints(pattern=TIME_PATTERN),
    AfterValidator(_real_time),
    Field(description="A UTC time in ISO 8601, to the second, e.g. '2025-05-01T10:00:00Z' (quoted in YAML)."),
]


class ShaperChange(Strict):
    """Shape a WAN interface to ``kbps`` instead of its ``bandwidth_kbps`` (within its ``min_kbps``/``max_kbps``)."""

    device: Name
    interface: InterfaceName
    kbps: int = Field(ge=64, le=400_000_000, description="The rate the interface is shaped to.")


class BandwidthChange(Strict):
    """Guarantee a journey ``kbps`` on each WAN link of one device instead of its bandwidth (within ``loop``)."""

    journey: Name
    device: Name
    kbps: float = Field(ge=0, le=100_000_000, description="The journey's guarantee on each WAN link of the device.")


class StrictPriorityChange(Strict):
    """Move a journey (critical or high, with ``loop.strict_priority``) into the strict-priority class."""

    journey: Name


class MarkingChange(Strict):
    """Mark a journey at one device's edge whatever DSCP it arrives with (its matches without ``dscp``)."""

    journey: Name
    device: Name


class PathChange(Strict):
    """On one SD-WAN edge, the journey prefers ``transport`` (the others are its backup, in their order)."""

    journey: Name
    device: Name
    transport: Name = Field(description="A transport of one of the device's WAN interfaces the journey may use.")


ADJUSTMENT_CHANGES = ("shaper", "bandwidth", "strict_priority", "marking", "path")


class Adjustment(Strict):
    """One change on top of the journeys: exactly one of shaper, bandwidth, strict_priority, marking and path."""

    model_config = ConfigDict(json_schema_extra=rules({"oneOf": [given(k) for k in ADJUSTMENT_CHANGES]}))

    shaper: ShaperChange | None = None
    bandwidth: BandwidthChange | None = None
    strict_priority: StrictPriorityChange | None = None
    marking: MarkingChange | None = None
    path: PathChange | None = None
    reason: FreeText = Field(description="Why the change was made.")
    measurements: dict[Name, float] = Field(
        default_factory=dict, description="The measured figures behind the change, by name (units in the name)."
    )
    time: UtcTime

    @model_validator(mode="after")
    def _exactly_one(self) -> Adjustment:
        given = [k for k in ADJUSTMENT_CHANGES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one change: shaper, bandwidth, strict_priority, marking or path"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


class AdjustmentsSpec(Strict):
    entries: list[Adjustment] = Field(default_factory=list)


class AdjustmentsDoc(Strict):
    """Changes made on top of the journeys (by ``qoectl loop``, or by hand); the compiler applies them."""

    apiVersion: Literal["qoectl/v1"]
    kind: Literal["Adjustments"]
    metadata: Metadata
    spec: AdjustmentsSpec


# The model of each kind (the loader and the JSON Schema select by ``kind``).
DOC_MODELS: dict[str, type[Strict]] = {
    "Journey": JourneyDoc,
    "Inventory": InventoryDoc,
    "ServiceClasses": ServiceClassesDoc,
    "Settings": SettingsDoc,
    "Adjustments": AdjustmentsDoc,
}
