"""One OpenSSH server per lab router, so ``qoectl apply`` reaches it through the normal netmiko path.

Each router's sshd runs inside the router's namespace with a config, host key, PID file and
authorized_keys of its own, listening only on the router's management address (port 22). Logins are
key-only, as root, and get a plain ``bash --norc --noprofile -i`` with a fixed ``PATH``
(``ForceCommand``): a lab router's shell does not depend on this machine's dotfiles. The host keys go
into the lab's ``known_hosts``, so ``qoectl apply --known-hosts`` verifies them like any other.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from controller.lab.netns import LabCommandError, Proc, run, start

SSHD = "/usr/sbin/sshd"
ROUTER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELL = f"exec env -i HOME=/root TERM=dumb PATH={ROUTER_PATH} /bin/bash --norc --noprofile -i"


def missing_tools() -> str | None:
    """What is missing to run lab routers, or None."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        return "OpenSSH's sshd and ssh-keygen are needed (apt-get install openssh-server)"
    return None


def keygen(path: Path, comment: str) -> str:
    """An unencrypted ed25519 key pair at ``path`` (+ ``.pub``, mode 0600/0644); returns the public key line."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_name(path.name + ".pub").read_text(encoding="ascii").strip()


def sshd_config(address: str, port: int, folder: Path, authorized_keys: Path, shell: str = SHELL) -> str:
    """A key-only sshd config that listens on ``address:port`` and keeps all its files in ``folder``."""
    return "\n".join(
        [
            f"ListenAddress {address}:{port}",
            f"HostKey {folder / 'ssh_host_ed25519_key'}",
            f"PidFile {folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "MaxStartups 50",
            "LogLevel ERROR",
            f"ForceCommand {shell}",
            "",
        ]
    )


def start_sshd(
    router: str, namespace: str, address: str, port: int, folder: Path, client_pub: str, log: Path
) -> tuple[Proc, str]:
    """Start the router's sshd; returns the process and its ``known_hosts`` line once it accepts connections."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation folder
    host_pub = keygen(folder / "ssh_host_ed25519_key", comment=router).split()
    authorized = folder / "authorized_keys"
    authorized.write_text(client_pub + "\n", encoding="ascii")
    authorized.chmod(0o600)
    config = folder / "sshd_config"
    config.write_text(sshd_config(address, port, folder, authorized), encoding="ascii")
    proc = start(f"sshd-{router}", "sshd", namespace, [SSHD, "-D", "-e", "-f", str(config)], log)
    wait_listening(address, port, proc, log)
    host = address if port == 22 else f"[{address}]:{port}"
    return proc, f"{host} {host_pub[0]} {host_pub[1]}"


def wait_listening(host: str, port: int, proc: Proc, log: Path, timeout: float = 10.0) -> None:
    """Wait (bounded) until sshd accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise LabCommandError(f"sshd of {proc.name[5:]} exited: {_tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise LabCommandError(f"sshd did not listen on {host}:{port} within {timeout:g} s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "it printed nothing"
