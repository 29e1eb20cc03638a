"""Active probes: a voice-like UDP stream and HTTP transactions, measured the way users feel them.

Voice prober: the sender emits RTP-sized packets (12-byte RTP header, PCMU
payload type, 160 bytes of payload for G.711 at 20 ms: 172 bytes of UDP
payload) at a fixed rate with the journey's DSCP; each carries its sequence
number and send time. The receiver takes the arrival time from the kernel
(``SO_TIMESTAMPNS``, so scheduling delays of this process do not count) and
the TOS byte the packet arrived with (``IP_RECVTOS``), and computes per
interval: one-way delay (sender and receiver clocks must be synchronised; in
one host's network namespaces they are the same clock), RFC 3550 interarrival
jitter, loss, reordering and the DSCP seen, i.e. whether the network kept the
marking.

HTTP probe: one transaction per request on a fresh connection (connect,
request, whole body), the response time in ms, or an error for a failure or an
HTTP status >= 400: the input of Apdex.

Both produce samples in the measurement vocabulary, written as a JSON array
(one sample a line) that ``qoectl verify --measurements`` reads.
"""

from __future__ import annotations

import errno
import json
import math
import select
import socket
import struct
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RTP = struct.Struct("!BBHII")  # V=2 flags, payload type, sequence, timestamp, SSRC
PROBE = struct.Struct("!4sIIQQ")  # magic, sequence, count, send time (ns, CLOCK_REALTIME), spacing (ns)
MAGIC = b"QOE1"
HEADER_BYTES = RTP.size + PROBE.size
DEFAULT_SIZE = 172  # 12-byte RTP header + 160 bytes: G.711, 20 ms
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
IPV6_RECVTCLASS = getattr(socket, "IPV6_RECVTCLASS", 66)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
TIMESPEC = struct.Struct("@qq")


class ProbeError(Exception):
    """A probe could not run (bad address, port in use ...); the message says what to change."""


@dataclass(frozen=True, slots=True)
class Arrival:
    seq: int
    send_ns: int
    recv_ns: int
    tos: int | None
    spacing_ns: int
    count: int


@dataclass(frozen=True, slots=True)
class Interval:
    end_s: float  # timestamp of the interval's samples
    expected: int
    received: int
    one_way_delay_ms: float | None
    jitter_ms: float | None
    loss_pct: float
    reorder_pct: float | None
    dscp: int | None


@dataclass(frozen=True, slots=True)
class VoiceReport:
    count: int
    received: int
    duplicates: int
    lost: int
    loss_pct: float
    reordered: int
    reorder_pct: float
    one_way_delay_ms: float | None
    one_way_delay_min_ms: float | None
    one_way_delay_max_ms: float | None
    jitter_ms: float | None
    dscp_seen: dict[int, int]  # DSCP -> packets
    kernel_timestamps: bool
    intervals: tuple[Interval, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "received": self.received,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "loss_pct": round(self.loss_pct, 4),
            "reordered": self.reordered,
            "reorder_pct": round(self.reorder_pct, 4),
            "one_way_delay_ms": _round(self.one_way_delay_ms),
            "one_way_delay_min_ms": _round(self.one_way_delay_min_ms),
            "one_way_delay_max_ms": _round(self.one_way_delay_max_ms),
            "jitter_ms": _round(self.jitter_ms),
            "dscp_seen": {str(k): v for k, v in sorted(self.dscp_seen.items())},
            "kernel_timestamps": self.kernel_timestamps,
        }


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


# --------------------------------------------------------------------------- voice: sender


