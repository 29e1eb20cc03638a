"""What can go wrong while applying, classified so results and exit codes can say it plainly."""

from __future__ import annotations

from controller.apply.result import ErrorKind


class ApplyError(Exception):
    """A per-device failure with a kind (see :data:`ErrorKind`) and a one-line, secret-free message."""

    def __init__(self, kind: ErrorKind, message: str, *, sent: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.sent = sent  # commands the device may have received before the failure

    def __str__(self) -> str:
        return self.message


class UsageError(Exception):
    """A mistake in how qoectl apply was called (bad --limit, --shard, missing files...): exit 1, no traceback."""


class LockedError(Exception):
    """Another apply holds the lock of one of the selected devices."""
