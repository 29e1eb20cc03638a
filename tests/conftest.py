"""Shared fixtures. Lab fixtures clean up by name/PID in teardown, also on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.pipeline import Build, build
from tests.lab.netns import Lab
from tests.lab.sshd import LinuxLab

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_POLICIES = REPO / "policies"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite the golden files in tests/golden/ from the current renderers.",
    )


@pytest.fixture(scope="session")
def example_build() -> Build:
    result = build(EXAMPLE_POLICIES)
    assert result.ok, "\n".join(d.format() for d in result.errors)
    return result


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Network namespaces for one test; all removed afterwards, pass or fail."""
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def linux_lab(lab: Lab, tmp_path: Path) -> Iterator[LinuxLab]:
    """Linux routers with real sshd in namespaces (tests/lab/sshd.py); every process and namespace stopped after."""
    ll = LinuxLab(lab, tmp_path / "lab")
    try:
        yield ll
    finally:
        ll.close()
