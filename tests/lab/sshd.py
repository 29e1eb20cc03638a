"""Real OpenSSH servers inside network namespaces: Linux routers that netmiko reaches over SSH.

Each router is a namespace with a management veth to the test's own namespace
(addresses from 198.18.0.0/15 only), a ``wan0`` veth to a per-router ISP
namespace and a ``lan0`` veth to a per-router LAN namespace. ``sshd -D`` runs
inside the router namespace with its own config, host key, PID file and
authorized_keys: key-only auth, listening only on the management address.

Why ``ForceCommand bash --norc --noprofile -i``: the router shell must not
depend on this machine's dotfiles (prompt, colours), and a *fault* router gets
a ``PATH`` with wrapper programs in front of the real ``tc``/``nft`` so a test
can make the device drop the session or reject a line at a known point.
``router(..., dotfiles=True)`` is the opposite on purpose: ``bash -l`` with the
distribution's default dotfiles, as a freshly installed router has them.

Everything is tracked by namespace name and PID; :meth:`LinuxLab.close` stops
every process in every namespace the lab created (including anything qoectl
started on a router, such as its rollback watchdog), then removes the
namespaces, also when the test failed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.lab import sshd as lab_sshd
from controller.lab.sshd import sshd_config
from tests.lab.netns import Lab, Netns, have_root_netns, run

SSHD = lab_sshd.SSHD


def have_sshd() -> tuple[bool, str]:
    ok, why = have_root_netns()
    if not ok:
        return ok, why
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        return False, "needs OpenSSH's sshd and ssh-keygen (apt-get install openssh-server)"
    return True, ""


_ok, _why = have_sshd()
requires_sshd = pytest.mark.skipif(not _ok, reason=_why)

# Fault programs a router can be given (placed before the real tools in PATH).
FAULT_DROP_SESSION_ON_TC = """#!/bin/sh
# Drop the SSH session the moment qoectl runs tc on the live router (after nft was already applied).
# In qoectl's throwaway namespace (no mgmt0 there) behave like the real tc.
ip link show mgmt0 >/dev/null 2>&1 || exec /usr/sbin/tc "$@"
[ "$1" = "-batch" ] && [ "${2##*/}" = "tc.batch" ] || exec /usr/sbin/tc "$@"
sess=$(ps -o ppid= -p $PPID | tr -d ' ')
kill -KILL "$sess"
sleep 5
"""

FAULT_REJECT_TC_LINE = """#!/bin/sh
# Behave like tc, but let the kernel reject one extra line in the middle of a batch.
if [ "$1" = "-batch" ] && [ "${2##*/}" = "tc.batch" ] && ip link show mgmt0 >/dev/null 2>&1; then
    awk 'NR==4{print "class replace dev wan0 parent 1:1 classid 1:99 htb rate 0kbit bogus"}{print}' "$2" > "$2.fault"
    exec /usr/sbin/tc -batch "$2.fault"
