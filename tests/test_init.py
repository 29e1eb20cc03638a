"""qoectl init: a repository that validates and plans as it is; --force adds only what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller import __version__
from controller.cli.main import cli
from controller.scaffold import scaffold_files
from controller.scaffold.pipelines import github_workflow, gitlab_ci
from controller.spec.schema import schema_text
from tests.conftest import REPO


def invoke(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    runner = CliRunner()
    if cwd is None:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
    else:
        import os

        old = Path.cwd()
        os.chdir(cwd)
        try:
            result = runner.invoke(cli, list(args), catch_exceptions=False)
        finally:
            os.chdir(old)
    return result.exit_code, result.output


def test_init_validates_and_plans_out_of_the_box(tmp_path: Path) -> None:
    repo = tmp_path / "netpolicy"
    code, out = invoke("init", str(repo))
    assert code == 0, out
    written = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert written == sorted(scaffold_files())
    for rel in (".gitlab-ci.yml", ".github/workflows/qoectl.yml", ".pre-commit-config.yaml", "README.md"):
        assert (repo / rel).is_file()
    # Every policy file carries the schema line, and it points at the schema init wrote.
    for path in (repo / "policies").rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        assert (path.parent / first.split("=", 1)[1]).resolve() == (repo / "schema/qoectl-v1.schema.json").resolve()
    assert (repo / "schema/qoectl-v1.schema.json").read_text() == schema_text()

    code, out = invoke("validate", "--json", cwd=repo)
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] and data["journeys"] == 3 and data["devices"] == 2
    code, out = invoke("plan", "--json", cwd=repo)
    assert code == 2, out  # first plan: every device is new
    plan = json.loads(out)
    assert {d["device"]: d["status"] for d in plan["devices"]} == {"br1-rtr1": "new", "br1-rtr2": "new"}
    assert (repo / "out/br1-rtr1/nftables.nft").is_file()
    # The example measurements are in target, so a fresh repository's verify job passes too.
    code, out = invoke("verify", "--measurements", "measurements/samples.csv", "--json", cwd=repo)
    assert code == 0, out


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    code, out = invoke("init", str(tmp_path))
    assert code == 1
    assert "is not empty (notes.txt)" in out and "--force" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_init_force_adds_only_missing_files_and_never_overwrites(tmp_path: Path) -> None:
    mine = {
        "README.md": "# our README\n",
        ".gitlab-ci.yml": "include: our-pipeline.yml\n",
        "policies/journeys/journeys.yaml": "# our journeys, kept as they are\n",
    }
    for rel, text in mine.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    code, out = invoke("init", str(tmp_path), "--force")
    assert code == 0, out
    for rel, text in mine.items():
        assert (tmp_path / rel).read_text() == text
        assert f"kept  {tmp_path / rel} (exists)" in out
    for rel, text in scaffold_files().items():
        if rel not in mine:
            assert (tmp_path / rel).read_text() == text, rel
    # A second --force changes nothing at all.
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out = invoke("init", str(tmp_path), "--force")
    assert code == 0 and "wrote" not in out
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, out = invoke("init", str(target))
    assert code != 0 and "Traceback" not in out


@pytest.mark.parametrize(
    ("example", "make"),
    [("examples/ci/.gitlab-ci.yml", gitlab_ci), ("examples/ci/github-workflow.yml", github_workflow)],
)
def test_examples_ci_are_what_init_writes(example: str, make: object) -> None:
    text = make(__version__)  # type: ignore[operator]
    assert (REPO / example).read_text() == text, f"{example} is stale: regenerate it from controller.scaffold"
    assert f"qoectl=={__version__}" in text  # the pinned install


@pytest.mark.slow
def test_init_from_the_built_wheel(tmp_path: Path) -> None:
    """The wheel holds everything init writes and plan needs: build it, run qoectl from it alone."""
    import subprocess
    import sys
    import zipfile

    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build the wheel here (pip needs hatchling from the package index): {build.stderr[-300:]}")
    (wheel,) = (tmp_path / "dist").glob("qoectl-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    script = (
        "import sys, controller; assert controller.__file__.startswith(sys.argv[1]), controller.__file__\n"
        "from controller.cli.main import cli\n"
        "for args in (['init', 'repo'], ['validate', 'repo/policies'], ['plan', 'repo/policies', '--out', 'out']):\n"
        "    try:\n"
        "        cli(args, standalone_mode=False)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, 2, None), (args, exc.code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(str(p.relative_to(tmp_path / "repo")) for p in (tmp_path / "repo").rglob("*") if p.is_file()) == (
        sorted(scaffold_files())
    )
    assert (tmp_path / "out/br1-rtr1/tc.batch").is_file()


def test_validate_junit_names_each_problem_at_its_file_and_line(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    report = tmp_path / "junit.xml"
    code, out = invoke("validate", str(REPO / "examples/broken-policies"), "--junit", str(report))
    assert code == 1
    problems = [line for line in out.splitlines() if ": " in line and not line.endswith("file(s)")]
    cases = list(ET.parse(report).getroot().iter("testcase"))
    failures = [c.find("failure") for c in cases]
    assert len(cases) == len(problems) == 4 and all(f is not None for f in failures)
    # Each failure is the terminal's line, and its file/line attributes are where that line points.
    assert sorted(f.get("message") for f in failures if f is not None) == sorted(problems)
    for case, failure in zip(cases, failures, strict=True):
        file, line = str(failure.get("message") if failure is not None else "").split(":")[:2]
        assert (case.get("file"), case.get("line")) == (file, line)
    good = tmp_path / "good.xml"
    code, _ = invoke("validate", str(REPO / "policies"), "--junit", str(good))
    root = ET.parse(good).getroot()
    assert code == 0 and root.get("failures") == "0" and int(root.get("tests") or 0) >= 8


def test_plan_markdown_lists_the_budgets_that_changed(tmp_path: Path) -> None:
    import shutil

    base = tmp_path / "base"
    shutil.copytree(REPO / "policies", base)
    voice = base / "journeys/voice.yaml"
    voice.write_text(voice.read_text().replace("mos: 4.0", "mos: 4.2", 1))
    code, _ = invoke("plan", str(base), "--out", str(tmp_path / "base-out"), "--no-diff")
    assert code == 2
    summary = tmp_path / "summary.md"
    code, out = invoke(
        "plan", str(REPO / "policies"), "--out", str(tmp_path / "out"), "--baseline", str(tmp_path / "base-out"),
        "--base-policy", str(base), "--format", "markdown", "--summary", str(summary),
    )  # fmt: skip
    assert code == 2 and out == summary.read_text()
    section = out.split("#### Budgets that changed")[1].split("####")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| journey")]
    assert [r.split(" | ")[0] for r in rows] == ["| voice"]
    assert "4.2 → 4" in rows[0]
    broken = tmp_path / "broken"
    shutil.copytree(REPO / "examples/broken-policies", broken)
    code, out = invoke("plan", str(REPO / "policies"), "--out", str(tmp_path / "o2"), "--base-policy", str(broken))
    assert code == 1 and "--base-policy" in out and "does not validate" in out and "Traceback" not in out
