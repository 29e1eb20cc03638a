"""``qoectl plan --jobs``: worker processes give exactly what one process gives (no timing asserted).

The fleet comes from the benchmark's generator (every platform, every optional
feature) and is big enough that ``--jobs 2`` really forks workers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bench import fleet
from controller.cli.main import cli
from controller.load.loader import load_policy
from controller.parallel import can_fork
from controller.pipeline import MIN_PARALLEL_DEVICES, build, render_fleet, render_plan, validate_policy
from controller.plan import DevicePlan
from controller.render import platforms

pytestmark = pytest.mark.skipif(not can_fork(), reason="worker processes are forked")

DEVICES = MIN_PARALLEL_DEVICES + 40


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fleet.generate(tmp_path_factory.mktemp("fleet") / "policies", devices=DEVICES, journeys=20).root


def _modified(src: Path, dest: Path) -> Path:
    """The fleet with its last 30 devices gone and the interactive journeys' shares raised."""
    shutil.copytree(src, dest)
    inventory = sorted((dest / "inventory").glob("devices-*.yaml"))[-1]
    docs = list(yaml.safe_load_all(inventory.read_text()))
    docs[-1]["spec"]["devices"] = docs[-1]["spec"]["devices"][:-30]
    inventory.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    interactive = dest / "journeys" / "interactive.yaml"
    interactive.write_text(interactive.read_text().replace("share_pct: 1.5\n", "share_pct: 2.5\n"))
    return dest


def test_jobs_1_and_2_write_the_same_tree_and_say_the_same(policies: Path, tmp_path: Path) -> None:
    results: dict[str, list[Result]] = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out-{jobs}"
        first = run("plan", policies, "--out", out, "--no-diff", "--jobs", jobs)
        second = run("plan", policies, "--out", out, "--json", "--jobs", jobs)
        results[jobs] = [first, second]
    one, two = results["1"], results["2"]
    assert [r.exit_code for r in one] == [r.exit_code for r in two] == [2, 0], one[0].output
    assert tree(tmp_path / "out-1") == tree(tmp_path / "out-2")
    assert len(tree(tmp_path / "out-1")) > DEVICES
    for a, b in zip(one, two, strict=True):
        assert a.stdout.replace("out-1", "out-N") == b.stdout.replace("out-2", "out-N")
        assert a.stderr == b.stderr


def test_jobs_agree_on_changes_removed_devices_and_baseline(policies: Path, tmp_path: Path) -> None:
    base = tmp_path / "deployed"
    assert run("plan", policies, "--out", base, "--no-diff", "--jobs", "1").exit_code == 2
    changed = _modified(policies, tmp_path / "changed")
    outputs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out-{jobs}"
        result = run("plan", changed, "--out", out, "--baseline", base, "--json", "--jobs", jobs)
        assert result.exit_code == 2, result.output
        outputs[jobs] = result.stdout.replace(str(out), "OUT")
        assert yaml.safe_load(result.stdout)["changed"] > 0
    assert outputs["1"] == outputs["2"]
    assert '"status": "removed"' in outputs["1"] and '"status": "changed"' in outputs["1"]
    assert tree(tmp_path / "out-1") == tree(tmp_path / "out-2")


def test_jobs_agree_on_errors_and_write_nothing(policies: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(policies, broken)
    voice = broken / "journeys" / "voice.yaml"
    voice.write_text(voice.read_text().replace("concurrent_flows: 10", "concurrent_flows: 400"))
    results = {jobs: run("plan", broken, "--out", tmp_path / jobs / "out", "--jobs", jobs) for jobs in ("1", "2")}
    assert results["1"].exit_code == results["2"].exit_code == 1
    assert results["1"].stderr == results["2"].stderr
    assert "strict-priority traffic" in results["1"].stderr
    assert not (tmp_path / "1").exists() and not (tmp_path / "2").exists()


def test_render_fleet_in_workers_equals_build(policies: Path) -> None:
    """The pipeline API: the same diagnostics and files as build() + render_plan, with worker statistics."""
    expected = build(policies)
    want = {p.device: (p.platform, p.notes, render_plan(p)) for p in expected.plans}

    def keep(plan: DevicePlan, files: dict[str, str]) -> dict[str, str]:
        return files

    policy, problems = load_policy(policies)
    runs = [render_fleet(validate_policy(policy, problems), keep, jobs=jobs, min_parallel=0) for jobs in (1, 2)]
    for fleet_run in runs:
        assert fleet_run.diagnostics == expected.diagnostics
        assert {o.device: (o.platform, o.notes, o.value) for o in fleet_run.outputs} == want
        assert [o.device for o in fleet_run.outputs] == sorted(want)
    assert runs[0].jobs == 1 and not runs[0].workers
    assert runs[1].jobs == 2 and len(runs[1].workers) == 2
    assert all(w.cpu_s > 0 for w in runs[1].workers)


def test_a_failing_worker_is_reported_not_hung(policies: Path) -> None:
    def explode(plan: DevicePlan, files: dict[str, str]) -> None:
        raise ValueError(f"handler failed on {plan.device}")

    policy, problems = load_policy(policies)
    with pytest.raises(RuntimeError, match="handler failed on"):
        render_fleet(validate_policy(policy, problems), explode, jobs=2, min_parallel=0)


def test_yaml_parsed_in_workers_gives_the_same_documents_and_problems(
    policies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files parsed in forked workers: the same documents, positions and diagnostics, in the same order."""
    from controller.load import loader

    repo = shutil.copytree(policies, tmp_path / "policies")
    (repo / "journeys" / "zz-broken.yaml").write_text("apiVersion: qoectl/v1\nkind: Journey\nmetadata: [unclosed\n")
    (repo / "journeys" / "aa-tagged.yaml").write_text("apiVersion: !!python/name:os.system qoectl/v1\n")
    monkeypatch.setattr(loader, "MIN_PARALLEL_BYTES", 0)
    one = loader.read_documents(repo, jobs=1)
    two = loader.read_documents(repo, jobs=2)
    assert len(one[0]) > 10 and len(one[1]) == 2
    assert [(d.file, d.index, d.data, d.positions) for d in one[0]] == [
        (d.file, d.index, d.data, d.positions) for d in two[0]
    ]
    assert [d.format() for d in one[1]] == [d.format() for d in two[1]]


def test_large_plan_prints_a_table_per_platform_and_each_note_once(policies: Path, tmp_path: Path) -> None:
    first = run("plan", policies, "--out", tmp_path / "out", "--no-diff")
    assert first.exit_code == 2
    lines = first.stdout.splitlines()
    for platform in platforms():
        row = next(line for line in lines if f" {platform} " in line and "│" in line)
        assert "│" in row
    assert "devices that change (240)" in first.stdout
    assert "the first 50 of 240: --all-devices lists every device" in first.stdout
    notes = [line for line in lines if line.startswith("note: ")]
    assert notes and len(notes) == len(set(notes)) and len(notes) < 20
    assert any(" devices (" in n and " more): " in n for n in notes)
    assert f"{DEVICES} of {DEVICES} devices change" in first.stdout

    every = run("plan", policies, "--out", tmp_path / "out", "--no-diff", "--all-devices")
    assert every.exit_code == 0 and "no changes" in every.stdout
    build_ = build(policies)
    for p in build_.plans:
        assert f" {p.device} " in every.stdout  # a row each
    noted = {p.device for p in build_.plans if p.notes}
    shown = " ".join(line for line in every.stdout.splitlines() if line.startswith("note: "))
    assert noted and all(d in shown for d in noted)
