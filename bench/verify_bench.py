"""Benchmark: evaluate 1,000,000 samples over 50 journeys x 100 sites.

Goal: under 2 s and under 500 MiB on a 2-core machine, reported against the
time to merely read the same file (bytes, and CSV rows with the csv module)
in the same run. The measured stages run in a fresh child process so its peak
RSS belongs to them alone. "verify" is what ``qoectl verify`` does with the
file: read it, parse and check every row, evaluate. Plain, clean CSV takes the
pyarrow fast path when pyarrow is installed; ``--exact`` times the reader that
every other file takes. The load average is printed: on a shared machine it
explains most of the spread between runs.

    .venv/bin/python bench/verify_bench.py [--samples 1000000] [--keep DIR] [--exact]

``--readers`` times every CSV reader (the csv module, the bulk split, pyarrow as one table and
streamed, and ``read_csv``, which picks among them) on the same file, interleaved in one process, as a
ratio against the csv module: on the clean file and on a copy with one bad row, which pyarrow declines.

``--process 1000000,5000000`` times instead the whole ``qoectl verify`` process (start-up, policy build,
reading, evaluation, the terminal summary) on files of those sizes, ``--runs`` times each (min / median
/ max), each run next to the floor: a process that reads the same file with ``pyarrow.csv.read_csv``.
Peak RSS is each child's own (``os.wait4``). ``--compare DIR`` also runs ``python -m controller.cli.main``
in the source tree DIR (e.g. a ``git worktree`` of an older commit) in the same rounds, so that both
meet the same load. ``--command`` replaces ``qoectl`` (e.g. to time an older
tree: ``--command "python -m controller.cli.main" --cwd /tmp/old``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNEYS, SITES = 50, 100
T0 = 1_735_689_600.0
KINDS = ("voice", "interactive", "streaming", "bulk")


def write_policy(folder: Path) -> None:
    lines = ["apiVersion: qoectl/v1", "kind: Inventory", "metadata: {name: bench}", "spec:", "  sites:"]
    lines += [f"    - {{name: site-{s:03d}, context: branch}}" for s in range(SITES)]
    lines += ["  transports:", "    - {name: inet, base_delay_ms: 20, jitter_ms: 2, loss_pct: 0.05}", "  devices:"]
    for s in range(SITES):
        lines += [
            f"    - name: r-{s:03d}",
            "      platform: linux",
            f"      host: r-{s:03d}.bench.example",
            f"      site: site-{s:03d}",
            "      interfaces:",
            "        - {name: wan0, role: wan, transport: inet, bandwidth_kbps: 1000000}",
            "        - {name: lan0, role: lan}",
        ]
    docs = ["\n".join(lines)]
    for j in range(JOURNEYS):
        kind = KINDS[j % 4]
        target = {
            "voice": "{voice: {codec: g711, mos: 4.0}}",
            "interactive": "{interactive: {apdex_t_ms: 500, apdex: 0.9, response_time_ms: 2000}}",
            "streaming": "{video: {mode: streaming, bitrate_kbps: 2000, startup_s: 4, rebuffering_pct: 2}}",
            "bulk": "{bulk: {min_throughput_kbps: 1000}}",
        }[kind]
        proto = "udp" if kind == "voice" else "tcp"
        priority = "high" if kind == "voice" else "normal"
        docs.append(
            "\n".join(
                [
                    "apiVersion: qoectl/v1",
                    "kind: Journey",
                    f"metadata: {{name: j{j:02d}-{kind}}}",
                    "spec:",
                    f"  traffic: {{match: [{{protocol: {proto}, destination_ports: [{20000 + j}]}}]}}",
                    f"  target: {target}",
                    f"  priority: {priority}",
                    "  bandwidth: {per_flow_kbps: 10, concurrent_flows: 1}",
                ]
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text("\n---\n".join(docs) + "\n")


def write_samples(path: Path, total: int) -> None:
    """An hour of samples, spread evenly over journeys x sites; about 5 % of segments are out of target."""
    rng = random.Random(7)
    per_segment = total // (JOURNEYS * SITES)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(("timestamp", "journey", "site", "metric", "value"))
        for j in range(JOURNEYS):
            kind = KINDS[j % 4]
            name = f"j{j:02d}-{kind}"
            for s in range(SITES):
                site = f"site-{s:03d}"
                bad = rng.random() < 0.05
                for k in range(per_segment):
                    ts = T0 + 3600.0 * k / per_segment
                    if kind == "voice":
                        metric = ("one_way_delay_ms", "jitter_ms", "loss_pct")[k % 3]
                        value = {
                            "one_way_delay_ms": 40 + rng.random() * (200 if bad else 20),
                            "jitter_ms": rng.random() * 4,
                        }.get(metric, rng.random() * (3 if bad else 0.1))
                    elif kind == "interactive":
                        metric, value = "response_time_ms", rng.expovariate(1 / (900 if bad else 150))
                    elif kind == "streaming":
                        metric = ("startup_s", "rebuffering_pct")[k % 2]
                        value = (
                            rng.random() * (6 if bad else 2)
                            if metric == "startup_s"
                            else rng.random() * (4 if bad else 1)
                        )
                    else:
                        metric, value = "throughput_kbps", 500 + rng.random() * (800 if bad else 5000)
                    out.writerow((f"{ts:.3f}", name, site, metric, f"{value:.3f}"))


def measure(policy: Path, samples: Path, exact: bool = False) -> dict[str, float | str]:
    """Run in a fresh process: read bytes, read CSV rows, then build + read/parse/check + evaluate.

    ``exact``: skip the pyarrow fast path, to time the reader every file that is not plain and clean takes.
    """
    from controller.evaluate.engine import Options, evaluate
    from controller.measure import fastcsv
    from controller.measure.files import FileSource, display, read_csv
    from controller.measure.samples import Problems, Vocabulary
    from controller.pipeline import build

    t = time.perf_counter()
    raw = samples.read_bytes()
    read_bytes_s = time.perf_counter() - t
    del raw
    t = time.perf_counter()
    with samples.open(newline="") as fh:
        rows = sum(1 for _ in csv.reader(fh))
    read_rows_s = time.perf_counter() - t
    t = time.perf_counter()
    result = build(policy)
    build_s = time.perf_counter() - t
    assert result.ok, [d.format() for d in result.errors][:5]
    vocab, now = Vocabulary(result.policy), time.time()
    t = time.perf_counter()
    if exact:
        problems = Problems(display(samples))
        data, diags = read_csv(samples, vocab, now, problems, fast=False), problems.diagnostics()
    else:
        data, diags = FileSource(samples).read(vocab, now)
    parse_s = time.perf_counter() - t
    assert not [d for d in diags if d.severity == "error"], [d.format() for d in diags][:5]
    t = time.perf_counter()
    evaluation = evaluate(result, data, (), Options())
    evaluate_s = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Which reader took the file, asked after the peak was read so that asking costs the figures nothing.
    columns, crlf = _header(samples)
    fast = not exact and fastcsv.read_path(samples, columns, crlf, vocab, now) is not None
    counts = evaluation.counts()
    return {
        "reader": "pyarrow fast path" if fast else "exact path" + ("" if fastcsv.available() else " (no pyarrow)"),
        "samples": float(len(data)),
        "csv_rows": float(rows - 1),
        "segments": float(len(evaluation.results)),
        "fail": float(counts["fail"]),
        "read_bytes_s": read_bytes_s,
        "read_csv_rows_s": read_rows_s,
        "policy_build_s": build_s,
        "parse_s": parse_s,
        "evaluate_s": evaluate_s,
        "verify_s": parse_s + evaluate_s,
        "peak_rss_mib": peak_mib,
    }


def _header(samples: Path) -> tuple[dict[str, int], bool]:
    """The generated file's columns (name -> index) and whether its lines end in CRLF."""
    with samples.open("rb") as fh:
        head = fh.readline().rstrip(b"\n")
    return {n: i for i, n in enumerate(head.rstrip(b"\r").decode().split(","))}, head.endswith(b"\r")


