"""Traffic tools for the namespace lab: paced UDP/ICMP senders and a recording receiver.

Run inside a namespace, e.g.::

    ip netns exec NS python -m tests.lab.traffic recv --bind 198.18.2.2 --listen udp:20000 --listen icmp
    ip netns exec NS python -m tests.lab.traffic send --dst 198.18.2.2 --port 20000 --pps 50 --size 172 --seconds 4

Why these and not iperf: the QoS tests need, per packet, the one-way delay and
the DSCP seen on arrival. Every packet carries a sequence number and the
sender's CLOCK_REALTIME timestamp; the receiver takes the kernel's receive
timestamp (SO_TIMESTAMPNS, same host clock, so no sync is needed and the
receiver's own scheduling does not count as network delay) and the TOS byte or
traffic class (IP_RECVTOS / IPV6_RECVTCLASS, or the IPv4 header of a raw ICMP
socket).

``sniff`` records every IPv4/IPv6 packet arriving on one interface (an
``AF_PACKET`` socket: version, protocol, addresses, ports, TOS / traffic class),
so packets no socket listens for, such as the SYN of a TCP connection attempt
(``send --proto tcp``), are seen with the DSCP they arrived with.

Every loop is bounded: senders stop after ``--seconds`` (or ``--count``), the
receiver and the sniffer after ``--max-seconds`` or ``--idle`` seconds without a
packet once traffic has started, and on SIGTERM. Processes are started through the lab's
``Netns.popen`` so the lab stops them by PID in teardown. This module imports
only the standard library: it runs inside namespaces as a plain script.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MAGIC = b"QOE1"
HEADER = struct.Struct("!4sIQ")  # magic, sequence number, send time (ns, CLOCK_REALTIME)
IPV4_UDP_OVERHEAD = 28
IPV6_UDP_OVERHEAD = 48
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: SO_TIMESTAMPNS_OLD, cmsg SCM_TIMESTAMPNS
IPV6_RECVTCLASS = getattr(socket, "IPV6_RECVTCLASS", 66)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
ICMP_ECHO = 8
ICMPV6_ECHO = 128
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- payloads


def payload(seq: int, size: int, now_ns: int) -> bytes:
    """A probe payload of ``size`` bytes (at least the header) carrying seq and send time."""
    head = HEADER.pack(MAGIC, seq & 0xFFFFFFFF, now_ns)
    return head + b"\0" * max(0, size - len(head))


def parse_payload(data: bytes) -> tuple[int, int] | None:
    """(seq, send_ns) of a probe payload, or None for anything else."""
    if len(data) < HEADER.size:
        return None
    magic, seq, sent = HEADER.unpack_from(data)
    return (seq, sent) if magic == MAGIC else None


def icmp_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (ICMPv4; the kernel fills ICMPv6 checksums itself)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def icmp_echo(ident: int, seq: int, body: bytes, v6: bool) -> bytes:
    kind = ICMPV6_ECHO if v6 else ICMP_ECHO
    head = struct.pack("!BBHHH", kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    if v6:
        return head + body
    csum = icmp_checksum(head + body)
    return struct.pack("!BBHHH", kind, 0, csum, ident & 0xFFFF, seq & 0xFFFF) + body


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (deterministic, no interpolation); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class FlowStats:
    """What one flow experienced: loss against what the sender sent, delay and DSCPs on arrival."""

    sent: int
    received: int
    loss_pct: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    dscps: dict[int, int]  # DSCP seen on arrival -> packets

    def line(self, label: str) -> str:
        seen = ", ".join(f"{d}x{n}" for d, n in sorted(self.dscps.items())) or "none"
        return (
            f"{label}: sent {self.sent}, received {self.received}, loss {self.loss_pct:.2f} %, "
            f"delay p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms, dscp {seen}"
        )


def flow_stats(sent: int, records: Iterable[Sequence[int]]) -> FlowStats:
    """Summarise receiver records ``(seq, delay_us, tos)``; duplicates are counted once."""
    seen: dict[int, tuple[int, int]] = {}
    for seq, delay_us, tos in records:
        seen.setdefault(seq, (delay_us, tos))
    delays = [d / 1000.0 for d, _ in seen.values()]
    dscps: dict[int, int] = {}
    for _, tos in seen.values():
        dscps[tos >> 2] = dscps.get(tos >> 2, 0) + 1
    received = len(seen)
    loss = 100.0 * max(0, sent - received) / sent if sent else math.nan
    return FlowStats(
        sent=sent,
        received=received,
        loss_pct=loss,
        p50_ms=percentile(delays, 50),
        p99_ms=percentile(delays, 99),
        max_ms=max(delays) if delays else math.nan,
        dscps=dscps,
    )


# --------------------------------------------------------------------------- receiver


@dataclass(frozen=True, slots=True)
class Listener:
    """One receive socket: ``udp:PORT``, ``udp6:PORT``, ``icmp`` or ``icmp6``."""

    kind: str
    port: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.port}" if self.kind in ("udp", "udp6") else self.kind

    @staticmethod
    def parse(text: str) -> Listener:
        kind, _, port = text.partition(":")
        if kind in ("udp", "udp6") and port.isdigit() and 0 < int(port) < 65536:
            return Listener(kind, int(port))
        if kind in ("icmp", "icmp6") and not port:
            return Listener(kind)
        raise argparse.ArgumentTypeError(f"{text!r}: use udp:PORT, udp6:PORT, icmp or icmp6")


def _open(listener: Listener, bind4: str, bind6: str) -> socket.socket:
    v6 = listener.kind in ("udp6", "icmp6")
    family = socket.AF_INET6 if v6 else socket.AF_INET
    if listener.kind.startswith("udp"):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((bind6 if v6 else bind4, listener.port))
    else:
        proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
        sock = socket.socket(family, socket.SOCK_RAW, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if v6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    elif listener.kind == "udp":
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    sock.setblocking(False)
    return sock


def _decode(listener: Listener, data: bytes, ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int, int] | None:
    """(seq, delay_us, tos) of one received probe, or None if it is not one of ours."""
    recv_ns = None
    tos = None
    for level, ctype, cdata in ancdata:
        if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS and len(cdata) >= 16:
            sec, nsec = struct.unpack_from("@qq", cdata)
            recv_ns = sec * 1_000_000_000 + nsec
        elif level == socket.IPPROTO_IP and ctype == socket.IP_TOS and cdata:
            tos = cdata[0]
        elif level == socket.IPPROTO_IPV6 and ctype == IPV6_TCLASS and len(cdata) >= 4:
            tos = struct.unpack_from("@i", cdata)[0]
    body = data
    if listener.kind == "icmp":  # raw IPv4 socket: the IP header comes with the data
        if len(data) < 20:
            return None
        tos = data[1]
        body = data[(data[0] & 0x0F) * 4 :]
    if listener.kind in ("icmp", "icmp6"):
        echo = ICMPV6_ECHO if listener.kind == "icmp6" else ICMP_ECHO
        if len(body) < 8 or body[0] != echo:
            return None
        body = body[8:]
    probe = parse_payload(body)
    if probe is None or tos is None:
        return None
    seq, sent_ns = probe
    now = recv_ns if recv_ns is not None else time.time_ns()
    return seq, (now - sent_ns) // 1000, tos


def receive(listeners: Sequence[Listener], bind4: str, bind6: str, max_seconds: float, idle: float) -> dict[str, Any]:
    """Record probes until ``idle`` seconds pass without one (after the first) or ``max_seconds``."""
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    sel = selectors.DefaultSelector()
    socks = []
    records: dict[str, list[tuple[int, int, int]]] = {}
    for listener in listeners:
        sock = _open(listener, bind4, bind6)
        socks.append(sock)
        sel.register(sock, selectors.EVENT_READ, (sock, listener))
        records[listener.key] = []
    print("ready", flush=True)
    start = time.monotonic()
    last = None
    try:
        while not stop:
            now = time.monotonic()
            if now - start > max_seconds or (last is not None and now - last > idle):
                break
            for key, _ in sel.select(timeout=0.05):
                sock, listener = key.data
                for _ in range(256):  # drain, bounded
                    try:
                        data, anc, _flags, _addr = sock.recvmsg(65535, 1024)
                    except BlockingIOError:
                        break
                    rec = _decode(listener, data, anc)
                    if rec is not None:
                        records[listener.key].append(rec)
                        last = time.monotonic()
    finally:
        for sock in socks:
            sock.close()
    return {"seconds": round(time.monotonic() - start, 3), "records": records}


# --------------------------------------------------------------------------- sniffer

ETH_P_ALL = 0x0003
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PACKET_OUTGOING = 4


def decode_frame(frame: bytes) -> tuple[int, int, str, str, int, int, int] | None:
    """(IP version, protocol, source, destination, source port, destination port, TOS) of an Ethernet frame.

    Ports are 0 for protocols without them; the IPv6 protocol is the first next
    header (no extension headers are followed). Anything not IPv4/IPv6 is None.
    """
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    ip = frame[14:]
    if ethertype == ETH_P_IP and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        version, tos, proto = 4, ip[1], ip[9]
        src, dst = socket.inet_ntop(socket.AF_INET, ip[12:16]), socket.inet_ntop(socket.AF_INET, ip[16:20])
        l4 = ip[ihl:]
    elif ethertype == ETH_P_IPV6 and len(ip) >= 40:
        version, tos, proto = 6, ((ip[0] & 0x0F) << 4) | (ip[1] >> 4), ip[6]
        src, dst = socket.inet_ntop(socket.AF_INET6, ip[8:24]), socket.inet_ntop(socket.AF_INET6, ip[24:40])
        l4 = ip[40:]
    else:
        return None
    sport = dport = 0
    if proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4)
    return version, proto, src, dst, sport, dport, tos


def sniff(interface: str, max_seconds: float, idle: float) -> dict[str, Any]:
    """Record every IP packet arriving on ``interface`` until ``idle`` seconds pass without one, or the end."""
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    packets: list[tuple[int, int, str, str, int, int, int]] = []
    print("ready", flush=True)
    start = time.monotonic()
    last = None
    try:
        while not stop:
            now = time.monotonic()
            if now - start > max_seconds or (last is not None and now - last > idle):
                break
            for _ in sel.select(timeout=0.05):
                for _ in range(256):  # drain, bounded
                    try:
                        frame, addr = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    decoded = decode_frame(frame)
                    if decoded is not None:
                        packets.append(decoded)
                        last = time.monotonic()
    finally:
        sel.close()
        sock.close()
    return {"seconds": round(time.monotonic() - start, 3), "packets": packets}


# --------------------------------------------------------------------------- sender


def send(
    dst: str,
    port: int,
    *,
    proto: str,
    size: int,
    pps: float,
    seconds: float,
    count: int | None,
    tos: int,
) -> dict[str, Any]:
    """Send paced probes; returns how many went out (the receiver's loss is measured against it).

    Pacing follows an absolute schedule (packet i leaves at start + i/pps), so
    a late wake-up is caught up rather than lowering the average rate.
    """
    v6 = ":" in dst
    family = socket.AF_INET6 if v6 else socket.AF_INET
    if proto == "tcp":
        return _send_syns(dst, port, family, pps=pps, seconds=seconds, count=count, tos=tos)
    if proto == "udp":
        sock = socket.socket(family, socket.SOCK_DGRAM)
    else:
        sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    _set_tos(sock, v6, tos)
    total = count if count is not None else max(1, int(pps * seconds))
    sent = errors = 0
    start = time.monotonic()
    deadline = start + seconds + 5.0  # hard bound even if the clock or scheduler misbehaves
    try:
        for seq in range(total):
            due = start + seq / pps
            now = time.monotonic()
            if now > deadline:
                break
            if due > now:
                time.sleep(due - now)
            body = payload(seq, size, time.time_ns())
            data = body if proto == "udp" else icmp_echo(port, seq, body, v6)
            try:
                sock.sendto(data, (dst, port if proto == "udp" else 0))
                sent += 1
            except OSError:  # ENOBUFS and friends: not sent, so not counted as network loss
                errors += 1
    finally:
        sock.close()
    elapsed = time.monotonic() - start
    return {"sent": sent, "errors": errors, "seconds": round(elapsed, 3)}


def _set_tos(sock: socket.socket, v6: bool, tos: int) -> None:
    if tos:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


def _send_syns(
    dst: str, port: int, family: int, *, pps: float, seconds: float, count: int | None, tos: int
) -> dict[str, Any]:
    """One TCP connection attempt per packet: the SYN leaves with ``tos``; the socket is closed at once.

    A socket closed in SYN-SENT sends nothing more (no FIN, no RST) and is not
    retransmitted, so exactly one SYN per attempt reaches the network.
    """
    total = count if count is not None else max(1, int(pps * seconds))
    sent = errors = 0
    start = time.monotonic()
    deadline = start + seconds + 5.0
    for seq in range(total):
        due = start + seq / pps
        now = time.monotonic()
        if now > deadline:
            break
        if due > now:
            time.sleep(due - now)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            _set_tos(sock, family == socket.AF_INET6, tos)
            sock.setblocking(False)
            err = sock.connect_ex((dst, port))
            if err in (0, errno.EINPROGRESS):
                sent += 1
            else:
                errors += 1
        finally:
            sock.close()
    return {"sent": sent, "errors": errors, "seconds": round(time.monotonic() - start, 3)}


def pps_for(kbps: float, size: int, v6: bool) -> float:
    """Packets per second that make ``kbps`` of IP packets with ``size`` bytes of UDP payload."""
    ip_len = size + (IPV6_UDP_OVERHEAD if v6 else IPV4_UDP_OVERHEAD)
    return kbps * 1000.0 / (ip_len * 8)


# --------------------------------------------------------------------------- driving it from tests


class Host(Protocol):
    """What the helpers need from a lab namespace (``tests.lab.netns.Netns``)."""

    name: str

    def popen(self, *cmd: str, **kwargs: object) -> subprocess.Popen[bytes]: ...


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.lab.traffic", *args]


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Wait (bounded) for the process's "ready" line; kill it and raise if it does not come."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    line = proc.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"{what} did not start: {err.decode(errors='replace').strip()}")


class Receiver:
    """A receiver process in a namespace; ``result()`` waits (bounded) for its records."""

    def __init__(
        self,
        host: Host,
        listeners: Sequence[str],
        bind4: str = "0.0.0.0",
        bind6: str = "::",
        max_seconds: float = 15.0,
        idle: float = 1.0,
    ) -> None:
        args = ["recv", "--bind", bind4, "--bind6", bind6, "--max-seconds", str(max_seconds), "--idle", str(idle)]
        for listener in listeners:
            args += ["--listen", listener]
        self.max_seconds = max_seconds
        self.proc = host.popen(*_cmd(*args), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_ready(self.proc, timeout=15.0, what="receiver")

    def result(self) -> dict[str, list[tuple[int, int, int]]]:
        out, err = self.proc.communicate(timeout=self.max_seconds + 10)
        if self.proc.returncode != 0:
            raise RuntimeError(f"receiver failed ({self.proc.returncode}): {err.decode(errors='replace').strip()}")
        data = json.loads(out.decode().strip().splitlines()[-1])
        return {k: [(r[0], r[1], r[2]) for r in v] for k, v in data["records"].items()}


@dataclass(frozen=True, slots=True)
class Sniffed:
    """One packet the sniffer saw arrive."""

    version: int
    proto: int
    src: str
    dst: str
    sport: int
    dport: int
    tos: int

    @property
    def dscp(self) -> int:
        return self.tos >> 2


class Sniffer:
    """A sniffer process on one interface of a namespace; ``result()`` stops it and returns its packets."""

    def __init__(self, host: Host, interface: str, max_seconds: float = 60.0, idle: float = 30.0) -> None:
        args = ["sniff", "--interface", interface, "--max-seconds", str(max_seconds), "--idle", str(idle)]
        self.max_seconds = max_seconds
        self.proc = host.popen(*_cmd(*args), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_ready(self.proc, timeout=15.0, what="sniffer")

    def result(self) -> list[Sniffed]:
        """Stop sniffing (SIGTERM) and return what was seen."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=self.max_seconds + 10)
        if self.proc.returncode != 0:
            raise RuntimeError(f"sniffer failed ({self.proc.returncode}): {err.decode(errors='replace').strip()}")
        data = json.loads(out.decode().strip().splitlines()[-1])
        return [Sniffed(*p) for p in data["packets"]]


def start_sender(
    host: Host,
    dst: str,
    port: int,
    *,
    proto: str = "udp",
    size: int = 172,
    pps: float = 50.0,
    kbps: float | None = None,
    seconds: float = 4.0,
    count: int | None = None,
    tos: int = 0,
) -> subprocess.Popen[bytes]:
    """Start a paced sender (``kbps`` instead of ``pps`` for a rate in IP-level kbit/s)."""
    args = ["send", "--dst", dst, "--port", str(port), "--proto", proto, "--size", str(size)]
    args += ["--kbps", str(kbps)] if kbps is not None else ["--pps", str(pps)]
    args += ["--seconds", str(seconds), "--tos", str(tos)]
    if count is not None:
        args += ["--count", str(count)]
    return host.popen(*_cmd(*args), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sender_result(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"sender failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.traffic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recv", help="record probes; prints 'ready', then one JSON line when done")
    r.add_argument("--listen", type=Listener.parse, action="append", required=True)
    r.add_argument("--bind", default="0.0.0.0", help="IPv4 address for udp listeners")
    r.add_argument("--bind6", default="::", help="IPv6 address for udp6 listeners")
    r.add_argument("--max-seconds", type=float, default=15.0)
    r.add_argument("--idle", type=float, default=1.0, help="stop this long after the last probe")
    f = sub.add_parser("sniff", help="record arriving IP packets; prints 'ready', then one JSON line when done")
    f.add_argument("--interface", required=True)
    f.add_argument("--max-seconds", type=float, default=60.0)
    f.add_argument("--idle", type=float, default=30.0, help="stop this long after the last packet")
    s = sub.add_parser("send", help="send paced probes; prints one JSON line when done")
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, required=True, help="UDP port (ICMP: the echo identifier)")
    s.add_argument(
        "--proto", choices=("udp", "icmp", "tcp"), default="udp", help="tcp: one connection attempt (SYN) per packet"
    )
    s.add_argument("--size", type=int, default=172, help="payload bytes (172 = G.711 20 ms + RTP header)")
    rate = s.add_mutually_exclusive_group()
    rate.add_argument("--pps", type=float, default=50.0)
    rate.add_argument("--kbps", type=float, help="IP-level rate instead of --pps")
    s.add_argument("--seconds", type=float, default=4.0)
    s.add_argument("--count", type=int, help="send exactly this many (still paced by --pps)")
    s.add_argument("--tos", type=int, default=0, help="TOS byte / traffic class to send with (DSCP << 2)")
    args = parser.parse_args(argv)
    if args.command == "recv":
        result = receive(args.listen, args.bind, args.bind6, args.max_seconds, args.idle)
    elif args.command == "sniff":
        result = sniff(args.interface, args.max_seconds, args.idle)
    else:
        if not 0 < args.seconds <= 60 or (args.count is not None and not 0 < args.count <= 1_000_000):
            parser.error("--seconds must be in (0, 60] and --count in (0, 1000000]")
        pps = pps_for(args.kbps, args.size, ":" in args.dst) if args.kbps else args.pps
        result = send(
            args.dst,
            args.port,
            proto=args.proto,
            size=args.size,
            pps=pps,
            seconds=args.seconds,
            count=args.count,
            tos=args.tos,
        )
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
