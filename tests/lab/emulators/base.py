"""Machinery shared by every emulated platform.

* :class:`DeviceState` -- the device's state that outlives SSH sessions (configs, fault
  injection knobs, command log). One instance per device, shared by all its sessions and
  by the test process; every access goes through ``state.lock``.
* :class:`ChannelIO` -- stdin/stdout of a ``cmd.Cmd`` shell over a paramiko server channel.
  It echoes each received line like a terminal and sends a command's output and the next
  prompt in one write, so netmiko sees them together.
* :class:`LabShell` -- subclass of FakeNOS's ``CMDShell`` (itself a ``cmd.Cmd``). Platforms
  implement :meth:`LabShell.handle`; unknown exec commands fall back to the canned outputs
  of the stock FakeNOS platform plugin (``show version``, ``show clock`` ...).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import paramiko
from fakenos.core.nos import Nos
from fakenos.plugins.shell.cmd_shell import CMDShell

log = logging.getLogger(__name__)


class DeviceState:
    """State of one emulated device, shared by its SSH sessions and the test process."""

    platform = ""

    def __init__(self, name: str, username: str) -> None:
        self.name = name
        self.username = username
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.fail_after: int | None = None
        self.reject_re: re.Pattern[str] | None = None
        self.command_log: list[str] = []
        self.logins = 0
        self.auth_failures = 0
        self.host_key: paramiko.PKey | None = None

    # -- platform hooks -------------------------------------------------------------------
    def running_config(self) -> str:
        raise NotImplementedError

    def set_running_config(self, text: str) -> None:
        raise NotImplementedError

    def startup_config(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Stop background work (timers). Called when the lab stops."""

    # -- helpers ----------------------------------------------------------------------------
    def log(self, session: int, mode: str, line: str) -> None:
        with self.lock:
            self.command_log.append(f"{session} {mode}: {line}")

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()


class SessionHandle:
    """What a shell may do to its own SSH connection."""

    _ids = 0
    _ids_lock = threading.Lock()

    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport
        with SessionHandle._ids_lock:
            SessionHandle._ids += 1
            self.id = SessionHandle._ids

    def drop(self) -> None:
        """Close the TCP connection at once, without a goodbye (a link or box failure)."""
        try:
            self.transport.close()
        except Exception:
            log.exception("closing transport")


class ChannelIO:
    """Line-buffered terminal over a paramiko server channel, usable as cmd.Cmd stdin and stdout."""

    def __init__(self, channel: paramiko.Channel, is_running: threading.Event, poll_seconds: float = 0.1) -> None:
        self.channel = channel
        self.channel.settimeout(poll_seconds)
        self._is_running = is_running
        self._in = bytearray()
        self._out: list[str] = []
        self._skip_lf = False
        self.closed = False
        #: the client went away (readline returned "")
        self.eof = False

    # stdout side ----------------------------------------------------------------------------
    def write(self, text: str) -> int:
        self._out.append(text)
        return len(text)

    def discard_output(self) -> None:
        self._out.clear()

    def flush(self) -> None:
        if not self._out:
            return
        data = "".join(self._out).replace("\r\n", "\n").replace("\n", "\r\n")
        self._out.clear()
        if self.closed:
            return
        try:
            self.channel.sendall(data.encode("utf-8"))
        except (OSError, EOFError, paramiko.SSHException):
            self.closed = True

    # stdin side -----------------------------------------------------------------------------
    def readline(self) -> str:
        """Next line without its terminator plus "\\n", echoed back; "" at end of session."""
        line = self._readline()
        self.eof = line == ""
        return line

    def _readline(self) -> str:
        self.flush()
        while True:
            line = self._take_line()
            if line is not None:
                self.write(line + "\n")
                self.flush()
                return line + "\n"
            if self.closed or not self._is_running.is_set() or self.channel.closed:
                return ""
            try:
                chunk = self.channel.recv(4096)
            except TimeoutError:  # socket.timeout
                continue
            except (OSError, EOFError):
                return ""
            if not chunk:
                return ""
            self._in += chunk

    def _take_line(self) -> str | None:
        if self._skip_lf and self._in:
            if self._in[0] == 0x0A:
                del self._in[0]
            self._skip_lf = False
        for i, byte in enumerate(self._in):
            if byte in (0x0A, 0x0D):
                raw = bytes(self._in[:i])
                del self._in[: i + 1]
                if byte == 0x0D:
                    if self._in[:1] == b"\n":
                        del self._in[0]
                    elif not self._in:
                        self._skip_lf = True
                return _clean(raw.decode("utf-8", "replace"))
        return None


def _clean(raw: str) -> str:
    """Apply backspaces and drop other control characters, like a line editor."""
    out: list[str] = []
    for ch in raw:
        if ch in ("\x08", "\x7f"):
            if out:
                out.pop()
        elif ch == "\t" or ch >= " ":
            out.append(ch)
    return "".join(out)


_STOCK: dict[str, Nos] = {}
_STOCK_LOCK = threading.Lock()


def stock_nos(platform: str) -> Nos:
    """The stock FakeNOS plugin of ``platform``, parsed once per process (its YAML is large)."""
    from fakenos.plugins.nos import nos_plugins

    with _STOCK_LOCK:
        if platform not in _STOCK:
            _STOCK[platform] = Nos(filename=list(nos_plugins[platform]))
        return _STOCK[platform]


