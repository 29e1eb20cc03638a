"""One convention for the policy path: every command that reads policies takes it as the positional ``PATH``.

``PATH`` defaults to ``policies``. ``explain`` and ``verify`` had only a
``--policies`` option; they keep it as an alias of ``PATH``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DEFAULT_POLICIES = "policies"
_PATH = click.Path(path_type=Path)

Command = Callable[..., None]


def policy_path(*, alias: bool = False) -> Callable[[Command], Command]:
    """Add the positional ``PATH`` (default ``policies``) to a command; its function gets it as ``path``.

    With ``alias``, ``--policies X`` means the same as ``PATH`` X; giving both, with different paths, is a
    usage error (exit 2).
    """

    def decorate(command: Command) -> Command:
        if not alias:
            return click.argument("path", default=DEFAULT_POLICIES, type=_PATH)(command)

        @functools.wraps(command)
        def merged(*args: Any, path: Path | None, policies_alias: Path | None, **kwargs: Any) -> None:
            if path is not None and policies_alias is not None and path != policies_alias:
                raise click.UsageError(f"PATH {path} and --policies {policies_alias} differ: give the policy path once")
            command(*args, path=path or policies_alias or Path(DEFAULT_POLICIES), **kwargs)

        with_option = click.option(
            "--policies",
            "policies_alias",
            type=_PATH,
            metavar="PATH",
            help="The same as the positional PATH (kept for existing scripts).",
        )(merged)
        return click.argument("path", required=False, type=_PATH)(with_option)

    return decorate
