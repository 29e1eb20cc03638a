"""adjust stage: the decision core of ``qoectl loop`` (docs/loop.md).

One cycle of the loop is measure -> evaluate -> **decide** -> compile -> apply ->
record. This package is the *decide* step and what it writes; measuring (the
lab's probes, files, Prometheus) and applying (``controller.apply``, the same
engine and safety as ``qoectl apply``) are the caller's. Nothing here touches a
device or the network, so every rule is tested without a lab.

The API, per cycle::

    from controller.adjust import (
        Limits, Observation, decide, load_state, save_state, write_adjustments, propose, record,
    )

    build = pipeline.build(policy_path)                   # the policy as it is, Adjustments included
    observation = Observation.of(                          # what the cycle saw
        evaluation,                                        # controller.evaluate.engine.evaluate(...)
        time=now,
        figures=figures_from_samples(samples, vocab),      # + device/interface where the lab knows them
        queues=[QueueState(...), ...],                     # the lab's per-router queue state
        drift=drift_from(dry_run_result),                  # an apply dry run: who drifted
        transports=[TransportHealth(...), ...],            # SD-WAN edges: each transport's delay/jitter/loss
    )
    state = load_state(state_path)                         # .qoectl-loop/state.json (never in the policy repo)
    decision = decide(build, observation, state, Limits()) # actions, holds, new entries, next state
    if decision.changed:
        if propose_dir:                                    # --propose DIR: a patch for review instead
            propose(policy_path, decision, propose_dir)
        else:
            write_adjustments(policy_path, decision.adjustments)
    # apply decision.build's plans to decision.devices (unless proposing), then:
    record(run_folder, decision, applied=...)              # the audit log (controller.apply.audit.RunFolder)
    save_state(state_path, decision.state, policy_path)
    print(json.dumps(decision.to_json(applied=...)))       # the cycle's --json line

Signatures:

* ``decide(build: Build, observation: Observation, state: LoopState, limits: Limits | None = None) -> Decision``
* ``write_adjustments(policy_root: Path, entries: Iterable[Adjustment]) -> Path``
* ``propose(policy_root: Path, decision: Decision, out_dir: Path) -> Path | None``
* ``record(folder: RunFolder, decision: Decision, applied: bool | None = None) -> None``
* ``load_state(path: Path) -> LoopState``
* ``save_state(path: Path, state: LoopState, policy_root: Path | None = None) -> Path``

:class:`Decision` carries ``actions`` (kind, journey, device, interface,
reason, before, after, measurements), ``holds`` (what was left alone and why),
``adjustments`` (the loop document's entries after the cycle), ``build`` (the
policy compiled and validated with them), ``devices`` (what to apply),
``state`` and ``verdicts``; ``to_json(applied)`` is the cycle's JSON line.
On SD-WAN edges the observation's ``transports`` drive path steering
(:mod:`controller.adjust.paths`: ``move_path`` / ``path_back`` actions and
``path`` entries). For the loop's report, :func:`before_after` gives, per change, the before and
after (:mod:`controller.evaluate.baseline`) of the journeys it touched.
"""

from __future__ import annotations

from controller.adjust.audit import record
from controller.adjust.document import LOOP_DOCUMENT, document_text, loop_file, write_adjustments
from controller.adjust.engine import Action, Decision, DecisionError, Hold, Limits, decide, touched, touched_by
from controller.adjust.health import TransportHealth, sla_verdict
from controller.adjust.observation import (
    ClassQueue,
    DeviceDrift,
    JourneyFigures,
    Observation,
    QueueState,
    SegmentStatus,
    drift_from,
    figures_from_samples,
)
from controller.adjust.propose import commit_message, propose
from controller.adjust.report import ChangeReport, before_after
from controller.adjust.state import LoopState, StateError
from controller.adjust.state import default_path as default_state_path
from controller.adjust.state import load as load_state
from controller.adjust.state import save as save_state

__all__ = [
    "LOOP_DOCUMENT",
    "Action",
    "ChangeReport",
    "ClassQueue",
    "Decision",
    "DecisionError",
    "DeviceDrift",
    "Hold",
    "JourneyFigures",
    "Limits",
    "LoopState",
    "Observation",
    "QueueState",
    "SegmentStatus",
    "StateError",
    "TransportHealth",
    "before_after",
    "commit_message",
    "decide",
    "default_state_path",
    "document_text",
    "drift_from",
    "figures_from_samples",
    "load_state",
    "loop_file",
    "propose",
    "record",
    "save_state",
    "sla_verdict",
    "touched",
    "touched_by",
    "write_adjustments",
]
