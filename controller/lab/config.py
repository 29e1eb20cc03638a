"""A lab file (``kind: Lab``) -> a checked, frozen :class:`LabConfig` with every address worked out.

The YAML is read with the policy loader's safe loader (positions for every value), checked against
:class:`controller.spec.lab.LabDoc`, and then across the document: names that refer to each other,
interface names Linux accepts, prefixes inside 198.18.0.0/15 that do not overlap, ports that two
receivers on one host would share. Every problem is reported at once, at its line, like a policy's.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from controller.errors import Diagnostic, Location, PolicyError
from controller.load.loader import _schema_problems, display_path
from controller.load.yamlsrc import YamlDocument, load_documents
from controller.spec.lab import LabDoc, LabHost, LabProbe, LabTraffic

LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
# Where cross traffic (``qoectl lab degrade``) goes: one address per WAN link, routed by the ISP to that link's
# router, which drops it (a blackhole route). No lab prefix may overlap it.
SINK_RANGE = ipaddress.IPv4Network("198.19.255.0/24")
NAMESPACE_PREFIX = "qlab-"
IFNAMSIZ = 15  # longest Linux interface name
RESERVED_IFACES = ("lo", "mgmt0")
MGMT_IFACE = "mgmt0"
SSH_PORT = 22


@dataclass(frozen=True, slots=True)
class Router:
    name: str
    address: str  # management address, where sshd listens
    peer: str  # this machine's side of the management link
    prefixlen: int


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    router: str
    site: str
    router_interface: str
    router_address: str
    address: str
    prefix: str  # the LAN, e.g. 198.18.10.0/24
    prefixlen: int


@dataclass(frozen=True, slots=True)
class WanLink:
    router: str
    interface: str  # on the router
    isp_interface: str  # on the ISP, towards the router
    router_address: str
    isp_address: str
    prefixlen: int
    sink: str = ""  # cross traffic towards this router goes here (the ISP routes it to the router, which drops it)


@dataclass(frozen=True, slots=True)
class Wan:
    name: str
    capacity_kbps: int
    buffer_ms: int
    links: tuple[WanLink, ...]
    transport: str = ""  # the inventory transport it carries (default: its name)

    @property
    def transport_name(self) -> str:
        return self.transport or self.name

    @property
    def node(self) -> str:
        """The ISP's node name (its namespace is ``<lab prefix>isp-<wan>``)."""
        return f"isp-{self.name}"

    def link_of(self, router: str) -> WanLink | None:
        return next((link for link in self.links if link.router == router), None)


@dataclass(frozen=True, slots=True)
class Traffic:
    """A background generator: ``kind`` decides which of the other fields are used."""

    name: str
    kind: str  # voice, video, web, bulk_tcp, bulk_udp
    source: str
    destination: str
    port: int
    calls: int = 1
    dscp: int = 0
    bitrate_kbps: float = 0.0
    frame_rate: int = 30
    interval_ms: int = 500
    response_bytes: int = 0
    streams: int = 1
    packet_bytes: int = 1400

    @property
    def protocol(self) -> str:
        return "tcp" if self.kind in ("web", "bulk_tcp") else "udp"

    @property
    def ports(self) -> tuple[int, int]:
        return (self.port, self.port + (self.calls - 1 if self.kind == "voice" else 0))


@dataclass(frozen=True, slots=True)
class Probe:
    """What the measurement API runs for one journey; ``kind`` decides which fields are used."""

    journey: str
    kind: str  # voice, video, http, throughput
    source: str  # host (for throughput: the generator's source)
    destination: str
    site: str
    port: int = 0
    rate_pps: float = 50.0
    dscp: int | None = None
    bitrate_kbps: float | None = None
    frame_rate: int = 30
    path: str = "/"
    interval_ms: int = 250
    generators: tuple[str, ...] = ()
    destination_address: str = ""  # a transport probe: the far router's address on the WAN (default: the host's)
    wan: str = ""  # a transport probe: the WAN it measures

    @property
    def transport_probe(self) -> bool:
        return bool(self.wan)


