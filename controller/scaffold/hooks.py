"""``python -m controller.scaffold.hooks FILE...``: the ``qoectl-schema-check`` pre-commit hook.

Checks only the YAML files given (pre-commit passes the staged ones) against the ``qoectl/v1`` schema,
the same models ``qoectl validate`` and the generated JSON Schema come from, every document of a
multi-document file included (which a JSON Schema validator checks one document per file). Files whose
first document has no ``apiVersion: qoectl/...`` (CI files, pre-commit settings) are left alone. Prints
``file:line:col: field: message; hint: ...`` per problem; exit 1 when there is one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from controller.errors import Diagnostic, Location
from controller.load.loader import check_schema, display_path
from controller.load.yamlsrc import YamlDocument, load_documents


def _is_policy(data: object) -> bool:
    return isinstance(data, dict) and str(data.get("apiVersion", "")).startswith("qoectl/")


def _read(path: Path) -> tuple[list[YamlDocument], list[Diagnostic]]:
    name = display_path(path)
    try:
        return load_documents(path.read_text(encoding="utf-8"), name)
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Diagnostic(Location(name), "", f"cannot read file: {exc}", "save it as UTF-8 text")]


def schema_problems(files: Sequence[Path]) -> list[Diagnostic]:
    """The schema problems of the policy documents in ``files`` (other YAML files are skipped)."""
    problems: list[Diagnostic] = []
    for path in files:
        docs, read_problems = _read(path)
        if not read_problems and not any(_is_policy(d.data) for d in docs):
            continue
        problems += read_problems
        problems += check_schema(docs)[1]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    files = [Path(a) for a in (sys.argv[1:] if argv is None else argv) if a.endswith((".yaml", ".yml"))]
    problems = schema_problems(files)
    for d in problems:
        print(d.format(), file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} schema problem(s) in {len({d.location.file for d in problems})} file(s)", file=sys.stderr
        )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
