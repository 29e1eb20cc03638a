"""Golden files: the bundled example rendered for every device, compared byte for byte.

On a mismatch the test prints a unified diff. After an intended change, refresh with:

    pytest tests/test_golden.py --update-golden     (or: make golden)
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from controller.pipeline import Build, render_plan
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"


def _cases() -> list[str]:
    from controller.pipeline import build

    return [p.device for p in build(REPO / "policies").plans]


@pytest.mark.parametrize("device", _cases())
def test_rendered_config_matches_golden(device: str, example_build: Build, request: pytest.FixtureRequest) -> None:
    plan = example_build.plan(device)
    assert plan is not None
    files = render_plan(plan)
    folder = GOLDEN / plan.platform / device
    if request.config.getoption("--update-golden"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.name not in files:
                old.unlink()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return
    assert folder.is_dir(), f"no golden files for {device}; run: pytest tests/test_golden.py --update-golden"
    expected = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}
    assert sorted(files) == sorted(expected), "rendered file set differs from the golden files"
    problems = []
    for name, text in files.items():
        if text != expected[name]:
            diff = difflib.unified_diff(
                expected[name].splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"golden/{plan.platform}/{device}/{name}",
                tofile=f"rendered/{device}/{name}",
            )
            problems.append("".join(diff))
    assert not problems, "rendered config differs from golden (update with --update-golden):\n" + "\n".join(problems)


def test_no_orphan_golden_folders(example_build: Build) -> None:
    known = {(p.platform, p.device) for p in example_build.plans}
    found = {(d.parent.name, d.name) for d in GOLDEN.glob("*/*") if d.is_dir()}
    assert found <= known, f"golden folders without a device in the example: {sorted(found - known)}"


def test_golden_dir_is_not_empty() -> None:
    assert any(Path(GOLDEN).glob("*/*/*")), "no golden files at all"
