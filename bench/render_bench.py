"""Render benchmark: per platform, rendering a generated fleet at this tree against an earlier commit.

What it measures: the plans of a generated fleet (:mod:`bench.fleet`, every
platform) are compiled once; each timed pass then renders every device once,
per platform, split into the renderer's context (``renderer.context(plan)``)
and the templates (``renderer.render_context(ctx)``). The baseline is the same
fleet rendered by an earlier commit, checked out with ``git worktree`` into a
temporary folder (removed at the end): two worker processes, one per tree,
take turns pass by pass (interleaved), so both see the same machine load, and
the ratio before/after is taken within each round.

Before each timed pass every memo (``functools`` cache) of the render modules
is cleared, but the compiled templates: as in ``qoectl plan``, where each
worker renders each device once and only the devices that share journeys
share memoised parts.

Both trees must render the same bytes: each worker hashes every rendered file
(SHA-256) in an untimed first pass, and the benchmark compares the two sets.

    python bench/render_bench.py                         # 2,000 devices, 5 rounds, before = BASELINE
    python bench/render_bench.py --devices 10000 --runs 7 --before HEAD~3
    python bench/render_bench.py --after HEAD                # a commit instead of the working tree

Results go to ``bench/results/render.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The commit before the template-speed work (issue 14): what --before defaults to.
BASELINE = "7353a99"
FOCUS = ("fortios_sdwan", "juniper_junos")


# --------------------------------------------------------------------------- worker (runs inside one tree)


def _clear_render_memos() -> None:
    """Clear every functools cache of the render modules but the Jinja environment (templates stay compiled)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith(("controller.render", "controller.platforms")) or module is None:
            continue
        for attr, value in vars(module).items():
            if attr in ("environment", "_registry") or not hasattr(value, "cache_clear"):
                continue
            if getattr(value, "__module__", None) == name:
                value.cache_clear()


def _worker(tree: Path, fleet_dir: Path) -> None:
    """Compile the fleet with ``tree``'s code, then answer "hash" and "run" lines on stdin with JSON lines."""
    sys.path.insert(0, str(tree))
    from controller.pipeline import build
    from controller.render import get_renderer

    plans = build(fleet_dir).plans
    by_platform: dict[str, list[Any]] = {}
    for plan in plans:
        by_platform.setdefault(plan.platform, []).append(plan)
    groups = [(name, get_renderer(name), group) for name, group in sorted(by_platform.items())]
    for line in sys.stdin:
        command = line.strip()
        if command == "hash":
            files = {}
            for name, renderer, group in groups:
                assert renderer is not None
                for plan in group:
                    for file, text in renderer.render(plan).items():
                        files[f"{name}/{plan.device}/{file}"] = hashlib.sha256(text.encode()).hexdigest()
            answer: dict[str, Any] = {"files": files, "devices": {name: len(group) for name, _, group in groups}}
        elif command == "run":
            _clear_render_memos()
            answer = {}
            for name, renderer, group in groups:
                assert renderer is not None
                t0 = time.perf_counter()
                contexts = [renderer.context(plan) for plan in group]
                t1 = time.perf_counter()
                for ctx in contexts:
                    renderer.render_context(ctx)
                t2 = time.perf_counter()
                answer[name] = {"context_s": t1 - t0, "template_s": t2 - t1}
                del contexts
        else:
            break
        print(json.dumps(answer), flush=True)


# --------------------------------------------------------------------------- driver


