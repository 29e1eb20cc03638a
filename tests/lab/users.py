"""Throw-away login users for the namespace routers (they share this machine's users), removed by name afterwards."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def sudo_login(password: str, *, nopasswd: bool = False, prefix: str = "qoectl-t") -> Iterator[str]:
    """An unprivileged user allowed to ``sudo -s`` (asking for ``password`` unless ``nopasswd``); yields its name.

    The user and its sudoers file are removed afterwards, pass or fail.
    """
    if not (shutil.which("sudo") and shutil.which("useradd")):
        pytest.skip("needs sudo and useradd (apt-get install sudo passwd)")
    name = f"{prefix}{secrets.token_hex(3)}"
    rule = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        # A password also unlocks the account (sshd without PAM refuses locked accounts, even for keys).
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        tag = "NOPASSWD: " if nopasswd else ""
        rule.write_text(f"{name} ALL=(ALL) {tag}ALL\n")
        rule.chmod(0o440)
        yield name
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", name], check=False)
