"""``qoectl init [DIR] [--force]``: scaffold a policy repository (controller/scaffold)."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.console import make_console

err = make_console(stderr=True)


def register(cli: click.Group) -> None:
    cli.add_command(init)
    cli.add_command(schema_check)


@click.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--force", is_flag=True, help="Write into a non-empty folder: add only the missing files, never overwrite."
)
def init(directory: Path, force: bool) -> None:
    """Scaffold a policy repository in DIRECTORY (default: here): example policy, CI pipelines, hooks, README.

    It validates and plans as it is: `qoectl validate && qoectl plan` in DIRECTORY.
    """
    from controller.scaffold import InitError
    from controller.scaffold import init as do_init

    try:
        result = do_init(directory, force)
    except (InitError, OSError) as exc:
        err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(1) from None
    for rel in result.written:
        err.print(f"wrote {directory / rel}", markup=False)
    for rel in result.kept:
        err.print(f"kept  {directory / rel} (exists)", markup=False)
    err.print(
        f"next: cd {directory} && git init && qoectl validate && qoectl plan   (README.md: the CI set-up)",
        markup=False,
        soft_wrap=True,
    )


@click.command("schema-check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
def schema_check(files: tuple[Path, ...]) -> None:
    """Check YAML FILES against the qoectl/v1 schema (the pre-commit hook; files without apiVersion qoectl/... are
    skipped). Every document of a file is checked; problems as file:line:col; exit 1 on any."""
    from controller.scaffold.hooks import schema_problems

    problems = schema_problems([f for f in files if f.suffix in (".yaml", ".yml")])
    for d in problems:
        err.print(d.format(), style="red", markup=False, soft_wrap=True)
    if problems:
        err.print(
            f"{len(problems)} schema problem(s) in {len({d.location.file for d in problems})} file(s)", style="red"
        )
        raise SystemExit(1)
