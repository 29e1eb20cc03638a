"""The one-way stages of docs/architecture.md hold, and ``lint-imports`` (``make lint``) fails when one breaks.

The contracts are in ``.importlinter``. The second test copies ``controller/``
with one upward import added (the model importing the loader, the cycle issue
15 removed) and requires the same check to refuse it, so the check cannot pass
whatever the code does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(tree / ".importlinter")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


def test_an_upward_import_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "controller", tmp_path / "controller", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    model = tmp_path / "controller" / "model" / "__init__.py"
    model.write_text(model.read_text() + "\nfrom controller.load import loader as _loader  # noqa: E402, F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "controller.model is not allowed to import controller.load" in done.stdout
