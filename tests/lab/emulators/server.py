"""The SSH server: FakeNOS's ``ParamikoSshServer`` with what a test lab needs on top.

Differences from the stock server plugin (all in overridden methods):

* the host key is the device's own (RSA or ed25519), read from the device state on every
  connection, so a test can rotate it;
* the listening socket is bound WITHOUT ``SO_REUSEPORT``: a leftover server on the same port
  makes ``bind`` fail instead of silently taking half the connections;
* ``stop()`` shuts the listening socket down (which wakes ``accept``), closes every transport
  and joins every thread; it raises if one is still alive, so "stopped" means stopped;
* the shell runs directly on the channel through :class:`~.base.ChannelIO` (no per-byte
  sleeps, no helper threads), and gets a :class:`~.base.SessionHandle` to drop the session.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import paramiko
from fakenos.plugins.servers.ssh_server_paramiko import ParamikoSshServer

from .base import ChannelIO, DeviceState, LabNos, SessionHandle

log = logging.getLogger(__name__)

#: server-side paramiko transports log here: clients that hang up abruptly are routine in a lab,
#: so without logging configured these stay off stderr (pytest's log capture still sees them)
TRANSPORT_LOG = "tests.lab.emulators.transport"
logging.getLogger(TRANSPORT_LOG).addHandler(logging.NullHandler())

JOIN_SECONDS = 10.0


class LabServerInterface(paramiko.ServerInterface):
    """Password authentication against the device's one account; a pty and a shell."""

    def __init__(self, username: str, password: str, state: DeviceState) -> None:
        self.username = username
        self.password = password
        self.state = state
        self.shell_requested = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == self.username and password == self.password:
            return int(paramiko.AUTH_SUCCESSFUL)
        with self.state.lock:
            self.state.auth_failures += 1
        return int(paramiko.AUTH_FAILED)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return int(paramiko.OPEN_SUCCEEDED)
        return int(paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        return True

    def check_channel_window_change_request(
        self, channel: paramiko.Channel, width: int, height: int, pixelwidth: int, pixelheight: int
    ) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.shell_requested.set()
        return True


class LabSshServer(ParamikoSshServer):
    """Registered in a FakeNOS instance under the name "ParamikoSshServer"."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nos: LabNos
        self._socket: socket.socket | None
        self._listen_thread: threading.Thread | None
        self._connection_threads: list[threading.Thread]
        self._transports: set[paramiko.Transport] = set()
        self._threads_lock = threading.Lock()

    # -- socket -------------------------------------------------------------------------------
    def _bind_sockets(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # SO_REUSEADDR only lets us bind next to TIME_WAIT leftovers; on Linux it never lets
        # two sockets listen on one port. SO_REUSEPORT (which would) is deliberately not set.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.settimeout(self.timeout)
        try:
            sock.bind((self.address, self.port))
            # listen before start() returns (the stock listener thread calls listen() itself,
            # a moment later: a client connecting right after start() would be refused)
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._socket = sock

    def start(self) -> None:
        """Bind (and listen) now; accept on a named daemon thread, so a lab that a test forgot
        to stop cannot hang the interpreter at exit."""
        if self._is_running.is_set():
            return
        self._bind_sockets()
        self._is_running.set()
        self._listen_thread = threading.Thread(target=self._listen, name=f"lab-ssh-listen-{self.port}", daemon=True)
        self._listen_thread.start()

    def stop(self) -> None:
        if not self._is_running.is_set():
            return
        self._is_running.clear()
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._threads_lock:
            transports = list(self._transports)
        for transport in transports:
            try:
                transport.close()
            except Exception:
                log.exception("closing transport")
        deadline = time.monotonic() + JOIN_SECONDS
        threads: list[threading.Thread] = []
        if self._listen_thread is not None:
            threads.append(self._listen_thread)
        threads += self._connection_threads
        threads += transports
        threads = [t for t in threads if t.ident is not None]
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [t for t in threads if t.is_alive()]
        self._socket = None
        self._listen_thread = None
        self._connection_threads = []
        if alive:
            raise RuntimeError(f"emulated device on port {self.port}: threads did not stop: {alive}")

    def _listen(self) -> None:
        """The stock accept loop, minus its late ``listen()`` (done in ``_bind_sockets``)."""
        listener = self._socket
        if listener is None:
            return
        while self._is_running.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # shut down by stop()
            thread = threading.Thread(
                target=self.connection_function,
                args=(client, self._is_running),
                name=f"lab-ssh-conn-{self.port}",
                daemon=True,
            )
            thread.start()
            self._connection_threads.append(thread)

    # -- one connection ---------------------------------------------------------------------------
    def connection_function(self, client: socket.socket, is_running: threading.Event) -> None:
        state = self.nos.state
        # echo and reply are separate small writes: without this, Nagle + delayed ACK add ~40 ms a line
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(client)
        transport.set_log_channel(TRANSPORT_LOG)
        with self._threads_lock:
            self._transports.add(transport)
        try:
            with state.lock:
                host_key = state.host_key
            assert host_key is not None
            transport.add_server_key(host_key)
            iface = LabServerInterface(self.username, self.password, state)
            try:
                transport.start_server(server=iface)
            except (paramiko.SSHException, EOFError, OSError):
                return
            channel = None
            while channel is None and is_running.is_set() and transport.is_active():
                channel = transport.accept(timeout=0.2)
            if channel is None:
                return
            while not iface.shell_requested.wait(0.2):
                if not (is_running.is_set() and transport.is_active()):
                    return
            io = ChannelIO(channel, is_running)
            shell = self.shell(
                stdin=io,
                stdout=io,
                nos=self.nos,
                nos_inventory_config=self.nos_inventory_config,
                is_running=is_running,
                connection=SessionHandle(transport),
                **self.shell_configuration,
            )
            shell.start()
            io.flush()
            if transport.is_active() and not io.closed:
                # a logout, not a drop: close the channel like sshd and let the client hang up first
                with contextlib.suppress(Exception):
                    channel.send_exit_status(0)
                    channel.shutdown_write()
                    channel.close()
                deadline = time.monotonic() + 2.0
                while transport.is_active() and is_running.is_set() and time.monotonic() < deadline:
                    time.sleep(0.02)
        except Exception:
            if is_running.is_set():
                log.exception("emulated device %s: connection failed", state.name)
        finally:
            try:
                transport.close()
            finally:
                with self._threads_lock:
                    self._transports.discard(transport)
