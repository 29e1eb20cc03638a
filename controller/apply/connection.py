"""SSH sessions through netmiko: verified host keys, timeouts, and failures turned into clear kinds.

Why wrap netmiko: the engine needs to know *what kind* of failure happened
(wrong key, unknown host key, refused, dropped mid-push) to decide between
"nothing was sent" and "roll back", and to say it in one line. :func:`classify`
maps exceptions to :class:`ApplyError` kinds by their *type* (and by whether the
session was already up), never by their message text: netmiko re-raises
paramiko's and the socket's exceptions as its own while handling them, so the
original is in the exception's ``__context__`` chain.

Only netmiko's public API is used: the platform's driver class comes from
``netmiko.ssh_dispatcher`` and qoectl subclasses it, overriding its public
``establish_connection`` (the host key policy), ``session_preparation`` (Linux)
and ``read_channel`` (a closed channel raises at once).

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
import functools
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
from netmiko import (
    BaseConnection,
    ConfigInvalidException,
    NetmikoTimeoutException,
    ReadException,
    ReadTimeout,
    ssh_dispatcher,
)
from netmiko.exceptions import WriteException

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


class UnknownHostKey(paramiko.SSHException):  # type: ignore[misc]  # paramiko is untyped
    """The server's host key is not in known_hosts (qoectl's own type: told apart from other SSH errors by type)."""


class _RejectUnknownPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
    """paramiko's ``RejectPolicy``, but raising :class:`UnknownHostKey` (a changed key never reaches here)."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(f"{hostname}: host key not in known_hosts")


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


_Prepare = Callable[[Any], None]
if TYPE_CHECKING:
    _Base = BaseConnection
else:
    _Base = object  # the mixin comes first in the MRO; the driver class is its sibling base


class _QoectlConnection(_Base):
    """Mixed into the platform's netmiko driver class: what qoectl changes, through netmiko's public methods."""

    def __init__(self, *, qoectl_key_policy: paramiko.MissingHostKeyPolicy, qoectl_prepare: _Prepare | None, **kw: Any):
        self.qoectl_key_policy = qoectl_key_policy
        self.qoectl_prepare = qoectl_prepare
        super().__init__(**kw)

    def establish_connection(self, width: int = 511, height: int = 1000) -> None:
        self.key_policy = self.qoectl_key_policy  # what netmiko's SSH client checks the host key with
        super().establish_connection(width, height)

    def session_preparation(self) -> None:
        if self.qoectl_prepare is None:
            super().session_preparation()
        else:
            self.qoectl_prepare(self)

    def read_channel(self) -> str:
        """netmiko's read, but a closed channel raises at once instead of waiting for a read timeout.

        Why: a device that drops the session mid-push would otherwise look like a
        slow device until ``read_timeout`` expires; rollback should start right away.
        """
        out = super().read_channel()
        conn: Any = self.remote_conn  # a paramiko Channel: qoectl speaks SSH only
        if not out and conn is not None and (conn.closed or conn.eof_received) and not conn.recv_ready():
            raise ReadException("Channel stream closed by remote device.")
        return out


@functools.cache
def _connection_class(device_type: str) -> type[_QoectlConnection]:
    """The platform's netmiko driver class (what ``ConnectHandler`` would make) with qoectl's changes."""
    base = ssh_dispatcher(device_type)
    return type(f"Qoectl{base.__name__}", (_QoectlConnection, base), {})


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling: netmiko wraps paramiko's and the socket's errors."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < 16 and not any(cur is e for e in out):
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def classify(exc: BaseException, where: str, *, connected: bool = True) -> ApplyError:
    """An :class:`ApplyError` for any exception netmiko/paramiko/socket code may raise, chosen by type.

    ``connected``: the session was up (an OSError or SSH error then means it was lost); ``False`` while
    connecting (it means the device could not be reached or the SSH handshake failed).
    """
    if isinstance(exc, ApplyError):
        return exc
    chain = _chain(exc)

    def found(*types: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    if found(paramiko.BadHostKeyException):
        return ApplyError(
            "host_key",
            f"{where}: the host key has CHANGED (does not match known_hosts); refusing to connect",
        )
    if found(UnknownHostKey):
        return ApplyError(
            "host_key",
            f"{where}: unknown host key (not in known_hosts); add it (ssh-keyscan) "
            "or use --accept-new-host-keys in a lab",
        )
    if found(paramiko.AuthenticationException):  # netmiko's NetmikoAuthenticationException is one
        return ApplyError("auth", f"{where}: authentication failed (check the user, key or password)")
    text = redact(str(exc))
    if isinstance(exc, ConfigInvalidException):
        return ApplyError("rejected", f"{where}: device rejected a line: {_first_line(text)}")
    if isinstance(exc, ReadTimeout):
        return ApplyError("timeout", f"{where}: no answer within the command timeout")
    if isinstance(exc, ReadException | WriteException | EOFError) or (
        connected and isinstance(exc, OSError | paramiko.SSHException) and not isinstance(exc, NetmikoTimeoutException)
    ):
        return ApplyError("session_lost", f"{where}: the SSH session was dropped ({_first_line(text)})")
    if connected and isinstance(exc, NetmikoTimeoutException):  # netmiko's session lock
        return ApplyError("timeout", f"{where}: timed out ({_first_line(text)})")
    # While connecting: netmiko raises NetmikoTimeoutException for socket and SSH handshake errors alike.
    cause = chain[1] if isinstance(exc, NetmikoTimeoutException) and len(chain) > 1 else exc
    if isinstance(cause, socket.gaierror):
        return ApplyError("connect", f"{where}: host name does not resolve")
    if isinstance(cause, TimeoutError):
        return ApplyError("connect", f"{where}: cannot reach the SSH port (no answer within the connect timeout)")
    if isinstance(cause, OSError):
        return ApplyError("connect", f"{where}: cannot reach the SSH port (refused or unreachable)")
    if isinstance(cause, paramiko.SSHException):
        return ApplyError("connect", f"{where}: SSH connection failed ({_first_line(redact(str(cause)))})")
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
        **credentials.netmiko_args(),
    }
    policy = _AcceptNewPolicy(known) if host_keys.accept_new else _RejectUnknownPolicy()
    prepare: _Prepare | None = None
    if device_type == "linux":
        prepare = functools.partial(_prepare_linux, where=where, wait=timeouts.connect)
    try:
        # netmiko connects in the constructor and, when that fails, releases what it held itself.
        conn = _connection_class(device_type)(qoectl_key_policy=policy, qoectl_prepare=prepare, **params)
    except Exception as exc:
        raise classify(exc, where, connected=False) from None
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