fi
exec /usr/sbin/tc "$@"
"""

FAULT_GATE_TC = """#!/bin/sh
# Hold qoectl inside its push: tc -batch of tc.batch on the live router waits (bounded) for a gate file.
if [ "$1" = "-batch" ] && [ "${2##*/}" = "tc.batch" ] && ip link show mgmt0 >/dev/null 2>&1; then
    touch {rdir}/waiting
    i=0
    while [ ! -e {rdir}/gate ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
fi
exec /usr/sbin/tc "$@"
"""

FAULTS = {
    "drop_session_on_tc": FAULT_DROP_SESSION_ON_TC,
    "reject_tc_line": FAULT_REJECT_TC_LINE,
    "gate_tc": FAULT_GATE_TC,
}

# Logins as a distribution ships them (``router(..., dotfiles=True)``): ``bash -l`` in the user's own home,
# with Debian's default dotfiles (root: base-files' dot.bashrc/dot.profile, others: /etc/skel), so the
# prompt shows the working directory (``root@host:~#``) and changes with every ``cd``.
ROOT_DOTFILES = {".bashrc": "/usr/share/base-files/dot.bashrc", ".profile": "/usr/share/base-files/dot.profile"}
SKEL = Path("/etc/skel")
# Debian's prompt (/etc/bash.bashrc, /etc/skel/.bashrc), for machines whose dotfiles do not set one with \w.
DEBIAN_PS1 = "PS1='${debian_chroot:+($debian_chroot)}\\u@\\h:\\w\\$ '\n"
FALLBACK_PROFILE = 'if [ "$BASH" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\n'

LOGIN_SH = """#!/bin/sh
# qoectl lab: a login as the distribution ships it: bash -l in the user's own home, default dotfiles.
u=$(id -un)
h={homes}/$u
if [ ! -d "$h" ]; then
    mkdir -m 700 "$h" || exit 1
    if [ "$(id -u)" = 0 ]; then cp -R {dot}/root/. "$h/"; else cp -R {dot}/user/. "$h/"; fi
fi
cd "$h" || exit 1
exec env -i HOME="$h" USER="$u" LOGNAME="$u" SHELL=/bin/bash TERM="${TERM:-dumb}" PATH={path} /bin/bash -l
"""


def _dotfiles(dest: Path, bashrc_append: str) -> None:
    """Default dotfiles for root (``dest/root``) and an ordinary user (``dest/user``), readable by anyone."""
    system_ps1 = Path("/etc/bash.bashrc").read_text() if Path("/etc/bash.bashrc").is_file() else ""
    for who in ("root", "user"):
        home = dest / who
        home.mkdir(parents=True)
        if who == "root":
            for name, src in ROOT_DOTFILES.items():
                if Path(src).is_file():
                    shutil.copy(src, home / name)
        elif SKEL.is_dir():
            shutil.copytree(SKEL, home, dirs_exist_ok=True)
        bashrc, profile = home / ".bashrc", home / ".profile"
        text = bashrc.read_text() if bashrc.is_file() else ""
        if "\\w" not in text and "\\w" not in system_ps1:
            text += DEBIAN_PS1
        bashrc.write_text(text + bashrc_append)
        if not profile.is_file():
            profile.write_text(FALLBACK_PROFILE)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, comment: str = "qoectl-test") -> str:
    """An unencrypted ed25519 key pair at ``path`` (+ ``.pub``); returns the public key line."""
    return lab_sshd.keygen(path, comment)


def _used_lab_nets() -> set[int]:
    out = run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    used = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            if addr.ip in ipaddress.ip_network("198.18.0.0/15"):
                used.add(int(addr.ip) >> 8)
    return used


def pick_lab_net() -> ipaddress.IPv4Network:
    """A /24 inside 198.18.0.0/15 that no interface of this namespace uses yet."""
    used = _used_lab_nets()
    base = int(ipaddress.IPv4Address("198.18.0.0")) >> 8
    choices = [base + i for i in range(512) if base + i not in used]
    pick = random.choice(choices)
    return ipaddress.ip_network(f"{ipaddress.IPv4Address(pick << 8)}/24")


@dataclass
class SshRouter:
    """One Linux router reachable by SSH on ``host:port`` from the test's namespace."""

    name: str
    ns: Netns
    isp: Netns
    host: str
    port: int
    wan_peer: str
    host_key_line: str
    workdir: Path
    sshd: subprocess.Popen[bytes] | None = None

    def sh(self, script: str, check: bool = True) -> str:
        return self.ns.exec("sh", "-c", script, check=check).stdout

    def nft_table(self) -> str:
        """``nft list table inet qoectl`` (empty when the table does not exist)."""
        return self.ns.exec("nft", "list", "table", "inet", "qoectl", check=False).stdout

    def nft_handles(self) -> str:
        return self.ns.exec("nft", "-a", "list", "table", "inet", "qoectl", check=False).stdout

    def tc_qdiscs(self, dev: str = "wan0") -> str:
        return self.ns.exec("tc", "qdisc", "show", "dev", dev).stdout

    def tc_classes(self, dev: str = "wan0", stats: bool = False) -> str:
        return self.ns.exec("tc", *(["-s"] if stats else []), "class", "show", "dev", dev).stdout

    def state(self) -> str:
        """Everything qoectl may touch, for before/after comparisons (counters left out)."""
        qd = sorted(" ".join(w for w in line.split() if w) for line in self.tc_qdiscs().splitlines() if line.strip())
        qd = [_strip_counters(line) for line in qd]
        cl = sorted(line.strip() for line in self.tc_classes().splitlines() if line.strip())
        return "\n".join(["# nft", self.nft_table().strip(), "# qdiscs", *qd, "# classes", *cl])

    def send_ef(self, count: int = 3) -> None:
        """Router-originated UDP datagrams marked EF (TOS 0xb8) out of wan0, to the ISP side (discard port)."""
        script = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.IPPROTO_IP,socket.IP_TOS,0xb8)\n"
            "for _ in range(int(sys.argv[2])): s.sendto(b'qoectl-ef',(sys.argv[1],9))\n"
        )
        self.ns.exec("python3", "-c", script, self.wan_peer, str(count))


