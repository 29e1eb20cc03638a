"""The run folder and its JSON-lines audit log.

Why JSON lines: one event per line survives a crash mid-run (everything up to
the crash is readable), appends are cheap from many worker threads, and CI
systems and ``jq`` read it directly. Every line passes through
:func:`~controller.apply.secrets.redact` before it is written.

Layout of a run folder (kept by CI as an artifact)::

    audit.jsonl                 every event, in order
    result.json                 the fleet result
    backups/<device>/...        running config/state before any change
    intended/<device>/...       the rendered files that were applied
    diffs/<device>.diff         running vs intended, as shown
"""

from __future__ import annotations

import getpass
import json
import os
import secrets as _random
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.apply.secrets import redact


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + _random.token_hex(3)


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class RunFolder:
    """Writes the run folder's files; safe to call from many worker threads."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self._lock = threading.Lock()
        self._seq = 0
        root.mkdir(parents=True, exist_ok=True)
        self._audit = open(root / "audit.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def event(self, event: str, device: str | None = None, **data: Any) -> None:
        with self._lock:
            self._seq += 1
            record: dict[str, Any] = {"ts": _now(), "run_id": self.run_id, "seq": self._seq, "event": event}
            if device is not None:
                record["device"] = device
            record.update(data)
            self._audit.write(redact(json.dumps(record, sort_keys=True, default=str)) + "\n")
            self._audit.flush()

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(text), encoding="utf-8")
        return path

    def write_files(self, folder: str, files: Mapping[str, str]) -> Path:
        for name, text in sorted(files.items()):
            self.write(f"{folder}/{name}", text)
        return self.root / folder

    def close(self) -> None:
        with self._lock:
            self._audit.close()


def who() -> dict[str, str]:
    """Who ran the apply, for the audit log (no secrets: user, host, CI job if any)."""
    info = {"user": getpass.getuser(), "host": socket.gethostname(), "pid": str(os.getpid())}
    for var in ("CI_JOB_ID", "GITHUB_RUN_ID", "BUILD_ID", "CI_PIPELINE_ID"):
        if os.environ.get(var):
            info[var.lower()] = os.environ[var]
    return info
