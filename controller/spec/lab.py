"""``kind: Lab`` (``qoectl/v1``): a network-namespace lab that ``qoectl lab up`` builds on this machine.

A lab file is not a policy document: it lives beside a policy folder (``spec.policy``) and is read by
``qoectl lab``, never by ``qoectl validate``. It is in the JSON Schema all the same, so editors and
standard validators check it like any other qoectl file.

Addresses follow one convention everywhere: in every IPv4 prefix of the lab the *router* takes the
first usable address and the other end (the host, the ISP, or this machine for ``management``) the
second. Every prefix is inside 198.18.0.0/15 (RFC 2544's benchmarking range), so a lab can never
shadow a real network of the machine it runs on. What a single document cannot state in JSON Schema
(names that refer to each other, overlapping prefixes) is checked when the lab is loaded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from controller.spec.rules import given, rules
from controller.spec.types import Description, Dscp, FilePath, InterfaceName, Name, Prefix
from controller.spec.v1 import Metadata, Strict

Port = Annotated[int, Field(ge=1, le=65535, description="UDP or TCP port 1-65535.")]
URL_PATH_PATTERN = r"^/[A-Za-z0-9_./?=&%-]{0,200}$"
UrlPath = Annotated[
    str,
    StringConstraints(pattern=URL_PATH_PATTERN),
    Field(description="A URL path starting with '/': letters, digits and _ . / ? = & % - only."),
]
TRAFFIC_KINDS = ("voice", "video", "web", "bulk_tcp", "bulk_udp")
PROBE_KINDS = ("voice", "video", "http", "throughput")


def _one_of(*keys: str) -> dict[str, Any]:
    return rules({"oneOf": [given(k) for k in keys]})


def _exactly_one(model: Strict, kinds: tuple[str, ...], what: str) -> str:
    """The one kind given in ``model``; raises the model's error otherwise."""
    found = [k for k in kinds if getattr(model, k) is not None]
    if len(found) != 1:
        raise ValueError(
            f"give exactly one {what} kind: {', '.join(kinds)}" + (f" (found {', '.join(found)})" if found else "")
        )
    return found[0]


# --------------------------------------------------------------------------- topology


class LabRouter(Strict):
    """A Linux router: a namespace with its own sshd, reached from this machine on its management address."""

    name: Name
    management: Prefix = Field(
        description="A /30 (or /29 ...) between this machine and the router: the router's sshd listens on the "
        "first usable address (port 22), this machine takes the second.",
    )
    description: Description | None = None


class LabHost(Strict):
    """A host behind a router: a namespace with one link to its router."""

    name: Name
    router: Name = Field(description="The router this host sits behind.")
    lan: Prefix = Field(
        description="The link to the router: the router takes the first usable address, the host "
        "the second; the host's default route points at the router."
    )
    router_interface: InterfaceName = Field(default="lan0", description="The router's interface to this host.")
    site: Name = Field(description="The policy site whose users this host stands for (the site of its samples).")


class WanLink(Strict):
    """One router's WAN link to the ISP namespace."""

    router: Name
    interface: InterfaceName = Field(default="wan0", description="The router's WAN interface.")
    prefix: Prefix = Field(description="The router takes the first usable address, the ISP the second.")


class LabWan(Strict):
    """A WAN: an ISP namespace joining routers, with the real capacity set by a FIFO bottleneck of its own.

    Each ISP interface towards a router sends through an HTB class at ``capacity_kbps`` with a plain FIFO
    (``bfifo``) of ``buffer_ms`` at that rate: the link's real capacity and buffer, outside every router.
    A router on two or more WANs is an SD-WAN edge with a transport on each: its main-table default route
    goes through ``spec.default_wan`` (else the first WAN it is on), and every router gets a route to each
    other router's address on the same WAN through that WAN's ISP (the underlay the per-transport health
    probes measure).
    """

    name: Name
    transport: Name | None = Field(
        default=None,
        description="The inventory transport (interfaces[].transport) this WAN carries; default: the WAN's name.",
    )
    capacity_kbps: int = Field(ge=64, le=10_000_000, description="Real capacity, each direction (kbit/s).")
    buffer_ms: int = Field(default=1000, ge=1, le=10_000, description="The ISP's FIFO, in ms at capacity.")
    links: list[WanLink] = Field(min_length=2)


# --------------------------------------------------------------------------- traffic generators


class VoiceTraffic(Strict):
    """RTP-sized UDP (172 bytes: G.711, 20 ms) at 50 packets/s per call; call k uses port + k."""

    port: Port
    calls: int = Field(default=1, ge=1, le=200)
    dscp: Dscp = Field(default=0, description="DSCP the phones send with (the router may re-mark it).")


class VideoTraffic(Strict):
    """Video-like UDP: one burst of packets per frame, at the bitrate (IP level)."""

    port: Port
    bitrate_kbps: float = Field(gt=0, le=100_000)
    frame_rate: int = Field(default=30, ge=1, le=120)
    dscp: Dscp = 0


