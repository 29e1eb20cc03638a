"""The small interface every platform's apply driver implements.

A driver knows how one platform stores QoS and how to change it *atomically*.
The engine (``controller.apply.engine``) owns everything else: connections,
locking, backups in the run folder, diffs, verification, rollback decisions,
results. So a driver is a handful of methods:

``snapshot``   read the running config; return it (for the backup) and the
               canonical text of the part qoectl owns (for diffs and checks)
``intended``   the canonical text that part should have
``push``       change the device from the snapshot to the intended state,
               sending nothing when they are equal (the engine checks first)
``confirm``    make a verified change permanent (save, commit, stop a watchdog)
``rollback``   return the device to the snapshot, the platform's way
``same``       whether two snapshots mean "the device is exactly as it was"

Drivers take the rendered files as text and never import renderer code, so a
new platform is one module: a renderer's templates plus a driver here.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from controller.apply.connection import Session, Timeouts
from controller.model import Device


@dataclass(frozen=True, slots=True)
class Snapshot:
    backup: Mapping[str, str]  # file name -> text, saved under backups/<device>/
    state: str  # canonical text of what qoectl owns on the device
    extra: Mapping[str, str] = field(default_factory=dict)  # driver-private facts (e.g. a file path on the device)


@dataclass(frozen=True, slots=True)
class DriverContext:
    run_id: str
    timeouts: Timeouts
    # How long an unconfirmed change may live on the device before the device
    # restores the backup by itself (Linux watchdog, Junos ``commit confirmed``).
    confirm_s: int = 120


class Driver(ABC):
    platform: ClassVar[str]
    device_type: ClassVar[str]  # netmiko device_type

    def __init__(self, device: Device, files: Mapping[str, str], ctx: DriverContext) -> None:
        self.device = device
        self.files = dict(files)
        self.ctx = ctx

    @abstractmethod
    def snapshot(self, s: Session) -> Snapshot: ...

    @abstractmethod
    def intended(self, s: Session, before: Snapshot) -> str: ...

    @abstractmethod
    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        """Apply the change; return the commands sent. On failure raise ``ApplyError(..., sent=...)``."""

    def confirm(self, s: Session, before: Snapshot) -> None:  # noqa: B027 - optional step
        """Make a verified change permanent (default: nothing to do)."""

    @abstractmethod
    def rollback(self, s: Session, before: Snapshot) -> str:
        """Return the device to ``before``; return a short description of how."""

    def same(self, before: Snapshot, after: Snapshot) -> bool:
        """Whether the device is exactly as it was (default: the owned state is identical)."""
        return before.state == after.state

    def cleanup(self, s: Session) -> None:  # noqa: B027 - optional step
        """Remove temporary files the driver left on the device (best effort)."""

    def fallback_note(self) -> str:
        """What the device does by itself if qoectl cannot reach it to roll back (e.g. a watchdog)."""
        return ""

    def fallback_deadline(self) -> float | None:
        """``time.monotonic()`` by which the device will have restored itself, if it will (else ``None``).

        The engine keeps reconnecting until then, so a restore the device did by itself is verified too.
        """
        return None


def unified(device: str, running: str, intended: str) -> str:
    """A unified diff from the running to the intended owned state (empty when equal)."""
    return "".join(
        difflib.unified_diff(
            running.splitlines(keepends=True),
            intended.splitlines(keepends=True),
            fromfile=f"running/{device}",
            tofile=f"intended/{device}",
        )
    )


def ensure_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"
