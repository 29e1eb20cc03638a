"""Locks so that two applies can never change the same device at the same time.

Why per device and keyed by ``host:port``: the device is the shared resource,
not the checkout. Two CI jobs working from different clones of the policy repo
on one runner, or two shards of one fleet, must exclude each other exactly on
the devices they share and no more. A short-held fleet lock serialises the
*acquisition* of device locks so two overlapping runs cannot deadlock or both
grab half the fleet.

``flock`` locks disappear with the process that held them, so a crashed run
never leaves a stale lock behind; the lock file only carries who held it last,
for the error message.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from controller.apply.errors import LockedError
from controller.model import Device


def default_lock_dir() -> Path:
    """``$QOECTL_LOCK_DIR``, else a per-user folder under the system temp dir."""
    env = os.environ.get("QOECTL_LOCK_DIR")
    if env:
        return Path(env)
    import tempfile

    return Path(tempfile.gettempdir()) / f"qoectl-locks-{os.getuid()}"


def lock_name(device: Device) -> str:
    ident = hashlib.sha256(f"{device.host}:{device.port}".encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", device.name)[:64]
    return f"device-{safe}-{ident}.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another qoectl apply"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} (run {info.get('run_dir')})"


@contextmanager
def _flock(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield f
    finally:
        f.close()


@contextmanager
def device_locks(lock_dir: Path, devices: Iterable[Device], run_dir: str) -> Iterator[None]:
    """Hold the lock of every device for the duration of the block; all or none.

    Raises :class:`LockedError` naming the devices another apply holds.
    """
    held: list[IO[str]] = []
    busy: list[str] = []
    try:
        with _flock(lock_dir / "fleet.lock"):
            for device in sorted(devices, key=lambda d: d.name):
                path = lock_dir / lock_name(device)
                f: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while locked
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.close()
                    busy.append(f"{device.name} (held by {_holder(path)})")
                    continue
                held.append(f)
                f.seek(0)
                f.truncate()
                info = {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "run_dir": run_dir,
                }
                f.write(json.dumps(info, sort_keys=True))
                f.flush()
            if busy:
                raise LockedError("another apply is running on: " + "; ".join(busy))
        yield
    finally:
        for f in held:
            f.close()
