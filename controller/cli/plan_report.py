"""The human report of ``qoectl plan``: a device table that stays readable for a fleet of thousands.

Up to ``DEVICE_ROWS`` devices, one row each. Above that, one row per platform
(how many devices are new, changed, removed, unchanged, and their line counts),
then the devices that change, the first ``DEVICE_ROWS`` of them, unless every
device is asked for. Notes that many devices share (a platform without
flow-fair queuing, say) are printed once with the devices they concern.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

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
