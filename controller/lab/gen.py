"""Background traffic generators of ``qoectl lab``: each runs inside a lab namespace until it is stopped.

``qoectl lab up`` starts them as ``ip netns exec NS python -m controller.lab.gen COMMAND ...`` and
records every PID; ``qoectl lab down`` (or ``lab load``, for the bulk overload) stops them by PID
with SIGTERM, whose default action ends them at once: none of them holds anything to clean up.

=========  ==================================================================================
udp        paced UDP to ``--flows`` consecutive ports at ``--pps`` each (or ``--kbps`` in all, at
           the IP level); ``--bursts-per-s`` sends the packets in that many bursts a second
           (video frames). An absolute schedule: a late wake-up is caught up, not lost.
udp-sink   receives and discards; counts bytes and packets
tcp        ``--streams`` connections sending as fast as the network takes (reconnecting)
tcp-sink   accepts and discards; counts bytes
http       an HTTP/1.0 server answering every GET with ``--bytes`` bytes (``?bytes=N`` overrides)
http-get   one GET at a time on a new connection, ``--interval-ms`` apart; counts answers and errors
=========  ==================================================================================

Receivers write their counters (``{"time", "bytes", "packets", "ok", "errors"}``) to ``--counters``
twice a second (written aside and renamed, so a reader never sees half a file): the measurement
API turns two readings into a throughput. Only the standard library is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

IPV4_UDP_OVERHEAD = 28  # IPv4 + UDP headers: --kbps counts IP packets
RTP = struct.Struct("!BBHII")
MAX_CATCH_UP_S = 0.2  # after a stall longer than this, skip ahead instead of sending a burst
COUNTER_PERIOD_S = 0.5


class Counters:
    """Thread-safe counters, written to a file every COUNTER_PERIOD_S by a background thread."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.lock = threading.Lock()
        self.values = {"bytes": 0, "packets": 0, "ok": 0, "errors": 0}
        if self.path is not None:
            self.write()
            threading.Thread(target=self._loop, daemon=True).start()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.values[key] += n

    def write(self) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {"time": time.time(), **self.values}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="ascii")
        os.replace(tmp, self.path)

    def _loop(self) -> None:
        while True:
            time.sleep(COUNTER_PERIOD_S)
            self.write()


# --------------------------------------------------------------------------- UDP


def schedule(pps: float, bursts_per_s: float | None, clock: Iterator[float]) -> Iterator[tuple[int, float]]:
    """(packets to send now, seconds to sleep after) for a paced stream, from successive clock readings.

    Without bursts every packet has its own slot (start + i/pps); with ``bursts_per_s`` the packets of
    burst k are all due at start + k/bursts_per_s. After a stall longer than MAX_CATCH_UP_S the
    schedule moves on rather than sending everything it missed at once.
    """
    start = next(clock)
    sent = 0.0
    per_burst = pps / bursts_per_s if bursts_per_s else 1.0
    step = 1.0 / bursts_per_s if bursts_per_s else 1.0 / pps
    for now in clock:
        elapsed = now - start
        slots = int(elapsed / step) + 1  # slots due so far (slot 0 at the start)
        due = slots * per_burst
        if due - sent > pps * MAX_CATCH_UP_S + per_burst:
            sent = due - per_burst  # a stall: skip what was missed
        n = int(due - sent)
        sent += n
        yield n, max(0.0, start + slots * step - now)


def udp_send(
    dst: str, port: int, flows: int, pps: float, size: int, tos: int, bursts_per_s: float | None, sndbuf: int = 0
) -> None:
    """UDP at ``pps`` per flow. ``sndbuf``: the socket's send buffer (root may exceed ``wmem_max``). A sender in the
    namespace whose queue it fills must hold more than that queue: a packet waiting there counts against its
    socket, so a smaller buffer makes the sender wait for the queue (like TCP) instead of overflowing it."""
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if sndbuf:
        try:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), sndbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if tos:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_TCLASS", 67), tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    targets = [(dst, port + k) for k in range(flows)]
    body = bytes(max(0, size - RTP.size))
    seq = 0

    def clock() -> Iterator[float]:
        while True:
            yield time.monotonic()

    for n, pause in schedule(pps * flows, bursts_per_s, clock()):
        for _ in range(n):
            header = RTP.pack(0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0x1AB0 + seq % flows)
            with contextlib.suppress(OSError):  # a full queue or no route yet: lost, as on a real network
                sock.sendto(header + body, targets[seq % flows])
            seq += 1
        if pause > 0:
            time.sleep(pause)


