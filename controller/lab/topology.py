"""Namespaces, veth links, addresses and routes of a lab, and the ISP's bottleneck.

::

    host --(lan)-- router --(wan link)-- ISP --(wan link)-- router --(lan)-- host
                     |                    \\__ HTB class at capacity_kbps + bfifo of buffer_ms per link
                  mgmt0 -- this machine (router first address, this machine the second)

Hosts route everything to their router, routers to the ISP (of their default WAN, when a router is on
several: the others are steered by the routers' policy), and each ISP knows each LAN behind each router on
it. Every router has a host route to each other router's address on a WAN through that WAN's ISP (the
underlay the per-transport probes measure), and each ISP routes one sink address per link to its router,
which drops it (a blackhole route): where ``qoectl lab degrade`` sends its cross traffic.
The lab is IPv4 only (IPv6 is off in its namespaces, so no router solicitations or MLD mix
into the counters). Segmentation offloads are off (``gso_max_segs 1``): a TCP sender hands the
queues 1500-byte packets, as a real NIC puts them on the wire, not 64 KB super-packets.

The bottleneck sits *outside* the routers, on each ISP interface: an HTB class at the WAN's real
capacity with a plain byte FIFO (``bfifo``) of ``buffer_ms`` at that rate. A router's own shaper can
then be right, too high or too low, as in real life.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.lab.config import MGMT_IFACE, LabConfig, Wan
from controller.lab.netns import run

Progress = Callable[[str], None]
MIN_BUFFER_BYTES = 3028  # two full-size packets
HTB_QUANTUM = 1514


def buffer_bytes(capacity_kbps: int, buffer_ms: int) -> int:
    """The ISP FIFO's size in bytes: ``buffer_ms`` of traffic at ``capacity_kbps``."""
    return max(MIN_BUFFER_BYTES, capacity_kbps * buffer_ms // 8)


def _batch(namespace: str | None, lines: list[str]) -> None:
    if lines:
        cmd = ["ip", "-batch", "-"] if namespace is None else ["ip", "-n", namespace, "-batch", "-"]
        run(cmd, input="\n".join(lines) + "\n")


def create(cfg: LabConfig, progress: Progress) -> None:
    """Every namespace and link of the lab, addressed and routed (the namespaces must not exist yet)."""
    ns = cfg.namespace
    progress(f"creating {len(cfg.nodes)} namespaces: {', '.join(cfg.nodes)}")
    root: list[str] = [f"netns add {n}" for n in cfg.namespaces]
    per_ns: dict[str, list[str]] = {n: ["link set lo up"] for n in cfg.nodes}
    for i, r in enumerate(cfg.routers):
        peer = cfg.root_interface(i)
        root.append(f"link add name {MGMT_IFACE} netns {ns(r.name)} type veth peer name {peer}")
        root.append(f"addr add {r.peer}/{r.prefixlen} dev {peer}")
        root.append(f"link set {peer} up")
        per_ns[r.name] += [f"addr add {r.address}/{r.prefixlen} dev {MGMT_IFACE}", f"link set {MGMT_IFACE} up"]
    for h in cfg.hosts:
        root.append(
            f"link add name eth0 netns {ns(h.name)} type veth peer name {h.router_interface} netns {ns(h.router)}"
        )
        per_ns[h.name] += [
            f"addr add {h.address}/{h.prefixlen} dev eth0",
            "link set eth0 gso_max_segs 1 up",
            f"route add default via {h.router_address}",
        ]
        per_ns[h.router] += [
            f"addr add {h.router_address}/{h.prefixlen} dev {h.router_interface}",
            f"link set {h.router_interface} gso_max_segs 1 up",
        ]
    for w in cfg.wans:
        for link in w.links:
            root.append(
                f"link add name {link.isp_interface} netns {ns(w.node)} type veth "
                f"peer name {link.interface} netns {ns(link.router)}"
            )
            per_ns[w.node] += [
                f"addr add {link.isp_address}/{link.prefixlen} dev {link.isp_interface}",
                f"link set {link.isp_interface} gso_max_segs 1 up",
            ]
            per_ns[link.router] += [
                f"addr add {link.router_address}/{link.prefixlen} dev {link.interface}",
                f"link set {link.interface} gso_max_segs 1 up",
            ]
            if cfg.wan_of(link.router).name == w.name:
                per_ns[link.router].append(f"route add default via {link.isp_address}")
            for h in cfg.hosts:
                if h.router == link.router:
                    per_ns[w.node].append(f"route add {h.prefix} via {link.router_address}")
            if link.sink:
                per_ns[w.node].append(f"route add {link.sink}/32 via {link.router_address}")
                per_ns[link.router].append(f"route add blackhole {link.sink}/32")
    per_ns = _underlay(cfg, per_ns)
    # IPv6 off before any link comes up: no DAD, router solicitations or MLD reports in the lab's counters.
    for node in cfg.nodes:
        root.append(
            f"netns exec {ns(node)} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        )
    _batch(None, root)
    progress("addressing and routing the links")
    forwarding = {r.name for r in cfg.routers} | {w.node for w in cfg.wans}
    for node, lines in per_ns.items():
        if node in forwarding:
            run(["ip", "netns", "exec", ns(node), "sysctl", "-qw", "net.ipv4.ip_forward=1", *_no_rp_filter(cfg, node)])
        _batch(ns(node), lines)
    for w in cfg.wans:
        set_capacity(cfg, w, w.capacity_kbps, create=True)


def _underlay(cfg: LabConfig, per_ns: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each router reaches every other router's address on a WAN through that WAN's ISP (a host route): the
    underlay between two edges' addresses of one transport, which the per-transport health probes measure
    whatever the main table's default route is."""
    out = {node: list(lines) for node, lines in per_ns.items()}
    for w in cfg.wans:
        for link in w.links:
            for other in w.links:
                if other.router != link.router:
                    out[link.router].append(f"route add {other.router_address}/32 via {link.isp_address}")
    return out


def _no_rp_filter(cfg: LabConfig, node: str) -> list[str]:
    """A router with several WANs receives traffic on a WAN its main table would not answer by (its policy steers
    the way out, per journey): reverse-path filtering off on every interface, as on an SD-WAN edge."""
    if node not in {r.name for r in cfg.routers} or len(cfg.wans_of(node)) < 2:
        return []
    names = ["all", "default"] + [link.interface for w in cfg.wans_of(node) for link in w.links if link.router == node]
    return [f"net.ipv4.conf.{n}.rp_filter=0" for n in names]


def bottleneck_batch(wan: Wan, capacity_kbps: int, *, create: bool) -> str:
    """The tc batch that builds (``create``) or changes the ISP's bottleneck on every link of ``wan``.

    A change keeps the qdiscs (and what sits in them): only the class rate and the FIFO size change,
    as when an ISP re-provisions a line.
    """
    limit = buffer_bytes(capacity_kbps, wan.buffer_ms)
    rate = f"rate {capacity_kbps}kbit ceil {capacity_kbps}kbit quantum {HTB_QUANTUM}"
    lines = []
    for link in wan.links:
        dev = link.isp_interface
        if create:
            lines += [
                f"qdisc add dev {dev} root handle 1: htb default 1",
                f"class add dev {dev} parent 1: classid 1:1 htb {rate}",
                f"qdisc add dev {dev} parent 1:1 handle 10: bfifo limit {limit}",
            ]
        else:
            lines += [
                f"class change dev {dev} parent 1: classid 1:1 htb {rate}",
                f"qdisc change dev {dev} parent 1:1 handle 10: bfifo limit {limit}",
            ]
    return "\n".join(lines) + "\n"


def set_capacity(cfg: LabConfig, wan: Wan, capacity_kbps: int, *, create: bool = False) -> None:
    """Set the real capacity of ``wan`` (both directions) and its FIFO (``buffer_ms`` at the new rate)."""
    run(
        ["ip", "netns", "exec", cfg.namespace(wan.node), "tc", "-batch", "-"],
        input=bottleneck_batch(wan, capacity_kbps, create=create),
    )
