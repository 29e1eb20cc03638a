"""Throw-away Linux hosts for tests: network namespaces joined by veth pairs.

Every namespace and process is tracked by name/PID and removed in ``close()``,
which the fixtures call in teardown, also when a test fails. Only addresses
inside namespaces the test created are ever used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest


def have_root_netns() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root to create network namespaces"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            return False, f"needs the '{tool}' command (apt-get install iproute2 nftables)"
    return True, ""


_ok, _why = have_root_netns()
requires_netns = pytest.mark.skipif(not _ok, reason=_why)


def run(cmd: Sequence[str], *, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class Netns:
    """One namespace. ``name`` is unique per test run (prefix + random suffix)."""

    name: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def exec(self, *cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.name, *cmd], check=check, input=input)

    def popen(self, *cmd: str, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def stop_processes(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()


class Lab:
    """A set of namespaces created for one test; ``close()`` removes all of them."""

    def __init__(self, prefix: str = "qoe") -> None:
        self.tag = f"{prefix}{uuid.uuid4().hex[:6]}"
        self.hosts: dict[str, Netns] = {}
        self._root_links: list[str] = []

    def host(self, name: str) -> Netns:
        ns = Netns(f"{self.tag}-{name}")
        run(["ip", "netns", "add", ns.name])
        self.hosts[name] = ns
        ns.exec("ip", "link", "set", "lo", "up")
        return ns

    def link(self, a: Netns, a_if: str, a_addr: str | None, b: Netns | None, b_if: str, b_addr: str | None) -> None:
        """A veth pair ``a:a_if <-> b:b_if`` (``b=None``: the test's own namespace)."""
        self._n = getattr(self, "_n", 0) + 1
        tmp_a, tmp_b = f"{self.tag[-6:]}a{self._n}", f"{self.tag[-6:]}b{self._n}"
        run(["ip", "link", "add", "name", tmp_a, "type", "veth", "peer", "name", tmp_b])
        if b is None:
            self._root_links.append(b_if)
        for ns, tmp, ifname, addr in ((a, tmp_a, a_if, a_addr), (b, tmp_b, b_if, b_addr)):
            if ns is not None:
                run(["ip", "link", "set", tmp, "netns", ns.name])
            prefix = ["ip", "netns", "exec", ns.name] if ns is not None else []
            run([*prefix, "ip", "link", "set", tmp, "name", ifname])
            if addr:
                run([*prefix, "ip", "addr", "add", addr, "dev", ifname])
            run([*prefix, "ip", "link", "set", ifname, "up"])

    def close(self) -> None:
        for ns in self.hosts.values():
            ns.stop_processes()
        for ns in self.hosts.values():
            run(["ip", "netns", "del", ns.name], check=False)
        for ifname in self._root_links:
            run(["ip", "link", "del", ifname], check=False)
        self._root_links.clear()
        self.hosts.clear()
