"""``qoectl plan`` after a one-file edit, with the plan cache (issue 14 goal 1): whole CLI processes.

On a generated fleet (``bench/fleet.py``: 10,000 devices x 50 journeys by default), the output folder is
planned once (which keeps the cache), then each repetition runs, in this order:

* **full plan**: ``qoectl plan --no-cache`` re-planning a second output folder of the same fleet (every
  device compiled, rendered and compared): the reference every other figure is a ratio of;
* **no edit**: ``qoectl plan`` with nothing changed (the floor of an incremental plan: load, policy-wide
  checks, fingerprints, output);
* **one narrow journey**: one journey scoped to a few sites has its flows changed;
* **one broad journey**: one journey reaching most of the fleet has its share changed;
* **one device**: one device's WAN bandwidth changed (its inventory file holds 500 devices);
* **Settings**: ``priority_cap_pct`` changed, which every device depends on (a full recompile).

Each edit alternates between two values, so every repetition really changes something. Each run is a
new process (``python -c`` with ``PYTHONPATH`` at the source tree, like ``bench/plan_bench.py``); wall
time, and CPU time of the process and its workers, are measured around it. The device counts are the
plan's own summary ("N of M devices change").

    .venv/bin/python bench/incremental_bench.py --devices 10000 --runs 5
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import fleet  # noqa: E402

CLI = 'import sys; from controller.cli.main import main; sys.argv[0] = "qoectl"; main()'


def run(source: Path, policy: Path, out: Path, *flags: str) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds with the workers', exit code, summary line) of one ``qoectl plan``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, "plan", str(policy), "--out", str(out), *flags],
        env={**os.environ, "PYTHONPATH": str(source), "NO_COLOR": "1", "COLUMNS": "200"},
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 2):
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = re.search(r"(no changes|[\d,]+ of [\d,]+ devices change)", done.stdout)
    return wall, cpu, done.returncode, summary[1] if summary else "?"


def _docs(path: Path) -> list[Any]:
    return list(yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _write(path: Path, docs: list[Any]) -> None:
    path.write_text(yaml.dump_all(docs, Dumper=fleet.DUMPER, sort_keys=False))


def _journey(policy: Path, narrow: bool) -> tuple[Path, int]:
    """The file and index of the first journey scoped to named sites (``narrow``), else of the first one
    scoped by context alone or not at all (it reaches most of the fleet)."""
    for path in sorted((policy / "journeys").glob("*.yaml")):
        for i, doc in enumerate(_docs(path)):
            scope = doc["spec"].get("scope", {})
            if (narrow and "sites" in scope) or (not narrow and not {"sites", "device_tags"} & set(scope)):
                return path, i
    raise SystemExit("the fleet has no such journey")


def edits(policy: Path) -> dict[str, Callable[[int], None]]:
    narrow, broad = _journey(policy, True), _journey(policy, False)
    inventories = sorted((policy / "inventory").glob("devices-*.yaml"))
    inventory = inventories[len(inventories) // 2]

    def journey(where: tuple[Path, int]) -> Callable[[int], None]:
        key = "share_pct" if "share_pct" in _docs(where[0])[where[1]]["spec"]["bandwidth"] else "concurrent_flows"
        base = _docs(where[0])[where[1]]["spec"]["bandwidth"][key]

        def edit(n: int) -> None:
            docs = _docs(where[0])
            docs[where[1]]["spec"]["bandwidth"][key] = base + (1 + n % 2) * (0.5 if key == "share_pct" else 5)
            _write(where[0], docs)

        return edit

    def device(n: int) -> None:
        docs = _docs(inventory)
        wan = next(i for i in docs[0]["spec"]["devices"][7]["interfaces"] if i["role"] == "wan")
        wan["bandwidth_kbps"] = 50_000 + 1_000 * (n % 2)
        _write(inventory, docs)

    def settings(n: int) -> None:
        docs = _docs(policy / "qoectl.yaml")
        docs[0]["spec"]["priority_cap_pct"] = 33 + n % 2
        _write(policy / "qoectl.yaml", docs)

    return {
        "one narrow journey": journey(narrow),
        "one broad journey": journey(broad),
        "one device": device,
        "Settings": settings,
    }


def _spread(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--journeys", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--source", type=Path, default=HERE.parent, help="the qoectl source tree to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qoectl-incremental-") as tmp:
        work = Path(tmp)
        info = fleet.generate(work / "policies", devices=args.devices, journeys=args.journeys)
        policy, out, reference = info.root, work / "out", work / "full"
        for folder, flags in ((out, ()), (reference, ("--no-cache",))):
            run(args.source, policy, folder, "--no-diff", *flags)  # first plans: a full tree (in out, the cache)
        scenarios = {"no edit": None, **edits(policy)}
        walls: dict[str, list[float]] = {"full plan": []}
        cpus: dict[str, list[float]] = {"full plan": []}
        said: dict[str, set[str]] = {}
        for n in range(args.runs):
            wall, cpu, _, _ = run(args.source, policy, reference, "--no-cache")
            walls["full plan"].append(wall)
            cpus["full plan"].append(cpu)
            for name, edit in scenarios.items():
                if edit is not None:
                    edit(n + 1)
                wall, cpu, _, summary = run(args.source, policy, out)
                walls.setdefault(name, []).append(wall)
                cpus.setdefault(name, []).append(cpu)
                said.setdefault(name, set()).add(summary)
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        full = statistics.median(walls["full plan"])
        print(f"\n{info.devices:,} devices x {info.journeys} journeys, {args.runs} runs, {os.cpu_count()} CPUs\n")
        print("| scenario | wall s (min / median / max) | CPU s (median) | wall vs full plan | what the plan said |")
        print("|---|---:|---:|---:|---|")
        for name in walls:
            ratio = statistics.median(walls[name]) / full
            print(
                f"| {name} | {_spread(walls[name])} | {statistics.median(cpus[name]):.2f} | {ratio:.2f}x | "
                f"{'; '.join(sorted(said.get(name, {'every device compiled'})))} |"
            )


if __name__ == "__main__":
    main()