class LabNos(Nos):
    """A FakeNOS ``Nos`` that carries the emulated device's state.

    It takes the commands (and the template-rendering device object) of the stock FakeNOS
    plugin ``stock_platform``, so canned outputs such as ``show version`` stay available, and
    gets a per-device unique name so each device registers as its own NOS plugin.
    """

    def __init__(self, name: str, stock_platform: str, state: DeviceState) -> None:
        stock = stock_nos(stock_platform)
        super().__init__(name=name, commands=dict(stock.commands), initial_prompt=stock.initial_prompt)
        self.device = stock.device
        self.state = state


def split_pipe(line: str) -> tuple[str, list[tuple[str, str]]]:
    """``show x | include y | exclude z`` -> ("show x", [("include", "y"), ("exclude", "z")]).

    Only a ``|`` preceded by a blank separates: ``| include desc|interface`` keeps its regex.
    """
    parts = re.split(r"(?<=\s)\|", line)
    filters: list[tuple[str, str]] = []
    for part in parts[1:]:
        words = part.strip().split(None, 1)
        if words:
            filters.append((words[0].lower(), words[1] if len(words) > 1 else ""))
    return parts[0].strip(), filters


class LabShell(CMDShell):
    """Base shell: line dispatch, fault injection, stock-FakeNOS fallback."""

    #: config-mode lines starting with this are comments: not counted, not applied
    comment_prefix = "!"

    def __init__(
        self,
        stdin: ChannelIO,
        stdout: ChannelIO,
        nos: LabNos,
        nos_inventory_config: dict[str, Any],
        base_prompt: str,
        is_running: threading.Event,
        intro: str = "",
        ruler: str = "",
        completekey: str = "tab",
        newline: str = "\n",
        connection: SessionHandle | None = None,
    ) -> None:
        super().__init__(
            stdin=stdin,
            stdout=stdout,
            nos=nos,
            nos_inventory_config=nos_inventory_config,
            base_prompt=base_prompt,
            is_running=is_running,
            intro=intro,
            ruler=ruler,
            completekey=completekey,
            newline="\n",
        )
        self.state: DeviceState = nos.state
        self.io = stdout
        self.connection = connection
        self.session_id = connection.id if connection else 0
        self.config_lines = 0
        #: a question the device asked; the next line is its answer
        self.pending: Callable[[str], None] | None = None
        self.pending_prompt = ""
        with self.state.lock:
            self.state.logins += 1
            self.prompt = self.current_prompt()

    # -- platform interface -------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Process one line (already stripped); return True to end the session."""
        raise NotImplementedError

    def in_config_mode(self) -> bool:
        raise NotImplementedError

    def base_prompt_text(self) -> str:
        raise NotImplementedError

    def current_prompt(self) -> str:
        raise NotImplementedError

    def reject_error(self, line: str) -> str:
        """The platform's error text for a rejected configuration line."""
        raise NotImplementedError

    def on_disconnect(self) -> None:
        """The client went away (EOF) or the session was dropped."""

    # -- cmd.Cmd hooks ---------------------------------------------------------------------------
    def onecmd(self, line: str) -> bool:
        if (line == "EOF" and self.io.eof) or not self.is_running.is_set():
            with self.state.lock:
                self.on_disconnect()
            return True
        stripped = line.strip()
        with self.state.lock:
            config_line = (
                self.pending is None
                and self.in_config_mode()
                and bool(stripped)
                and not stripped.startswith(self.comment_prefix)
            )
            self.state.log(self.session_id, "config" if self.in_config_mode() else "exec", stripped)
            if self.pending is not None:
                answer, self.pending = self.pending, None
                answer(stripped)
                stop = False
            elif config_line and self.state.reject_re is not None and self.state.reject_re.search(stripped):
                self.writeline(self.reject_error(stripped))
                stop = False
            else:
                try:
                    stop = self.handle(stripped)
                except Exception:
                    log.exception("emulator error on %r", stripped)
                    self.writeline("% Internal error in the lab emulator")
                    stop = False
            if config_line:
                self.config_lines += 1
                limit = self.state.fail_after
                if limit is not None and self.config_lines >= limit:
                    # one-shot: the reconnecting repair session must get through
                    self.state.fail_after = None
                    self.io.discard_output()
                    self.on_disconnect()
                    if self.connection is not None:
                        self.connection.drop()
                    self.state.notify()
                    return True
            self.prompt = self.pending_prompt if self.pending is not None else self.current_prompt()
            self.state.notify()
        return stop

    def ask(self, question: str, answer: Callable[[str], None]) -> None:
        """Print ``question`` as the prompt; ``answer`` gets the next line."""
        self.pending = answer
        self.pending_prompt = question

    def writeline(self, value: Any) -> None:
        text = str(value)
        if not text:
            return
        self.stdout.write(text if text.endswith("\n") else text + "\n")

    def _check_prompt(self, prompt_: str | list[str] | None) -> bool:
        """Stock canned commands are offered whatever the (emulated) prompt is."""
        return True

    def stock_command(self, line: str) -> bool:
        """Answer from the stock FakeNOS plugin's canned commands; False if it has none."""
        data = self.commands.get(line)
        if data is None or line in ("exit", "_default_", "enable") or "new_prompt" in data:
            return False
        saved = self.prompt
        CMDShell.default(self, line)
        self.prompt = saved
        return True


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
