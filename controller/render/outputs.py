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
        files = {f.name: f.read_text(encoding="utf-8") for f in sorted(device_dir.iterdir()) if f.is_file()}
        out[device_dir.name] = files
    return out


def _diff(name: str, device: str, old: str, new: str) -> tuple[str, int, int]:
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
        old = baseline.get(device, {})
        platform, new = rendered.get(device, ("", {}))
        files = []
        for name in sorted(set(old) | set(new)):
            diff, added, removed = _diff(name, device, old.get(name, ""), new.get(name, ""))
            if name not in old:
                status: Status = "new"
            elif name not in new:
                status = "removed"
            else:
                status = "changed" if diff else "unchanged"
            files.append(FileChange(name, status, diff, added, removed))
        if device not in baseline:
            dev_status: Status = "new"
        elif device not in rendered:
            dev_status = "removed"
        else:
            dev_status = "changed" if any(f.status != "unchanged" for f in files) else "unchanged"
        changes.append(DeviceChange(device, platform, dev_status, tuple(files)))
    return changes


def write_tree(root: Path, rendered: Mapping[str, tuple[str, Mapping[str, str]]]) -> None:
    """Replace ``root`` with exactly the rendered files (built aside, then swapped in)."""
    root = root.resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        manifest: dict[str, object] = {}
        for device, (platform, files) in sorted(rendered.items()):
            ddir = staging / device
            ddir.mkdir()
            entry = {}
            for name, text in sorted(files.items()):
                (ddir / name).write_text(text, encoding="utf-8")
                entry[name] = hashlib.sha256(text.encode()).hexdigest()
            manifest[device] = {"platform": platform, "files": entry}
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
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
