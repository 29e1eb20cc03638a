"""SSH sessions through netmiko: verified host keys, timeouts, and failures turned into clear kinds.

Why wrap netmiko: the engine needs to know *what kind* of failure happened
(wrong key, unknown host key, refused, dropped mid-push) to decide between
"nothing was sent" and "roll back", and to say it in one line. netmiko and
paramiko express these as a handful of exception types with long multi-line
messages; :func:`classify` maps them to :class:`ApplyError` kinds.

Host keys are verified against a known_hosts file by default (paramiko's
``RejectPolicy``). ``accept_new`` behaves like OpenSSH's
``StrictHostKeyChecking=accept-new``: an unknown host is added to the file, a
*changed* key is still refused.

Linux shells get a fixed prompt of qoectl's own right after login (and again
after ``sudo -s``): netmiko finds the end of a command's output by the prompt,
and a stock prompt such as Debian's ``root@host:~#`` changes with every ``cd``.
A shell that will not take that prompt (read-only ``PS1`` or
``PROMPT_COMMAND``, not a POSIX shell) is a ``prompt`` error at login, not a
command timeout later.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko  # type: ignore[import-untyped]  # no stubs; pyproject is not ours to change
from netmiko import ConnectHandler
from netmiko.channel import SSHChannel
from netmiko.exceptions import (
    ConfigInvalidException,
    NetmikoAuthenticationException,
    NetmikoTimeoutException,
    ReadException,
    ReadTimeout,
)

from controller.apply.credentials import SshCredentials
from controller.apply.errors import ApplyError
from controller.apply.secrets import redact


@dataclass(frozen=True, slots=True)
class HostKeyPolicy:
    known_hosts: Path
    accept_new: bool = False


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0  # TCP connect, SSH banner and authentication, each
    command: float = 60.0  # any single command or config block


_known_hosts_lock = threading.Lock()


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
    """Add unknown hosts to the known_hosts file (changed keys never reach here: paramiko refuses them)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _known_hosts_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as f:
                f.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


class _EofAwareChannel(SSHChannel):
    """netmiko's SSH channel, but a closed channel raises at once instead of waiting for a read timeout.

    Why: a device that drops the session mid-push would otherwise look like a
    slow device until ``read_timeout`` expires; rollback should start right away.
    """

    def read_buffer(self) -> str:
        out = super().read_buffer()
        conn = self.remote_conn
        if not out and conn is not None and (conn.closed or conn.eof_received) and not conn.recv_ready():
            raise ReadException("Channel stream closed by remote device.")
        return out


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


def classify(exc: BaseException, where: str) -> ApplyError:
    """An :class:`ApplyError` for any exception netmiko/paramiko/socket code may raise."""
    if isinstance(exc, ApplyError):
        return exc
    text = redact(str(exc))
    low = text.lower()
    if isinstance(exc, paramiko.BadHostKeyException) or ("does not match" in low and "host key" in low):
        return ApplyError(
            "host_key",
            f"{where}: the host key has CHANGED (does not match known_hosts); refusing to connect",
        )
    if "not found in known_hosts" in low:
        return ApplyError(
            "host_key",
            f"{where}: unknown host key (not in known_hosts); add it (ssh-keyscan) "
            "or use --accept-new-host-keys in a lab",
        )
    if isinstance(exc, NetmikoAuthenticationException | paramiko.AuthenticationException):
        return ApplyError("auth", f"{where}: authentication failed (check the user, key or password)")
    if isinstance(exc, ConfigInvalidException):
        return ApplyError("rejected", f"{where}: device rejected a line: {_first_line(text)}")
    if isinstance(exc, ReadTimeout):
        return ApplyError("timeout", f"{where}: no answer within the command timeout")
    if isinstance(exc, ReadException | EOFError | BrokenPipeError | ConnectionResetError) or (
        isinstance(exc, OSError | paramiko.SSHException) and ("closed" in low or "not open" in low)
    ):
        return ApplyError("session_lost", f"{where}: the SSH session was dropped ({_first_line(text)})")
    if isinstance(exc, NetmikoTimeoutException | socket.timeout | TimeoutError):
        if "dns failure" in low:
            return ApplyError("connect", f"{where}: host name does not resolve")
        if "tcp connection to device failed" in low:
            return ApplyError("connect", f"{where}: cannot reach the SSH port (refused or unreachable)")
        return ApplyError("connect", f"{where}: SSH connection failed or timed out ({_first_line(text)})")
    if isinstance(exc, ConnectionRefusedError | OSError):
        return ApplyError("connect", f"{where}: cannot reach the SSH port ({_first_line(text)})")
    if isinstance(exc, paramiko.SSHException):
        return ApplyError("connect", f"{where}: SSH error ({_first_line(text)})")
    return ApplyError("internal", f"{where}: {type(exc).__name__}: {_first_line(text)}")


