"""Write rendered configs to an output folder and diff them against a baseline.

Layout: ``OUT/<device>/<file>`` plus ``OUT/manifest.json``. The manifest names
each device's platform and files with their SHA-256, so later stages (apply)
and CI artifacts know exactly what was produced.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["new", "changed", "unchanged", "removed"]
MANIFEST = "manifest.json"


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


def read_tree(root: Path) -> dict[str, dict[str, str]]:
    """``{device: {file: text}}`` of an output folder (empty when it does not exist)."""
    out: dict[str, dict[str, str]] = {}
    if not root.is_dir():
        return out
    for device_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        out[device_dir.name] = read_device(device_dir)
    return out


def read_device(device_dir: Path) -> dict[str, str]:
    """``{file: text}`` of one device's folder (empty when it is not a folder), as :func:`read_tree` reads it.

    Separate so that one device can be compared without reading the whole tree
    (``qoectl plan`` compares each device where it renders it).
    """
    if not device_dir.is_dir():
        return {}
    # Bytes decoded as they are (no newline translation): equal text means an equal file.
    return {f.name: f.read_bytes().decode("utf-8") for f in sorted(device_dir.iterdir()) if f.is_file()}


def tree_devices(root: Path) -> list[str]:
    """The device folders of an output folder, sorted (the devices :func:`read_tree` returns)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


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


def write_tree(root: Path, rendered: Mapping[str, tuple[str, Mapping[str, str]]]) -> None:
    """Replace ``root`` with exactly the rendered files (built aside, then swapped in)."""
    staging = begin_tree(root)
    try:
        manifest: dict[str, object] = {}
        for device, (platform, files) in sorted(rendered.items()):
            manifest[device] = {"platform": platform, "files": write_device(staging, device, files)}
        finish_tree(root, staging, manifest)
    finally:
        discard_tree(staging)


def begin_tree(root: Path) -> Path:
    """A new, empty staging folder beside ``root`` to write devices into (see :func:`write_tree`).

    :func:`write_tree` is these three steps in one; they are separate so that
    worker processes can each write their devices into the same staging folder.
    """
    root = root.resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))


def write_device(
    staging: Path, device: str, files: Mapping[str, str], reuse: tuple[Path, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """Write one device's files into the staging folder; return ``{file: SHA-256}`` for the manifest.

    ``reuse`` is the device's folder in the tree being replaced and its files as
    :func:`read_device` read them: a file whose text is the same there is
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
        entry[name] = hashlib.sha256(text.encode()).hexdigest()
    return entry


def _linked(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def finish_tree(root: Path, staging: Path, manifest: Mapping[str, object]) -> None:
    """Write the manifest into the staging folder and swap it in place of ``root``."""
    root = root.resolve()
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if root.exists():
        old = root.with_name(f".{root.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(root, old)
        os.replace(staging, root)
        shutil.rmtree(old)
    else:
        os.replace(staging, root)


def discard_tree(staging: Path) -> None:
    """Remove a staging folder that was not swapped in (nothing happens when it was)."""
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
