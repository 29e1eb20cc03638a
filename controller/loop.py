"""One cycle of ``qoectl loop``: measure -> evaluate -> decide -> compile -> apply -> record (docs/loop.md).

Measuring is the running lab (its probes and the routers' queues, ``controller.lab.measure``), the configured
sources (measurement files, Prometheus: ``controller.measure.sources``, the same reading as ``qoectl verify``),
or both. Without the lab there are no queue readings: the remediations that need them hold, saying so.

The stages stay one-way: this module calls the lab's measurement API (``controller.lab.measure``), the verify
engine (``controller.evaluate.engine``), the decision core (``controller.adjust``), the compiler
(``controller.pipeline``) and the apply engine (``controller.apply.runner``, the same engine and safety as
``qoectl apply``); none of them calls back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.adjust import (
    ClassQueue,
    Decision,
    DeviceDrift,
    Limits,
    Observation,
    QueueState,
    decide,
    drift_from,
    figures_from_samples,
    load_state,
    propose,
    record,
    save_state,
    write_adjustments,
)
from controller.apply.audit import RunFolder, new_run_id
from controller.apply.connection import HostKeyPolicy
from controller.apply.engine import ApplyOptions
from controller.apply.result import FleetResult
from controller.apply.runner import render_all, run
from controller.evaluate import baseline as bl
from controller.evaluate.engine import Evaluation, Options, evaluate
from controller.lab.measure import InterfaceQueues, Measurement, measure
from controller.lab.state import LabState
from controller.measure.samples import SampleSet, Vocabulary
from controller.measure.sources import SourceOptions, read_sources
from controller.pipeline import Build, build
from controller.platforms.linux.renderer import classid


class LoopError(RuntimeError):
    """The loop cannot run a cycle (the policy does not reach the lab, ...): one line saying why."""


@dataclass(frozen=True)
class LoopConfig:
    """``lab``: measure the running lab (None: only ``sources``); ``sources``: files, Prometheus, feedback."""

    policy: Path
    lab: LabState | None
    known_hosts: Path
    run_root: Path
    state_path: Path
    lock_dir: Path | None = None
    propose_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    duration_s: float = 3.0
    sources: SourceOptions = field(default_factory=SourceOptions)
    environ: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.lab is None and not self.sources.measures:
            raise LoopError("nothing to measure: no lab and no measurement source")

    @property
    def checks_drift(self) -> bool:
        """The apply dry run that finds drift reaches the devices: with the lab, or when the loop applies.

        Proposing from files or Prometheus touches no device at all (a scheduled CI job has none to reach).
        """
        return self.lab is not None or self.propose_dir is None

    def measured_by(self) -> tuple[str, ...]:
        return (*((f"lab {self.lab.name}",) if self.lab is not None else ()), *self.sources.names())


@dataclass(frozen=True)
class CycleResult:
    cycle: int
    decision: Decision
    applied: bool
    duration_s: float
    measurement: Measurement | None  # the lab's, when the lab was measured
    evaluation: Evaluation
    figures: Mapping[str, Mapping[str, float]]  # journey@segment -> one-way delay p99, loss, MOS, ...
    baseline: bl.Baseline
    apply_errors: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    paths: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # device -> journey -> transport measured on
    transports: Mapping[str, Mapping[str, float | str]] = field(default_factory=dict)  # device/transport -> health

    def to_json(self) -> dict[str, Any]:
        out = self.decision.to_json(self.applied)
        out["duration_s"] = round(self.duration_s, 2)
        out["sources"] = list(self.sources)
        out["figures"] = {k: dict(v) for k, v in sorted(self.figures.items())}
        if self.paths:
            out["paths"] = {d: dict(sorted(j.items())) for d, j in sorted(self.paths.items())}
        if self.transports:
            out["transports"] = {k: dict(v) for k, v in sorted(self.transports.items())}
        if self.apply_errors:
            out["apply_errors"] = list(self.apply_errors)
        return out


def check_reach(result: Build, lab: LabState) -> None:
    """The policy's inventory must reach the running lab's routers (their management address)."""
    routers = {r.name: r for r in lab.config.routers}
    devices = {d.name: d for d in result.policy.devices}
    missing = [n for n in routers if n not in devices]
    wrong = [n for n, r in routers.items() if n in devices and devices[n].host != r.address]
    if missing or wrong:
        names = ", ".join(missing + wrong)
        raise LoopError(
            f"the policy's inventory does not reach the running lab '{lab.name}' ({names}): "
            "write a copy that does with `qoectl lab policy --out DIR` and loop on DIR"
        )


def queue_states(m: Measurement, result: Build) -> tuple[QueueState, ...]:
    """The routers' WAN queues as the decision reads them: HTB class handles mapped to the plan's classes.

    The downstream capacity hint is what the WAN delivered on the far side of the bottleneck (the ISP
    interface that feeds the other end, measured over the window), not its configured rate. Rates are
    bytes sent over the window of the queue readings (``InterfaceQueues.sent_kbps``), not over the whole
    cycle, which also spends seconds starting the probes and waiting for their last packets.
    """
    out = []
    for r in m.routers:
        plan = result.plan(r.node)
        names = {classid(c): c.name for c in plan.classes} if plan else {}
        far = [b for b in m.bottlenecks if b.wan == r.wan and b.towards != r.node]
        hint = min((k for b in far if (k := b.sent_kbps) is not None), default=None)
        out.append(_queue_state(r, names, hint))
    return tuple(out)


def _queue_state(r: InterfaceQueues, names: Mapping[str, str], hint: float | None) -> QueueState:
    classes = tuple(ClassQueue(names[c.handle], c.max_backlog_bytes, c.drops) for c in r.classes if c.handle in names)
    delivered = r.sent_kbps
    return QueueState(r.node, r.interface, r.max_backlog_bytes, r.drops, classes, delivered, hint)


def _apply(cfg: LoopConfig, result: Build, devices: Sequence[str], dry_run: bool, run_dir: Path) -> FleetResult:
    options = ApplyOptions(host_keys=HostKeyPolicy(known_hosts=cfg.known_hosts, accept_new=False), dry_run=dry_run)
    return run(
        result.policy.devices,
        render_all(result.plans),
        options,
        limit=tuple(devices),
        run_dir=run_dir,
        lock_dir=cfg.lock_dir,
        environ=cfg.environ,
        argv=("loop",),
    )


def _figures(evaluation: Evaluation, samples: SampleSet, vocab: Vocabulary) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for f in figures_from_samples(samples, vocab):
        out[f.key] = f.measurements()
    for r in evaluation.results:
        if r.qoe is not None:
            out.setdefault(f"{r.journey}@{r.segment.name}", {})[r.qoe.model] = float(r.qoe.value)
    return out


def paths_of(result: Build) -> dict[str, dict[str, str]]:
    """Per SD-WAN edge, the transport each journey with a path preference leaves by (the first it prefers)."""
    return {
        plan.device: {p.journey: p.preferred[0] for p in plan.path_preferences if p.preferred}
        for plan in result.plans
        if plan.path_preferences
    }


def transport_figures(m: Measurement, result: Build) -> dict[str, dict[str, float | str]]:
    """Per ``device/transport``: the health the edge measured and its verdict per SLA class (``sla:<class>``)."""
    out: dict[str, dict[str, float | str]] = {}
    for t in m.transports:
        row: dict[str, float | str] = dict(t.health().measurements())
        if t.result.error:
            row["error"] = t.result.error
        out[f"{t.source}/{t.transport}"] = row
    for v in m.sla(result):
        out.setdefault(f"{v.device}/{v.transport}", {})[f"sla:{v.sla_class}"] = v.verdict
    return out


def cycle(cfg: LoopConfig, n: int) -> CycleResult:
    """Run one cycle; ``n`` only names the run folders (the decision counts its own cycles in the state)."""
    started = time.monotonic()
    result = build(cfg.policy)
    if not result.ok:
        shown = "; ".join(d.format() for d in result.errors[:3])
        raise LoopError(f"the policy does not validate: {shown}")
    vocab = Vocabulary(result.policy)
    tag = f"{n:04d}-{new_run_id()}"
    # measure: the lab (probes and queues) and/or the configured sources (files, Prometheus) and feedback
    m: Measurement | None = None
    parts: list[SampleSet] = []
    queues: tuple[QueueState, ...] = ()
    if cfg.lab is not None:
        check_reach(result, cfg.lab)
        m = measure(cfg.lab, result, cfg.duration_s)
        parts.append(m.sample_set(vocab)[0])
        queues = queue_states(m, result)
    now = time.time()
    reading = read_sources(cfg.sources, result.policy, vocab, now)
    if reading.errors:
        first = reading.errors[0].format()
        more = len(reading.errors) - 1
        raise LoopError(f"{first}" + (f" (and {more} more error(s))" if more else ""))
    parts.append(reading.samples)
    samples = SampleSet.concat(parts)
    # evaluate (the verify engine)
    options = Options(start=reading.start, end=reading.end, now=now)
    evaluation = evaluate(result, samples, list(reading.answers), options)
    # drift: an apply dry run (read-only, no lock); not when proposing from files (no device to reach)
    drift: tuple[DeviceDrift, ...] = ()
    if cfg.checks_drift:
        dry = _apply(cfg, result, [d.name for d in result.policy.devices], True, cfg.run_root / f"{tag}-dry-run")
        drift = drift_from(dry)
    figures = tuple(figures_from_samples(samples, vocab))
    health = m.health() if m is not None else ()
    obs = Observation.of(evaluation, time.time(), figures, queues, drift, health)
    # decide
    decision = decide(result, obs, load_state(cfg.state_path), cfg.limits)
    applied = False
    errors: tuple[str, ...] = ()
    folder_path = cfg.run_root / f"{tag}-cycle"
    if cfg.propose_dir is not None:
        if decision.changed:
            propose(cfg.policy, decision, cfg.propose_dir)
    else:
        if decision.changed:
            write_adjustments(cfg.policy, decision.adjustments)
        if decision.devices:
            # compile (decision.build is the policy compiled with the new entries) -> apply
            fleet = _apply(cfg, decision.build, decision.devices, False, cfg.run_root / f"{tag}-apply")
            applied = fleet.exit_code(False) == 0
            errors = tuple(f"{r.device}: {r.status} {r.error or ''}".strip() for r in fleet.results if r.error)
    folder = RunFolder(folder_path, folder_path.name)
    try:
        record(folder, decision, applied if decision.devices else None)
    finally:
        folder.close()
    save_state(cfg.state_path, decision.state, cfg.policy)
    return CycleResult(
        n,
        decision,
        applied,
        time.monotonic() - started,
        m,
        evaluation,
        _figures(evaluation, samples, vocab),
        bl.record(samples, vocab),
        errors,
        cfg.measured_by(),
        paths_of(result),
        transport_figures(m, result) if m is not None else {},
    )
