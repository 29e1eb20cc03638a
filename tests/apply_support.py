"""Shared by the ``qoectl apply`` tests against emulated devices (tests/lab/emulators): run apply, read its JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner, Result

from controller.cli.main import cli
from tests.lab.emulators import EmulatedDevice


def apply_cli(
    policy: Path, known: Path, tmp: Path, run: str, *extra: str, env: Mapping[str, str]
) -> tuple[Result, dict]:
    """Run ``qoectl apply --json`` in-process (locks in ``tmp/locks``, run folder ``tmp/run``); result and JSON."""
    args = [
        "apply",
        str(policy),
        "--known-hosts",
        str(known),
        "--lock-dir",
        str(tmp / "locks"),
        "--run-dir",
        str(tmp / run),
        "--connect-timeout",
        "5",
        "--command-timeout",
        "20",
        "--json",
        *extra,
    ]
    result = CliRunner().invoke(cli, args, env=dict(env), catch_exceptions=False)
    return result, json.loads(result.stdout)


def by_device(data: dict) -> dict[str, dict]:
    """The per-device entries of apply's JSON report, by device name."""
    return {d["device"]: d for d in data["devices"]}


def config_lines_since(device: EmulatedDevice, start: int) -> list[str]:
    """Configuration-mode lines the device received after command-log index ``start``."""
    return [line for line in device.command_log[start:] if " config: " in line]


def assert_no_secret(secret: str, result: Result, folder: Path) -> None:
    """``secret`` is neither in the command's output nor in any file below ``folder`` (run folders, backups)."""
    assert secret not in result.output
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
