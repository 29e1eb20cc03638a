"""Benchmark: the fast YAML loader (libyaml events) against the careful one on the same policy files.

``yamlsrc.load_documents`` reads plain files through :mod:`controller.load.fastyaml` and everything
else through the careful pure-Python path (``yamlsrc._load_documents``); ``tests/test_yaml_loaders.py``
shows that they agree. This times both on every YAML file of a generated fleet (``bench/fleet.py``),
in one process, interleaved run by run, and reports the ratio careful / fast for each run. Parsing
only: no schema, model or compile. The fast path finds positions from the text when they are first
read (``yamlsrc.LazyPositions``), so it is timed without and with every document's positions read.

    .venv/bin/python bench/yaml_bench.py [--devices 2000] [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import generate
from controller.load import fastyaml
from controller.load.yamlsrc import _load_documents, _PolicyLoader, load_documents


def _mmm(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(x) for x in (min(values), statistics.median(values), max(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="Keep the generated fleet in this folder.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        if not any(root.rglob("*.yaml")):
            generate(root, devices=args.devices)
        texts = [(str(p), p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.yaml"))]
    size = sum(len(t) for _, t in texts) / 2**20
    print(f"{len(texts)} files, {size:.1f} MiB of YAML ({args.devices} devices); libyaml: {fastyaml.AVAILABLE}")
    print(f"{args.runs} runs, min / median / max; load average {os.getloadavg()[0]:.2f} before")
    fast_s: list[float] = []
    with_positions_s: list[float] = []
    careful_s: list[float] = []
    declined = 0
    for _ in range(args.runs):
        t = time.perf_counter()
        fast = [load_documents(text, name) for name, text in texts]
        fast_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for docs, _ in [load_documents(text, name) for name, text in texts]:
            for doc in docs:
                len(doc.positions)  # found from the text when first read (as validation does)
        with_positions_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        careful = [_load_documents(text, name, _PolicyLoader) for name, text in texts]
        careful_s.append(time.perf_counter() - t)
        assert [len(d) for d, _ in fast] == [len(d) for d, _ in careful]
        assert not any(p for _, p in careful), "the fleet must be valid"
        declined = sum(fastyaml.plain_documents(text, 64) is None for _, text in texts)
        del fast, careful
    ratio = [c / f for c, f in zip(careful_s, fast_s, strict=True)]
    ratio_positions = [c / f for c, f in zip(careful_s, with_positions_s, strict=True)]
    print(f"  load_documents (fast path)   {_mmm(fast_s)} s  ({declined} of {len(texts)} files declined)")
    print(f"  the same + every position    {_mmm(with_positions_s)} s")
    print(f"  careful path                 {_mmm(careful_s)} s")
    print(f"  careful / fast               {_mmm(ratio, '{:.1f}')} x (run by run)")
    print(f"  careful / fast + positions   {_mmm(ratio_positions, '{:.1f}')} x (run by run)")
    print(f"load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
