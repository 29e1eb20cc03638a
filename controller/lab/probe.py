"""The measurement API's probe processes: ``python -m controller.lab.probe COMMAND`` inside a lab namespace.

They wrap the built-in probes of :mod:`controller.measure.probes` so that one measurement cycle can
run each end in its own namespace:

==============  ==========================================================================
``recv``        the voice prober's receiver (kernel timestamps, TOS on arrival); prints
                ``ready``, then one JSON line: the report, percentiles of the one-way delay,
                and samples in the measurement vocabulary. With ``--rate-kbps`` (video) it
                adds ``throughput_kbps``: the sending rate x the share of packets delivered
                per interval (the sender keeps an exact schedule, so this is the delivered rate)
``voice-send``  :func:`controller.measure.probes.send_voice`
``video-send``  video-like bursts in the same packet format: one burst per frame, each packet
                stamped when it leaves; ``--bitrate-kbps`` counts IP packets
``http``        :func:`controller.measure.probes.http_probe`, one transaction at a time until
                ``--duration-s`` has passed, each with a timeout that ends by the deadline
==============  ==========================================================================
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from controller.measure import probes

IPV4_UDP_OVERHEAD = 28
VIDEO_PACKET_BYTES = 1200  # UDP payload a video packet aims at (frames are split into packets this big or less)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def video_layout(bitrate_kbps: float, frame_rate: int) -> tuple[int, int]:
    """(packets per frame, UDP payload bytes) that make ``bitrate_kbps`` of IP packets at ``frame_rate``."""
    frame_bytes = bitrate_kbps * 1000.0 / 8.0 / frame_rate
    per_frame = max(1, math.ceil(frame_bytes / (VIDEO_PACKET_BYTES + IPV4_UDP_OVERHEAD)))
    size = round(frame_bytes / per_frame) - IPV4_UDP_OVERHEAD
    return per_frame, min(1472, max(probes.HEADER_BYTES, size))


def send_video(host: str, port: int, *, frames: int, frame_rate: int, bitrate_kbps: float, dscp: int) -> int:
    """One burst of packets per frame, on an absolute schedule; returns how many packets left this host."""
    per_frame, size = video_layout(bitrate_kbps, frame_rate)
    count = frames * per_frame
    spacing_ns = int(1e9 / (per_frame * frame_rate))
    padding = bytes(size - probes.HEADER_BYTES)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sent = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, probes.IPV6_TCLASS, dscp << 2)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
        start = time.monotonic()
        for frame in range(frames):
            delay = start + frame / frame_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for k in range(per_frame):
                seq = frame * per_frame + k
                rtp = probes.RTP.pack(0x80, 96, seq & 0xFFFF, (frame * 3000) & 0xFFFFFFFF, 0x71DE0)
                head = probes.PROBE.pack(probes.MAGIC, seq, count, time.time_ns(), spacing_ns)
                try:
                    sock.sendto(rtp + head + padding, (host, port))
                    sent += 1
                except OSError:
                    pass  # lost before the wire, like a drop in the network: the receiver counts it
    return sent


def receive(args: argparse.Namespace) -> dict[str, Any]:
    sock = probes.open_receiver(args.bind, args.port)
    print("ready", flush=True)
    with sock:
        arrivals, kernel = probes.receive_voice(sock, timeout_s=args.timeout_s, idle_s=args.idle_s, grace_s=0.3)
    if not arrivals:
        return {"error": "no probe packets arrived"}
    report = probes.analyse(arrivals, args.interval_s, kernel)
    site = args.site or None
    samples = probes.voice_samples(report, args.journey, site, None)
    if args.rate_kbps:
        for iv in report.intervals:
            kbps = args.rate_kbps * iv.received / iv.expected if iv.expected else 0.0
            samples.append(
                {
                    "timestamp": round(iv.end_s, 6),
                    "journey": args.journey,
                    **({"site": site} if site else {}),
                    "metric": "throughput_kbps",
                    "value": round(kbps, 3),
                }
            )
    unique: dict[int, float] = {}
    for a in arrivals:
        unique.setdefault(a.seq, (a.recv_ns - a.send_ns) / 1e6)
    delays = list(unique.values())
    return {
        "summary": report.summary(),
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "throughput_kbps": args.rate_kbps * report.received / report.count if args.rate_kbps else None,
        "samples": samples,
    }


def http(args: argparse.Namespace) -> dict[str, Any]:
    done: list[probes.Transaction] = []
    start = time.monotonic()
    while time.monotonic() - start < args.duration_s:
        left = args.duration_s + args.grace_s - (time.monotonic() - start)
        done += probes.http_probe(args.url, count=1, timeout_s=max(0.5, min(args.timeout_s, left)))
        pause = args.interval_s - (time.monotonic() - start) % max(args.interval_s, 1e-3)
        if args.interval_s and time.monotonic() - start + pause < args.duration_s:
            time.sleep(pause)
    times = [t.response_time_ms for t in done if t.response_time_ms is not None]
    return {
        "transactions": len(done),
        "errors": sum(1 for t in done if t.response_time_ms is None),
        "response_p50_ms": percentile(times, 50),
        "response_p95_ms": percentile(times, 95),
        "samples": probes.http_samples(done, args.journey, args.site or None, None),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.lab.probe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--journey", required=True)
    r.add_argument("--site", default="")
    r.add_argument("--timeout-s", type=float, default=30.0)
    r.add_argument("--idle-s", type=float, default=1.5)
    r.add_argument("--interval-s", type=float, default=1.0)
    r.add_argument("--rate-kbps", type=float, default=0.0, help="video: the sending rate, for throughput")
    v = sub.add_parser("voice-send")
    v.add_argument("--dst", required=True)
    v.add_argument("--port", type=int, required=True)
    v.add_argument("--count", type=int, required=True)
    v.add_argument("--rate-pps", type=float, default=50.0)
    v.add_argument("--dscp", type=int, default=0)
    w = sub.add_parser("video-send")
    w.add_argument("--dst", required=True)
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--frames", type=int, required=True)
    w.add_argument("--frame-rate", type=int, default=30)
    w.add_argument("--bitrate-kbps", type=float, required=True)
    w.add_argument("--dscp", type=int, default=0)
    h = sub.add_parser("http")
    h.add_argument("--url", required=True)
    h.add_argument("--journey", required=True)
    h.add_argument("--site", default="")
    h.add_argument("--duration-s", type=float, required=True)
    h.add_argument("--interval-s", type=float, default=0.25)
    h.add_argument("--timeout-s", type=float, default=5.0)
    h.add_argument("--grace-s", type=float, default=2.0, help="a transaction may end this long after the duration")
    args = parser.parse_args(argv)
    try:
        if args.command == "recv":
            result = receive(args)
        elif args.command == "voice-send":
            n = probes.send_voice(args.dst, args.port, count=args.count, rate_pps=args.rate_pps, dscp=args.dscp)
            result = {"sent": n}
        elif args.command == "video-send":
            n = send_video(
                args.dst,
                args.port,
                frames=args.frames,
                frame_rate=args.frame_rate,
                bitrate_kbps=args.bitrate_kbps,
                dscp=args.dscp,
            )
            result = {"sent": n}
        else:
            result = http(args)
    except probes.ProbeError as exc:
        result = {"error": str(exc)}
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
