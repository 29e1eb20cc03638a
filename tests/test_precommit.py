"""qoectl's pre-commit hooks (.pre-commit-hooks.yaml) as pre-commit runs them, in a repository made by qoectl init.

``pre-commit try-repo`` builds the hooks' virtualenv from this checkout (pip, so it needs the package index
once; the environment is kept in a folder per test session) and runs them on a good and on a bad commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from tests.conftest import REPO

PRE_COMMIT = shutil.which("pre-commit") or str(Path(sys.executable).with_name("pre-commit"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PRE_COMMIT).exists(), reason="needs pre-commit (pip install -e '.[test]')"),
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]
GIT_ENV = {"GIT_AUTHOR_NAME": "n", "GIT_AUTHOR_EMAIL": "n@example.com", "GIT_COMMITTER_NAME": "n"}
GIT_ENV["GIT_COMMITTER_EMAIL"] = "n@example.com"


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("pre-commit-home")  # the hooks' virtualenv, built once for this module


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "netpolicy"
    assert CliRunner().invoke(cli, ["init", str(repo)]).exit_code == 0
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    return repo


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def try_repo(repo: Path, home: Path, hook: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home)}
    return subprocess.run(
        [PRE_COMMIT, "try-repo", str(REPO), hook, "--color", "never", *extra],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("hook", ["qoectl-validate", "qoectl-schema-check"])
def test_hook_passes_a_good_commit_and_fails_a_bad_one_at_its_line(
    repo: Path, pre_commit_home: Path, hook: str
) -> None:
    good = try_repo(repo, pre_commit_home, hook, "--all-files")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout

    journeys = repo / "policies/journeys/journeys.yaml"
    journeys.write_text(journeys.read_text().replace("share_pct: 15", "share_percent: 15"))
    line = next(n for n, s in enumerate(journeys.read_text().splitlines(), 1) if "share_percent" in s)
    git(repo, "add", str(journeys))
    bad = try_repo(repo, pre_commit_home, hook)  # the staged files, as at commit time
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert f"policies/journeys/journeys.yaml:{line}:5: spec.bandwidth.share_percent: unknown field" in bad.stdout


def test_the_scaffolds_own_config_runs_both_hooks(repo: Path, pre_commit_home: Path) -> None:
    """The .pre-commit-config.yaml that qoectl init writes (language: system: the qoectl on PATH), as on commit."""
    env = {
        **os.environ,
        **GIT_ENV,
        "PRE_COMMIT_HOME": str(pre_commit_home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }

    def run() -> subprocess.CompletedProcess[str]:
        cmd = [PRE_COMMIT, "run", "--color", "never"]
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)

    sites = repo / "policies/inventory/sites.yaml"
    sites.write_text(sites.read_text().replace("loss_pct: 0.1", "loss_pct: 0.2"))
    git(repo, "add", str(sites))
    good = run()
    assert good.returncode == 0 and good.stdout.count("Passed") == 2, good.stdout + good.stderr
    sites.write_text(sites.read_text().replace("base_delay_ms:", "base_delay_msec:"))
    line, col = next(
        (n, s.index("base_delay_msec") + 1) for n, s in enumerate(sites.read_text().splitlines(), 1) if "msec" in s
    )
    git(repo, "add", str(sites))
    bad = run()
    assert bad.returncode == 1 and bad.stdout.count("Failed") == 2, bad.stdout + bad.stderr
    where = f"policies/inventory/sites.yaml:{line}:{col}: spec.transports[0].base_delay_msec: unknown field"
    assert bad.stdout.count(where) == 2, bad.stdout  # both hooks say where
