"""``qoectl init``: the files of a new policy repository that validates and plans out of the box.

Everything is Python-built text (so it ships in the wheel with the package): the example policy
(:mod:`controller.scaffold.policy`), the JSON Schema its ``yaml-language-server`` lines point at, the CI
pipelines (:mod:`controller.scaffold.pipelines`), the pre-commit settings and a README for the repo's users.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from controller import __version__
from controller.scaffold.pipelines import github_workflow, gitlab_ci
from controller.scaffold.policy import policy_files
from controller.scaffold.readme import readme

PRE_COMMIT = """# pre-commit (https://pre-commit.com): `pip install pre-commit && pre-commit install`
# runs these on each commit.
# They use the qoectl installed here (language: system). To let pre-commit install qoectl itself, use qoectl's
# own hooks instead (its .pre-commit-hooks.yaml): `repo: <qoectl's Git URL>`, `rev: v{version}`,
# hooks `qoectl-validate` and `qoectl-schema-check`.
repos:
  - repo: local
    hooks:
      - id: qoectl-schema-check
        name: qoectl schema check (staged YAML files)
        entry: qoectl schema-check
        language: system
        files: \\.ya?ml$
      - id: qoectl-validate
        name: qoectl validate (the whole policy)
        entry: qoectl validate policies
        language: system
        pass_filenames: false
        files: \\.ya?ml$
"""


class InitError(Exception):
    """``qoectl init`` cannot write here (one line for the user)."""


@dataclass(frozen=True)
class InitResult:
    written: tuple[str, ...]
    kept: tuple[str, ...]  # present already (--force): left as they were


def scaffold_files(version: str = __version__) -> dict[str, str]:
    """Relative path -> text of every file ``qoectl init`` writes."""
    from controller.spec.schema import schema_text

    files = policy_files()
    files["schema/qoectl-v1.schema.json"] = schema_text()
    files[".gitlab-ci.yml"] = gitlab_ci(version)
    files[".github/workflows/qoectl.yml"] = github_workflow(version)
    files[".pre-commit-config.yaml"] = PRE_COMMIT.format(version=version)
    files["README.md"] = readme(version)
    return dict(sorted(files.items()))


def init(dest: Path, force: bool = False) -> InitResult:
    """Write the scaffold into ``dest``; a non-empty folder only with ``force``, which never overwrites."""
    if dest.exists() and not dest.is_dir():
        raise InitError(f"{dest} is a file: give a folder")
    present = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
    if present and not force:
        shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
        raise InitError(
            f"{dest} is not empty ({shown}); qoectl init writes into an empty folder, "
            "or with --force adds only the files that are missing (it never overwrites)"
        )
    written: list[str] = []
    kept: list[str] = []
    for rel, text in scaffold_files().items():
        target = dest / rel
        if os.path.lexists(target):
            kept.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with target.open("x", encoding="utf-8") as f:  # "x": never replaces a file that appeared meanwhile
                f.write(text)
        except FileExistsError:
            kept.append(rel)
            continue
        written.append(rel)
    return InitResult(tuple(written), tuple(kept))
