"""Write rendered device configs into a staging folder and diff them against a baseline.

Layout: ``OUT/<device>/<file>`` plus ``OUT/.qoectl-plan.json``, the manifest
that names each device's platform and files with their SHA-256, so later stages
(apply) and CI artifacts know exactly what was produced. Which folders qoectl
may write, and how a new tree replaces the old one, is :mod:`controller.render.tree`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from controller.render import tree
from controller.render.tree import DeviceEntry, Manifest, sha256

Status = Literal["new", "changed", "unchanged", "removed"]


@dataclass(frozen=True, slots=True)
class FileChange:
    name: str
    status: Status
    diff: str
    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class DeviceChange:
    device: str
    platform: str
    status: Status
    files: tuple[FileChange, ...]

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)


def _diff(name: str, device: str, old: str, new: str) -> tuple[str, int, int]:
    if old == new:  # what difflib would say, without matching every line of an unchanged file
        return "", 0, 0
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{device}/{name}",
            tofile=f"b/{device}/{name}",
        )
    )
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    return "".join(lines), added, removed


def compare(
    baseline: Mapping[str, Mapping[str, str]],
    rendered: Mapping[str, tuple[str, Mapping[str, str]]],
) -> list[DeviceChange]:
    """Per-device changes from ``baseline`` to ``rendered`` ({device: (platform, files)})."""
    changes: list[DeviceChange] = []
    for device in sorted(set(baseline) | set(rendered)):
        platform, new = rendered.get(device, ("", {}))
        changes.append(compare_device(device, platform, baseline.get(device), new if device in rendered else None))
    return changes


def compare_device(
    device: str, platform: str, old: Mapping[str, str] | None, new: Mapping[str, str] | None
) -> DeviceChange:
    """One device's change; ``old`` is None when the baseline lacks the device, ``new`` when it is not rendered."""
    before = old if old is not None else {}
    after = new if new is not None else {}
    files = []
    for name in sorted(set(before) | set(after)):
        diff, added, removed = _diff(name, device, before.get(name, ""), after.get(name, ""))
        if name not in before:
            status: Status = "new"
        elif name not in after:
            status = "removed"
        else:
            status = "changed" if diff else "unchanged"
        files.append(FileChange(name, status, diff, added, removed))
    if old is None:
        dev_status: Status = "new"
    elif new is None:
        dev_status = "removed"
    else:
        dev_status = "changed" if any(f.status != "unchanged" for f in files) else "unchanged"
    return DeviceChange(device, platform, dev_status, tuple(files))


def write_device(
    staging: Path, device: str, files: Mapping[str, str], reuse: tuple[Path, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """Write one device's files into the staging folder; return ``{file: SHA-256}`` for the manifest.

    ``reuse`` is the device's folder in the tree being replaced and its files as
    :func:`~controller.render.tree.read_owned_device` read them: a file whose text is the same there is
    hard-linked instead of written again (writing is most of the time of a
    large plan that changes little); where linking fails, it is written.
    """
    ddir = staging / device
    ddir.mkdir()
    entry = {}
    for name, text in sorted(files.items()):
        target = ddir / name
        if reuse is None or reuse[1].get(name) != text or not _linked(reuse[0] / name, target):
            target.write_text(text, encoding="utf-8")
        entry[name] = sha256(text)
    return entry


def _linked(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


Rendered = Mapping[str, tuple[str, Mapping[str, str]]]  # device -> (platform, {file: text})


def write_tree(root: Path, rendered: Rendered, policy_path: Path | None = None) -> None:
    """Replace the qoectl-owned folder ``root`` with exactly ``rendered`` (see :mod:`controller.render.tree`)."""
    _swap_in(root, rendered, policy_path, keep_other_devices=False)


def update_tree(root: Path, rendered: Rendered, policy_path: Path | None = None) -> list[Path]:
    """Replace only the given devices in the qoectl-owned folder ``root``; return the paths written.

    Every other device and file stays. Same ownership rules and atomic swap as :func:`write_tree`.
    """
    _swap_in(root, rendered, policy_path, keep_other_devices=True)
    return [root / d / name for d, (_p, files) in sorted(rendered.items()) for name in sorted(files)]


def _swap_in(root: Path, rendered: Rendered, policy_path: Path | None, keep_other_devices: bool) -> None:
    previous = tree.claim(root, policy_path)
    old = previous.devices if previous is not None else {}
    kept = {d: e for d, e in old.items() if d not in rendered} if keep_other_devices else {}
    replacing = Manifest({d: e for d, e in old.items() if d not in kept})
    staging = tree.begin(root)
    try:
        written = {d: DeviceEntry(p, write_device(staging, d, files)) for d, (p, files) in rendered.items()}
        tree.finish(root, staging, Manifest({**kept, **written}), previous, replacing)
    finally:
        tree.discard(staging)
