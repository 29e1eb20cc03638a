"""Issue 10, item 14: one CLI convention for the policy path.

Every command that reads policies takes it as the positional ``PATH`` (default
``policies``); ``explain`` and ``verify`` keep ``--policies`` as an alias.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli.main import cli
from tests.conftest import EXAMPLE_POLICIES, REPO

MEASUREMENTS = REPO / "examples" / "measurements" / "voice-and-web.csv"

# Each command that reads policies, with the arguments it needs besides the policy path.
BEFORE_PATH = {"explain": ["voice"]}
AFTER_PATH = {
    "validate": [],
    "plan": ["--no-diff"],
    "render": ["--device", "br2-rtr1"],
    "explain": [],
    "verify": ["--measurements", str(MEASUREMENTS), "--journey", "voice"],
    "apply": ["--dry-run"],
}


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A working folder without a ``policies`` folder."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.mark.parametrize("command", list(AFTER_PATH))
def test_every_policy_command_reads_the_positional_path(command: str, elsewhere: Path) -> None:
    missing = elsewhere / "no-such-repo"
    result = run(command, *BEFORE_PATH.get(command, []), missing, *AFTER_PATH[command])
    assert result.exit_code == 1, result.output
    assert f"{missing.name}: no such file or directory" in result.stderr, result.output


@pytest.mark.parametrize("command", list(AFTER_PATH))
def test_the_path_defaults_to_policies(command: str, elsewhere: Path) -> None:
    result = run(command, *BEFORE_PATH.get(command, []), *AFTER_PATH[command])
    assert result.exit_code == 1, result.output
    assert "policies: no such file or directory" in result.stderr, result.output


@pytest.mark.parametrize("command", ["explain", "verify"])
def test_policies_option_is_an_alias_of_path(command: str) -> None:
    args = [command, *BEFORE_PATH.get(command, [])]
    positional = run(*args, EXAMPLE_POLICIES, *AFTER_PATH[command])
    option = run(*args, "--policies", EXAMPLE_POLICIES, *AFTER_PATH[command])
    both = run(*args, EXAMPLE_POLICIES, "--policies", EXAMPLE_POLICIES, *AFTER_PATH[command])
    assert positional.exit_code in (0, 1, 3) and "no such file" not in positional.stderr, positional.output
    assert (option.exit_code, option.stdout) == (positional.exit_code, positional.stdout)
    assert (both.exit_code, both.stdout) == (positional.exit_code, positional.stdout)


@pytest.mark.parametrize("command", ["explain", "verify"])
def test_two_different_policy_paths_are_a_usage_error(command: str, tmp_path: Path) -> None:
    args = [command, *BEFORE_PATH.get(command, []), EXAMPLE_POLICIES, "--policies", tmp_path]
    result = run(*args, *AFTER_PATH[command])
    assert result.exit_code == 2
    assert "give the policy path once" in result.stderr
