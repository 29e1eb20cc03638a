"""Stateful emulated network devices for testing the apply engine over REAL SSH.

Built on FakeNOS (``fakenos`` on PyPI): each device is a FakeNOS host whose NOS plugin,
shell plugin and SSH server plugin are the subclasses in this package. See docs/lab.md.

Public API (kept stable for the apply engine's tests)::

    @dataclass
    class EmulatedDevice:
        name: str; platform: str   # "cisco_iosxe" | "arista_eos" | "juniper_junos" | "cisco_sdwan" (cEdge)
                                   # | "cisco_sdwan_controller" (vSmart) | ... (PLATFORMS)
        host: str                  # "127.0.0.1"
        port: int                  # its own free port
        username: str; password: str
        host_key_line: str         # known_hosts line: "[127.0.0.1]:PORT ssh-ed25519 AAAA..."
        def running_config(self) -> str: ...          # IOS-XE/EOS body "!"..."end"; Junos set lines
        def set_running_config(self, text: str) -> None: ...
        def startup_config(self) -> str: ...          # saved config (Junos: = committed)
        def fail_after_lines(self, k: int | None) -> None: ...   # drop session after k config lines (one-shot)
        def reject_lines(self, pattern: str | None) -> None: ...  # platform error for matching lines
        # extras
        device_type: str                               # netmiko device_type: cisco_xe / arista_eos / juniper_junos
        def netmiko_params(self, **overrides) -> dict  # ConnectHandler(**device.netmiko_params())
        commits: list[Commit]                          # Junos history, oldest first
        def candidate_config(self) -> str              # Junos candidate
        def wait_for_commits(self, count, timeout=30.0) -> bool   # Junos, e.g. automatic rollback
        def set_seconds_per_minute(self, seconds) -> None          # Junos commit confirmed clock
        def flash_files(self) -> dict[str, str]        # IOS-XE/EOS archives on flash:
        def config_sessions(self) -> dict[str, str]    # EOS pending configure sessions
        def set_vmanaged(self, managed: bool) -> None  # Cisco SD-WAN: vManaged: true, CLI commits refused
        def rotate_host_key(self, kind=None) -> str    # new host key, returns the new known_hosts line
        def stop(self) -> None                         # stop this device only (lab.stop() stops all)
        command_log: list[str]; logins: int; auth_failures: int

    def start_devices(specs: list[tuple[str, str]], *, username: str = "qoectl",
                      password: str = DEFAULT_PASSWORD, host_key_type: str = "ed25519") -> DeviceLab
        # (name, platform) pairs. DeviceLab is a context manager with .devices (name -> device),
        # .known_hosts_file(path, names=None) -> Path, .stop()

    # pytest: tests/lab/emulators/fixtures.py provides the ``emulated_devices`` factory fixture.

Error texts (for netmiko ``error_pattern=``): IOS-XE ``% Invalid input detected at '^' marker.``
(and ``% Incomplete command.``); EOS ``% Invalid input (at token N: 'word')`` (and
``% Incomplete command``) -- ``r"% (Invalid|Incomplete)"`` catches both; Junos ``syntax error.``,
``unknown command.`` and, from commit, ``error: configuration check-out failed``.
"""

from .junos import Commit, JunosState
from .lab import (
    DEFAULT_PASSWORD,
    NETMIKO_DEVICE_TYPES,
    PLATFORMS,
    DeviceLab,
    EmulatedDevice,
    free_port,
    start_devices,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "NETMIKO_DEVICE_TYPES",
    "PLATFORMS",
    "Commit",
    "DeviceLab",
    "EmulatedDevice",
    "JunosState",
    "free_port",
    "start_devices",
]
