"""The render benchmark on a tiny fleet, so bench/render_bench.py cannot silently rot (no timing asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.render import platforms
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a git checkout of qoectl"
)


def test_two_checkouts_render_the_same_fleet_and_every_platform_is_timed(tmp_path: Path) -> None:
    out = tmp_path / "render.json"
    before = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "render_bench.py"), "--devices", "24", "--runs", "2"]
        + ["--before", "HEAD", "--after", "HEAD", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["identical_output"] and data["before"] == data["after"] and data["files"] > 24
    assert set(data["per_platform_devices"]) == set(platforms())
    assert len(data["rounds"]) == 2 and all(set(r) == {"before", "after"} for r in data["rounds"])
    for side in ("before", "after"):
        assert all(t["context_s"] > 0 and t["template_s"] > 0 for t in data["rounds"][0][side].values())
    assert 0 < data["summary"]["focus_share_after"]["median"] < 1
    # Its worktrees are gone again.
    after = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert "qoectl-render-bench-" not in after.replace(before, "")
