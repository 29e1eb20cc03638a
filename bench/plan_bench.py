"""``qoectl plan`` through the CLI on a generated fleet: wall time and peak RSS of whole processes (issue 14).

Scenarios per fleet size (``bench/fleet.py``, 50 journeys), each repetition in this order:
a first plan into an empty ``--out`` with ``--no-diff``, a full unchanged re-plan with
``--no-diff --no-cache`` (every device compiled, rendered and compared again), an unchanged
re-plan with the defaults (diffs; the plan cache where the tree has one), and the floor
(``bench/plan_floor.py``: libyaml parse, the same contexts as plain data, the same templates and
files, as many processes; its contexts are prepared once per fleet, not timed) with the ratio of
each scenario's median to the floor's median.
Each run is ``/usr/bin/time -v`` around the process: wall time, CPU time (user +
system, workers included: steadier than wall time on a shared machine) and peak
RSS (the largest process, workers included). ``--compare DIR`` runs the same with the source tree
``DIR`` (e.g. a ``git worktree`` of an older commit) interleaved, on the same
fleet, for a before/after table.

    .venv/bin/python bench/plan_bench.py --devices 2000 10000 --runs 5 [--compare /tmp/plan-before]

No output tree is deleted while the benchmark runs: every run writes into a folder of its own and the
trees are removed only at the end. On ext4, creating an inode skips inodes freed in the last minutes
(``recently_deleted`` in the kernel's inode allocator), so a ``rm -rf`` of 10,000 device folders just
before a plan made each ``mkdir`` and file creation of that plan cost ~0.45 ms of kernel time instead of
~0.02 ms: 15-17 s of system time in a 10,000-device plan, the floor's alike, timing the file system's
recovery rather than qoectl. ``--out-root`` puts the outputs elsewhere (e.g. a tmpfs) to take the disk
out of the figures altogether.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import fleet  # noqa: E402

CLI = 'import sys; from controller.cli.main import main; sys.argv[0] = "qoectl"; main()'
SCENARIOS = {
    "first --no-diff": ["--no-diff"],
    "re-plan --no-diff --no-cache": ["--no-diff", "--no-cache"],
    "re-plan (defaults)": [],
}
FLOOR = HERE / "plan_floor.py"


def timed(source: Path, policy: Path, out: Path, flags: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds with the workers', peak RSS MiB) of one ``qoectl plan`` run from ``source``."""
    cmd = [sys.executable, "-c", CLI, "plan", str(policy), "--out", str(out), *flags]
    if "--no-cache" in flags and not _knows(source, "--no-cache"):
        cmd.remove("--no-cache")  # a tree from before the plan cache: every plan is a full plan
    return _time(cmd, source)


def _knows(source: Path, flag: str) -> bool:
    """Whether ``source``'s CLI has ``flag`` (in any module of controller/cli: the plan command left main.py)."""
    return any(flag in p.read_text(encoding="utf-8") for p in (source / "controller" / "cli").glob("*.py"))


def floor_timed(policy: Path, contexts: Path, out: Path, jobs: int) -> tuple[float, float, float]:
    """The same figures for one floor process (``bench/plan_floor.py run``) writing a new ``out``."""
    cmd = [sys.executable, str(FLOOR), "run", str(policy), str(contexts), str(out), "--jobs", str(jobs)]
    return _time(cmd, HERE.parent)


def _time(cmd: list[str], source: Path) -> tuple[float, float, float]:
    cmd = ["/usr/bin/time", "-v", *cmd]
    env = {**os.environ, "PYTHONPATH": str(source)}  # and cwd: ``-c`` puts the working folder first on sys.path
    done = subprocess.run(
        cmd, env=env, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if done.returncode not in (0, 2):
        raise SystemExit(f"{cmd[2:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    cpu = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr)
    assert wall is not None and rss is not None and len(cpu) == 2, done.stderr
    seconds = int(wall[1] or 0) * 3600 + int(wall[2]) * 60 + float(wall[3])
    return seconds, sum(map(float, cpu)), int(rss[1]) / 1024


def _devices(out: Path) -> object:
    """The devices and file hashes of a written tree's manifest (the plan cache's own entries aside)."""
    return json.loads((out / ".qoectl-plan.json").read_text(encoding="utf-8"))["devices"]


def _spread(values: list[float], digits: int) -> str:
    """min / median / max."""
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compare", type=Path, help="another source tree to run interleaved (labelled 'before')")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--jobs", type=int, default=2, help="the floor's processes (the CLI uses its default: the CPUs)")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor")
    ap.add_argument("--out-root", type=Path, help="write the output trees here (default: beside the fleet)")
    args = ap.parse_args()
    sources = {"after": HERE.parent} if args.compare is None else {"before": args.compare, "after": HERE.parent}
    results: dict[str, dict[str, dict[str, list[list[float]]]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="plan-bench-out-", dir=args.out_root) as out_tmp,
    ):
        outputs = Path(out_tmp)
        for n in args.devices:
            policy = Path(tmp) / f"fleet-{n}"
            fleet.generate(policy, devices=n, journeys=50)
            contexts = Path(tmp) / f"contexts-{n}"
            if not args.no_floor:
                subprocess.run(
                    [sys.executable, str(FLOOR), "prepare", str(policy), str(contexts), "--jobs", str(args.jobs)],
                    check=True,
                )
            per = results.setdefault(str(n), {})
            for run in range(args.runs):
                for label, source in sources.items():
                    out = outputs / f"out-{n}-{label}-{run}"
                    for scenario, flags in SCENARIOS.items():
                        figure = timed(source, policy, out, flags)
                        per.setdefault(scenario, {}).setdefault(label, []).append(list(figure))
                        print(f"{n} {scenario} {label}: {figure[0]:.2f} s, CPU {figure[1]:.2f} s, {figure[2]:.0f} MiB")
                    if not args.no_floor:
                        floor_out = outputs / f"out-{n}-floor-{label}-{run}"
                        figure = floor_timed(policy, contexts, floor_out, args.jobs)
                        if _devices(floor_out) != _devices(out):
                            raise SystemExit(f"the floor wrote other files than {label}'s plan")
                        per.setdefault("floor", {}).setdefault(label, []).append(list(figure))
                        print(f"{n} floor ({label}): {figure[0]:.2f} s, CPU {figure[1]:.2f} s, {figure[2]:.0f} MiB")
            floor_runs = [r for runs in per.get("floor", {}).values() for r in runs]
            for scenario, by_label in per.items():
                for label, runs in by_label.items():
                    wall, cpu, peak = (_spread([r[i] for r in runs], 0 if i == 2 else 2) for i in range(3))
                    ratio = ""
                    if floor_runs and scenario != "floor":
                        floor_median = statistics.median(r[0] for r in floor_runs)
                        ratio = f"  / floor {statistics.median(r[0] for r in runs) / floor_median:.2f}"
                    print(
                        f"{n:>6} {scenario:<28} {label:<6} wall s {wall}  CPU s {cpu}  peak RSS MiB {peak}{ratio}",
                        flush=True,
                    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