def _address(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ProbeError(f"cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = info[0]
    return int(family), tuple(addr)


def send_voice(
    host: str,
    port: int,
    *,
    count: int = 500,
    rate_pps: float = 50.0,
    dscp: int = 46,
    size: int = DEFAULT_SIZE,
    ssrc: int = 0x51E0C7,
) -> int:
    """Send ``count`` probe packets at ``rate_pps`` marked ``dscp``; returns how many left this host."""
    if not 0 <= dscp <= 63:
        raise ProbeError(f"DSCP {dscp} is outside 0-63")
    if size < HEADER_BYTES or size > 1472:
        raise ProbeError(f"packet size {size} must be {HEADER_BYTES}-1472 bytes")
    if count < 1 or not 0 < rate_pps <= 100_000:
        raise ProbeError("count must be >= 1 and the rate 0-100000 packets/s")
    family, addr = _address(host, port)
    spacing_ns = int(1e9 / rate_pps)
    padding = bytes(size - HEADER_BYTES)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, dscp << 2)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
        start = time.monotonic()
        failed = 0
        for seq in range(count):
            delay = start + seq * spacing_ns / 1e9 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            rtp = RTP.pack(0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
            probe = PROBE.pack(MAGIC, seq, count, time.time_ns(), spacing_ns)
            try:
                sock.sendto(rtp + probe + padding, addr)
            except OSError as exc:
                # A local firewall drop (EPERM) or a full queue (ENOBUFS) loses this packet, like the network
                # would; the receiver counts it as lost. Anything else, or every packet failing, is an error.
                if exc.errno not in (errno.EPERM, errno.ENOBUFS, errno.EAGAIN) or failed + 1 == count:
                    raise ProbeError(f"cannot send to {host}:{port}: {exc.strerror}") from None
                failed += 1
    return count - failed


# --------------------------------------------------------------------------- voice: receiver


def open_receiver(bind: str, port: int) -> socket.socket:
    """A bound UDP socket asking the kernel for arrival timestamps and the TOS byte."""
    family, addr = _address(bind, port)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ProbeError(f"cannot listen on {bind}:{port}: {exc.strerror}") from None
    return sock


def _parse(data: bytes, ancillary: list[tuple[int, int, bytes]]) -> tuple[Arrival | None, bool]:
    """The probe packet and whether the kernel stamped its arrival (else this process's clock is used)."""
    if len(data) < HEADER_BYTES:
        return None, False
    magic, seq, count, send_ns, spacing_ns = PROBE.unpack_from(data, RTP.size)
    if magic != MAGIC or count == 0:
        return None, False
    recv_ns: int | None = None
    tos: int | None = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(payload)
            recv_ns = sec * 1_000_000_000 + nsec
        elif (level, kind) in ((socket.IPPROTO_IP, socket.IP_TOS), (socket.IPPROTO_IPV6, IPV6_TCLASS)) and payload:
            tos = payload[0] if len(payload) == 1 else int.from_bytes(payload[:4], "little")
    kernel = recv_ns is not None
    return Arrival(seq, send_ns, recv_ns if recv_ns is not None else time.time_ns(), tos, spacing_ns, count), kernel


def receive_voice(
    sock: socket.socket,
    *,
    timeout_s: float = 60.0,
    idle_s: float = 2.0,
    grace_s: float = 0.5,
) -> tuple[list[Arrival], bool]:
    """Collect probe packets until all arrived, the stream went quiet for ``idle_s``, or ``timeout_s``.

    Returns the arrivals in arrival order and whether every one had a kernel timestamp.
    """
    arrivals: list[Arrival] = []
    kernel_all = True
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    last_seen = None
    end_after: float | None = None
    ancillary_size = socket.CMSG_SPACE(TIMESPEC.size) + socket.CMSG_SPACE(4)
    while True:
        now = time.monotonic()
        limit = deadline
        if last_seen is not None:
            limit = min(limit, last_seen + idle_s)
        if end_after is not None:
            limit = min(limit, end_after)
        if now >= limit:
            break
        ready, _, _ = select.select([sock], [], [], limit - now)
        if not ready:
            continue
        data, ancillary, _, _ = sock.recvmsg(2048, ancillary_size)
        arrival, kernel = _parse(data, ancillary)
        if arrival is None:
            continue
        kernel_all = kernel_all and kernel
        arrivals.append(arrival)
        seen.add(arrival.seq)
        last_seen = time.monotonic()
        if len(seen) >= arrival.count:
            break
        if arrival.seq == arrival.count - 1 and end_after is None:
            end_after = last_seen + grace_s  # late, reordered packets may still come
    return arrivals, kernel_all


def analyse(arrivals: Sequence[Arrival], interval_s: float = 10.0, kernel_timestamps: bool = True) -> VoiceReport:
    """Loss, delay, RFC 3550 jitter, reordering and DSCP, overall and per interval of send time."""
    if not arrivals:
        raise ProbeError("no probe packets arrived: check the address, the port and any firewall in the path")
    count = max(a.count for a in arrivals)
    spacing_ns = max(1, arrivals[0].spacing_ns)
    per_interval = max(1, round(interval_s * 1e9 / spacing_ns))
    first_send = min(a.send_ns - a.seq * spacing_ns for a in arrivals)
    unique: dict[int, Arrival] = {}
    duplicates = reordered = 0
    jitter = 0.0
    prev: Arrival | None = None
    highest = -1
    buckets: dict[int, dict[str, Any]] = {}
    for a in arrivals:  # arrival order
        if a.seq in unique:
            duplicates += 1
            continue
        unique[a.seq] = a
        b = buckets.setdefault(a.seq // per_interval, {"owd": [], "reordered": 0, "tos": Counter(), "jitter": None})
        if a.seq < highest:
            reordered += 1
            b["reordered"] += 1
        highest = max(highest, a.seq)
        if prev is not None:  # RFC 3550 6.4.1: J += (|D(i-1, i)| - J) / 16
            d = (a.recv_ns - prev.recv_ns) - (a.send_ns - prev.send_ns)
            jitter += (abs(d) / 1e6 - jitter) / 16.0
        prev = a
        b["owd"].append((a.recv_ns - a.send_ns) / 1e6)
        b["jitter"] = jitter
        b["last_recv"] = max(b.get("last_recv", 0), a.recv_ns)
        if a.tos is not None:
            b["tos"][a.tos >> 2] += 1
    intervals = []
    n_buckets = math.ceil(count / per_interval)
    for k in range(n_buckets):
        expected = min(count, (k + 1) * per_interval) - k * per_interval
        found = buckets.get(k)
        end_ns = first_send + min(count, (k + 1) * per_interval) * spacing_ns
        if found is None:
            intervals.append(Interval(end_ns / 1e9, expected, 0, None, None, 100.0, None, None))
            continue
        got = len(found["owd"])
        intervals.append(
            Interval(
                end_s=max(found["last_recv"], end_ns) / 1e9,
                expected=expected,
                received=got,
                one_way_delay_ms=sum(found["owd"]) / got,
                jitter_ms=found["jitter"],
                loss_pct=100.0 * max(0, expected - got) / expected,
                reorder_pct=100.0 * found["reordered"] / got,
                dscp=found["tos"].most_common(1)[0][0] if found["tos"] else None,
            )
        )
    delays = [(a.recv_ns - a.send_ns) / 1e6 for a in unique.values()]
    dscp_seen: Counter[int] = Counter()
    for a in unique.values():
        if a.tos is not None:
            dscp_seen[a.tos >> 2] += 1
    received = len(unique)
    return VoiceReport(
        count=count,
        received=received,
        duplicates=duplicates,
        lost=count - received,
        loss_pct=100.0 * (count - received) / count,
        reordered=reordered,
        reorder_pct=100.0 * reordered / received,
        one_way_delay_ms=sum(delays) / received,
        one_way_delay_min_ms=min(delays),
        one_way_delay_max_ms=max(delays),
        jitter_ms=jitter,
        dscp_seen=dict(dscp_seen),
        kernel_timestamps=kernel_timestamps,
        intervals=tuple(intervals),
    )


def voice_samples(report: VoiceReport, journey: str, site: str | None, context: str | None) -> list[dict[str, Any]]:
    """One sample per metric and interval, in the measurement-file vocabulary."""
    out: list[dict[str, Any]] = []
    where = {k: v for k, v in (("site", site), ("context", context)) if v}
    for iv in report.intervals:
        values = {
            "one_way_delay_ms": iv.one_way_delay_ms,
            "jitter_ms": iv.jitter_ms,
            "loss_pct": iv.loss_pct,
            "reorder_pct": iv.reorder_pct,
            "dscp": iv.dscp,
        }
        for metric, value in values.items():
            if value is not None:
                out.append(
                    {"timestamp": round(iv.end_s, 6), "journey": journey, **where, "metric": metric, "value": value}
                )
    return out


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class Transaction:
    timestamp: float
    response_time_ms: float | None  # None: failed
    status: int | None
    error: str | None


def http_probe(
    url: str,
    *,
    count: int = 10,
    interval_s: float = 1.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Transaction]:
    """``count`` GET transactions, each on a new connection, ``interval_s`` apart."""
    if not url.startswith(("http://", "https://")):
        raise ProbeError(f"{url!r}: give an http:// or https:// URL")
    out: list[Transaction] = []
    for i in range(count):
        if i:
            sleep(interval_s)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
                response.read()
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        ok = error is None and status is not None and status < 400
        out.append(Transaction(time.time(), elapsed_ms if ok else None, status, error))
    return out


def http_samples(
    transactions: Iterable[Transaction], journey: str, site: str | None, context: str | None
) -> list[dict[str, Any]]:
    where = {k: v for k, v in (("site", site), ("context", context)) if v}
    out: list[dict[str, Any]] = []
    for t in transactions:
        stamp = round(t.timestamp, 6)
        if t.response_time_ms is None:
            out.append({"timestamp": stamp, "journey": journey, **where, "metric": "errors", "value": 1})
        else:
            value = round(t.response_time_ms, 3)
            out.append({"timestamp": stamp, "journey": journey, **where, "metric": "response_time_ms", "value": value})
    return out


def write_samples(path: Path, samples: Sequence[dict[str, Any]]) -> None:
    """A JSON array with one sample per line: valid JSON that diffs and greps well."""
    lines = ",\n".join(json.dumps(s, sort_keys=True) for s in samples)
    path.write_text("[\n" + lines + "\n]\n" if samples else "[]\n", encoding="utf-8")