@dataclass(frozen=True, slots=True)
class LabConfig:
    name: str
    file: str  # the lab file, as given
    policy: str  # the policy folder (absolute)
    routers: tuple[Router, ...]
    hosts: tuple[Host, ...]
    wans: tuple[Wan, ...]
    traffic: tuple[Traffic, ...]
    probes: tuple[Probe, ...]
    bulk_load: float
    default_wan: str | None = None

    @property
    def prefix(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.name}-"

    def namespace(self, node: str) -> str:
        return f"{self.prefix}{node}"

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every namespace's node name: hosts, routers, then the ISPs."""
        return (*(h.name for h in self.hosts), *(r.name for r in self.routers), *(w.node for w in self.wans))

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.namespace(n) for n in self.nodes)

    def router(self, name: str) -> Router:
        return next(r for r in self.routers if r.name == name)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def wan(self, name: str) -> Wan:
        return next(w for w in self.wans if w.name == name)

    def wans_of(self, router: str) -> tuple[Wan, ...]:
        """Every WAN the router is on, in file order."""
        return tuple(w for w in self.wans if w.link_of(router) is not None)

    def wan_of(self, router: str) -> Wan:
        """The router's default WAN: ``default_wan`` when it is on it, else the first WAN it is on."""
        mine = self.wans_of(router)
        return next((w for w in mine if w.name == self.default_wan), mine[0])

    def wan_by_transport(self, name: str) -> Wan | None:
        """The WAN of that name, or the one carrying that transport."""
        return next((w for w in self.wans if w.name == name), None) or next(
            (w for w in self.wans if w.transport_name == name), None
        )

    def transport_probes(self, port: int, dscp: int) -> tuple[Probe, ...]:
        """Per WAN, from each router to each other router on it, between their addresses on that WAN: what an
        SD-WAN edge measures per transport (BFD between its and its peer's address of one colour). Receivers
        listen on ``port`` + n; packets carry ``dscp``. None unless some router is on two WANs."""
        if not self.multi_wan:
            return ()
        out: list[Probe] = []
        for w in self.wans:
            for a in w.links:
                for b in w.links:
                    if a.router != b.router:
                        out.append(
                            Probe(
                                w.transport_name,
                                "voice",
                                a.router,
                                b.router,
                                "",
                                port=port + len(out),
                                dscp=dscp,
                                destination_address=b.router_address,
                                wan=w.name,
                            )
                        )
        return tuple(out)

    @property
    def multi_wan(self) -> bool:
        """Is some router on two or more WANs (an SD-WAN edge with transports to choose from)?"""
        return any(len(self.wans_of(r.name)) > 1 for r in self.routers)

    def generator(self, name: str) -> Traffic:
        return next(t for t in self.traffic if t.name == name)

    def root_interface(self, index: int) -> str:
        """This machine's end of router ``index``'s management link: short, and different for every lab name."""
        tag = hashlib.sha256(self.name.encode()).hexdigest()[:5]
        return f"ql{tag}m{index}"

    def path_wan(self, source: str, destination: str) -> Wan:
        """The WAN between two hosts without policy routing: the source router's default WAN when the destination
        router is on it, else the first WAN both are on (checked to exist when the lab is loaded)."""
        a, b = self.host(source).router, self.host(destination).router
        default = self.wan_of(a)
        if default.link_of(b) is not None:
            return default
        return next(w for w in self.wans_of(a) if w.link_of(b) is not None)


# --------------------------------------------------------------------------- loading


class LabFileError(PolicyError):
    """The lab file has problems: ``diagnostics`` holds every one, at its line."""


