"""Start emulated devices on free loopback ports and hand them to tests."""

from __future__ import annotations

import errno
import io
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fakenos import FakeNOS

from .base import DeviceState, LabNos, LabShell
from .fortios import FortiosShell, FortiosState
from .ios_like import EosShell, IosLikeState, IosXeShell
from .junos import Commit, JunosShell, JunosState
from .server import LabSshServer
from .viptela import CedgeShell, ViptelaState, VsmartShell

log = logging.getLogger(__name__)

PLATFORMS = ("cisco_iosxe", "arista_eos", "juniper_junos", "cisco_sdwan", "cisco_sdwan_controller", "fortios_sdwan")

#: netmiko ``device_type`` of each platform
NETMIKO_DEVICE_TYPES = {
    "cisco_iosxe": "cisco_xe",
    "arista_eos": "arista_eos",
    "juniper_junos": "juniper_junos",
    "cisco_sdwan": "cisco_xe",  # a cEdge: IOS-XE in controller mode
    "cisco_sdwan_controller": "cisco_viptela",  # a vSmart in CLI mode
    "fortios_sdwan": "fortinet",
}

#: stock FakeNOS plugin whose canned commands each platform keeps
_STOCK_PLUGIN = {
    "cisco_iosxe": "cisco_ios",
    "arista_eos": "arista_eos",
    "juniper_junos": "juniper_junos",
    "cisco_sdwan": "cisco_ios",
    "cisco_sdwan_controller": "cisco_ios",
    "fortios_sdwan": "fortinet",
}
_SHELLS: dict[str, type[LabShell]] = {
    "cisco_iosxe": IosXeShell,
    "arista_eos": EosShell,
    "juniper_junos": JunosShell,
    "cisco_sdwan": CedgeShell,
    "cisco_sdwan_controller": VsmartShell,
    "fortios_sdwan": FortiosShell,
}

DEFAULT_PASSWORD = "qoectl-lab-pw"  # a throw-away lab credential
HOST = "127.0.0.1"


def free_port() -> int:
    """A port nobody listens on: bind a probe socket to port 0 (no SO_REUSEPORT) and release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def generate_host_key(kind: str = "ed25519") -> paramiko.PKey:
    if kind == "rsa":
        return paramiko.RSAKey.generate(2048)
    if kind != "ed25519":
        raise ValueError(f"host key type must be 'ed25519' or 'rsa', not {kind!r}")
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem))


def known_hosts_line(port: int, key: paramiko.PKey) -> str:
    return f"[{HOST}]:{port} {key.get_name()} {key.get_base64()}"


def _new_state(name: str, platform: str, username: str) -> DeviceState:
    if platform == "juniper_junos":
        return JunosState(name, username)
    if platform == "fortios_sdwan":
        return FortiosState(name, username)
    if platform in ("cisco_sdwan", "cisco_sdwan_controller"):
        return ViptelaState(name, username, platform)
    return IosLikeState(name, username, platform)


@dataclass
class EmulatedDevice:
    """One emulated device reachable over real SSH at ``host:port``."""

    name: str
    platform: str  # "cisco_iosxe" | "arista_eos" | "juniper_junos"
    host: str
    port: int
    username: str
    password: str
    host_key_line: str
    _state: DeviceState = field(repr=False, compare=False)
    _net: FakeNOS | None = field(default=None, repr=False, compare=False)

    # -- connecting -----------------------------------------------------------------------------
    @property
    def device_type(self) -> str:
        """The netmiko ``device_type`` for this platform."""
        return NETMIKO_DEVICE_TYPES[self.platform]

    def netmiko_params(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``netmiko.ConnectHandler`` (overrides win)."""
        params: dict[str, Any] = {
            "device_type": self.device_type,
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "conn_timeout": 10,
            "auth_timeout": 10,
            "banner_timeout": 10,
        }
        params.update(overrides)
        return params

    # -- state ----------------------------------------------------------------------------------
    def running_config(self) -> str:
        """IOS-XE/EOS: ``show running-config`` body (from the first ``!`` to ``end``).
        Junos: the committed config as ``set`` lines (``show configuration | display set``)."""
        return self._state.running_config()

    def set_running_config(self, text: str) -> None:
        """Replace the running (Junos: committed) config; Junos records it as a commit by "lab"."""
        self._state.set_running_config(text)

    def startup_config(self) -> str:
        """IOS-XE/EOS: the saved config. Junos: same as ``running_config()`` (commits persist)."""
        return self._state.startup_config()

    def candidate_config(self) -> str:
        """Junos: the shared candidate config as ``set`` lines."""
        return self._junos().candidate_config()

    @property
    def commits(self) -> list[Commit]:
        """Junos commit history, oldest first (``commits[-1]`` is ``rollback 0``)."""
        state = self._junos()
        with state.lock:
            return list(state.commits)

    def wait_for_commits(self, count: int, timeout: float = 30.0) -> bool:
        """Junos: block until the history has ``count`` entries (e.g. an automatic rollback)."""
        return self._junos().wait_for_commits(count, timeout)

    def set_seconds_per_minute(self, seconds: float) -> None:
        """Junos: how long a minute of ``commit confirmed N`` lasts on this device."""
        state = self._junos()
        with state.lock:
            state.spm = seconds

    def flash_files(self) -> dict[str, str]:
        """IOS-XE/EOS: files on flash (``copy running-config flash:NAME`` archives)."""
        state = self._ios_like()
        with state.lock:
            return dict(state.flash)

    def set_vmanaged(self, managed: bool) -> None:
        """Cisco SD-WAN: SD-WAN Manager owns the config (``vManaged: true``; CLI commits are refused)."""
        state = self._state
        if not isinstance(state, ViptelaState):
            raise TypeError(f"{self.name} is {self.platform}, not a Cisco SD-WAN device")
        with state.lock:
            state.vmanaged = managed

    def config_sessions(self) -> dict[str, str]:
        """EOS: pending configuration sessions, name -> session config."""
        state = self._ios_like()
        with state.lock:
            return {name: state.render(tree) for name, tree in state.sessions.items()}

    @property
    def command_log(self) -> list[str]:
        """Every line received, as ``"<session> <exec|config>: <line>"``."""
        with self._state.lock:
            return list(self._state.command_log)

    @property
    def logins(self) -> int:
        with self._state.lock:
            return self._state.logins

    @property
    def auth_failures(self) -> int:
        with self._state.lock:
            return self._state.auth_failures

    # -- fault injection ------------------------------------------------------------------------
    def fail_after_lines(self, k: int | None) -> None:
        """Drop the SSH session right after the k-th configuration line of a session is applied
        (no reply is sent for it). One-shot: disarms itself when it fires. None disarms it."""
        if k is not None and k < 1:
            raise ValueError("k must be >= 1")
        with self._state.lock:
            self._state.fail_after = k

    def reject_lines(self, pattern: str | None) -> None:
        """Configuration lines matching ``pattern`` (re.search) get the platform's error and are
        not applied, until reset with None."""
        import re

        with self._state.lock:
            self._state.reject_re = re.compile(pattern) if pattern is not None else None

    def rotate_host_key(self, kind: str | None = None) -> str:
        """Give the device a new host key (as if it was replaced); returns the new known_hosts line."""
        with self._state.lock:
            old = self._state.host_key
            new_kind = kind or ("rsa" if isinstance(old, paramiko.RSAKey) else "ed25519")
            self._state.host_key = generate_host_key(new_kind)
            self.host_key_line = known_hosts_line(self.port, self._state.host_key)
        return self.host_key_line

    # -- internals ------------------------------------------------------------------------------
    def _junos(self) -> JunosState:
        if not isinstance(self._state, JunosState):
            raise TypeError(f"{self.name} is {self.platform}, not juniper_junos")
        return self._state

    def _ios_like(self) -> IosLikeState:
        if not isinstance(self._state, IosLikeState):
            raise TypeError(f"{self.name} is {self.platform}, not cisco_iosxe/arista_eos")
        return self._state

    def stop(self) -> None:
        """Stop this device's SSH server (joins its threads) and its timers."""
        net, self._net = self._net, None
        try:
            if net is not None:
                net.stop()
        finally:
            self._state.close()


