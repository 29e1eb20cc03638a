"""The loop's observation built from qoectl's own results: the verify engine's evaluation, samples, a dry run."""

from __future__ import annotations

import math
from pathlib import Path

from controller.adjust import DeviceDrift, Limits, LoopState, Observation, decide, drift_from, figures_from_samples
from controller.apply.result import DeviceResult, FleetResult
from controller.evaluate.engine import evaluate
from controller.measure.files import FileSource
from controller.measure.samples import Vocabulary
from tests.loop_support import built, hq_queue, loop_repo

T0 = 1_746_093_600


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


def test_an_observation_from_an_evaluation_and_its_samples(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path / "repo")
    delays = [66.0, 75.0, 270.0, 285.0, 330.0, 360.0, 390.0, 420.0, 450.0, 1200.0]  # MOS far below 4.0
    rows = ["timestamp,journey,site,metric,value"]
    for i, d in enumerate(delays):
        rows += [
            f"{T0 + i},voice,hq,one_way_delay_ms,{d}",
            f"{T0 + i},voice,hq,jitter_ms,{i}",
            f"{T0 + i},voice,hq,loss_pct,{0.5 if i % 2 else 0}",
            f"{T0 + i},voice,hq,dscp,{46 if i < 7 else 0}",
        ]
    path = tmp_path / "m.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    vocab = Vocabulary(b.policy)
    samples, problems = FileSource(path).read(vocab, T0 + 100)
    assert not problems
    evaluation = evaluate(b, samples)
    obs = Observation.of(evaluation, time=T0 + 60, figures=figures_from_samples(samples, vocab))
    status = {s.key: s.verdict for s in obs.segments}
    assert status == {f"{r.journey}@{r.segment.name}": r.status for r in evaluation.results}
    assert status["voice@hq"] == "fail"
    (fig,) = [f for f in obs.figures if f.key == "voice@hq"]
    assert fig.one_way_delay_p50_ms == nearest_rank(delays, 50) == 330.0
    assert fig.one_way_delay_p99_ms == nearest_rank(delays, 99) == 1200.0
    assert fig.jitter_ms == 4.5 and fig.loss_pct == 0.25
    assert fig.dscp_seen == (0, 46)
    voice = next(r for r in evaluation.results if r.journey == "voice" and r.segment.name == "hq")
    assert voice.qoe is not None and fig.mos == voice.qoe.value  # the verify engine's MOS, taken over
    # and the decision reads it: re-marked after the router that marks voice at the edge (not the loop's to fix),
    # and the delay 310 ms over the path's base with the router's queue empty: the bottleneck is downstream
    d = decide(b, Observation.of(evaluation, T0 + 60, obs.figures, [hq_queue()]), LoopState(), Limits(act_after=1))
    assert [(a.kind, a.journey) for a in d.actions] == [("lower_shaper", "voice")]
    (hold,) = [h for h in d.holds if h.journey == "voice"]
    assert "re-marked after the router" in hold.reason


def test_drift_comes_from_an_apply_dry_run() -> None:
    results = [
        DeviceResult("a", "linux", "a.lab", "would_change", "original", diff="--- x\n+++ y\n+one\n+two\n-three\n"),
        DeviceResult("b", "linux", "b.lab", "unchanged", "intended"),
        DeviceResult("c", "linux", "c.lab", "failed", "unknown", error="timeout"),
    ]
    fleet = FleetResult.of(results, run_dir="r", run_id="1", dry_run=True)
    assert drift_from(fleet) == (DeviceDrift("a", True, "+2 -1 lines"), DeviceDrift("b", False))
