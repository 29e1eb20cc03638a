"""The human report of ``qoectl plan``: a device table that stays readable for a fleet of thousands.

Up to ``DEVICE_ROWS`` devices, one row each. Above that, one row per platform
(how many devices are new, changed, removed, unchanged, and their line counts),
then the devices that change, the first ``DEVICE_ROWS`` of them, unless every
device is asked for. Notes that many devices share (a platform without
flow-fair queuing, say) are printed once with the devices they concern.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.compile.budgets import Budget
from controller.render.outputs import DeviceChange, Status

DEVICE_ROWS = 50
NAMES_SHOWN = 3
COLOUR = {"new": "green", "changed": "yellow", "removed": "red", "unchanged": "dim"}
STATUSES: tuple[Status, ...] = ("new", "changed", "removed", "unchanged")


def grouped_notes(notes: Mapping[str, Sequence[str]]) -> list[tuple[str, list[str]]]:
    """``[(note, devices)]``: each distinct note once, with its devices sorted, in the order first met."""
    devices: dict[str, list[str]] = defaultdict(list)
    for device in sorted(notes):
        for note in notes[device]:
            devices[note].append(device)
    return list(devices.items())


def _names(devices: list[str], all_devices: bool) -> str:
    if all_devices or len(devices) <= NAMES_SHOWN:
        return ", ".join(devices)
    return f"{', '.join(devices[:NAMES_SHOWN])} and {len(devices) - NAMES_SHOWN:,} more"


def _device_table(title: str, changes: Sequence[DeviceChange], notes: Mapping[str, Sequence[str]]) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("device", "platform", "status", "+lines", "-lines", "notes"):
        table.add_column(col, justify="right" if ("lines" in col or col == "notes") else "left")
    for c in changes:
        count = len(notes.get(c.device, ()))
        table.add_row(
            c.device,
            c.platform,
            f"[{COLOUR[c.status]}]{c.status}[/]",
            str(c.added),
            str(c.removed),
            str(count) if count else "",
        )
    return table


def _platform_table(title: str, changes: Sequence[DeviceChange]) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("platform")
    for col in ("devices", *STATUSES, "+lines", "-lines"):
        table.add_column(col, justify="right")
    by_platform: dict[str, list[DeviceChange]] = defaultdict(list)
    for c in changes:
        by_platform[c.platform or "(removed)"].append(c)
    for platform in sorted(by_platform):
        rows = by_platform[platform]
        count = Counter(c.status for c in rows)
        cells = [f"[{COLOUR[s]}]{count[s]:,}[/]" if count[s] else "" for s in STATUSES]
        added, removed = sum(c.added for c in rows), sum(c.removed for c in rows)
        table.add_row(platform, f"{len(rows):,}", *cells, f"{added:,}", f"{removed:,}")
    return table


def print_plan(
    console: Console,
    changes: Sequence[DeviceChange],
    notes: Mapping[str, Sequence[str]],
    out_dir: Path,
    all_devices: bool = False,
) -> None:
    """The table(s), the notes, and the one-line summary of a plan."""
    title = f"qoectl plan -> {out_dir}"
    changed = [c for c in changes if c.status != "unchanged"]
    if all_devices or len(changes) <= DEVICE_ROWS:
        console.print(_device_table(title, changes, notes))
    else:
        console.print(_platform_table(title, changes))
        if changed:
            shown = changed[:DEVICE_ROWS]
            table = _device_table(f"devices that change ({len(changed):,})", shown, notes)
            if len(changed) > len(shown):
                table.caption = (
                    f"the first {len(shown)} of {len(changed):,}: --all-devices lists every device, --json gives all"
                )
            console.print(table)
    for note, devices in grouped_notes(notes):
        who = devices[0] if len(devices) == 1 else f"{len(devices):,} devices ({_names(devices, all_devices)})"
        console.print(f"note: {who}: {note}", style="yellow", markup=False)
    summary = f"{len(changed):,} of {len(changes):,} devices change" if changed else "no changes"
    console.print(f"[bold]{summary}[/bold]; configs in {out_dir}/")


# --------------------------------------------------------------------------- Markdown (merge-request comments)

BUDGET_FIELDS = (
    ("one_way_delay_ms", "one-way delay ms"),
    ("jitter_ms", "jitter ms"),
    ("loss_pct", "loss %"),
    ("min_throughput_kbps", "min kbps"),
    ("mos", "MOS"),
)


def _md(text: str) -> str:
    """A table cell: one line, no column breaks, no HTML."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _budget_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def budget_rows(budgets: Mapping[str, Budget], base: Mapping[str, Budget] | None) -> list[tuple[str, list[str]]]:
    """``[(journey, cells)]`` of the budgets that differ from ``base`` (every journey when there is no base)."""
    rows: list[tuple[str, list[str]]] = []
    for journey in sorted(set(budgets) | set(base or {})):
        new, old = budgets.get(journey), (base or {}).get(journey)
        if base is not None and new == old:
            continue
        cells = []
        for key, _ in BUDGET_FIELDS:
            after = _budget_cell(getattr(new, key)) if new is not None else "(removed)"
            if base is None:
                cells.append(after)
                continue
            before = _budget_cell(getattr(old, key)) if old is not None else "(new)"
            cells.append(after if before == after else f"{before} → {after}")
        rows.append((journey, cells))
    return rows