class DeviceLab:
    """A set of running emulated devices; a context manager that stops them on exit."""

    def __init__(self) -> None:
        self.devices: dict[str, EmulatedDevice] = {}

    def __enter__(self) -> DeviceLab:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __getitem__(self, name: str) -> EmulatedDevice:
        return self.devices[name]

    def known_hosts_file(self, path: str | Path, names: Iterable[str] | None = None) -> Path:
        """Write a known_hosts file with the keys of ``names`` (default: every device)."""
        path = Path(path)
        chosen = list(self.devices) if names is None else list(names)
        path.write_text("".join(self.devices[n].host_key_line + "\n" for n in chosen))
        return path

    def stop(self) -> None:
        """Stop every device; raises the first error after trying them all."""
        errors: list[BaseException] = []
        for device in self.devices.values():
            try:
                device.stop()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


def _start_one(
    name: str, platform: str, username: str, password: str, host_key_type: str, attempts: int = 10
) -> EmulatedDevice:
    state = _new_state(name, platform, username)
    state.host_key = generate_host_key(host_key_type)
    last_error: OSError | None = None
    for _ in range(attempts):
        port = free_port()
        nos = LabNos(f"qoectl-lab-{platform}-{name}-{port}", _STOCK_PLUGIN[platform], state)
        inventory = {
            "hosts": {
                name: {
                    "username": username,
                    "password": password,
                    "port": port,
                    "server": {"plugin": "ParamikoSshServer", "configuration": {"address": HOST, "timeout": 1}},
                    "shell": {"plugin": "CMDShell", "configuration": {}},
                    "nos": {"plugin": nos.name},
                }
            }
        }
        net = FakeNOS(inventory=inventory, plugins=[nos])
        # FakeNOS's inventory schema only names its stock server and shell plugins; each FakeNOS
        # instance keeps its own plugin registry, so ours are registered under those names.
        net.servers_plugins["ParamikoSshServer"] = LabSshServer
        net.shell_plugins["CMDShell"] = _SHELLS[platform]
        try:
            net.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last_error = exc  # lost the race for the probed port: probe again
            continue
        return EmulatedDevice(
            name=name,
            platform=platform,
            host=HOST,
            port=port,
            username=username,
            password=password,
            host_key_line=known_hosts_line(port, state.host_key),
            _state=state,
            _net=net,
        )
    raise RuntimeError(f"no free port for {name} after {attempts} attempts") from last_error


def start_devices(
    specs: list[tuple[str, str]],
    *,
    username: str = "qoectl",
    password: str = DEFAULT_PASSWORD,
    host_key_type: str = "ed25519",
) -> DeviceLab:
    """Start one emulated device per ``(name, platform)``, each on its own free port."""
    lab = DeviceLab()
    try:
        for name, platform in specs:
            if platform not in PLATFORMS:
                raise ValueError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
            if name in lab.devices:
                raise ValueError(f"duplicate device name {name!r}")
            lab.devices[name] = _start_one(name, platform, username, password, host_key_type)
    except BaseException:
        lab.stop()
        raise
    return lab
