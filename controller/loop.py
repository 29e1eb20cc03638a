"""One cycle of ``qoectl loop``: measure -> evaluate -> decide -> compile -> apply -> record (docs/loop.md).

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
from controller.measure.feedback import Answer, read_feedback
from controller.measure.samples import Vocabulary
from controller.pipeline import Build, build
from controller.render.linux import classid


class LoopError(RuntimeError):
    """The loop cannot run a cycle (the policy does not reach the lab, ...): one line saying why."""


@dataclass(frozen=True)
class LoopConfig:
    policy: Path
    lab: LabState
    known_hosts: Path
    run_root: Path
    state_path: Path
    lock_dir: Path | None = None
    propose_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    duration_s: float = 3.0
    feedback: tuple[Path, ...] = ()
    environ: Mapping[str, str] | None = None


@dataclass(frozen=True)
class CycleResult:
    cycle: int
    decision: Decision
    applied: bool
    duration_s: float
    measurement: Measurement
    evaluation: Evaluation
    figures: Mapping[str, Mapping[str, float]]  # journey@segment -> one-way delay p99, loss, MOS, ...
    baseline: bl.Baseline
    apply_errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = self.decision.to_json(self.applied)
        out["duration_s"] = round(self.duration_s, 2)
        out["figures"] = {k: dict(v) for k, v in sorted(self.figures.items())}
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
        render_all(result),
        options,
        limit=tuple(devices),
        run_dir=run_dir,
        lock_dir=cfg.lock_dir,
        environ=cfg.environ,
        argv=("loop",),
    )


def _figures(evaluation: Evaluation, m: Measurement, result: Build, vocab: Vocabulary) -> dict[str, dict[str, float]]:
    samples, _ = m.sample_set(vocab)
    out: dict[str, dict[str, float]] = {}
    for f in figures_from_samples(samples, vocab):
        out[f.key] = f.measurements()
    for r in evaluation.results:
        if r.qoe is not None:
            out.setdefault(f"{r.journey}@{r.segment.name}", {})[r.qoe.model] = float(r.qoe.value)
    return out


def cycle(cfg: LoopConfig, n: int) -> CycleResult:
    """Run one cycle; ``n`` only names the run folders (the decision counts its own cycles in the state)."""
    started = time.monotonic()
    result = build(cfg.policy)
    if not result.ok:
        shown = "; ".join(d.format() for d in result.errors[:3])
        raise LoopError(f"the policy does not validate: {shown}")
    check_reach(result, cfg.lab)
    vocab = Vocabulary(result.policy)
    tag = f"{n:04d}-{new_run_id()}"
    # measure
    m = measure(cfg.lab, result, cfg.duration_s)
    samples, _ = m.sample_set(vocab)
    answers: list[Answer] = []
    for f in cfg.feedback:
        got, _problems = read_feedback(f, vocab, time.time())
        answers += got
    # evaluate (the verify engine)
    evaluation = evaluate(result, samples, answers, Options(now=time.time()))
    # drift: an apply dry run (read-only, no lock)
    dry = _apply(cfg, result, [d.name for d in result.policy.devices], True, cfg.run_root / f"{tag}-dry-run")
    figures = tuple(figures_from_samples(samples, vocab))
    obs = Observation.of(evaluation, time.time(), figures, queue_states(m, result), drift_from(dry))
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
        _figures(evaluation, m, result, vocab),
        bl.record(samples, vocab),
        errors,
    )