class WebTraffic(Strict):
    """An HTTP server on the ``to`` host and a client on the ``from`` host fetching one object at a time."""

    port: Port
    interval_ms: int = Field(default=500, ge=10, le=60_000, description="Pause between requests.")
    response_bytes: int = Field(default=20_000, ge=0, le=10_000_000)


class BulkTcpTraffic(Strict):
    """TCP streams sending as fast as the network takes them."""

    port: Port
    streams: int = Field(default=1, ge=1, le=16)


class BulkUdpTraffic(Strict):
    """UDP at ``load.bulk`` x the capacity of the WAN on its path: the overload that builds queues."""

    port: Port
    packet_bytes: int = Field(default=1400, ge=64, le=1472, description="UDP payload per packet.")


class LabTraffic(Strict):
    """A background generator: exactly one of voice, video, web, bulk_tcp, bulk_udp."""

    model_config = ConfigDict(json_schema_extra=_one_of(*TRAFFIC_KINDS))

    name: Name
    source: Name = Field(alias="from", description="The host that sends (the client, for web).")
    destination: Name = Field(alias="to", description="The host that receives (the server, for web).")
    voice: VoiceTraffic | None = None
    video: VideoTraffic | None = None
    web: WebTraffic | None = None
    bulk_tcp: BulkTcpTraffic | None = None
    bulk_udp: BulkUdpTraffic | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> LabTraffic:
        _exactly_one(self, TRAFFIC_KINDS, "traffic")
        return self

    @property
    def kind(self) -> str:
        return _exactly_one(self, TRAFFIC_KINDS, "traffic")


# --------------------------------------------------------------------------- probes (the measurement API)


class VoiceProbe(Strict):
    """The built-in voice prober: RTP-sized UDP at 50 packets/s; one-way delay, jitter, loss, DSCP on arrival."""

    port: Port
    rate_pps: float = Field(default=50, gt=0, le=1000)
    dscp: Dscp | None = Field(default=None, description="Default: the journey's DSCP in the compiled policy.")


class VideoProbe(Strict):
    """Video-like bursts (one per frame) at the bitrate: throughput, one-way delay, jitter, loss, DSCP."""

    port: Port
    bitrate_kbps: float | None = Field(
        default=None, gt=0, le=100_000, description="IP-level rate; default: the journey's bitrate x 1.2."
    )
    frame_rate: int = Field(default=30, ge=1, le=120)
    dscp: Dscp | None = Field(default=None, description="Default: the journey's DSCP in the compiled policy.")


class HttpProbe(Strict):
    """HTTP transactions (a new connection each) against a web generator's server: Apdex input."""

    port: Port
    path: UrlPath = "/"
    interval_ms: int = Field(default=250, ge=0, le=60_000)


class ThroughputProbe(Strict):
    """Throughput of background generators as their receivers count it, summed (e.g. a bulk journey's minimum)."""

    generators: list[Name] = Field(min_length=1)


class LabProbe(Strict):
    """What the measurement API runs for one journey: exactly one of voice, video, http, throughput."""

    model_config = ConfigDict(json_schema_extra=_one_of(*PROBE_KINDS))

    journey: Name = Field(description="The journey of the lab's policy the samples are for.")
    source: Name | None = Field(default=None, alias="from", description="Sending host (the client, for http).")
    destination: Name | None = Field(default=None, alias="to", description="Receiving host (the server).")
    site: Name | None = Field(default=None, description="Site of the samples; default: the `from` host's site.")
    voice: VoiceProbe | None = None
    video: VideoProbe | None = None
    http: HttpProbe | None = None
    throughput: ThroughputProbe | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> LabProbe:
        _exactly_one(self, PROBE_KINDS, "probe")
        return self

    @property
    def kind(self) -> str:
        return _exactly_one(self, PROBE_KINDS, "probe")


class LabLoad(Strict):
    bulk: float = Field(
        default=1.0, ge=0, le=20, description="bulk_udp rate as a multiple of its WAN's capacity (0: stopped)."
    )


class LabSpec(Strict):
    policy: FilePath = Field(
        default="policies", description="The policy folder (relative to the lab file) whose inventory reaches it."
    )
    routers: list[LabRouter] = Field(min_length=1)
    hosts: list[LabHost] = Field(min_length=1)
    wans: list[LabWan] = Field(min_length=1)
    traffic: list[LabTraffic] = Field(default_factory=list, description="Background generators.")
    probes: list[LabProbe] = Field(default_factory=list, description="Per journey: what the measurement API runs.")
    load: LabLoad = Field(default_factory=LabLoad)
    default_wan: Name | None = Field(
        default=None,
        description="The WAN of the routers' main-table default route when a router is on several; default: the "
        "first WAN each router is on. Traffic between hosts takes it unless the routers' policy steers it.",
    )


class LabDoc(Strict):
    """A lab of network namespaces: hosts, Linux routers with sshd, an ISP bottleneck, traffic generators."""

    apiVersion: Literal["qoectl/v1"]
    kind: Literal["Lab"]
    metadata: Metadata
    spec: LabSpec
