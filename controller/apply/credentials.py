"""SSH credentials: environment variables, key files or the SSH agent; never the YAML itself.

The inventory only *names* where credentials come from (``username_env``,
``password_env``, ``key_file``). This module looks them up at apply time and
fails with a message that names the variable or file, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.apply.errors import ApplyError
from controller.apply.secrets import Secret
from controller.model import Device


@dataclass(frozen=True, slots=True)
class SshCredentials:
    username: str
    password: Secret | None
    key_file: str | None
    allow_agent: bool
    become: str | None = None  # "sudo": run 'sudo -s' after logging in
    become_password: Secret | None = None

    def netmiko_args(self) -> dict[str, object]:
        """Keyword arguments for netmiko's ConnectHandler (look_for_keys stays off: only configured keys)."""
        args: dict[str, object] = {
            "username": self.username,
            "use_keys": False,
            "allow_agent": self.allow_agent,
        }
        if self.password is not None:
            args["password"] = self.password.reveal()
        if self.key_file is not None:
            args["key_file"] = self.key_file
        if self.become_password is not None:
            args["secret"] = self.become_password.reveal()  # netmiko answers sudo's password prompt with it
        return args


def resolve(device: Device, environ: Mapping[str, str] | None = None) -> SshCredentials:
    """The credentials of ``device``; raises :class:`ApplyError` (kind ``credentials``) naming what is missing."""
    env = os.environ if environ is None else environ
    c = device.credentials
    where = f"credentials of device '{device.name}'"
    if not c.username_env:
        raise ApplyError("credentials", f"{where}: no username_env (the environment variable holding the user name)")
    username = env.get(c.username_env, "")
    if not username:
        raise ApplyError("credentials", f"{where}: environment variable {c.username_env} (username_env) is not set")
    password: Secret | None = None
    if c.password_env:
        value = env.get(c.password_env, "")
        if not value:
            raise ApplyError("credentials", f"{where}: environment variable {c.password_env} (password_env) is not set")
        password = Secret(value)
    key_file: str | None = None
    if c.key_file:
        path = Path(os.path.expanduser(c.key_file))
        if not path.is_file():
            raise ApplyError("credentials", f"{where}: key_file {c.key_file} does not exist")
        if not os.access(path, os.R_OK):
            raise ApplyError("credentials", f"{where}: key_file {c.key_file} is not readable")
        key_file = str(path)
    # The agent only when nothing else is configured: an explicit key or password must not be
    # silently replaced by whatever key the operator's agent happens to hold.
    allow_agent = password is None and key_file is None
    if allow_agent and not env.get("SSH_AUTH_SOCK"):
        raise ApplyError(
            "credentials",
            f"{where}: no password_env, no key_file and no SSH agent (SSH_AUTH_SOCK is not set)",
        )
    become_password: Secret | None = None
    if c.become and device.platform != "linux":
        raise ApplyError("credentials", f"{where}: become: {c.become} is for Linux routers, not {device.platform}")
    if c.become_password_env:
        value = env.get(c.become_password_env, "")
        if not value:
            raise ApplyError(
                "credentials", f"{where}: environment variable {c.become_password_env} (become_password_env) is not set"
            )
        become_password = Secret(value)
    return SshCredentials(username, password, key_file, allow_agent, c.become, become_password)
