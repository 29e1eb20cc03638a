"""Where the intended configs come from: rendered now from the policies, or a ``qoectl plan --out`` folder.

Why check the manifest: in CI the rendered folder is usually an artifact of an
earlier job. Applying a folder whose files do not match the SHA-256 the plan
recorded (truncated upload, hand edit, another plan's files) must stop before
anything is sent to any device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from controller.apply.errors import UsageError
from controller.render.tree import MANIFEST, OutputFolderError, read_manifest

Rendered = Mapping[str, tuple[str, Mapping[str, str]]]  # device -> (platform, {file: text})


def read_rendered(folder: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Read and verify ``folder`` (as written by ``qoectl plan --out``)."""
    try:
        manifest = read_manifest(folder)
    except OutputFolderError as exc:
        raise UsageError(str(exc)) from None
    if manifest is None:
        raise UsageError(f"--out {folder}: no {MANIFEST} (write it with: qoectl plan --out {folder})")
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for device, entry in sorted(manifest.devices.items()):
        files: dict[str, str] = {}
        for name, digest in sorted(entry.files.items()):
            path = folder / device / name
            if not path.is_file():
                raise UsageError(f"{path}: listed in {MANIFEST} but missing")
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != digest:
                raise UsageError(f"{path}: does not match the SHA-256 in {MANIFEST} (edited or damaged)")
            files[name] = raw.decode("utf-8")
        out[device] = (entry.platform, files)
    return out
