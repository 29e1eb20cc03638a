"""The independent floor of ``qoectl plan`` (issue 14): one whole process that does only the unavoidable work.

    python bench/plan_floor.py prepare FLEET CONTEXTS --jobs N   # once, not timed
    python bench/plan_floor.py run FLEET CONTEXTS OUT --jobs N   # the timed process

``prepare`` compiles the fleet with qoectl and keeps each device's template
context as plain data: every dataclass (the frozen plan and its parts) becomes a
``dict`` of its fields, named tuples and lists stay as they are, and the
contexts are pickled in ``N`` shares, one per worker, in ``qoectl plan``'s
device order and chunks.

``run`` is what a plan cannot do without, in as many processes as ``qoectl
plan --jobs N``: read every YAML file of the fleet with libyaml
(``yaml.CSafeLoader``, the files shared between the workers), take the
contexts as plain data (unpickling them stands in for building them from the
parsed YAML), render the same templates (``Renderer.render_context``), write
the same files into a new folder, and the manifest with every file's SHA-256,
then move the folder to ``OUT``. The manifest is the same as ``qoectl plan``'s
for the same fleet, so the floor's output is checked against the CLI's.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import multiprocessing
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _plain(value: Any, memo: dict[int, Any]) -> Any:
    """Dataclasses as dicts of their fields and properties, recursively; everything else as it is (tuples keep
    their type). An object met twice becomes the same plain object (``memo``), so pickling keeps the sharing."""
    known = memo.get(id(value))
    if known is not None:
        return known[1]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)] + _computed(type(value))
        plain: Any = {name: _plain(getattr(value, name), memo) for name in names}
    elif isinstance(value, dict):
        plain = {k: _plain(v, memo) for k, v in value.items()}
    elif isinstance(value, list):
        plain = [_plain(v, memo) for v in value]
    elif type(value) is tuple:
        plain = tuple(_plain(v, memo) for v in value)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        plain = type(value)(*(_plain(v, memo) for v in value))
    else:
        return value
    memo[id(value)] = (value, plain)  # the original kept alive, so its id is not reused
    return plain


def _computed(cls: type) -> list[str]:
    """The properties of a class (templates read them like fields)."""
    return [
        name
        for klass in cls.__mro__
        for name, attr in vars(klass).items()
        if isinstance(attr, property | functools.cached_property)
    ]


def prepare(fleet: Path, contexts: Path, jobs: int) -> None:
    """Compile ``fleet`` with qoectl and pickle each device's context as plain data, in ``jobs`` shares."""
    from controller.pipeline import build, device_chunks
    from controller.render import get_renderer

    result = build(fleet, jobs=jobs)
    assert result.ok, result.errors[:3]
    rows = []
    memo: dict[int, Any] = {}
    for plan in sorted(result.plans, key=lambda p: p.device):
        renderer = get_renderer(plan.platform)
        assert renderer is not None
        rows.append((plan.device, plan.platform, _plain(renderer.context(plan), memo)))
    contexts.mkdir(parents=True, exist_ok=True)
    chunks = device_chunks(len(rows), jobs)
    for worker in range(jobs):
        share = [rows[start:stop] for start, stop in chunks[worker::jobs]]
        (contexts / f"share-{worker}.pickle").write_bytes(pickle.dumps(share, protocol=pickle.HIGHEST_PROTOCOL))


def _work(fleet: Path, contexts: Path, staging: Path, worker: int, jobs: int, out: Any) -> None:
    import yaml

    from controller.render import get_renderer
    from controller.render.tree import sha256

    files = sorted(p for p in fleet.rglob("*") if p.suffix in (".yaml", ".yml"))
    for path in files[worker::jobs]:
        for _ in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader):
            pass
    share = pickle.loads((contexts / f"share-{worker}.pickle").read_bytes())
    entries: dict[str, dict[str, Any]] = {}
    for chunk in share:
        for device, platform, ctx in chunk:
            renderer = get_renderer(platform)
            assert renderer is not None
            folder = staging / device
            folder.mkdir()
            hashes = {}
            for name, text in renderer.render_context(ctx).items():
                (folder / name).write_text(text, encoding="utf-8")
                hashes[name] = sha256(text)
            entries[device] = {"platform": platform, "files": hashes}
    out.send(entries)
    out.close()


def run(fleet: Path, contexts: Path, out_dir: Path, jobs: int) -> None:
    from controller import __version__
    from controller.render import get_renderer, platforms
    from controller.render.tree import MANIFEST, MANIFEST_KIND, MANIFEST_VERSION

    for platform in platforms():  # compiled once here, inherited by the workers
        renderer = get_renderer(platform)
        assert renderer is not None
        for _, template in renderer.outputs:
            renderer.template(template)
    out_dir = out_dir.resolve()
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.floor-", dir=out_dir.parent))
    ctx = multiprocessing.get_context("fork")
    gc.freeze()
    pipes = [ctx.Pipe(duplex=False) for _ in range(jobs)]
    procs = [ctx.Process(target=_work, args=(fleet, contexts, staging, w, jobs, pipes[w][1])) for w in range(jobs)]
    for p in procs:
        p.start()
    devices: dict[str, Any] = {}
    for receive, _ in pipes:
        devices.update(receive.recv())
    for p in procs:
        p.join()
        assert p.exitcode == 0
    doc = {"kind": MANIFEST_KIND, "version": MANIFEST_VERSION, "qoectl": __version__, "devices": devices}
    (staging / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(staging, out_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "run"])
    ap.add_argument("fleet", type=Path)
    ap.add_argument("contexts", type=Path)
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if args.step == "prepare":
        prepare(args.fleet, args.contexts, args.jobs)
    else:
        assert args.out is not None and not args.out.exists(), "run writes a new folder"
        run(args.fleet, args.contexts, args.out, args.jobs)


if __name__ == "__main__":
    main()
