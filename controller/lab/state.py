"""Where a running lab is written down: ``<root>/<lab name>/state.json`` and the files beside it.

The root is ``/run/qoectl/lab`` (``$QOECTL_LAB_DIR`` or ``--state-dir`` change it; tests use their
own). One lab per root: ``qoectl lab up`` refuses while a state is there, and ``down``/``status``
need no name. The state is written *before* anything is created and again after every step, so a
lab that failed half-way up is still removed completely by ``qoectl lab down``.

A lab's folder (mode 0700) holds:

=====================  ==============================================================
``state.json``         the lab file's text, namespaces, root-side links, every process
                       (PID + start time), the current capacities, load and cross traffic
``id_ed25519``         the key ``qoectl apply`` logs in with (the inventory's key_file)
``known_hosts``        every router's host key, for ``qoectl apply --known-hosts``
``env``                ``QOECTL_LAB_USER=root``: the inventory's username_env
``routers/<name>/``    each router's sshd config, host key, authorized_keys
``logs/``              every background process's output
``counters/``          the receivers' byte counters (throughput)
=====================  ==============================================================
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from controller.lab.config import LabConfig, LabFileError, parse_lab
from controller.lab.netns import Proc

DEFAULT_ROOT = Path("/run/qoectl/lab")
ENV_ROOT = "QOECTL_LAB_DIR"
USER_ENV = "QOECTL_LAB_USER"
STATE_VERSION = 1
LOCK_WAIT_S = 120.0


class StateError(RuntimeError):
    """The state folder cannot be read or written; the message says which file and why."""


def state_root(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else DEFAULT_ROOT


@dataclass(frozen=True, slots=True)
class LabFiles:
    """The files of one lab under its folder."""

    folder: Path

    @property
    def state(self) -> Path:
        return self.folder / "state.json"

    @property
    def key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def env(self) -> Path:
        return self.folder / "env"

    def router(self, name: str) -> Path:
        return self.folder / "routers" / name

    def log(self, name: str) -> Path:
        return self.folder / "logs" / f"{name}.log"

    def counters(self, generator: str) -> Path:
        return self.folder / "counters" / f"{generator}.json"


@dataclass(frozen=True)
class LabState:
    """A lab as it is on this machine now; ``config`` is parsed from ``lab_text`` when first used."""

    name: str
    folder: Path
    lab_file: str
    lab_text: str
    lab_base: str  # the lab file's folder (relative paths in it are from here)
    created: float
    namespaces: tuple[str, ...]  # every namespace the lab creates (listed before they exist)
    root_links: tuple[str, ...]  # this machine's ends of the management links
    processes: tuple[Proc, ...] = ()
    capacity_kbps: dict[str, int] = field(default_factory=dict)  # per WAN, as now set
    bulk_load: float = 1.0
    complete: bool = False  # every step of ``up`` done
    degraded: dict[str, int] = field(default_factory=dict)  # per WAN: the cross traffic's kbit/s (qoectl lab degrade)

    @cached_property
    def config(self) -> LabConfig:
        """The lab file as it was brought up. ``down`` never needs it: a state this qoectl cannot parse any
        more (written by another version) is still removed completely."""
        try:
            return parse_lab(self.lab_text, self.lab_file, Path(self.lab_base))
        except LabFileError as exc:
            raise StateError(
                f"{self.files.state}: the lab file kept in the state does not load any more "
                f"({exc.diagnostics[0].format()}); `qoectl lab down` still removes the lab"
            ) from None

    @property
    def files(self) -> LabFiles:
        return LabFiles(self.folder)

    def capacity(self, wan: str) -> int:
        return self.capacity_kbps.get(wan, self.config.wan(wan).capacity_kbps)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "lab_file": self.lab_file,
            "lab_text": self.lab_text,
            "lab_base": self.lab_base,
            "created": self.created,
            "namespaces": list(self.namespaces),
            "root_links": list(self.root_links),
            "processes": [p.to_json() for p in self.processes],
            "capacity_kbps": dict(self.capacity_kbps),
            "bulk_load": self.bulk_load,
            "complete": self.complete,
            "degraded": dict(self.degraded),
        }

    @staticmethod
    def from_json(folder: Path, data: dict[str, Any]) -> LabState:
        return LabState(
            name=str(data["name"]),
            folder=folder,
            lab_file=str(data["lab_file"]),
            lab_text=str(data["lab_text"]),
            lab_base=str(data["lab_base"]),
            created=float(data["created"]),
            namespaces=tuple(str(n) for n in data["namespaces"]),
            root_links=tuple(str(n) for n in data["root_links"]),
            processes=tuple(Proc.from_json(p) for p in data["processes"]),
            capacity_kbps={str(k): int(v) for k, v in dict(data["capacity_kbps"]).items()},
            bulk_load=float(data["bulk_load"]),
            complete=bool(data["complete"]),
            degraded={str(k): int(v) for k, v in dict(data.get("degraded") or {}).items()},
        )

    def with_processes(self, processes: tuple[Proc, ...]) -> LabState:
        return replace(self, processes=processes)


def new_state(root: Path, config: LabConfig, lab_text: str, lab_base: Path) -> LabState:
    folder = root / config.name
    return LabState(
        name=config.name,
        folder=folder,
        lab_file=config.file,
        lab_text=lab_text,
        lab_base=str(lab_base),
        created=time.time(),
        namespaces=config.namespaces,
        root_links=tuple(config.root_interface(i) for i in range(len(config.routers))),
        capacity_kbps={w.name: w.capacity_kbps for w in config.wans},
        bulk_load=config.bulk_load,
    )


def write_state(state: LabState) -> None:
    """Write ``state.json`` aside and rename it over the old one: a reader sees the old or the new file."""
    path = state.files.state
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state.to_json(), f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise StateError(f"{path}: cannot write the lab state: {exc.strerror}") from None


def read_state(folder: Path) -> LabState:
    path = LabFiles(folder).state
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"{path}: no lab state here") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: cannot read the lab state: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise StateError(f"{path}: not a lab state this qoectl understands (version {STATE_VERSION})")
    try:
        return LabState.from_json(folder, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{path}: the lab state is damaged ({exc}); remove the lab's namespaces by hand") from None


def labs(root: Path) -> list[Path]:
    """The folders under ``root`` that hold a lab state."""
    try:
        return sorted(p for p in root.iterdir() if (p / "state.json").is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


def current(root: Path) -> LabState | None:
    """The lab under ``root``, if one is up (or was left half up)."""
    found = labs(root)
    return read_state(found[0]) if found else None


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One ``qoectl lab`` command at a time per state root (``up`` and ``down`` never interleave)."""
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"{root}: cannot use the lab state folder: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StateError(f"another qoectl lab command is still running ({root / '.lock'})") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