def udp_sink(bind: str, port: int, flows: int, counters: Counters) -> None:
    sel = selectors.DefaultSelector()
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    for k in range(flows):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((bind, port + k))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    buf = bytearray(65536)
    while True:
        for key, _ in sel.select():
            udp = key.fileobj
            assert isinstance(udp, socket.socket)
            while True:
                try:
                    n = udp.recv_into(buf)
                except BlockingIOError:
                    break
                counters.add("bytes", n)
                counters.add("packets")


# --------------------------------------------------------------------------- TCP


def _tcp_stream(dst: str, port: int) -> None:
    chunk = bytes(65536)
    while True:
        try:
            with socket.create_connection((dst, port), timeout=10) as sock:
                sock.settimeout(30)
                while True:
                    sock.sendall(chunk)
        except OSError:
            time.sleep(1.0)  # not up yet, or reset: try again


def tcp_send(dst: str, port: int, streams: int) -> None:
    for _ in range(streams):
        threading.Thread(target=_tcp_stream, args=(dst, port), daemon=True).start()
    while True:
        signal.pause()


def tcp_sink(bind: str, port: int, counters: Counters) -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((bind, port))
    server.listen(64)
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    buf = bytearray(1 << 16)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if n == 0:
                sel.unregister(sock)
                sock.close()
            else:
                counters.add("bytes", n)
                counters.add("packets")


# --------------------------------------------------------------------------- HTTP


def http_serve(bind: str, port: int, size: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            n = size
            if query.get("bytes", [""])[0].isdigit():
                n = min(int(query["bytes"][0]), 100_000_000)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(bytes(n))

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        daemon_threads = True
        request_queue_size = 128

    Server((bind, port), Handler).serve_forever()


def http_get(url: str, interval_s: float, timeout_s: float, counters: Counters) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http:// built by the lab
                counters.add("bytes", len(response.read()))
            counters.add("ok")
        except (urllib.error.URLError, OSError):
            counters.add("errors")
        time.sleep(interval_s)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.lab.gen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    u = sub.add_parser("udp")
    u.add_argument("--dst", required=True)
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--flows", type=int, default=1, help="one port each, from --port")
    rate = u.add_mutually_exclusive_group(required=True)
    rate.add_argument("--pps", type=float, help="packets/s per flow")
    rate.add_argument("--kbps", type=float, help="IP-level kbit/s in all")
    u.add_argument("--size", type=int, default=172, help="UDP payload bytes")
    u.add_argument("--tos", type=int, default=0)
    u.add_argument("--bursts-per-s", type=float)
    u.add_argument("--sndbuf", type=int, default=0, help="socket send buffer, bytes (0: the system's)")
    us = sub.add_parser("udp-sink")
    us.add_argument("--bind", required=True)
    us.add_argument("--port", type=int, required=True)
    us.add_argument("--flows", type=int, default=1)
    us.add_argument("--counters")
    t = sub.add_parser("tcp")
    t.add_argument("--dst", required=True)
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--streams", type=int, default=1)
    ts = sub.add_parser("tcp-sink")
    ts.add_argument("--bind", required=True)
    ts.add_argument("--port", type=int, required=True)
    ts.add_argument("--counters")
    h = sub.add_parser("http")
    h.add_argument("--bind", required=True)
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--bytes", type=int, default=20_000)
    g = sub.add_parser("http-get")
    g.add_argument("--url", required=True)
    g.add_argument("--interval-ms", type=float, default=500)
    g.add_argument("--timeout-s", type=float, default=10)
    g.add_argument("--counters")
    args = parser.parse_args(argv)
    if args.command == "udp":
        pps = args.pps
        if pps is None:
            pps = args.kbps * 1000.0 / ((args.size + IPV4_UDP_OVERHEAD) * 8) / args.flows
        if pps <= 0:
            return 0  # nothing to send (a load of 0): idle until stopped
        udp_send(args.dst, args.port, args.flows, pps, args.size, args.tos, args.bursts_per_s, args.sndbuf)
    elif args.command == "udp-sink":
        udp_sink(args.bind, args.port, args.flows, Counters(args.counters))
    elif args.command == "tcp":
        tcp_send(args.dst, args.port, args.streams)
    elif args.command == "tcp-sink":
        tcp_sink(args.bind, args.port, Counters(args.counters))
    elif args.command == "http":
        http_serve(args.bind, args.port, args.bytes)
    else:
        http_get(args.url, args.interval_ms / 1000.0, args.timeout_s, Counters(args.counters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
