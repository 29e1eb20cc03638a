"""``qoectl schema-check FILE...``: the ``qoectl-schema-check`` pre-commit hook.

Checks only the YAML files given (pre-commit passes the staged ones) against the ``qoectl/v1`` schema,
the same models ``qoectl validate`` and the generated JSON Schema come from, every document of a
multi-document file included (which a JSON Schema validator checks one document per file). Files whose
first document has no ``apiVersion: qoectl/...`` (CI files, pre-commit settings) are left alone. Prints
``file:line:col: field: message; hint: ...`` per problem; exit 1 when there is one.
"""

from __future__ import annotations

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