FLOOR = "import sys, pyarrow.csv; print(pyarrow.csv.read_csv(sys.argv[1]).num_rows)"


def child(command: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """Wall time (s), peak RSS (MiB) and exit code of one child process, its output discarded."""
    t = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def process_runs(
    policy: Path,
    samples: Path,
    runs: int,
    command: list[str] | None = None,
    cwd: Path | None = None,
    compare: Path | None = None,
) -> dict[str, Any]:
    """``runs`` x (the whole ``qoectl verify`` process, then pyarrow's read of the file in a process).

    ``compare``: a second source tree whose ``qoectl verify`` runs in the same rounds (``compare_*``).
    """
    qoectl = command or [str(Path(sys.executable).parent / "qoectl")]
    args = ["verify", str(policy), "--measurements", str(samples)]
    commands = {"verify": ([*qoectl, *args], cwd)}
    if compare is not None:
        commands["compare"] = ([sys.executable, "-m", "controller.cli.main", *args], compare)
    floor = [sys.executable, "-c", FLOOR, str(samples)]
    out: dict[str, Any] = {"floor_s": [], "floor_rss_mib": [], "exit": set()}
    for name in commands:
        out.update({f"{name}_s": [], f"{name}_rss_mib": []})
    for _ in range(runs):
        for name, (command_line, folder) in commands.items():
            wall, rss, code = child(command_line, folder)
            out[f"{name}_s"].append(wall)
            out[f"{name}_rss_mib"].append(rss)
            out["exit"].add(code)
        wall, rss, code = child(floor)
        assert code == 0, "pyarrow could not read the file"
        out["floor_s"].append(wall)
        out["floor_rss_mib"].append(rss)
    for name in commands:
        out[f"{name}_ratio"] = [v / f for v, f in zip(out[f"{name}_s"], out["floor_s"], strict=True)]
    out["ratio"] = out["verify_ratio"]
    return out


def readers_measure(policy: Path, samples: Path, runs: int) -> dict[str, list[float]]:
    """Each CSV reader on the same file, ``runs`` rounds in one process (readers interleaved), seconds.

    "exact" is the csv module (:func:`controller.measure.files.read_csv_module`); every other reader must
    give its samples and problems (``tests/test_measure_csv_readers.py``) and earns its place by this.
    """
    from controller.measure import fastcsv
    from controller.measure.files import read_csv, read_csv_module, read_csv_split
    from controller.measure.samples import Problems, Vocabulary
    from controller.pipeline import build

    vocab, now = Vocabulary(build(policy).policy), time.time()
    columns, crlf = _header(samples)

    def streamed() -> object:
        whole, fastcsv.WHOLE_BYTES = fastcsv.WHOLE_BYTES, 0
        try:
            return fastcsv.read_path(samples, columns, crlf, vocab, now)
        finally:
            fastcsv.WHOLE_BYTES = whole

    readers: dict[str, Callable[[], object]] = {
        "exact (csv module)": lambda: read_csv_module(samples, vocab, now, Problems("m")),
        "split in bulk": lambda: read_csv_split(samples, vocab, now, Problems("m")),
        "pyarrow, one table": lambda: fastcsv.read_path(samples, columns, crlf, vocab, now),
        "pyarrow, streamed": streamed,
        "read_csv (what verify runs)": lambda: read_csv(samples, vocab, now, Problems("m")),
    }
    out: dict[str, list[float]] = {name: [] for name in readers}
    out.update({f"{name}: took it": [] for name in readers})
    for _ in range(runs):
        for name, reader in readers.items():
            t = time.perf_counter()
            got = reader()
            out[name].append(time.perf_counter() - t)
            out[f"{name}: took it"].append(float(got is not None))
            del got
    return out


def readers_main(samples_n: int, runs: int, keep: Path | None) -> None:
    """``--readers``: every CSV reader against the exact one, on a clean file and on one with one bad row."""
    print(f"CSV readers, {runs} rounds, min / median / max; load average {os.getloadavg()[0]:.2f} before")
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_policy(folder / "policy")
        clean = folder / f"samples-{samples_n}.csv"
        if not clean.exists():
            write_samples(clean, samples_n)
        bad = folder / f"samples-{samples_n}-one-bad-row.csv"
        lines = clean.read_bytes().split(b"\n")
        fields = lines[len(lines) // 2].split(b",")
        lines[len(lines) // 2] = b",".join([*fields[:-1], b"lots"])  # a value that is no number
        bad.write_bytes(b"\n".join(lines))
        del lines
        for path, label in ((clean, "clean file"), (bad, "one bad row (pyarrow declines)")):
            child = [sys.executable, __file__, "--readers-child", str(runs), str(folder / "policy"), str(path)]
            r = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout)
            print(f"{label}: {path.stat().st_size / 2**20:.0f} MiB")
            base = r["exact (csv module)"]
            for name in [k for k in r if not k.endswith(": took it")]:
                ratio = [x / b for x, b in zip(r[name], base, strict=True)]
                took = "took the file" if all(r[f"{name}: took it"]) else "declined"
                print(f"  {name:<28} {_mmm(r[name])} s  {_mmm(ratio)} x exact  ({took})")
    print(f"load average {os.getloadavg()[0]:.2f} after")


def _mmm(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(x) for x in (min(values), statistics.median(values), max(values)))


def process_main(
    sizes: list[int],
    runs: int,
    keep: Path | None,
    command: list[str] | None,
    cwd: Path | None,
    compare: Path | None = None,
) -> None:
    goals = {1_000_000: (2.0, 4.0, None), 5_000_000: (8.0, None, 500.0)}
    print(f"whole process, {runs} runs, min / median / max; load average {os.getloadavg()[0]:.2f} before")
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_policy(folder / "policy")
        for n in sizes:
            path = folder / f"samples-{n}.csv"
            if not path.exists():
                write_samples(path, n)
            r = process_runs(folder / "policy", path, runs, command, cwd, compare)
            print(f"{n:>10,} samples, {path.stat().st_size / 2**20:.0f} MiB, exit {sorted(r['exit'])}")
            if compare is not None:
                print(f"  {compare}: {_mmm(r['compare_s'])} s, peak RSS {_mmm(r['compare_rss_mib'], '{:.0f}')} MiB")
                print(f"  {compare}: {_mmm(r['compare_ratio'])} x the floor (run by run)")
            print(f"  qoectl verify        {_mmm(r['verify_s'])} s, peak RSS {_mmm(r['verify_rss_mib'], '{:.0f}')} MiB")
            print(f"  pyarrow read (floor) {_mmm(r['floor_s'])} s, peak RSS {_mmm(r['floor_rss_mib'], '{:.0f}')} MiB")
            print(f"  ratio                {_mmm(r['ratio'])} x the floor (run by run)")
            seconds, ratio, mib = goals.get(n, (None, None, None))
            met = (seconds is None or max(r["verify_s"]) < seconds) and (ratio is None or max(r["ratio"]) <= ratio)
            met = met and (mib is None or max(r["verify_rss_mib"]) < mib)
            if n in goals:
                print(
                    f"  goal (< {seconds} s"
                    + (f", <= {ratio}x" if ratio else "")
                    + (f", < {mib:.0f} MiB" if mib else ""),
                    end="",
                )
                print(f", every run): {'met' if met else 'NOT met'}")
    print(f"load average {os.getloadavg()[0]:.2f} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", help="Comma-separated sample counts: time the whole qoectl verify process.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--command", help="Instead of this venv's qoectl (split like a shell would).")
    parser.add_argument("--cwd", type=Path, help="Working directory of --command.")
    parser.add_argument("--compare", type=Path, help="Also time the source tree in DIR, in the same rounds.")
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Keep the generated files in this folder.")
    parser.add_argument("--exact", action="store_true", help="Time the exact CSV reader (no pyarrow fast path).")
    parser.add_argument("--readers", action="store_true", help="Time every CSV reader against the exact one.")
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--readers-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.readers_child:
        runs, policy, samples = args.readers_child
        print(json.dumps(readers_measure(Path(policy), Path(samples), int(runs))))
        return
    if args.readers:
        readers_main(args.samples, args.runs, args.keep)
        return
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], exact=args.exact)))
        return
    if args.process:
        sizes = [int(x) for x in args.process.split(",")]
        command = shlex.split(args.command) if args.command else None
        process_main(sizes, args.runs, args.keep, command, args.cwd, args.compare)
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_policy(folder / "policy")
        write_samples(folder / "samples.csv", args.samples)
        size_mib = (folder / "samples.csv").stat().st_size / 2**20
        child = [sys.executable, __file__, "--measure", str(folder / "policy"), str(folder / "samples.csv")]
        done = subprocess.run(child + (["--exact"] if args.exact else []), capture_output=True, text=True, check=True)
    r = json.loads(done.stdout)
    load_after = os.getloadavg()
    print(f"file: {r['csv_rows']:.0f} rows, {size_mib:.1f} MiB;", end=" ")
    print(f"{r['segments']:.0f} journey x site results, {r['fail']:.0f} out of target")
    print(f"CSV reader           {r['reader']}")
    print(f"read bytes           {r['read_bytes_s']:.3f} s")
    print(f"read CSV rows        {r['read_csv_rows_s']:.3f} s (csv module, no conversion)")
    print(f"read + parse + check {r['parse_s']:.3f} s")
    print(f"evaluate             {r['evaluate_s']:.3f} s")
    print(f"verify (all above)   {r['verify_s']:.3f} s", end="")
    print(f"  = {r['verify_s'] / r['read_bytes_s']:.1f} x reading the bytes", end="")
    print(f", {r['verify_s'] / r['read_csv_rows_s']:.2f} x reading the CSV rows")
    print(f"policy build         {r['policy_build_s']:.3f} s (not part of the goal)")
    print(f"peak RSS             {r['peak_rss_mib']:.0f} MiB (fresh process)")
    print("load average         " + " ".join(f"{x:.2f}" for x in load_before) + " before, ", end="")
    print(" ".join(f"{x:.2f}" for x in load_after) + " after (1, 5, 15 min)")
    goal = r["verify_s"] < 2.0 and r["peak_rss_mib"] < 500
    print("goal (< 2 s, < 500 MiB):", "met" if goal else "NOT met")


if __name__ == "__main__":
    main()