class _Tree:
    """A worker process rendering with one tree's code."""

    def __init__(self, tree: Path, fleet_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--fleet", str(fleet_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"render worker exited with {self.proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):  # the worker has already exited (its error is on stderr)
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _summary(rounds: list[dict[str, dict[str, Any]]], platforms: list[str]) -> dict[str, Any]:
    """Per platform and in total: seconds before/after (min/median/max) and the per-round ratio before/after."""

    def seconds(r: dict[str, Any], side: str, name: str, part: str = "") -> float:
        t = r[side][name]
        return float(t[part]) if part else float(t["context_s"] + t["template_s"])

    out: dict[str, Any] = {}
    for name in [*platforms, "total"]:
        names = platforms if name == "total" else [name]
        row: dict[str, Any] = {}
        for side in ("before", "after"):
            row[side] = _spread([sum(seconds(r, side, n) for n in names) for r in rounds])
            for part in ("context_s", "template_s"):
                row[f"{side}_{part}"] = _spread([sum(seconds(r, side, n, part) for n in names) for r in rounds])
        row["ratio"] = _spread(
            [sum(seconds(r, "before", n) for n in names) / sum(seconds(r, "after", n) for n in names) for r in rounds]
        )
        out[name] = row
    for side in ("before", "after"):
        shares = [
            sum(seconds(r, side, n) for n in FOCUS if n in platforms) / sum(seconds(r, side, n) for n in platforms)
            for r in rounds
        ]
        out[f"focus_share_{side}"] = _spread(shares)
    return out


def _print(summary: dict[str, Any], platforms: list[str], devices: dict[str, int]) -> None:
    print(f"{'platform':15} {'devices':>7}  {'before s (min/med/max)':>24}  {'after s (min/med/max)':>24}  ratio (med)")
    for name in [*platforms, "total"]:
        row = summary[name]
        n = sum(devices.values()) if name == "total" else devices[name]
        b, a = row["before"], row["after"]
        print(
            f"{name:15} {n:7d}  {b['min']:7.3f} {b['median']:7.3f} {b['max']:7.3f}  "
            f"{a['min']:7.3f} {a['median']:7.3f} {a['max']:7.3f}  {row['ratio']['median']:.2f}x"
        )
    for side in ("before", "after"):
        s = summary[f"focus_share_{side}"]
        print(f"FortiOS + Junos share of render time, {side}: {100 * s['median']:.0f} % (median)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--journeys", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5, help="interleaved rounds (each: one pass per tree)")
    ap.add_argument("--before", default=BASELINE, help="commit to compare with (default: %(default)s)")
    ap.add_argument("--after", help="a commit to measure instead of this working tree (also checked out)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "render.json")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--fleet", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.fleet)
        return
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench import fleet

    def commit(ref: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    before = commit(args.before)
    after = commit(args.after) if args.after else None
    with tempfile.TemporaryDirectory(prefix="qoectl-render-bench-") as tmp:
        root = Path(tmp)
        fleet.generate(root / "fleet", args.devices, args.journeys)
        checkouts = {"before": before, "after": after}
        worktrees: dict[str, Path] = {}
        trees: dict[str, _Tree] = {}
        try:
            for side, ref in checkouts.items():
                if ref is not None:
                    worktrees[side] = root / side
                    add = ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(root / side), ref]
                    subprocess.run(add, check=True)
            trees = {side: _Tree(worktrees.get(side, REPO), root / "fleet") for side in checkouts}
            hashes = {side: tree.ask("hash") for side, tree in trees.items()}
            same = hashes["before"]["files"] == hashes["after"]["files"]
            devices: dict[str, int] = hashes["after"]["devices"]
            platforms = sorted(devices)
            rounds = []
            for k in range(args.runs):
                order = ("before", "after") if k % 2 == 0 else ("after", "before")
                rounds.append({side: trees[side].ask("run") for side in order})
        finally:
            for tree in trees.values():
                tree.close()
            for path in worktrees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
    summary = _summary(rounds, platforms)
    _print(summary, platforms, devices)
    whole = hashlib.sha256()
    for path, sha in sorted(hashes["after"]["files"].items()):
        whole.update(f"{sha}  {path}\n".encode())
    digest = whole.hexdigest()
    print(f"rendered files: {len(hashes['after']['files'])}, identical before/after: {same} (sha256 of all: {digest})")
    result = {
        "before": before,
        "after": after or "working tree",
        "devices": args.devices,
        "journeys": args.journeys,
        "runs": args.runs,
        "per_platform_devices": devices,
        "identical_output": same,
        "files": len(hashes["after"]["files"]),
        "files_sha256": digest,
        "summary": summary,
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if not same:
        sys.exit("rendered output differs between the two trees")


if __name__ == "__main__":
    main()
