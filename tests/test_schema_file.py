"""The committed JSON Schema (used by editors via yaml-language-server) is generated, never hand-edited."""

from __future__ import annotations

from controller.spec.schema import schema_text
from tests.conftest import REPO


def test_committed_schema_is_current() -> None:
    committed = (REPO / "schema" / "qoectl-v1.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "schema/qoectl-v1.schema.json is stale: run `make schema`"


def test_every_policy_file_points_editors_at_the_schema() -> None:
    for path in sorted((REPO / "policies").rglob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), f"{path} lacks the schema modeline"
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == (REPO / "schema" / "qoectl-v1.schema.json").resolve(), f"{path}: wrong schema path"


def test_committed_policy_reference_is_current() -> None:
    from controller.spec.reference import reference

    committed = (REPO / "docs" / "policy-reference.md").read_text(encoding="utf-8")
    assert committed == reference(), "docs/policy-reference.md is stale: run `make schema`"
