"""What every command of the ``qoectl`` command line shares: the consoles, exit codes and error reports.

Exit codes follow ``terraform plan -detailed-exitcode``: 0 nothing to change,
2 changes, 1 errors. A user's mistake never prints a traceback: it prints
``file:line:col: field: message; hint: ...`` lines.

Light to import: a command module imports this first, and what loading and compiling a policy needs
only when it does (``qoectl verify`` starts reading its measurements before that).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from controller.cli.console import make_console
from controller.cli.policy_path import policy_path

if TYPE_CHECKING:
    from controller.errors import Diagnostic
    from controller.pipeline import Build

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
CONSOLE_PROCESS = False  # True in the console script's process (set by main()): it ends when the command does

out = make_console()
err = make_console(stderr=True)

policy_arg = policy_path()  # every command that reads policies: PATH, default "policies"
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")


def print_diagnostics(diags: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
    for d in diags:
        style = "yellow" if d.severity == "warning" else "red"
        err.print(d.format(), style=style, markup=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def build_or_exit(path: Path, as_json: bool, junit: Path | None = None) -> Build:
    """Load+validate+compile, or report every problem and exit 1 (also as JUnit XML into ``junit``)."""
    from controller.errors import PolicyError
    from controller.parallel import default_jobs
    from controller.pipeline import build

    try:
        result = build(path, jobs=default_jobs())
    except PolicyError as exc:
        report_failure(exc.diagnostics, as_json, path, junit)
        raise SystemExit(EXIT_ERROR) from None
    if not result.ok:
        report_failure(list(result.diagnostics), as_json, path, junit)
        raise SystemExit(EXIT_ERROR)
    return result


def report_failure(diags: list[Diagnostic], as_json: bool, path: Path | None = None, junit: Path | None = None) -> None:
    if junit is not None and path is not None:
        from controller.cli.validate_report import write_junit

        write_junit(junit, path, diags)
    if as_json:
        emit_json({"ok": False, "diagnostics": [d.to_json() for d in diags]})
    else:
        print_diagnostics(diags)
        n = sum(1 for d in diags if d.severity == "error")
        files = len({d.location.file for d in diags})
        err.print(f"{n} error(s) in {files} file(s)", style="bold red")
