"""The loop's Adjustments document: the one file ``qoectl loop`` writes in the policy repository.

``PATH/adjustments/loop.yaml`` holds one ``kind: Adjustments`` document named
``qoectl-loop``; the compiler reads it like any policy. It is written whole and
atomically (a temporary file beside it, renamed over it), in a stable layout, so
that a change shows as a small diff in review. Every other file of the
repository is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from controller.adjust.files import write_atomic
from controller.model import (
    Adjustment,
    BandwidthChange,
    MarkingChange,
    PathChange,
    ShaperChange,
    StrictPriorityChange,
)

LOOP_DOCUMENT = "qoectl-loop"
LOOP_FILE = Path("adjustments") / "loop.yaml"
HEADER = (
    "# Written by qoectl loop: the changes it made on top of the journeys, each with its reason, the measurements\n"
    "# behind it and when (docs/loop.md). The compiler applies them like any policy. Review changes by merge\n"
    "# request (qoectl loop --propose); the loop rewrites this file, and edits to it are respected.\n"
)


class DocumentError(ValueError):
    """The loop's document cannot be written where asked."""


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _change(a: Adjustment) -> dict[str, Any]:
    c = a.change
    if isinstance(c, ShaperChange):
        return {"device": c.device, "interface": c.interface, "kbps": int(c.kbps)}
    if isinstance(c, BandwidthChange):
        return {"journey": c.journey, "device": c.device, "kbps": _number(c.kbps)}
    if isinstance(c, StrictPriorityChange):
        return {"journey": c.journey}
    if isinstance(c, PathChange):
        return {"journey": c.journey, "device": c.device, "transport": c.transport}
    assert isinstance(c, MarkingChange)
    return {"journey": c.journey, "device": c.device}


def document_data(entries: Iterable[Adjustment]) -> dict[str, Any]:
    return {
        "apiVersion": "qoectl/v1",
        "kind": "Adjustments",
        "metadata": {"name": LOOP_DOCUMENT, "owner": "qoectl loop"},
        "spec": {
            "entries": [
                {
                    a.change_field: _change(a),
                    "reason": a.reason,
                    "measurements": {k: float(v) for k, v in a.measurements},
                    "time": a.time,
                }
                for a in entries
            ]
        },
    }


def document_text(entries: Iterable[Adjustment]) -> str:
    """The document as YAML: block style, keys in the order of the reference, quoted where YAML needs it."""
    body = yaml.safe_dump(
        document_data(entries), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return HEADER + body


def loop_file(policy_root: Path) -> Path:
    """Where the loop's document lives: ``adjustments/loop.yaml`` in the policy folder."""
    if not policy_root.is_dir():
        raise DocumentError(f"{policy_root}: the loop writes its Adjustments into a policy folder, not a single file")
    return policy_root / LOOP_FILE


def write_adjustments(policy_root: Path, entries: Iterable[Adjustment]) -> Path:
    """Write the loop's document (atomically); unchanged text is not rewritten. Returns its path."""
    path = loop_file(policy_root)
    text = document_text(entries)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except FileNotFoundError:
        pass
    return write_atomic(path, text)