# qoectl's prompts on a Linux shell. PS1 is written as two quoted halves so that the echo of this
# line never contains the prompt itself; PROMPT_COMMAND goes because it may rewrite PS1 before
# every prompt (virtualenv hooks, title setters).
SET_PROMPT = (
    "unset PROMPT_COMMAND HISTFILE; PS0=''; PS2=''; "
    "if [ \"$(id -u)\" = 0 ]; then PS1='qoectl''-root# '; else PS1='qoectl''-user$ '; fi"
)
_OWN_PROMPT = re.compile(r"(?:\A|[\r\n])(qoectl-root#|qoectl-user\$)[ \t]*\Z")
_SHELL_COMPLAINT = re.compile(r"readonly|read-only|cannot unset|syntax error|not found|unknown command", re.I)


def _read_for(conn: Any, seconds: float, *, until: re.Pattern[str] | None = None, quiet: float = 0.0) -> str:
    """Read the channel for up to ``seconds``: until ``until`` matches, or ``quiet`` seconds pass without data."""
    out = ""
    end = time.monotonic() + seconds
    last = time.monotonic()
    while time.monotonic() < end:
        data = conn.read_channel()
        if data:
            out += data
            last = time.monotonic()
        if until is not None and until.search(out):
            break
        if quiet and out and not data and time.monotonic() - last >= quiet:
            break
        time.sleep(0.02)
    return out


def own_prompt(conn: Any, where: str, wait: float) -> bool:
    """Give the shell qoectl's fixed prompt and check it shows; returns whether the shell is root.

    Raises ``ApplyError("prompt")`` when the prompt does not appear within ``wait`` seconds.
    """
    conn.write_channel(conn.normalize_cmd(SET_PROMPT))
    seen = _read_for(conn, wait, until=_OWN_PROMPT)
    found = _OWN_PROMPT.search(seen)
    if found is None:
        lines = [line.strip() for line in seen.replace("\r", "\n").split("\n") if line.strip()]
        said = [line for line in lines if _SHELL_COMPLAINT.search(line) and "qoectl''" not in line]
        last = lines[-1] if lines else "nothing"
        raise ApplyError(
            "prompt",
            f"{where}: the shell did not take qoectl's prompt within {wait:g}s (qoectl sets PS1 after login "
            f"so that no cd or dotfile changes the prompt it waits for); last line: {redact(last)!r}"
            + (f"; the shell said: {redact(said[0])!r}" if said else "")
            + ". Check the login's dotfiles for a read-only PS1 or PROMPT_COMMAND; the login shell must be sh or bash",
        )
    root = found.group(1) == "qoectl-root#"
    conn.base_prompt = found.group(1)[:-1]  # netmiko waits for this after every command
    _read_for(conn, 0.5, quiet=0.1)  # anything after the prompt (there should be nothing)
    return root


def _prepare_linux(conn: Any, where: str, wait: float) -> None:
    """Replaces netmiko's ``session_preparation`` for ``linux``: no guessing at the login's own prompt."""
    conn.ansi_escape_codes = True
    conn.channel = _EofAwareChannel(conn.remote_conn, conn.encoding)
    # Let the login finish its dotfiles (it prints a prompt, or a banner) before typing.
    _read_for(conn, wait, quiet=0.3)
    own_prompt(conn, where, wait)


