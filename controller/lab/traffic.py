"""The background generators of a lab as processes: what runs where, with which arguments.

Every ``traffic`` entry becomes a receiver in its ``to`` host and a sender in its ``from`` host
(:mod:`controller.lab.gen`); receivers are started first. A ``bulk_udp`` sender sends at
``load.bulk`` x the current capacity of the WAN on its path, so ``qoectl lab load`` and
``qoectl lab capacity`` restart exactly those senders (by PID) with the new rate; a rate of 0 means
no sender at all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from controller.lab.config import LabConfig, Traffic
from controller.lab.state import LabFiles

GEN = (sys.executable, "-m", "controller.lab.gen")
VOICE_PAYLOAD = 172  # RTP header + 160 bytes: G.711 at 20 ms
VOICE_PPS = 50.0
VIDEO_PAYLOAD = 1200


@dataclass(frozen=True, slots=True)
class ProcSpec:
    name: str  # "<generator>.recv" / "<generator>.send"
    role: str  # "receiver" or "generator"
    node: str
    argv: tuple[str, ...]
    generator: str
    bulk: bool = False  # a bulk_udp sender: follows load and capacity


def bulk_kbps(load: float, capacity_kbps: int) -> float:
    return round(load * capacity_kbps, 3)


def receiver(cfg: LabConfig, t: Traffic, files: LabFiles) -> ProcSpec:
    dst = cfg.host(t.destination).address
    counters = str(files.counters(t.name))
    port = str(t.port)
    argv: tuple[str, ...]
    if t.kind == "web":
        argv = (*GEN, "http", "--bind", dst, "--port", port, "--bytes", str(t.response_bytes))
    elif t.kind == "bulk_tcp":
        argv = (*GEN, "tcp-sink", "--bind", dst, "--port", port, "--counters", counters)
    else:
        flows = str(t.calls if t.kind == "voice" else 1)
        argv = (*GEN, "udp-sink", "--bind", dst, "--port", port, "--flows", flows, "--counters", counters)
    return ProcSpec(f"{t.name}.recv", "receiver", t.destination, argv, t.name)


def sender(cfg: LabConfig, t: Traffic, files: LabFiles, capacity: Callable[[str], int], load: float) -> ProcSpec | None:
    dst = cfg.host(t.destination).address
    port = str(t.port)
    tos = str(t.dscp << 2)
    if t.kind == "voice":
        args = ["udp", "--dst", dst, "--port", port, "--flows", str(t.calls), "--pps", str(VOICE_PPS)]
        args += ["--size", str(VOICE_PAYLOAD), "--tos", tos]
    elif t.kind == "video":
        args = ["udp", "--dst", dst, "--port", port, "--kbps", str(t.bitrate_kbps), "--size", str(VIDEO_PAYLOAD)]
        args += ["--bursts-per-s", str(t.frame_rate), "--tos", tos]
    elif t.kind == "web":
        url = f"http://{dst}:{port}/"
        args = [
            "http-get",
            "--url",
            url,
            "--interval-ms",
            str(t.interval_ms),
            "--counters",
            str(files.counters(t.name)),
        ]
    elif t.kind == "bulk_tcp":
        args = ["tcp", "--dst", dst, "--port", port, "--streams", str(t.streams)]
    else:
        kbps = bulk_kbps(load, capacity(cfg.path_wan(t.source, t.destination).name))
        if kbps <= 0:
            return None
        args = ["udp", "--dst", dst, "--port", port, "--kbps", str(kbps), "--size", str(t.packet_bytes), "--tos", tos]
    return ProcSpec(f"{t.name}.send", "generator", t.source, (*GEN, *args), t.name, bulk=t.kind == "bulk_udp")


def plan(cfg: LabConfig, files: LabFiles, capacity: Callable[[str], int], load: float) -> list[ProcSpec]:
    """Every generator process of the lab: all receivers, then all senders."""
    receivers = [receiver(cfg, t, files) for t in cfg.traffic]
    senders = [sender(cfg, t, files, capacity, load) for t in cfg.traffic]
    return receivers + [s for s in senders if s is not None]


def bulk_senders(cfg: LabConfig, files: LabFiles, capacity: Callable[[str], int], load: float) -> list[ProcSpec]:
    """The bulk_udp senders at ``load`` (none where the rate is 0)."""
    out = [sender(cfg, t, files, capacity, load) for t in cfg.traffic if t.kind == "bulk_udp"]
    return [s for s in out if s is not None]