def load_lab(path: Path) -> LabConfig:
    """Read and check a lab file; raises :class:`LabFileError` listing every problem."""
    name = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabFileError([Diagnostic(Location(name), "", "no such file", "give the path of a lab file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabFileError(
            [Diagnostic(Location(name), "", f"cannot read the file: {exc}", "save it as UTF-8")]
        ) from None
    return parse_lab(text, name, path.resolve().parent)


def parse_lab(text: str, file: str, base: Path) -> LabConfig:
    """A lab from its YAML ``text``; relative paths in it (``spec.policy``) are taken from ``base``."""
    docs, problems = load_documents(text, file)
    if problems:
        raise LabFileError(problems)
    if len(docs) != 1:
        where = Location(file, 1, 1) if not docs else docs[1].locate(())
        raise LabFileError([Diagnostic(where, "", "a lab file holds exactly one document", "one Lab per file")])
    doc = docs[0]
    data = doc.data
    if not isinstance(data, dict) or data.get("kind") != "Lab":
        hint = "start the file with 'apiVersion: qoectl/v1' and 'kind: Lab'"
        raise LabFileError([Diagnostic(doc.locate(("kind",)), "kind", "not a Lab document", hint)])
    try:
        spec = LabDoc.model_validate(data)
    except ValidationError as exc:
        raise LabFileError(_schema_problems(doc, LabDoc, exc)) from None
    return _convert(spec, doc, file, base)


class _Checker:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[Diagnostic] = []

    def add(self, path: tuple[str | int, ...], message: str, hint: str) -> None:
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        self.problems.append(Diagnostic(self.doc.locate(path), dotted, message, hint))


def _usable(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network, path: tuple[str | int, ...], check: _Checker
) -> tuple[str, str, int] | None:
    """(router address, peer address, prefix length) of a lab prefix, or None after reporting why not."""
    if not isinstance(net, ipaddress.IPv4Network):
        check.add(path, f"{net} is not an IPv4 prefix", "lab links are IPv4: use a prefix inside 198.18.0.0/15")
        return None
    if not net.subnet_of(LAB_RANGE):  # IPv4 from here on
        check.add(path, f"{net} is outside 198.18.0.0/15", "use addresses of the benchmarking range 198.18.0.0/15")
        return None
    if net.prefixlen > 30:
        check.add(path, f"{net} has no room for two addresses", "use a /30 or a shorter prefix")
        return None
    first = net.network_address + 1
    return str(first), str(first + 1), net.prefixlen


def _ifname(name: str, path: tuple[str | int, ...], check: _Checker) -> None:
    if len(name) > IFNAMSIZ or "/" in name or ":" in name:
        check.add(path, f"'{name}' is not a Linux interface name", "use at most 15 letters, digits, '-', '_', '.'")
    elif name in RESERVED_IFACES:
        check.add(path, f"'{name}' is the lab's own interface", "pick another name, e.g. lan0 or wan0")


def _convert(spec: LabDoc, doc: YamlDocument, file: str, base: Path) -> LabConfig:
    s = spec.spec
    check = _Checker(doc)
    prefixes: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, tuple[str | int, ...]]] = []

    seen: dict[str, tuple[str | int, ...]] = {}

    def unique(name: str, path: tuple[str | int, ...]) -> None:
        if name in seen:
            check.add(path, f"name '{name}' is used twice", "give every host, router and WAN its own name")
        seen[name] = path

    routers: list[Router] = []
    for i, r in enumerate(s.routers):
        unique(r.name, ("spec", "routers", i, "name"))
        prefixes.append((r.management, ("spec", "routers", i, "management")))
        got = _usable(r.management, ("spec", "routers", i, "management"), check)
        if got:
            routers.append(Router(r.name, got[0], got[1], got[2]))
    router_names = {r.name for r in s.routers}
    ifaces: dict[tuple[str, str], tuple[str | int, ...]] = {}

    def iface(router: str, name: str, path: tuple[str | int, ...]) -> None:
        _ifname(name, path, check)
        if (router, name) in ifaces:
            check.add(path, f"router '{router}' has interface '{name}' twice", "give each link its own interface")
        ifaces[(router, name)] = path

    hosts: list[Host] = []
    for i, h in enumerate(s.hosts):
        at = ("spec", "hosts", i)
        unique(h.name, (*at, "name"))
        if h.router not in router_names:
            check.add((*at, "router"), f"unknown router '{h.router}'", _known(router_names))
        iface(h.router, h.router_interface, (*at, "router_interface"))
        prefixes.append((h.lan, (*at, "lan")))
        got = _usable(h.lan, (*at, "lan"), check)
        if got:
            hosts.append(Host(h.name, h.router, h.site, h.router_interface, got[0], got[1], str(h.lan), got[2]))

    wans: list[Wan] = []
    wans_of: dict[str, list[str]] = {}
    transports: dict[str, str] = {}
    sinks = iter(SINK_RANGE.hosts())
    for i, w in enumerate(s.wans):
        at = ("spec", "wans", i)
        unique(w.name, (*at, "name"))
        unique(f"isp-{w.name}", (*at, "name"))
        carried = w.transport or w.name
        if carried in transports:
            check.add(
                (*at, "transport"),
                f"transport '{carried}' is carried by WAN '{transports[carried]}' already",
                "give each WAN its own transport",
            )
        transports.setdefault(carried, w.name)
        links: list[WanLink] = []
        for k, link in enumerate(w.links):
            lat = (*at, "links", k)
            if link.router not in router_names:
                check.add((*lat, "router"), f"unknown router '{link.router}'", _known(router_names))
            elif w.name in wans_of.get(link.router, []):
                check.add(
                    (*lat, "router"),
                    f"router '{link.router}' is on WAN '{w.name}' twice",
                    "a router has one link per WAN (a second transport is a second WAN)",
                )
            if w.name not in wans_of.setdefault(link.router, []):
                wans_of[link.router].append(w.name)
            iface(link.router, link.interface, (*lat, "interface"))
            prefixes.append((link.prefix, (*lat, "prefix")))
            got = _usable(link.prefix, (*lat, "prefix"), check)
            sink = str(next(sinks, ""))
            if got:
                links.append(WanLink(link.router, link.interface, f"eth{k}", got[0], got[1], got[2], sink))
        wans.append(Wan(w.name, w.capacity_kbps, w.buffer_ms, tuple(links), w.transport or ""))
    if s.default_wan is not None and s.default_wan not in {w.name for w in s.wans}:
        check.add(("spec", "default_wan"), f"unknown WAN '{s.default_wan}'", _known(w.name for w in s.wans))
    wan_of = {r: names[0] for r, names in wans_of.items()}
    if s.default_wan is not None:
        wan_of.update({r: s.default_wan for r, names in wans_of.items() if s.default_wan in names})
    for name in sorted(router_names - set(wan_of)):
        i = next(k for k, r in enumerate(s.routers) if r.name == name)
        check.add(("spec", "routers", i, "name"), f"router '{name}' is on no WAN", "add it to the links of a WAN")

    _overlaps(prefixes, check)
    for net, path in prefixes:
        if net.version == 4 and net.overlaps(SINK_RANGE):
            check.add(path, f"{net} overlaps {SINK_RANGE}, the lab's cross-traffic sinks", "use another prefix")
    host_by_name = {h.name: h for h in s.hosts}
    traffic = [_traffic(t, i, host_by_name, wans_of, check) for i, t in enumerate(s.traffic)]
    _unique_names([t.name for t in s.traffic], ("spec", "traffic"), check)
    probes = [_probe(p, i, host_by_name, wans_of, s.traffic, check) for i, p in enumerate(s.probes)]
    _ports(traffic, probes, check)
    if check.problems:
        raise LabFileError(check.problems)
    return LabConfig(
        name=spec.metadata.name,
        file=file,
        policy=str((base / s.policy).resolve()),
        routers=tuple(routers),
        hosts=tuple(hosts),
        wans=tuple(wans),
        traffic=tuple(t for t in traffic if t is not None),
        probes=tuple(p for p in probes if p is not None),
        bulk_load=s.load.bulk,
        default_wan=s.default_wan,
    )


