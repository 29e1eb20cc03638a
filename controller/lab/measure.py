"""The lab's measurement API: one cycle of the built-in probes under load, and the queues along the WAN.

::

    from controller.lab.measure import measure
    from controller.lab.state import current, state_root

    cycle = measure(current(state_root()), build, duration_s=5.0)   # build: controller.pipeline.Build
    samples, problems = cycle.sample_set(Vocabulary(build.policy))   # -> controller.evaluate.engine.evaluate
    cycle.write_samples(Path("samples.json"))                        # -> qoectl verify --measurements
    cycle.router("branch-rtr").max_backlog_bytes, cycle.bottleneck_into("hub-rtr").max_queue_delay_ms

For every ``probes`` entry of the lab file, while the background generators keep loading the WAN:

* ``voice``: the voice prober (:mod:`controller.measure.probes`) from the ``from`` host to the ``to``
  host, RTP-sized UDP at 50 packets/s with the journey's DSCP (the marking of the compiled policy,
  unless the lab file gives one): one-way delay (kernel receive timestamps; one host's namespaces share
  one clock), RFC 3550 jitter, loss, reordering and the DSCP seen on arrival;
* ``video``: the same measurements on video-like bursts (one per frame) at the journey's bitrate x 1.2
  (IP level), plus ``throughput_kbps`` (the delivered share of that rate);
* ``http``: transactions on new connections against the web generator's server: ``response_time_ms``
  per transaction and ``errors`` for failures, the input of Apdex;
* ``throughput``: the generators' receiver counters over the window, summed (``throughput_kbps`` of
  payload: what the journey's traffic got through).

Samples carry the probe's journey and site and come per ``interval_s`` (default 1 s) of send time:
``{"timestamp", "journey", "site", "metric", "value"}``, the format ``qoectl probe`` writes and
``qoectl verify --measurements`` reads.

Queues: every ``reading_every_s`` during the window, ``tc -s -d`` of each router's WAN interface and of
each ISP interface (the bottleneck). :class:`InterfaceQueues` gives per qdisc and HTB class the backlog
at the end and the most seen, and the bytes sent and packets dropped during the window, so a caller can
tell "voice delay rises while the router's queues stay short": the queue is downstream, in the ISP.

A cycle takes ``duration_s`` plus about two seconds (process start, the last packets' delay, the
receivers' idle wait); with the bundled lab and 5 s, about 7-8 s.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from controller.adjust.health import SlaVerdict, TransportHealth, sla_verdict
from controller.errors import Diagnostic, Location
from controller.lab import queues as q
from controller.lab.config import LabConfig, Probe
from controller.lab.netns import in_ns, python_env, run
from controller.lab.state import LabState
from controller.measure.samples import Problems, RawColumns, SampleSet, Vocabulary, from_columns
from controller.model import VideoTarget
from controller.pipeline import Build

PROBE = (sys.executable, "-m", "controller.lab.probe")
HEALTH_PORT = 3784  # BFD's: the per-transport probes' receivers listen on this port + n in the routers
HEALTH_DSCP = 48  # CS6, as SD-WAN edges send BFD: the routers' network-control class
VIDEO_OVERHEAD = 1.2  # the compiler's allowance for RTP/UDP/IP on a video bitrate (controller/compile/budgets.py)
READY_TIMEOUT_S = 15.0
TAIL_S = 2.5  # after the senders stop: the last packets' queueing delay and the receivers' idle wait
SOURCE = "lab measurement"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement in the vocabulary of :mod:`controller.measure.metrics`."""

    timestamp: float
    journey: str
    site: str | None
    metric: str
    value: float

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"timestamp": self.timestamp, "journey": self.journey}
        if self.site:
            out["site"] = self.site
        out.update(metric=self.metric, value=self.value)
        return out


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe saw in the cycle; fields that do not apply to its kind are None."""

    journey: str
    kind: str  # voice, video, http, throughput
    site: str
    source: str
    destination: str
    error: str | None = None  # the probe could not run or saw nothing
    packets_sent: int | None = None
    packets_received: int | None = None
    loss_pct: float | None = None
    delay_mean_ms: float | None = None
    delay_p50_ms: float | None = None
    delay_p99_ms: float | None = None
    delay_max_ms: float | None = None
    jitter_ms: float | None = None
    dscp_seen: tuple[tuple[int, int], ...] = ()  # (DSCP, packets) on arrival
    throughput_kbps: float | None = None
    transactions: int | None = None
    errors: int | None = None
    response_p50_ms: float | None = None
    response_p95_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class InterfaceQueues:
    """The queues of one interface over the window: a router's WAN interface or an ISP (bottleneck) interface.

    ``rate_kbps`` is the interface's shaping rate (the HTB root class: a router's shaper, the ISP's
    capacity), None without one (``noqueue``: nothing can queue there). ``root`` is the root qdisc, whose
    backlog is everything queued on the interface.
    """

    role: Literal["router", "bottleneck"]
    node: str  # the router, or the ISP node (isp-<wan>)
    namespace: str
    interface: str
    wan: str
    towards: str  # where the interface sends: the ISP node (router), the router it feeds (bottleneck)
    rate_kbps: float | None
    root: q.QueueStats | None
    qdiscs: tuple[q.QueueStats, ...]
    classes: tuple[q.QueueStats, ...]
    readings: int
    window_s: float = 0.0  # from the first reading to the last: the time ``sent_bytes`` and ``drops`` cover

    @property
    def sent_kbps(self) -> float | None:
        """What the interface sent during the window, in kbit/s: ``sent_bytes`` over ``window_s``.

        The window is that of the queue readings (the probes' send window), not the whole cycle: a
        cycle also spends time starting the probes and waiting for their last packets, when no
        reading is taken. None with fewer than two readings (no window).
        """
        if self.root is None or self.window_s <= 0:
            return None
        return self.sent_bytes * 8 / self.window_s / 1000

    @property
    def backlog_bytes(self) -> int:
        return self.root.backlog_bytes if self.root else 0

    @property
    def max_backlog_bytes(self) -> int:
        return self.root.max_backlog_bytes if self.root else 0

    @property
    def drops(self) -> int:
        return self.root.drops if self.root else 0

    @property
    def sent_bytes(self) -> int:
        return self.root.sent_bytes if self.root else 0

    @property
    def max_queue_delay_ms(self) -> float:
        """The most backlog seen, as time at the shaping rate (0 without a shaper: nothing queues)."""
        return self.max_backlog_bytes * 8 / self.rate_kbps if self.rate_kbps else 0.0

    def cls(self, handle: str) -> q.QueueStats | None:
        return next((c for c in self.classes if c.handle == handle), None)


_PROBE_ONLY = ("journey", "site", "source", "destination")


@dataclass(frozen=True, slots=True)
class TransportProbe:
    """One transport's health from one router to another, between their addresses on that WAN (the underlay)."""

    wan: str
    transport: str
    source: str  # the router that sends
    destination: str  # the router that receives
    destination_address: str
    result: ProbeResult

    def health(self) -> TransportHealth:
        """As the loop reads it: the sending router's measurement of the transport (mean delay, jitter, loss)."""
        r = self.result
        return TransportHealth(
            self.source, self.transport, r.delay_mean_ms, r.jitter_ms, r.loss_pct, self.destination, r.error
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "wan": self.wan,
            "transport": self.transport,
            "source": self.source,
            "destination": self.destination,
            "destination_address": self.destination_address,
            **{k: v for k, v in _probe_json(self.result).items() if k not in _PROBE_ONLY},
        }


@dataclass(frozen=True, slots=True)
class TransportSla:
    """Whether one router's transport met one SLA class of its plan in the cycle."""

    device: str
    transport: str
    sla_class: str
    verdict: SlaVerdict
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "transport": self.transport,
            "sla_class": self.sla_class,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Measurement:
    """One measurement cycle of a running lab."""

    lab: str
    started: float
    ended: float
    duration_s: float
    samples: tuple[Sample, ...]
    probes: tuple[ProbeResult, ...]
    routers: tuple[InterfaceQueues, ...]
    bottlenecks: tuple[InterfaceQueues, ...]
    transports: tuple[TransportProbe, ...] = ()  # per-transport health, when a router has two WANs or more

    def probe(self, journey: str) -> ProbeResult | None:
        return next((p for p in self.probes if p.journey == journey), None)

    def router(self, name: str) -> InterfaceQueues:
        return next(r for r in self.routers if r.node == name)

    def bottleneck_into(self, router: str) -> InterfaceQueues:
        """The ISP interface that sends towards ``router`` (traffic *to* that router's site queues there)."""
        return next(b for b in self.bottlenecks if b.towards == router)

    def transport(self, router: str, transport: str) -> TransportProbe | None:
        """The health of ``transport`` as ``router`` measured it (towards its first peer on that WAN)."""
        return next((t for t in self.transports if t.source == router and t.transport == transport), None)

    def health(self) -> tuple[TransportHealth, ...]:
        return tuple(t.health() for t in self.transports)

    def sla(self, build: Build) -> tuple[TransportSla, ...]:
        """Per router, transport and SLA class of its compiled plan: met (pass), missed (fail) or unknown."""
        out = []
        for t in self.transports:
            plan = build.plan(t.source)
            for sla in plan.sla_classes if plan is not None else ():
                verdict, reasons = sla_verdict(sla, t.health())
                out.append(TransportSla(t.source, t.transport, sla.name, verdict, reasons))
        return tuple(out)

    def sample_dicts(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.samples]

    def write_samples(self, path: Path) -> None:
        """A JSON array, one sample a line: what ``qoectl verify --measurements`` reads."""
        from controller.measure.probes import write_samples

        write_samples(path, self.sample_dicts())

    def sample_set(self, vocab: Vocabulary, now: float | None = None) -> tuple[SampleSet, list[Diagnostic]]:
        """The samples coded against a policy, for :func:`controller.evaluate.engine.evaluate` (no file needed)."""
        problems = Problems(SOURCE)
        raw = RawColumns(
            n=len(self.samples),
            timestamp=[s.timestamp for s in self.samples],
            journey=[s.journey for s in self.samples],
            metric=[s.metric for s in self.samples],
            value=[s.value for s in self.samples],
            site=[s.site for s in self.samples],
        )

        def where(i: int) -> Location:
            return Location(SOURCE, i + 1, 1)  # the sample's number as its "line"

        out = from_columns(raw, vocab, where, time.time() if now is None else now, problems)
        return out, problems.diagnostics()

    def to_json(self) -> dict[str, Any]:
        def iface(i: InterfaceQueues) -> dict[str, Any]:
            return {
                "node": i.node,
                "namespace": i.namespace,
                "interface": i.interface,
                "wan": i.wan,
                "towards": i.towards,
                "rate_kbps": i.rate_kbps,
                "backlog_bytes": i.backlog_bytes,
                "max_backlog_bytes": i.max_backlog_bytes,
                "max_queue_delay_ms": round(i.max_queue_delay_ms, 3),
                "drops": i.drops,
                "sent_bytes": i.sent_bytes,
                "sent_kbps": None if i.sent_kbps is None else round(i.sent_kbps, 3),
                "readings": i.readings,
                "window_s": round(i.window_s, 3),
                "qdiscs": [_stats(s) for s in i.qdiscs],
                "classes": [_stats(s) for s in i.classes],
            }

        return {
            "lab": self.lab,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "probes": [_probe_json(p) for p in self.probes],
            "routers": [iface(r) for r in self.routers],
            "bottlenecks": [iface(b) for b in self.bottlenecks],
            "transports": [t.to_json() for t in self.transports],
            "samples": self.sample_dicts(),
        }


def _stats(s: q.QueueStats) -> dict[str, Any]:
    return {k: getattr(s, k) for k in q.QueueStats.__slots__}


def _probe_json(p: ProbeResult) -> dict[str, Any]:
    out = {k: getattr(p, k) for k in ProbeResult.__slots__}
    out["dscp_seen"] = {str(d): n for d, n in p.dscp_seen}
    return {k: v for k, v in out.items() if v is not None and v != {}}


# --------------------------------------------------------------------------- running one cycle


class MeasureError(RuntimeError):
    """The cycle could not run at all (the lab is not up); a probe's own failure is in its ProbeResult."""


def _journey_dscp(build: Build | None, journey: str) -> int:
    if build is None:
        return 0
    for plan in build.plans:
        for m in plan.markings:
            if m.journey == journey:
                return m.dscp
    return 0


def _video_kbps(build: Build | None, p: Probe) -> float | None:
    if p.bitrate_kbps is not None:
        return p.bitrate_kbps
    journey = build.policy.journey(p.journey) if build is not None else None
    if journey is not None and isinstance(journey.target, VideoTarget):
        return journey.target.bitrate_kbps * VIDEO_OVERHEAD
    return None


@dataclass
class _Running:
    probe: Probe
    receiver: subprocess.Popen[str] | None = None
    sender: subprocess.Popen[str] | None = None
    rate_kbps: float = 0.0
    error: str | None = None
    counters_before: dict[str, dict[str, float]] | None = None


def _spawn(namespace: str, argv: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # argv built here, no shell
        in_ns(namespace, *argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )


def _wait_ready(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """None when the process printed ``ready`` in time; else why not (and the process is ended)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    line = proc.stdout.readline() if ready else ""
    if line.strip() == "ready":
        return None
    if line.strip().startswith("{"):
        return str(json.loads(line).get("error", "the receiver ended at once"))
    proc.kill()
    _, err = proc.communicate(timeout=10)
    return (err.strip().splitlines() or ["the receiver did not start"])[-1]


def _result(proc: subprocess.Popen[str] | None, timeout: float) -> dict[str, Any]:
    if proc is None:
        return {"error": "not started"}
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        return {"error": f"no result within {timeout:g} s"}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def _read_counters(path: Path) -> dict[str, float] | None:
    try:
        data = json.loads(path.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


class _QueueWatch:
    """Readings of every router WAN interface and every ISP interface, one shell per namespace per reading."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.targets: dict[str, list[str]] = {}
        for w in cfg.wans:
            self.targets[cfg.namespace(w.node)] = [link.isp_interface for link in w.links]
            for link in w.links:
                self.targets.setdefault(cfg.namespace(link.router), []).append(link.interface)
        self.readings: dict[tuple[str, str], list[list[q.Reading]]] = {}
        self.times: dict[tuple[str, str], list[float]] = {}

    def read(self) -> None:
        for ns, devices in self.targets.items():
            before = time.monotonic()
            out = run(in_ns(ns, "sh", "-c", q.script(devices)), check=False, timeout=10)
            at = (before + time.monotonic()) / 2  # when tc ran, near enough (the namespace's shell in between)
            parsed = q.parse_script_output(out)
            for dev in devices:
                self.readings.setdefault((ns, dev), []).append(parsed.get(dev, []))
                self.times.setdefault((ns, dev), []).append(at)

    def interfaces(self) -> tuple[list[InterfaceQueues], list[InterfaceQueues]]:
        cfg = self.cfg
        routers, bottlenecks = [], []
        for w in cfg.wans:
            for link in w.links:
                routers.append(self._one("router", link.router, link.interface, w.name, w.node))
                bottlenecks.append(self._one("bottleneck", w.node, link.isp_interface, w.name, link.router))
        return routers, bottlenecks

    def _one(
        self, role: Literal["router", "bottleneck"], node: str, dev: str, wan: str, towards: str
    ) -> InterfaceQueues:
        ns = self.cfg.namespace(node)
        readings = self.readings.get((ns, dev), [])
        times = self.times.get((ns, dev), [])
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        stats = q.window(readings)
        qdiscs = tuple(s for s in stats if not s.is_class)
        classes = tuple(s for s in stats if s.is_class)
        root = next((s for s in qdiscs if s.parent is None), None)
        top = next((c for c in classes if c.parent is None), None)
        rate = top.ceil_kbps or top.rate_kbps if top is not None else None
        return InterfaceQueues(role, node, ns, dev, wan, towards, rate, root, qdiscs, classes, len(readings), span)


def read_queues(state: LabState) -> tuple[tuple[InterfaceQueues, ...], tuple[InterfaceQueues, ...]]:
    """One reading of every router WAN interface and ISP interface now: (routers, bottlenecks).

    The backlogs are what sits in the queues at this moment (sent and drop counts are 0: no window).
    Cheap (a ``tc`` per namespace), so a caller can poll it, e.g. until a standing queue has drained.
    """
    watch = _QueueWatch(state.config)
    watch.read()
    routers, bottlenecks = watch.interfaces()
    return tuple(routers), tuple(bottlenecks)


def measure(
    state: LabState,
    build: Build | None = None,
    duration_s: float = 5.0,
    *,
    interval_s: float = 1.0,
    reading_every_s: float = 1.0,
    journeys: Sequence[str] = (),
    transports: bool = True,
) -> Measurement:
    """Run every probe of the lab (or those of ``journeys``) for ``duration_s`` and read the queues meanwhile.

    ``build`` (the compiled lab policy) gives each journey's DSCP and a video journey's bitrate, and
    filters out probes of journeys the policy does not have; without it probes send unmarked. With
    ``transports`` and a router on two WANs or more, each transport's health is probed too, between the
    routers' addresses on it (:attr:`Measurement.transports`, :meth:`Measurement.sla`).
    """
    if not state.complete:
        raise MeasureError(f"lab '{state.name}' is not up completely: `qoectl lab down`, then `qoectl lab up`")
    if not 0.5 <= duration_s <= 600:
        raise MeasureError("the duration must be 0.5-600 s")
    cfg = state.config
    started = time.time()
    running = [_Running(p) for p in cfg.probes if not journeys or p.journey in journeys]
    known = {j.name for j in build.policy.journeys} if build is not None else None
    running += [_Running(p) for p in cfg.transport_probes(HEALTH_PORT, HEALTH_DSCP)] if transports else []
    for r in running:
        if known is not None and not r.probe.transport_probe and r.probe.journey not in known:
            r.error = f"journey '{r.probe.journey}' is not in the policy"
    # Receivers first: a sender must not start before its receiver listens.
    for r in running:
        p = r.probe
        if r.error or p.kind not in ("voice", "video"):
            continue
        if p.kind == "video":
            kbps = _video_kbps(build, p)
            if kbps is None:
                r.error = "no bitrate: give the probe's bitrate_kbps or a video target in the journey"
                continue
            r.rate_kbps = kbps
        argv = [
            *PROBE,
            "recv",
            "--bind",
            _address(cfg, p),
            "--port",
            str(p.port),
            "--journey",
            p.journey,
        ]
        argv += ["--site", p.site, "--interval-s", str(interval_s), "--timeout-s", str(duration_s + 3 * TAIL_S + 5)]
        argv += ["--idle-s", str(TAIL_S - 0.5), "--rate-kbps", str(r.rate_kbps)]
        r.receiver = _spawn(cfg.namespace(p.destination), argv)
    for r in running:
        if r.receiver is not None:
            r.error = _wait_ready(r.receiver, READY_TIMEOUT_S)
            if r.error:
                r.receiver = None
    watch = _QueueWatch(cfg)
    for r in running:
        if r.probe.kind == "throughput" and not r.error:
            r.counters_before = {}
            for g in r.probe.generators:
                reading = _read_counters(state.files.counters(g))
                if reading is None:
                    r.error = f"generator '{g}' has no receiver counters (is it running?)"
                    break
                r.counters_before[g] = reading
    watch.read()
    t0 = time.monotonic()
    for r in running:
        p = r.probe
        if r.error:
            continue
        dst = _address(cfg, p)
        if p.kind == "voice":
            dscp = p.dscp if p.dscp is not None else _journey_dscp(build, p.journey)
            count = max(1, round(duration_s * p.rate_pps))
            argv = [*PROBE, "voice-send", "--dst", dst, "--port", str(p.port), "--count", str(count)]
            argv += ["--rate-pps", str(p.rate_pps), "--dscp", str(dscp)]
        elif p.kind == "video":
            dscp = p.dscp if p.dscp is not None else _journey_dscp(build, p.journey)
            frames = max(1, round(duration_s * p.frame_rate))
            argv = [*PROBE, "video-send", "--dst", dst, "--port", str(p.port), "--frames", str(frames)]
            argv += ["--frame-rate", str(p.frame_rate), "--bitrate-kbps", str(r.rate_kbps), "--dscp", str(dscp)]
        elif p.kind == "http":
            url = f"http://{dst}:{p.port}{p.path}"
            argv = [*PROBE, "http", "--url", url, "--journey", p.journey, "--site", p.site]
            argv += ["--duration-s", str(duration_s), "--interval-s", str(p.interval_ms / 1000.0)]
            argv += ["--grace-s", str(TAIL_S)]
        else:
            continue
        r.sender = _spawn(cfg.namespace(p.source), argv)
    # Queue readings while the probes send; the last one when the send window ends.
    while True:
        left = duration_s - (time.monotonic() - t0)
        if left <= 0:
            break
        time.sleep(min(reading_every_s, left))
        watch.read()
    counters_after = {
        g: _read_counters(state.files.counters(g))
        for r in running
        if r.probe.kind == "throughput" and not r.error
        for g in r.probe.generators
    }
    results: list[ProbeResult] = []
    health: list[TransportProbe] = []
    samples: list[Sample] = []
    send_limit = duration_s + 3 * TAIL_S + 10
    sent: dict[int, dict[str, Any]] = {id(r): _result(r.sender, send_limit) for r in running if r.sender is not None}
    for r in running:
        result, found = _collect(r, sent.get(id(r)), send_limit, counters_after)
        p = r.probe
        if p.transport_probe:
            health.append(TransportProbe(p.wan, p.journey, p.source, p.destination, p.destination_address, result))
            continue
        results.append(result)
        samples += found
    ended = time.time()
    routers, bottlenecks = watch.interfaces()
    samples.sort(key=lambda s: (s.journey, s.metric, s.timestamp))
    return Measurement(
        lab=state.name,
        started=started,
        ended=ended,
        duration_s=duration_s,
        samples=tuple(samples),
        probes=tuple(results),
        routers=tuple(routers),
        bottlenecks=tuple(bottlenecks),
        transports=tuple(health),
    )


def _address(cfg: LabConfig, p: Probe) -> str:
    """Where a probe sends to: the destination host, or (a transport probe) the far router's WAN address."""
    return p.destination_address or cfg.host(p.destination).address


def _throughput(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float] | None]
) -> tuple[float, float] | str:
    """(kbit/s summed over the generators, time of the latest reading), or why there is none."""
    total, stamp = 0.0, 0.0
    for g, b in before.items():
        a = after.get(g)
        if a is None or a.get("time", 0) <= b.get("time", 0):
            return f"the counters of generator '{g}' did not move (is its receiver running?)"
        total += (a["bytes"] - b["bytes"]) * 8 / (a["time"] - b["time"]) / 1000.0
        stamp = max(stamp, a["time"])
    return total, stamp


def _collect(
    r: _Running, sent: dict[str, Any] | None, limit: float, counters: dict[str, dict[str, float] | None]
) -> tuple[ProbeResult, list[Sample]]:
    p = r.probe
    base = ProbeResult(p.journey, p.kind, p.site, p.source, p.destination)
    if r.error:
        if r.receiver is not None:
            r.receiver.kill()
            r.receiver.communicate(timeout=10)
        return _with(base, error=r.error), []
    if p.kind == "throughput":
        got = _throughput(r.counters_before or {}, counters)
        if isinstance(got, str):
            return _with(base, error=got), []
        kbps, stamp = round(got[0], 3), round(got[1], 6)
        return _with(base, throughput_kbps=kbps), [Sample(stamp, p.journey, p.site, "throughput_kbps", kbps)]
    if p.kind == "http":
        data = sent or {"error": "not started"}
        if "error" in data:
            return _with(base, error=str(data["error"])), []
        return (
            _with(
                base,
                transactions=int(data["transactions"]),
                errors=int(data["errors"]),
                response_p50_ms=data.get("response_p50_ms"),
                response_p95_ms=data.get("response_p95_ms"),
            ),
            _samples(data),
        )
    result = _result(r.receiver, limit)
    if sent is not None and "error" in sent:
        return _with(base, error=f"sender: {sent['error']}"), []
    if "error" in result:
        return _with(base, error=str(result["error"]), packets_sent=(sent or {}).get("sent")), []
    s = result["summary"]
    return (
        _with(
            base,
            packets_sent=(sent or {}).get("sent"),
            packets_received=int(s["received"]),
            loss_pct=float(s["loss_pct"]),
            delay_mean_ms=s.get("one_way_delay_ms"),
            delay_p50_ms=result.get("delay_p50_ms"),
            delay_p99_ms=result.get("delay_p99_ms"),
            delay_max_ms=s.get("one_way_delay_max_ms"),
            jitter_ms=s.get("jitter_ms"),
            dscp_seen=tuple(sorted((int(k), int(v)) for k, v in s.get("dscp_seen", {}).items())),
            throughput_kbps=result.get("throughput_kbps"),
        ),
        _samples(result),
    )


def _with(base: ProbeResult, **changes: Any) -> ProbeResult:
    return replace(base, **changes)


def _samples(data: dict[str, Any]) -> list[Sample]:
    return [
        Sample(float(s["timestamp"]), str(s["journey"]), s.get("site"), str(s["metric"]), float(s["value"]))
        for s in data.get("samples", [])
    ]