def _strip_counters(line: str) -> str:
    words = line.split()
    out: list[str] = []
    skip = False
    for w in words:
        if skip:
            skip = False
            continue
        if w in ("refcnt", "direct_packets_stat"):
            skip = True
            continue
        out.append(w)
    return " ".join(out)


@dataclass
class LinuxLab:
    """Linux routers with sshd in namespaces; ``close()`` stops every process and namespace."""

    lab: Lab
    workdir: Path
    client_key: Path = field(init=False)
    client_pub: str = field(init=False)
    routers: dict[str, SshRouter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client_key = self.workdir / "client_ed25519"
        self.client_pub = keygen(self.client_key)
        self.net = pick_lab_net()
        self._n = 0
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        # sshd reads a user's authorized keys as that user: they live where an unprivileged login
        # (tests of credentials.become) can read them, not under pytest's root-only tmp folders.
        self.keys_dir = Path(tempfile.mkdtemp(prefix="qoectl-lab-keys-"))
        self.keys_dir.chmod(0o755)

    def router(
        self,
        name: str,
        *,
        fault: str | None = None,
        wan_ifaces: tuple[str, ...] = ("wan0",),
        dotfiles: bool = False,
        bashrc_append: str = "",
    ) -> SshRouter:
        """A router namespace with mgmt0 (sshd), the given WAN interfaces and lan0.

        ``dotfiles``: logins run ``bash -l`` with the distribution's default dotfiles in a home of
        their own (see :data:`LOGIN_SH`) instead of a bare ``bash --norc --noprofile -i``;
        ``bashrc_append`` is added to those ``.bashrc`` files (e.g. a site's prompt customisation).
        """
        if dotfiles and fault is not None:
            raise ValueError("dotfiles logins take PATH from /etc/profile: fault programs need the plain login")
        idx = self._n
        self._n += 1
        base = int(self.net.network_address) + idx * 8
        mgmt_r, mgmt_t = ipaddress.IPv4Address(base + 1), ipaddress.IPv4Address(base + 2)
        wan_r, wan_p = ipaddress.IPv4Address(base + 5), ipaddress.IPv4Address(base + 6)
        ns = self.lab.host(name)
        isp = self.lab.host(f"{name}-isp")
        lanh = self.lab.host(f"{name}-lan")
        tag = self.lab.tag[-5:]
        self.lab.link(ns, "mgmt0", f"{mgmt_r}/30", None, f"{tag}m{idx}", f"{mgmt_t}/30")
        for k, ifname in enumerate(wan_ifaces):
            if k == 0:
                self.lab.link(ns, ifname, f"{wan_r}/30", isp, "eth0", f"{wan_p}/30")
            else:
                self.lab.link(ns, ifname, None, isp, f"eth{k}", None)
        self.lab.link(ns, "lan0", None, lanh, "eth0", None)
        rdir = self.workdir / name
        rdir.mkdir()
        host_key = rdir / "ssh_host_ed25519_key"
        keygen(host_key, comment=name)
        authorized = self.keys_dir / f"{name}.authorized_keys"
        authorized.write_text(self.client_pub + "\n")
        authorized.chmod(0o644)
        port = free_port()
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        if fault is not None:
            fbin = rdir / "faultbin"
            fbin.mkdir()
            prog = fbin / "tc"
            prog.write_text(FAULTS[fault].replace("{rdir}", str(rdir)))
            prog.chmod(0o755)
            path = f"{fbin}:{path}"
        shell = f"exec env -i HOME=/root TERM=dumb PATH={path} /bin/bash --norc --noprofile -i"
        if dotfiles:
            # Under keys_dir: an unprivileged login must reach them. Homes are made at first login, as /tmp is.
            dot = self.keys_dir / f"{name}.dotfiles"
            _dotfiles(dot, bashrc_append)
            homes = self.keys_dir / f"{name}.homes"
            homes.mkdir()
            homes.chmod(0o1777)
            login = self.keys_dir / f"{name}.login.sh"
            login.write_text(LOGIN_SH.replace("{homes}", str(homes)).replace("{dot}", str(dot)).replace("{path}", path))
            login.chmod(0o755)
            shell = f"exec {login}"
        cfg = rdir / "sshd_config"
        assert host_key == rdir / "ssh_host_ed25519_key"  # where sshd_config() says it is
        cfg.write_text(sshd_config(str(mgmt_r), port, rdir, authorized, shell))
        log = open(rdir / "sshd.log", "wb")  # noqa: SIM115 - closed with the process
        proc = ns.popen(SSHD, "-D", "-e", "-f", str(cfg), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        pub = host_key.with_name(host_key.name + ".pub").read_text().split()
        router = SshRouter(
            name=name,
            ns=ns,
            isp=isp,
            host=str(mgmt_r),
            port=port,
            wan_peer=str(wan_p),
            host_key_line=f"[{mgmt_r}]:{port} {pub[0]} {pub[1]}",
            workdir=rdir,
            sshd=proc,
        )
        _wait_listening(router.host, port, proc, rdir / "sshd.log")
        self.routers[name] = router
        return router

    def known_hosts_file(self, path: Path, routers: list[SshRouter] | None = None) -> Path:
        lines = [r.host_key_line for r in (routers if routers is not None else self.routers.values())]
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def close(self) -> None:
        """Stop every process in the lab's namespaces (by namespace name), then remove them."""
        for ns in list(self.lab.hosts.values()):
            ns.stop_processes()
            pids = run(["ip", "netns", "pids", ns.name], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        self.lab.close()
        shutil.rmtree(self.keys_dir, ignore_errors=True)


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait (bounded) until sshd accepts TCP connections on its management address."""
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}): {log.read_text()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on {host}:{port}: {log.read_text()}")


def lab_policy(dest: Path, devices: list[dict[str, object]]) -> Path:
    """A policy repository at ``dest``: the bundled example journeys/sites with ``devices`` as the inventory.

    Only the example's journeys, sites and settings are copied; the inventory is
    the lab's own (hosts inside the test's namespaces or on 127.0.0.1).
    """
    import yaml

    repo = Path(__file__).resolve().parents[2] / "policies"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo / "journeys", dest / "journeys")
    shutil.copy(repo / "qoectl.yaml", dest / "qoectl.yaml")
    (dest / "inventory").mkdir()
    shutil.copy(repo / "inventory" / "sites.yaml", dest / "inventory" / "sites.yaml")
    doc = {
        "apiVersion": "qoectl/v1",
        "kind": "Inventory",
        "metadata": {"name": "lab-devices", "owner": "lab@example.com"},
        "spec": {"devices": devices},
    }
    # No YAML anchors/aliases (qoectl refuses them): every device written out in full.
    doc = json.loads(json.dumps(doc))
    (dest / "inventory" / "devices.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def linux_device(router: SshRouter, key_file: Path, *, user_env: str = "QOECTL_TEST_USER") -> dict[str, object]:
    """An inventory entry for a lab Linux router (site branch-2: the example journeys apply to it)."""
    return {
        "name": router.name,
        "platform": "linux",
        "host": router.host,
        "port": router.port,
        "site": "branch-2",
        "tags": ["wan-edge", "lab"],
        "credentials": {"username_env": user_env, "key_file": str(key_file)},
        "interfaces": [
            {"name": "wan0", "role": "wan", "transport": "biz-internet", "bandwidth_kbps": 20000},
            {"name": "lan0", "role": "lan", "trust_dscp": False},
        ],
    }


def emulated_device_entry(
    name: str,
    platform: str,
    port: int,
    *,
    site: str = "hq",
    user_env: str = "QOECTL_TEST_USER",
    password_env: str = "QOECTL_TEST_PASSWORD",
) -> dict[str, object]:
    """An inventory entry for an emulated device on 127.0.0.1 (interfaces the emulators have by default)."""
    ifaces = {
        "cisco_iosxe": ("GigabitEthernet0/0/0", "GigabitEthernet0/0/1"),
        "arista_eos": ("Ethernet1", "Ethernet2"),
        "juniper_junos": ("ge-0/0/0", "ge-0/0/1"),
    }[platform]
    return {
        "name": name,
        "platform": platform,
        "host": "127.0.0.1",
        "port": port,
        "site": site,
        "tags": ["wan-edge", "lab", platform],
        "credentials": {"username_env": user_env, "password_env": password_env},
        "interfaces": [
            {
                "name": ifaces[0],
                "role": "wan",
                "transport": "mpls",
                "bandwidth_kbps": 100000,
                "port_speed_kbps": 1000000,
            },
            {"name": ifaces[1], "role": "lan", "trust_dscp": True},
        ],
    }