def markdown_plan(
    changes: Sequence[DeviceChange],
    notes: Mapping[str, Sequence[str]],
    out_dir: Path,
    budgets: Mapping[str, Budget],
    base_budgets: Mapping[str, Budget] | None,
) -> str:
    """The change summary of a plan as GitHub/GitLab Markdown: devices, +/- lines, notes, changed budgets."""
    changed = [c for c in changes if c.status != "unchanged"]
    head = f"{len(changed):,} of {len(changes):,} devices change" if changed else "no changes"
    lines = [f"### qoectl plan: {head}"]
    if changed:
        lines += ["", "| device | platform | status | +lines | -lines | notes |", "|---|---|---|---:|---:|---:|"]
        for c in changed[:DEVICE_ROWS]:
            count = len(notes.get(c.device, ()))
            lines.append(
                f"| {_md(c.device)} | {_md(c.platform or '-')} | {c.status} | {c.added} | {c.removed} | {count or ''} |"
            )
        if len(changed) > DEVICE_ROWS:
            lines.append(f"\n_the first {DEVICE_ROWS} of {len(changed):,} devices that change; the plan JSON has all_")
        added, removed = sum(c.added for c in changed), sum(c.removed for c in changed)
        lines += [
            "",
            f"**+{added:,} / -{removed:,} lines** in total; {len(changes) - len(changed):,} devices unchanged.",
        ]
    rows = budget_rows(budgets, base_budgets)
    if base_budgets is None:
        title = "Budgets (no base policy to compare with: every journey)"
    else:
        title = "Budgets that changed" if rows else "Budgets: none changed"
    lines += ["", f"#### {title}"]
    if rows:
        lines += [
            "",
            "| journey | " + " | ".join(label for _, label in BUDGET_FIELDS) + " |",
            "|---|" + "---:|" * len(BUDGET_FIELDS),
        ]
        lines += [f"| {_md(journey)} | " + " | ".join(cells) + " |" for journey, cells in rows]
    grouped = grouped_notes({c.device: notes[c.device] for c in changed if c.device in notes})
    if grouped:
        lines += ["", "#### Notes on the devices that change", ""]
        for note, devices in grouped:
            lines.append(
                f"- {_md(', '.join(devices[:NAMES_SHOWN]))}"
                f"{f' and {len(devices) - NAMES_SHOWN:,} more' if len(devices) > NAMES_SHOWN else ''}: {_md(note)}"
            )
    lines += ["", f"Rendered configs: `{_md(str(out_dir))}/`"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- JSON, one device at a time


def json_streamed(doc: Mapping[str, Any], key: str, items: Iterable[Any]) -> Iterator[str]:
    """``json.dumps({**doc, key: list(items)}, indent=2, sort_keys=True, default=str)`` in pieces, item by item.

    ``key`` is a top-level key; only one item's text is held at a time (a plan's
    devices with their diffs can be far larger than memory should hold).
    """
    field = f"{json.dumps(key)}: "
    marker = field + json.dumps("\x00items\x00")  # the key's own line: no other value can be there
    head = json.dumps({**doc, key: "\x00items\x00"}, indent=2, sort_keys=True, default=str)
    before, after = head.split(marker, 1)
    yield before + field
    first = True
    for item in items:
        text = json.dumps(item, indent=2, sort_keys=True, default=str)  # no raw newline inside a JSON string
        yield ("[\n    " if first else ",\n    ") + text.replace("\n", "\n    ")
        first = False
    yield "[]" if first else "\n  ]"
    yield after