def _known(names: Iterable[str]) -> str:
    return "known: " + (", ".join(sorted(names)) or "none")


def _unique_names(names: list[str], at: tuple[str | int, ...], check: _Checker) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            check.add((*at, i, "name"), f"name '{n}' is used twice", "give every generator its own name")
        seen.add(n)


def _overlaps(
    prefixes: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, tuple[str | int, ...]]], check: _Checker
) -> None:
    for i, (a, _) in enumerate(prefixes):
        for b, path in prefixes[i + 1 :]:
            if a.version == b.version and a.overlaps(b):
                check.add(path, f"{b} overlaps {a}", "give every link a prefix of its own")


def _path(
    source: str,
    destination: str,
    at: tuple[str | int, ...],
    hosts: dict[str, LabHost],
    wans_of: dict[str, list[str]],
    check: _Checker,
) -> bool:
    """Both hosts exist, behind different routers on one WAN (at least)."""
    ok = True
    for key, name in (("from", source), ("to", destination)):
        if name not in hosts:
            check.add((*at, key), f"unknown host '{name}'", _known(hosts))
            ok = False
    if not ok:
        return False
    ra, rb = hosts[source].router, hosts[destination].router
    if ra == rb:
        check.add((*at, "to"), f"'{source}' and '{destination}' sit behind the same router", "pick hosts across a WAN")
        return False
    if not set(wans_of.get(ra, ())) & set(wans_of.get(rb, ())):
        check.add((*at, "to"), f"no WAN joins the routers of '{source}' and '{destination}'", "put both on one WAN")
        return False
    return True


