"""Same policy in, same bytes out: across runs, folders, file read order, file layout and hash seeds."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import controller.load.loader as loader
from controller.errors import Diagnostic, PolicyError
from controller.pipeline import build, render_plan
from tests.conftest import EXAMPLE_POLICIES
from tests.policy_builder import (
    PolicyRepo,
    device,
    interactive_journey,
    many_journeys_repo,
    service_classes,
    voice_journey,
)


def rendered(root: Path) -> dict[str, bytes]:
    result = build(root)
    assert result.ok, [d.format() for d in result.errors]
    return {f"{p.device}/{name}": text.encode("utf-8") for p in result.plans for name, text in render_plan(p).items()}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def messages(root: Path) -> list[str]:
    """Diagnostics without the folder they live in, in the order the user sees them."""
    try:
        diags: list[Diagnostic] = list(build(root).diagnostics)
    except PolicyError as exc:
        diags = exc.diagnostics
    prefix = os.path.relpath(root) + os.sep
    return [d.format().replace(prefix, "") for d in diags]


@pytest.fixture
def read_order(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make the loader read files in an order the test chooses: 'sorted', 'reversed' or 'shuffled'."""
    order = ["sorted"]
    original = loader.policy_files

    def reordered(root: Path) -> list[Path]:
        files = original(root)
        if order[0] == "reversed":
            return files[::-1]
        if order[0] == "shuffled":
            return random.Random(len(files)).sample(files, len(files))
        return files

    monkeypatch.setattr(loader, "policy_files", reordered)
    yield order


def _big_repo() -> PolicyRepo:
    """Many journeys on an IOS-XE router, plus a Linux router with two custom classes from two files."""
    repo = many_journeys_repo(20)
    repo.set_devices([*repo.devices(), device("hq-rtr1", "linux", "hq")])
    repo.add("classes/a.yaml", service_classes([{"name": "gold", "dscp": [5]}], name="a"))
    repo.add("classes/b.yaml", service_classes([{"name": "bronze", "dscp": [7]}], name="b"))
    for name, port in (("gold", 7001), ("bronze", 7002)):
        repo.add_journey(interactive_journey(f"{name}-app", port=port, service_class=name, scope={"sites": ["hq"]}))
    return repo


def test_same_input_same_bytes(tmp_path: Path) -> None:
    root = _big_repo().write(tmp_path / "p")
    first, second = rendered(root), rendered(root)
    assert first == second
    assert build(root).plans == build(root).plans


def test_example_is_stable_across_runs() -> None:
    assert rendered(EXAMPLE_POLICIES) == rendered(EXAMPLE_POLICIES)


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_file_read_order_does_not_matter(tmp_path: Path, read_order: list[str], order: str) -> None:
    """Custom service classes from two files used to take their queue order from the read order."""
    root = _big_repo().write(tmp_path / "p")
    expected = rendered(root)
    read_order[0] = order
    assert rendered(root) == expected


def test_example_read_order_does_not_matter(read_order: list[str]) -> None:
    expected = rendered(EXAMPLE_POLICIES)
    read_order[0] = "reversed"
    assert rendered(EXAMPLE_POLICIES) == expected


def test_copied_elsewhere_and_laid_out_differently(tmp_path: Path) -> None:
    repo = _big_repo()
    expected = rendered(repo.write(tmp_path / "p"))
    copy = tmp_path / "deeper" / "other name" / "policies"
    shutil.copytree(tmp_path / "p", copy)
    assert rendered(copy) == expected
    # Every document in one file, in reverse order: same configs.
    merged = PolicyRepo()
    for rel in sorted(repo.files, reverse=True):
        merged.add("all.yaml", *reversed(repo.docs(rel)))
    assert rendered(merged.write(tmp_path / "merged")) == expected
    # Different file names (so a different sorted order): same configs.
    renamed = PolicyRepo({f"{i:03d}-x.yaml": docs for i, (_, docs) in enumerate(sorted(repo.files.items()))})
    assert rendered(renamed.write(tmp_path / "renamed")) == expected


def test_diagnostics_do_not_depend_on_read_order(tmp_path: Path, read_order: list[str]) -> None:
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("dup", port=5004))
    repo.add("journeys/zz.yaml", voice_journey("dup", port=5006))
    repo.add_journey(interactive_journey("a-clash", port=443, prefix="198.18.1.0/25", priority="low"))
    repo.add_journey(interactive_journey("z-clash", port=443, prefix="198.18.1.0/26", priority="high"))
    repo.add_journey(voice_journey("g729", mos=4.3, codec="g729a", port=5008))
    root = repo.write(tmp_path / "p")
    expected = messages(root)
    assert len(expected) >= 4, expected
    for order in ("reversed", "shuffled"):
        read_order[0] = order
        assert messages(root) == expected, order


def test_plan_output_identical_across_hash_seeds_and_folders(tmp_path: Path) -> None:
    """Two real runs with different PYTHONHASHSEED, policy copies and output folders: byte-identical trees."""
    exe = shutil.which("qoectl", path=str(Path(sys.executable).parent))
    if exe is None:  # pragma: no cover
        pytest.skip("the qoectl console script is not installed next to this Python")
    src = _big_repo().write(tmp_path / "a" / "policies")
    shutil.copytree(src, tmp_path / "b" / "copy")
    outs = []
    for seed, policies in (("1", src), ("4242", tmp_path / "b" / "copy")):
        out = tmp_path / f"out-{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "NO_COLOR": "1"}
        proc = subprocess.run([exe, "plan", str(policies), "--out", str(out), "--no-diff"], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        outs.append(tree(out))
    assert outs[0] == outs[1]
    assert ".qoectl-plan.json" in outs[0] and len(outs[0]) > 2
