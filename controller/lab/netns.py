"""Network namespaces and the processes in them, by name and by PID.

Every process the lab starts is recorded as a :class:`Proc`: its PID *and* its start time (field 22
of ``/proc/PID/stat``), so stopping it later can never hit another process that got the same PID
after a reboot or a wrap-around. Processes are started in a session of their own (``setsid``), so a
Ctrl-C in the shell that ran ``qoectl lab up`` does not reach them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class LabCommandError(RuntimeError):
    """A command the lab runs failed; the message names it and what it printed."""


def run(cmd: Sequence[str], *, check: bool = True, input: str | None = None, timeout: float = 60) -> str:
    """Run ``cmd``; its stdout, or :class:`LabCommandError` with its stderr when it fails (and ``check``)."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=timeout, check=False)
    except FileNotFoundError:
        raise LabCommandError(f"{cmd[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise LabCommandError(f"{' '.join(cmd)}: no answer within {timeout:g} s") from None
    if check and proc.returncode != 0:
        text = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise LabCommandError(f"{' '.join(cmd)} failed: {text[0] if text else f'exit {proc.returncode}'}")
    return proc.stdout


def in_ns(namespace: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *cmd]


def existing_namespaces() -> set[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def namespace_pids(namespace: str) -> list[int]:
    """Every process in ``namespace`` (whoever started it)."""
    out = run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in out.split() if p.isdigit()]


# --------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[19])


@dataclass(frozen=True, slots=True)
class Proc:
    """A process the lab started: what it is, where it runs, and how to recognise it again."""

    name: str
    role: str  # "sshd", "generator", "receiver"
    namespace: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    log: str

    def alive(self) -> bool:
        """Still running, and still the process the lab started (same PID *and* start time)."""
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.start_ticks and stat[0] not in ("Z", "X")

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "namespace": self.namespace,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "argv": list(self.argv),
            "log": self.log,
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> Proc:
        argv = data["argv"]
        assert isinstance(argv, list)
        return Proc(
            name=str(data["name"]),
            role=str(data["role"]),
            namespace=str(data["namespace"]),
            pid=int(str(data["pid"])),
            start_ticks=int(str(data["start_ticks"])),
            argv=tuple(str(a) for a in argv),
            log=str(data["log"]),
        )


def python_env() -> dict[str, str]:
    """The environment for ``python -m controller...`` in a namespace: this qoectl's package first on the path."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}


def start(name: str, role: str, namespace: str, argv: Sequence[str], log: Path) -> Proc:
    """Start ``argv`` in ``namespace`` in the background (own session, output to ``log``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            in_ns(namespace, *argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=python_env(),
        )
    stat = _stat(proc.pid)
    if stat is None:  # gone already: record it anyway, so the error below can name its log
        return Proc(name, role, namespace, proc.pid, -1, tuple(argv), str(log))
    return Proc(name, role, namespace, proc.pid, stat[1], tuple(argv), str(log))


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (a lab started in this process), so no zombie stays."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(procs: Iterable[Proc], timeout: float = 5.0) -> list[Proc]:
    """SIGTERM every one still alive, SIGKILL what is left after ``timeout``; returns any that survived."""
    todo = [p for p in procs if p.alive()]
    for p in todo:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        for p in todo:
            _reap(p.pid)
        todo = [p for p in todo if p.alive()]
        if not todo or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for p in todo:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while todo and time.monotonic() < deadline:
        for p in todo:
            _reap(p.pid)
        todo = [p for p in todo if p.alive()]
        time.sleep(0.02)
    return todo


def kill_namespace_processes(namespace: str, timeout: float = 5.0) -> list[int]:
    """Stop every process left in ``namespace`` (qoectl's rollback watchdog, a shell ...); returns survivors."""
    pids = namespace_pids(namespace)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        for pid in pids:
            _reap(pid)
        pids = [p for p in namespace_pids(namespace) if p in pids]
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    for pid in pids:
        _reap(pid)
    return namespace_pids(namespace)