def _traffic(
    t: LabTraffic, i: int, hosts: dict[str, LabHost], wans_of: dict[str, list[str]], check: _Checker
) -> Traffic | None:
    at: tuple[str | int, ...] = ("spec", "traffic", i)
    if not _path(t.source, t.destination, at, hosts, wans_of, check):
        return None
    name, src, dst = t.name, t.source, t.destination
    if t.voice is not None:
        if t.voice.port + t.voice.calls - 1 > 65535:
            check.add((*at, "voice", "calls"), "the calls' ports go past 65535", "lower the port or the calls")
            return None
        return Traffic(name, "voice", src, dst, t.voice.port, calls=t.voice.calls, dscp=t.voice.dscp)
    if t.video is not None:
        v = t.video
        return Traffic(
            name, "video", src, dst, v.port, bitrate_kbps=v.bitrate_kbps, frame_rate=v.frame_rate, dscp=v.dscp
        )
    if t.web is not None:
        w = t.web
        return Traffic(name, "web", src, dst, w.port, interval_ms=w.interval_ms, response_bytes=w.response_bytes)
    if t.bulk_tcp is not None:
        return Traffic(name, "bulk_tcp", src, dst, t.bulk_tcp.port, streams=t.bulk_tcp.streams)
    assert t.bulk_udp is not None  # one kind: checked by the spec model
    return Traffic(name, "bulk_udp", src, dst, t.bulk_udp.port, packet_bytes=t.bulk_udp.packet_bytes)


def _probe(
    p: LabProbe,
    i: int,
    hosts: dict[str, LabHost],
    wans_of: dict[str, list[str]],
    traffic: list[LabTraffic],
    check: _Checker,
) -> Probe | None:
    at: tuple[str | int, ...] = ("spec", "probes", i)
    if p.throughput is not None:
        names = [t.name for t in traffic]
        gens = []
        for k, g in enumerate(p.throughput.generators):
            gen = next((t for t in traffic if t.name == g), None)
            if gen is None:
                check.add((*at, "throughput", "generators", k), f"unknown generator '{g}'", _known(names))
            elif gen.source in hosts:
                gens.append(gen)
        if len(gens) != len(p.throughput.generators):
            return None
        src, dst = gens[0].source, gens[0].destination
        site = p.site or hosts[src].site
        return Probe(p.journey, "throughput", src, dst, site, generators=tuple(g.name for g in gens))
    if p.source is None or p.destination is None:
        check.add(at, f"a {p.kind} probe needs 'from' and 'to'", "name the sending and the receiving host")
        return None
    if not _path(p.source, p.destination, at, hosts, wans_of, check):
        return None
    site = p.site or hosts[p.source].site
    j, src, dst = p.journey, p.source, p.destination
    if p.voice is not None:
        return Probe(j, "voice", src, dst, site, port=p.voice.port, rate_pps=p.voice.rate_pps, dscp=p.voice.dscp)
    if p.video is not None:
        v = p.video
        return Probe(
            j, "video", src, dst, site, port=v.port, bitrate_kbps=v.bitrate_kbps, frame_rate=v.frame_rate, dscp=v.dscp
        )
    assert p.http is not None
    server = next(
        (t for t in traffic if t.web is not None and t.destination == dst and t.web.port == p.http.port),
        None,
    )
    if server is None:
        check.add(
            (*at, "http", "port"),
            f"no web generator serves port {p.http.port} on '{dst}'",
            "add a web traffic entry to that host and port (its server answers the probe)",
        )
        return None
    return Probe(j, "http", src, dst, site, port=p.http.port, path=p.http.path, interval_ms=p.http.interval_ms)


def _ports(traffic: list[Traffic | None], probes: list[Probe | None], check: _Checker) -> None:
    """Two receivers on one host cannot share a port (a web probe uses its generator's server)."""
    taken: dict[tuple[str, str, int], str] = {}
    for i, t in enumerate(traffic):
        if t is None:
            continue
        low, high = t.ports
        for port in range(low, high + 1):
            key = (t.destination, t.protocol, port)
            if key in taken:
                check.add(
                    ("spec", "traffic", i),
                    f"{t.protocol} port {port} on '{t.destination}' is also used by {taken[key]}",
                    "give each receiver its own port",
                )
                break
            taken[key] = f"generator '{t.name}'"
    for i, p in enumerate(probes):
        if p is None or p.kind not in ("voice", "video"):
            continue
        key = (p.destination, "udp", p.port)
        if key in taken:
            check.add(
                ("spec", "probes", i, p.kind, "port"),
                f"udp port {p.port} on '{p.destination}' is also used by {taken[key]}",
                "give each receiver its own port",
            )
        taken[key] = f"the probe of journey '{p.journey}'"
