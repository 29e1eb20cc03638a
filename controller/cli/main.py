"""The ``qoectl`` command line: the command group; each command lives in a ``cmd_*`` module of this package.

Exit codes follow ``terraform plan -detailed-exitcode``: 0 nothing to change,
2 changes, 1 errors. A user's mistake never prints a traceback: it prints
``file:line:col: field: message; hint: ...`` lines.

Only what every command needs is imported here; a command's module, and what it needs, when the command
runs (``qoectl verify`` loads neither the renderers' outputs nor an apply driver).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import click

from controller import __version__
from controller.cli import common
from controller.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, emit_json, json_opt, out

__all__ = ["COMMAND_MODULES", "EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "cli", "main"]

# The commands each ``controller/cli/cmd_*.py`` module adds with ``register(cli)``. A module is imported
# only when one of its commands runs (or for --help), so ``qoectl verify`` does not load the apply
# drivers (netmiko, paramiko) or the lab; tests/test_cli_lazy.py checks this map against the modules.
COMMAND_MODULES = {
    "validate": "cmd_policy",
    "plan": "cmd_plan",
    "render": "cmd_policy",
    "explain": "cmd_policy",
    "schema": "cmd_policy",
    "apply": "cmd_apply",
    "baseline": "cmd_baseline",
    "export": "cmd_export",
    "init": "cmd_init",
    "schema-check": "cmd_init",
    "lab": "cmd_lab",
    "loop": "cmd_loop",
    "qoe": "cmd_qoe",
    "verify": "cmd_verify",
    "probe": "cmd_verify",
}


class LazyGroup(click.Group):
    """A group whose commands from :data:`COMMAND_MODULES` are registered on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded: set[str] = set()

    def load(self, module: str) -> None:
        if module not in self.loaded:
            self.loaded.add(module)
            import importlib

            importlib.import_module(f"controller.cli.{module}").register(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMAND_MODULES:
            self.load(COMMAND_MODULES[cmd_name])
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in sorted(set(COMMAND_MODULES.values())):
            self.load(module)
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qoectl")
def cli() -> None:
    """Policy-as-code QoS/QoE controller: journey targets in Git -> device QoS configs."""


@cli.group()
def qoe() -> None:
    """Quality-of-experience models for quick answers."""


@qoe.command()
@click.option("--delay-ms", type=click.FloatRange(min=0), required=True, help="One-way delay.")
@click.option("--jitter-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--loss-pct", type=click.FloatRange(min=0, max=100), default=0.0, show_default=True)
@click.option("--codec", type=click.Choice(["g711", "g711-plc", "g729a"]), default="g711", show_default=True)
@json_opt
def voice(delay_ms: float, jitter_ms: float, loss_pct: float, codec: str, as_json: bool) -> None:
    """R factor and MOS from the ITU-T G.107 E-model (qoectl's documented variant)."""
    from controller.qoe.emodel import voice_quality

    q = voice_quality(delay_ms, jitter_ms, loss_pct, codec)
    if as_json:
        emit_json(
            {
                "r": round(q.r, 4),
                "mos": round(q.mos, 4),
                "codec": codec,
                "effective_delay_ms": round(q.effective_delay_ms, 4),
                "id": round(q.id, 4),
                "ie_eff": round(q.ie_eff, 4),
            }
        )
        return
    out.print(f"R = {q.r:.2f}  MOS = {q.mos:.2f}  ({codec}, effective delay {q.effective_delay_ms:.1f} ms)")


def main() -> None:  # pragma: no cover - console script
    from controller.registry import PlatformError

    common.CONSOLE_PROCESS = True
    try:
        cli(standalone_mode=True)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except PlatformError as e:  # a platform package that does not keep the contract: its author's mistake
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        # The process ends with the command: what the command leaves (a plan's fleet, verify's results) is
        # frozen out of the interpreter's last collection at exit, which scanned it once more for nothing
        # (~0.1 s at 10,000 devices; 0.05 s of verify's 1,000,000 samples). Teardown frees it as before.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
