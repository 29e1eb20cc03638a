"""Typed results: one :class:`DeviceResult` per device, rolled up into a :class:`FleetResult`.

Why a closed set of statuses: CI and people both act on them. ``status`` says
what qoectl did; ``left_in`` says what the device looks like now, which is what
an on-call engineer needs when something failed:

- ``intended``  the device runs the intended QoS (changed, or already unchanged)
- ``original``  the device is as it was before the run (nothing sent, or rolled back and verified)
- ``unknown``   qoectl could not prove either; the backup in the run folder is the way back
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["changed", "unchanged", "would_change", "failed", "rolled_back", "skipped"]
LeftIn = Literal["intended", "original", "unknown"]
ErrorKind = Literal[
    "credentials",
    "connect",
    "auth",
    "host_key",
    "timeout",
    "prompt",
    "session_lost",
    "rejected",
    "verify",
    "precondition",
    "rollback",
    "internal",
    "not_started",
]

STATUSES: tuple[Status, ...] = ("changed", "unchanged", "would_change", "failed", "rolled_back", "skipped")
FAILED: frozenset[str] = frozenset({"failed", "rolled_back", "skipped"})

EXIT_OK, EXIT_FAILED, EXIT_CHANGED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class DeviceResult:
    device: str
    platform: str
    host: str
    status: Status
    left_in: LeftIn
    diff: str = ""
    commands: tuple[str, ...] = ()  # what was sent to change the device (empty: nothing sent)
    error: str = ""
    error_kind: ErrorKind | None = None
    rollback: str = ""  # how the device was returned to its backup, when it was
    backup: str = ""  # path of the backup in the run folder
    duration_s: float = 0.0
    canary: bool = False

    @property
    def ok(self) -> bool:
        return self.status not in FAILED

    @property
    def added(self) -> int:
        return sum(1 for line in self.diff.splitlines() if line.startswith("+") and not line.startswith("+++"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.diff.splitlines() if line.startswith("-") and not line.startswith("---"))

    def to_json(self) -> dict[str, object]:
        return {
            "device": self.device,
            "platform": self.platform,
            "host": self.host,
            "status": self.status,
            "left_in": self.left_in,
            "diff": self.diff,
            "added": self.added,
            "removed": self.removed,
            "commands": list(self.commands),
            "commands_sent": len(self.commands),
            "error": self.error,
            "error_kind": self.error_kind,
            "rollback": self.rollback,
            "backup": self.backup,
            "duration_s": round(self.duration_s, 3),
            "canary": self.canary,
        }


@dataclass(frozen=True, slots=True)
class FleetResult:
    results: tuple[DeviceResult, ...]
    run_dir: str
    run_id: str
    dry_run: bool
    stopped: str = ""  # why the run stopped early, if it did
    counts: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the run did not do by itself and where it left it (e.g. a file to load)

    @staticmethod
    def of(
        results: Iterable[DeviceResult], *, run_dir: str, run_id: str, dry_run: bool, stopped: str = ""
    ) -> FleetResult:
        ordered = tuple(sorted(results, key=lambda r: r.device))
        counts: dict[str, int] = {s: sum(1 for r in ordered if r.status == s) for s in STATUSES}
        return FleetResult(ordered, run_dir, run_id, dry_run, stopped, counts)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def changes(self) -> int:
        """Devices changed (apply) or that would change (dry run)."""
        return self.counts.get("changed", 0) + self.counts.get("would_change", 0)

    def exit_code(self, detailed: bool) -> int:
        """0 ok; 1 any device failed, rolled back or was skipped; 2 changes when ``detailed``."""
        if not self.ok:
            return EXIT_FAILED
        return EXIT_CHANGED if detailed and self.changes else EXIT_OK

    def to_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "stopped": self.stopped,
            "counts": dict(self.counts),
            "changes": self.changes,
            "notes": list(self.notes),
            "devices": [r.to_json() for r in self.results],
        }
