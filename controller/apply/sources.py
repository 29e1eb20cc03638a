"""Where the intended configs come from: rendered now from the policies, or a ``qoectl plan --out`` folder.

Why check the manifest: in CI the rendered folder is usually an artifact of an
earlier job. Applying a folder whose files do not match the SHA-256 the plan
recorded (truncated upload, hand edit, another plan's files) must stop before
anything is sent to any device.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from controller.apply.errors import UsageError
from controller.render.outputs import MANIFEST

Rendered = Mapping[str, tuple[str, Mapping[str, str]]]  # device -> (platform, {file: text})


def read_rendered(folder: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Read and verify ``folder`` (as written by ``qoectl plan --out``)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"--out {folder}: no {MANIFEST} (write it with: qoectl plan --out {folder})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise UsageError(f"{manifest_path}: expected an object of devices")
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for device, entry in sorted(manifest.items()):
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            raise UsageError(f"{manifest_path}: device '{device}' has no 'files'")
        files: dict[str, str] = {}
        for name, digest in sorted(entry["files"].items()):
            path = folder / device / name
            if not path.is_file():
                raise UsageError(f"{path}: listed in {MANIFEST} but missing")
            text = path.read_text(encoding="utf-8")
            if hashlib.sha256(text.encode()).hexdigest() != digest:
                raise UsageError(f"{path}: does not match the SHA-256 in {MANIFEST} (edited or damaged)")
            files[name] = text
        out[device] = (str(entry.get("platform", "")), files)
    return out
