"""Command modules are imported when one of their commands runs, so ``qoectl verify`` loads no apply driver.

``controller.cli.main.COMMAND_MODULES`` names the module of each command; these tests keep the map true to
what the modules register, and show that a command imports only its own module's dependencies.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import click

import controller.cli as package
from controller.cli.main import COMMAND_MODULES, cli
from tests.verify_support import make_policy, voice_rows, write_csv


def test_the_map_names_every_command_of_every_command_module() -> None:
    modules = sorted(i.name for i in pkgutil.iter_modules(package.__path__) if i.name.startswith("cmd_"))
    assert sorted(set(COMMAND_MODULES.values())) == modules
    for name in modules:
        group = click.Group()
        group.add_command(click.Group("qoe"))  # cmd_qoe adds to the qoe group that main.py defines
        importlib.import_module(f"controller.cli.{name}").register(group)
        added = set(group.commands) - ({"qoe"} if name != "cmd_qoe" else set())
        assert added == {c for c, m in COMMAND_MODULES.items() if m == name}, name


def test_help_lists_every_command() -> None:
    ctx = click.Context(cli)
    listed = set(cli.list_commands(ctx))
    assert set(COMMAND_MODULES) <= listed
    assert {"plan", "validate", "render", "explain", "schema", "qoe"} <= listed
    assert all(cli.get_command(ctx, name) is not None for name in listed)


def _imported_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from controller.cli.main import cli\n"
        f"try:\n    cli({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_verify_imports_no_apply_driver_and_apply_does() -> None:
    heavy = {"netmiko", "paramiko", "controller.apply", "controller.cli.cmd_apply", "controller.cli.cmd_lab"}
    assert not heavy & _imported_after(["verify", "--help"])
    assert {"netmiko", "controller.cli.cmd_apply"} <= _imported_after(["apply", "--help"])


def test_verify_and_validate_load_no_template_engine_and_plan_does(tmp_path: Path) -> None:
    """Jinja is imported on the first render: commands that only compile the policy never load it."""
    policy = make_policy(tmp_path / "policies")
    samples = write_csv(tmp_path / "m.csv", voice_rows("hq", 40, 5, 0.5))
    verify = _imported_after(["verify", str(policy), "--measurements", str(samples)])
    assert "controller.evaluate.engine" in verify, "the verify command did not run"
    assert "jinja2" not in verify
    assert "jinja2" not in _imported_after(["validate", str(policy)])
    assert "jinja2" in _imported_after(["plan", str(policy), "--out", str(tmp_path / "out")])