class Session:
    """One netmiko connection to one device, with every call's failures classified."""

    def __init__(self, conn: Any, where: str, timeouts: Timeouts) -> None:
        self.conn = conn
        self.where = where
        self.timeouts = timeouts

    def send(
        self,
        command: str,
        *,
        expect: str | None = None,
        timeout: float | None = None,
        strip: bool = True,
        cmd_verify: bool = True,
    ) -> str:
        """``send_command``: run one command, return its output (prompt and echo stripped)."""
        try:
            out = self.conn.send_command(
                command,
                expect_string=expect,
                read_timeout=timeout or self.timeouts.command,
                strip_prompt=strip,
                strip_command=strip,
                cmd_verify=cmd_verify,
            )
        except Exception as exc:
            raise classify(exc, self.where) from None
        return str(out)

    def send_timing(self, command: str, *, timeout: float | None = None) -> str:
        """``send_command_timing``: for commands that answer with a question instead of a prompt."""
        try:
            out = self.conn.send_command_timing(
                command, read_timeout=timeout or self.timeouts.command, strip_prompt=False, strip_command=False
            )
        except Exception as exc:
            raise classify(exc, self.where) from None
        return str(out)

    def config(self, lines: Sequence[str], *, error_pattern: str, **kwargs: Any) -> str:
        """``send_config_set`` with the platform's error pattern: a rejected line raises ``rejected``."""
        try:
            out = self.conn.send_config_set(
                list(lines),
                error_pattern=error_pattern,
                read_timeout=self.timeouts.command,
                **kwargs,
            )
        except Exception as exc:
            raise classify(exc, self.where) from None
        return str(out)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Any other netmiko method (``commit``, ``exit_config_mode``...), failures classified."""
        try:
            return getattr(self.conn, method)(*args, **kwargs)
        except Exception as exc:
            raise classify(exc, self.where) from None

    def alive(self) -> bool:
        try:
            return bool(self.conn.is_alive())
        except Exception:
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead session must not mask the real result
            self.conn.disconnect()


def _forget(conn: Any) -> None:
    """Release what a half-opened connection holds (netmiko's log filter, paramiko's client)."""
    import logging

    try:
        logging.getLogger("netmiko").removeFilter(conn._secrets_filter)
        conn.paramiko_cleanup()
    except Exception:  # noqa: S110 - best effort on a connection that never opened
        pass


def connect(
    *,
    device_type: str,
    host: str,
    port: int,
    credentials: SshCredentials,
    host_keys: HostKeyPolicy,
    timeouts: Timeouts,
    where: str,
) -> Session:
    """Open and prepare a netmiko session, verifying the host key; raises a classified :class:`ApplyError`."""
    known = host_keys.known_hosts
    if not host_keys.accept_new and not known.is_file():
        raise ApplyError(
            "host_key",
            f"{where}: known_hosts file {known} does not exist; create it (ssh-keyscan) "
            "or use --accept-new-host-keys in a lab",
        )
    params: dict[str, Any] = {
        "device_type": device_type,
        "host": host,
        "port": port,
        "ssh_strict": True,
        "system_host_keys": False,
        "alt_host_keys": True,
        "alt_key_file": str(known),
        "conn_timeout": timeouts.connect,
        "auth_timeout": timeouts.connect,
        "banner_timeout": timeouts.connect,
        "fast_cli": True,
        "auto_connect": False,
        **credentials.netmiko_args(),
    }
    conn: Any = None
    try:
        conn = ConnectHandler(**params)
        if host_keys.accept_new:
            conn.key_policy = _AcceptNewPolicy(known)
        if device_type == "linux":
            conn.session_preparation = lambda: _prepare_linux(conn, where, timeouts.connect)
        conn._open()  # auto_connect=False above: the host key policy had to be set first
        conn.channel = _EofAwareChannel(conn.remote_conn, conn.encoding)
    except Exception as exc:
        if conn is not None:
            _forget(conn)
        raise classify(exc, where) from None
    session = Session(conn, where, timeouts)
    if credentials.become == "sudo":
        _become_root(session)
    return session


def _become_root(s: Session) -> None:
    """``sudo -s`` (netmiko answers a password prompt with the ``secret``); the session is closed on failure."""
    try:
        s.conn.enable(cmd="sudo -s")
        # Root's shell prompts as its dotfiles say (often with the working directory): give it qoectl's.
        root = own_prompt(s.conn, s.where, s.timeouts.connect)
    except Exception as exc:  # ValueError: still not root; ReadTimeout: sudo asked again (wrong or no password)
        s.close()
        err = classify(exc, s.where)
        if err.kind in ("session_lost", "connect", "prompt"):
            raise err from None
        root = False
    if not root:
        s.close()
        raise ApplyError(
            "auth",
            f"{s.where}: could not become root with 'sudo -s' (check the user's sudo rights, "
            "and become_password_env when sudo asks for a password)",
        ) from None
