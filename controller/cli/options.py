"""Click options and parameter types that several commands share, each defined once (help text included)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FILE = click.Path(path_type=Path, dir_okay=False)  # a file to read or write (not a folder)
FOLDER = click.Path(path_type=Path, file_okay=False)  # a folder (not a file)


def source_options(*, feedback: bool = True, verb: str = "Evaluate") -> Callable[[F], F]:
    """The measurement source options of ``verify``, ``loop`` and ``baseline record``.

    The function gets ``measurement_files``, ``prometheus_url``, ``feedback_files`` (only with ``feedback``),
    ``since``, ``until`` and ``step``; ``verb`` starts the help of ``--since`` (what the command does with the range).
    """
    options = [
        click.option(
            "--measurements",
            "measurement_files",
            multiple=True,
            type=FILE,
            help="Measurement file (.csv, .json, .jsonl, OpenMetrics .om/.prom/.txt). Repeat for more.",
        ),
        click.option("--prometheus", "prometheus_url", help="Prometheus base URL; runs each journey's verify.queries."),
    ]
    if feedback:
        options.append(
            click.option(
                "--feedback",
                "feedback_files",
                multiple=True,
                type=FILE,
                help="Survey CSV: journey, site, time, score[, kind mos|csat|nps]. Repeat for more.",
            )
        )
    options += [
        click.option(
            "--since", help=f"{verb} this far back from --until, e.g. 1h or 7d (default: all data; 1h for Prometheus)."
        ),
        click.option(
            "--until", help="End of the range: seconds since the epoch or ISO 8601 (default: last sample, or now)."
        ),
        click.option("--step", default="1m", show_default=True, help="Prometheus query step."),
    ]

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate
