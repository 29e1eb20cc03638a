"""qoectl apply against real Linux routers: network namespaces, OpenSSH sshd, netmiko ``linux``, nft and tc.

Every router is a namespace with its own sshd (key-only, management address
only); the test talks to it over a veth from its own namespace. The pushed
config must really take effect: EF traffic sent by the router lands in the
strict-priority HTB class, and a second apply sends nothing (the kernel's rule
handles and class counters survive it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.apply.connection import Session
from controller.apply.drivers.base import Snapshot
from controller.apply.result import ErrorKind
from controller.cli.main import cli
from controller.platforms.linux import driver as linux_driver
from controller.platforms.linux.driver import LinuxDriver, normalize_state, state_script, tc_restore_batch, tick_in_usec
from tests import apply_support
from tests.apply_support import by_device
from tests.conftest import REPO
from tests.lab.netns import Lab
from tests.lab.sshd import SSHD, LinuxLab, SshRouter, keygen, lab_policy, linux_device, requires_sshd
from tests.lab.users import sudo_login

pytestmark = [requires_sshd, pytest.mark.root]

PASSWORD = "Pw-linux-0xC0FFEE-do-not-leak"  # a test secret that must never appear in any output
ENV = {"QOECTL_TEST_USER": "root", "QOECTL_TEST_PASSWORD": PASSWORD}


def apply_cli(policy: Path, known_hosts: Path, tmp: Path, run: str, *extra: str) -> tuple[Result, dict]:
    """``qoectl apply --json`` in-process as root on the lab routers, with a longer command timeout (each apply
    builds throwaway namespaces on the router); ``extra`` options come last, so they win."""
    return apply_support.apply_cli(policy, known_hosts, tmp, run, "--command-timeout", "30", *extra, env=ENV)


def class_packets(router: SshRouter, classid: str) -> int:
    text = router.tc_classes(stats=True)
    m = re.search(rf"class htb {re.escape(classid)} .*?\n\s*Sent \d+ bytes (\d+) pkt", text)
    assert m, text
    return int(m.group(1))


def _with_password(entry: dict) -> dict:
    creds = dict(entry["credentials"])  # type: ignore[arg-type]
    creds["password_env"] = "QOECTL_TEST_PASSWORD"
    return {**entry, "credentials": creds}


@pytest.fixture
def work_folders(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every work folder qoectl makes on a router during the test (routers share this machine's /tmp)."""
    made: set[str] = set()
    real = LinuxDriver._dir

    def _dir(self: LinuxDriver, s: Session) -> str:
        path = real(self, s)
        made.add(path)
        return path

    monkeypatch.setattr(LinuxDriver, "_dir", _dir)
    return made


def test_apply_dry_run_then_apply_then_nothing_sent(
    linux_lab: LinuxLab, tmp_path: Path, work_folders: set[str]
) -> None:
    r1, r2 = linux_lab.router("r1"), linux_lab.router("r2")
    policy = lab_policy(tmp_path / "policy", [linux_device(r, linux_lab.client_key) for r in (r1, r2)])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    before = {r.name: r.state() for r in (r1, r2)}

    # Dry run: the diff is shown, nothing is sent.
    res, data = apply_cli(policy, known, tmp_path, "run-dry", "--dry-run", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    for d in data["devices"]:
        assert d["status"] == "would_change" and d["commands_sent"] == 0
        assert "+table inet qoectl {" in d["diff"] and "-qdisc noqueue 0: root" in d["diff"]
    assert {r.name: r.state() for r in (r1, r2)} == before

    # Apply: both routers change, the kernel really has the config.
    res, data = apply_cli(policy, known, tmp_path, "run-1", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    results = by_device(data)
    assert {d["status"] for d in results.values()} == {"changed"}
    assert {d["left_in"] for d in results.values()} == {"intended"}
    for r in (r1, r2):
        assert 'comment "journey voice"' in r.nft_table()
        assert "qdisc htb 1: root" in r.tc_qdiscs()
        classes = r.tc_classes()
        assert "class htb 1:10 parent 1:1 leaf 10: prio 0 rate 1800Kbit ceil 1800Kbit" in classes, classes
        before_pkts = class_packets(r, "1:10")
        r.send_ef(3)
        assert class_packets(r, "1:10") >= before_pkts + 3  # EF really goes to the strict-priority class
    run1 = tmp_path / "run-1"
    assert (run1 / "backups" / "r1" / "qoectl-state.txt").read_text().count("(absent)") == 1
    assert (run1 / "intended" / "r1" / "nftables.nft").is_file()
    events = [json.loads(line) for line in (run1 / "audit.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {"run_start", "plan", "device_start", "connected", "diff", "pushed", "confirmed", "device_result"} <= {
        e["event"] for e in events
    }

    # Apply again: nothing sent. Proof on the device: rule handles and class counters are untouched.
    handles = {r.name: r.nft_handles() for r in (r1, r2)}
    counters = {r.name: class_packets(r, "1:10") for r in (r1, r2)}
    res, data = apply_cli(policy, known, tmp_path, "run-2", "--detailed-exitcode")
    assert res.exit_code == 0, res.output
    assert {d["status"] for d in by_device(data).values()} == {"unchanged"}
    assert all(d["commands_sent"] == 0 and d["diff"] == "" for d in data["devices"])
    assert {r.name: r.nft_handles() for r in (r1, r2)} == handles
    assert {r.name: class_packets(r, "1:10") for r in (r1, r2)} == counters
    assert not [e for e in map(json.loads, (tmp_path / "run-2" / "audit.jsonl").open()) if e["event"] == "pushed"]

    # Drift (someone deletes the tree by hand) is seen and repaired.
    r2.ns.exec("tc", "qdisc", "del", "dev", "wan0", "root")
    res, data = apply_cli(policy, known, tmp_path, "run-3")
    assert res.exit_code == 0, res.output
    assert by_device(data)["r1"]["status"] == "unchanged"
    assert by_device(data)["r2"]["status"] == "changed"
    assert "+qdisc htb 1: root" in by_device(data)["r2"]["diff"]
    assert "tc -batch tc.batch" in by_device(data)["r2"]["commands"]  # only the part that differs is sent
    assert "nft -f nftables.nft" not in by_device(data)["r2"]["commands"]
    assert "class htb 1:10" in r2.tc_classes()

    # No temporary folder is left on the routers (they share this machine's /tmp).
    assert work_folders and not [f for f in work_folders if Path(f).exists()]


def test_faults_leave_each_router_as_it_was_and_harm_no_other(
    linux_lab: LinuxLab, tmp_path: Path, work_folders: set[str]
) -> None:
    """Session dropped mid-push, rejected line, unreachable, wrong key, unknown host key: one fleet run."""
    good = linux_lab.router("good")
    drop = linux_lab.router("drop", fault="drop_session_on_tc")
    reject = linux_lab.router("reject", fault="reject_tc_line")
    unknown = linux_lab.router("unknown")
    wrong_key = tmp_path / "not_authorized_ed25519"
    keygen(wrong_key)
    # A router that already has a qoectl-looking state from an earlier apply, to prove rollback restores *that*.
    drop.ns.exec("tc", "qdisc", "replace", "dev", "wan0", "root", "handle", "1:", "htb", "default", "20")
    drop.ns.exec("tc", "class", "replace", "dev", "wan0", "parent", "1:", "classid", "1:20", "htb", "rate", "5mbit")
    drop.ns.exec("nft", "-f", "-", input='table inet qoectl {\n\tchain old {\n\t\tcounter comment "earlier"\n\t}\n}\n')

    devices = [_with_password(linux_device(r, linux_lab.client_key)) for r in (good, drop, reject, unknown)]
    devices.append({**devices[0], "name": "unreachable", "port": 1})  # nothing listens there: refused
    # A port whose packets vanish (no RST): only the connect timeout ends the wait.
    good.ns.exec(
        "nft",
        "-f",
        "-",
        input="table inet lab {\n chain input {\n  type filter hook input priority 0;\n  tcp dport 2 drop\n }\n}\n",
    )
    devices.append({**devices[0], "name": "blackhole", "port": 2})
    devices.append(
        {
            **devices[0],
            "name": "wrongkey",
            "credentials": {"username_env": "QOECTL_TEST_USER", "key_file": str(wrong_key)},
        }
    )
    policy = lab_policy(tmp_path / "policy", devices)
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts", [good, drop, reject])
    before = {r.name: r.state() for r in (good, drop, reject, unknown)}

    res, data = apply_cli(
        policy, known, tmp_path, "run", "--on-failure", "continue", "--workers", "7", "--connect-timeout", "2"
    )
    assert res.exit_code == 1, res.output
    results = by_device(data)

    assert results["good"]["status"] == "changed"
    assert "class htb 1:10" in good.tc_classes()

    d = results["drop"]
    assert (d["status"], d["left_in"], d["error_kind"]) == ("rolled_back", "original", "session_lost"), d
    assert "nft -f nftables.nft" in d["commands"]
    assert drop.state() == before["drop"]
    assert 'comment "earlier"' in drop.nft_table()

    d = results["reject"]
    assert (d["status"], d["left_in"], d["error_kind"]) == ("rolled_back", "original", "rejected"), d
    assert "tc -batch" in d["error"]
    assert reject.state() == before["reject"]

    for name, kind in (
        ("unreachable", "connect"),
        ("blackhole", "connect"),
        ("wrongkey", "auth"),
        ("unknown", "host_key"),
    ):
        d = results[name]
        assert (d["status"], d["left_in"], d["error_kind"], d["commands_sent"]) == ("failed", "original", kind, 0), d
    assert unknown.state() == before["unknown"]
    assert "known_hosts" in results["unknown"]["error"]

    # Rolled back by qoectl, so no watchdog needs a work folder any more.
    assert work_folders and not [f for f in work_folders if Path(f).exists()]

    # The secret never lands in any output or artifact.
    assert PASSWORD not in res.output
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path

    # Canary: the faulty router goes first (name order), fails, and nothing else is started.
    res, data = apply_cli(policy, known, tmp_path, "run-canary", "--canary", "1", "--limit", "drop,good")
    assert res.exit_code == 1
    results = by_device(data)
    assert results["drop"]["status"] == "rolled_back" and results["drop"]["canary"]
    assert results["good"]["status"] == "skipped"
    assert "canary drop" in data["stopped"]
    assert drop.state() == before["drop"]

    # The host key was unknown; a lab may accept it explicitly, which records it.
    res, data = apply_cli(policy, known, tmp_path, "run-accept", "--limit", "unknown", "--accept-new-host-keys")
    assert res.exit_code == 0, res.output
    assert by_device(data)["unknown"]["status"] == "changed"
    assert f"[{unknown.host}]:{unknown.port} ssh-ed25519" in known.read_text()


def test_two_applies_to_the_same_devices_cannot_run_at_once(linux_lab: LinuxLab, tmp_path: Path) -> None:
    """Apply A is held inside its push (the router's tc waits for a gate); apply B must refuse to start."""
    r = linux_lab.router("r1", fault="gate_tc")
    policy = lab_policy(tmp_path / "policy", [linux_device(r, linux_lab.client_key)])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    gate = r.workdir / "gate"
    args = [
        sys.executable,
        "-m",
        "controller.cli.main",
        "apply",
        str(policy),
        "--known-hosts",
        str(known),
        "--lock-dir",
        str(tmp_path / "locks"),
        "--json",
    ]
    a = subprocess.Popen(
        [*args, "--run-dir", str(tmp_path / "run-a")],
        cwd=REPO,
        env={**ENV, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):  # bounded: A reaches the gate within seconds
            if (r.workdir / "waiting").exists() or a.poll() is not None:
                break
            time.sleep(0.05)
        assert (r.workdir / "waiting").exists(), a.communicate(timeout=5)
        b = subprocess.run(
            [*args, "--run-dir", str(tmp_path / "run-b")],
            cwd=REPO,
            env={**ENV, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert b.returncode == 1
        assert "another apply is running on: r1" in json.loads(b.stdout)["error"]
        assert f"pid {a.pid}" in json.loads(b.stdout)["error"]
        gate.write_text("go")
        out, _ = a.communicate(timeout=60)
        assert a.returncode == 0, out
        assert by_device(json.loads(out))["r1"]["status"] == "changed"
    finally:
        gate.write_text("go")
        if a.poll() is None:
            a.kill()
            a.wait(timeout=10)


SUDO_PASSWORD = "Sudo-pw-5eb1c0d3-never-print"


@pytest.fixture
def sudo_user(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool]]:
    """An unprivileged login allowed to ``sudo -s``; ``request.param``: "password" (SUDO_PASSWORD) or "nopasswd".

    Yields (name, sudo asks a password); removed afterwards, pass or fail.
    """
    with sudo_login(SUDO_PASSWORD, nopasswd=request.param == "nopasswd") as name:
        yield name, request.param == "password"


def changed_then_unchanged(apply: Callable[[str], tuple[Result, dict]], r1: SshRouter, tmp_path: Path) -> None:
    """``apply("run-1")`` changes r1 (nft table and HTB tree), ``apply("run-2")`` nothing; SUDO_PASSWORD nowhere."""
    res, data = apply("run-1")
    assert res.exit_code == 0, res.output
    assert by_device(data)["r1"]["status"] == "changed", data
    assert 'comment "journey voice"' in r1.nft_table() and "qdisc htb 1: root" in r1.tc_qdiscs()
    res, data = apply("run-2")
    assert res.exit_code == 0 and by_device(data)["r1"]["status"] == "unchanged", data
    for text in [res.output, *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())]:
        assert SUDO_PASSWORD not in text


@pytest.mark.parametrize("sudo_user", ["password", "nopasswd"], indirect=True)
def test_an_unprivileged_login_becomes_root_with_sudo(
    linux_lab: LinuxLab, tmp_path: Path, sudo_user: tuple[str, bool]
) -> None:
    user, asks_password = sudo_user
    r1 = linux_lab.router("r1")
    entry = linux_device(r1, linux_lab.client_key, user_env="QOECTL_SUDO_USER")
    creds = {**entry["credentials"], "become": "sudo"}  # type: ignore[dict-item]
    if asks_password:
        creds["become_password_env"] = "QOECTL_SUDO_PASSWORD"
    policy = lab_policy(tmp_path / "policy", [{**entry, "credentials": creds}])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    env = {**ENV, "QOECTL_SUDO_USER": user, "QOECTL_SUDO_PASSWORD": SUDO_PASSWORD}

    def apply(run: str) -> tuple[Result, dict]:
        return apply_support.apply_cli(policy, known, tmp_path, run, "--command-timeout", "30", env=env)

    changed_then_unchanged(apply, r1, tmp_path)


@pytest.mark.parametrize("sudo_user", ["password"], indirect=True)
def test_without_sudo_rights_or_become_the_router_is_left_alone(
    linux_lab: LinuxLab, tmp_path: Path, sudo_user: tuple[str, bool]
) -> None:
    r1 = linux_lab.router("r1")
    before = r1.state()
    entry = linux_device(r1, linux_lab.client_key, user_env="QOECTL_SUDO_USER")
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    cases = {
        "no-become": (entry["credentials"], "must be root", "precondition"),
        "wrong-password": (
            {**entry["credentials"], "become": "sudo", "become_password_env": "QOECTL_WRONG"},  # type: ignore[dict-item]
            "could not become root with 'sudo -s'",
            "auth",
        ),
    }
    for run, (creds, message, kind) in cases.items():
        policy = lab_policy(tmp_path / f"policy-{run}", [{**entry, "credentials": creds}])
        env = {**ENV, "QOECTL_SUDO_USER": sudo_user[0], "QOECTL_WRONG": "not-the-sudo-password"}
        args = ["apply", str(policy), "--known-hosts", str(known), "--lock-dir", str(tmp_path / "locks")]
        args += ["--run-dir", str(tmp_path / run), "--connect-timeout", "5", "--command-timeout", "15", "--json"]
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        r = by_device(json.loads(result.stdout))["r1"]
        assert r["status"] == "failed" and r["left_in"] == "original" and r["error_kind"] == kind, r
        assert message in r["error"], r
        assert "not-the-sudo-password" not in result.output
    assert r1.state() == before


# -- Rollback: exact, at every point of the push, whatever tree was there -------------------------------
#
# Faults are injected by wrapping the driver's own steps in this process (the CLI runs in-process): right
# after the diff, right after ``nft -f``, right after ``tc -batch``, the router's SSH sessions are killed by
# PID (the session is gone, sshd still listens, qoectl reconnects and restores); or sshd is stopped
# altogether until the on-router watchdog has restored, then started again (qoectl verifies).

V2_KBPS = 30000  # policy v2: the same journeys on a faster WAN link (the tree changes)


def _ppid(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first seen in /proc, then theirs)."""
    parents = {p: _ppid(p) for p in (int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit())}
    found: list[int] = []
    todo = [pid]
    while todo:
        cur = todo.pop()
        kids = [p for p, pp in parents.items() if pp == cur]
        found += kids
        todo += kids
    return found


def _wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(Path(f"/proc/{p}").exists() and _ppid(p) is not None for p in pids):
        time.sleep(0.02)


def kill_sessions(router: SshRouter) -> None:
    """Drop every SSH session of ``router``: SIGKILL, by PID, everything below its sshd listener."""
    assert router.sshd is not None
    pids = _descendants(router.sshd.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(pids)


def stop_sshd(router: SshRouter) -> None:
    """The router stops answering SSH: its sshd listener and every session are killed (by PID)."""
    assert router.sshd is not None
    pids = _descendants(router.sshd.pid)
    router.sshd.kill()
    router.sshd.wait(timeout=10)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(pids)


def start_sshd(router: SshRouter) -> None:
    """sshd again, same config (tracked by the namespace, so the lab stops it); waits until it listens."""
    with open(router.workdir / "sshd-again.log", "ab") as log:
        router.sshd = router.ns.popen(
            SSHD, "-D", "-e", "-f", str(router.workdir / "sshd_config"), stdout=log, stderr=log
        )
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection((router.host, router.port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"sshd of {router.name} did not come back")


def watchdog_pids(router: SshRouter) -> list[int]:
    """qoectl watchdog processes running in the router's namespace."""
    out = subprocess.run(["ip", "netns", "pids", router.ns.name], capture_output=True, text=True, check=False)
    pids = [int(p) for p in out.stdout.split()]
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"watchdog.sh" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                found.append(pid)
    return found


def wait_no_watchdog(router: SshRouter, timeout: float) -> float:
    """Seconds until no watchdog runs on ``router`` (``timeout`` if one still does)."""
    start = time.monotonic()
    while watchdog_pids(router) and time.monotonic() - start < timeout:
        time.sleep(0.05)
    return time.monotonic() - start


def qoectl_state(router: SshRouter, wans: tuple[str, ...] = ("wan0",)) -> str:
    """What qoectl reads and compares ("unchanged", rollback verified), read here without SSH."""
    return normalize_state(router.sh(state_script(wans)))


def ruleset(router: SshRouter) -> str:
    return router.ns.exec("nft", "list", "ruleset").stdout


class Monitors:
    """``tc monitor`` and ``nft monitor`` in a router's namespace: every change made there, by anyone."""

    def __init__(self, router: SshRouter, folder: Path) -> None:
        self.router = router
        self.files = {"tc": folder / f"{router.name}.tc-monitor", "nft": folder / f"{router.name}.nft-monitor"}
        self.procs = []
        for kind, path in self.files.items():
            with open(path, "wb") as out:
                self.procs.append(router.ns.popen(kind, "monitor", stdout=out, stderr=subprocess.STDOUT))
        # Ready when both have seen a probe (a qdisc on lan0 and a table of the lab's own, both removed again).
        for _ in range(200):
            router.sh("tc qdisc replace dev lan0 root pfifo limit 7; tc qdisc del dev lan0 root")
            router.sh("nft add table inet labprobe; nft delete table inet labprobe")
            if "lan0" in self.files["tc"].read_text() and "labprobe" in self.files["nft"].read_text():
                return
            time.sleep(0.05)
        raise AssertionError("tc/nft monitor did not start")

    def stop(self) -> dict[str, list[str]]:
        """Stop both (by PID); the events on what qoectl owns: wan0's qdiscs/classes, table inet qoectl."""
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)
        tc = [line for line in self.files["tc"].read_text().splitlines() if "dev wan0" in line]
        nft = [line for line in self.files["nft"].read_text().splitlines() if "inet qoectl" in line]
        return {"tc": tc, "nft": nft}


def with_wan_kbps(entry: dict, kbps: int) -> dict:
    ifaces = [dict(i) for i in entry["interfaces"]]
    ifaces[0]["bandwidth_kbps"] = kbps
    return {**entry, "interfaces": ifaces}


def trusting(entry: dict) -> dict:
    """The same router with its LAN trusted: the nft table changes (no bleaching rules)."""
    ifaces = [{**i, "trust_dscp": True} if i["role"] == "lan" else i for i in entry["interfaces"]]
    return {**entry, "interfaces": ifaces}


POINTS = ("after-diff", "after-nft", "after-tc", "sshd-down-until-watchdog")


class Faults:
    """A fault at ``point`` of every router's push, by wrapping the driver's own steps (in this process).

    ``after-diff``/``after-ip``/``after-nft``/``after-tc``: the router's SSH sessions are killed right after
    that step (qoectl reconnects and restores); ``sshd-down-until-watchdog``: after the last step sshd is
    stopped until the on-router watchdog has restored, then started again (qoectl verifies).
    """

    def __init__(self, point: str, routers: dict[str, SshRouter], monkeypatch: pytest.MonkeyPatch) -> None:
        self.point = point
        self.routers = routers
        self.fired: set[str] = set()
        self.workdirs: dict[str, str] = {}
        self.watchdog_left_folder: dict[str, bool] = {}
        self.threads: list[threading.Thread] = []
        real_intended, real_must = LinuxDriver.intended, LinuxDriver._must

        def intended(driver: LinuxDriver, s: Session, snap: Snapshot) -> str:
            out = real_intended(driver, s, snap)
            self.fault(driver, "after-diff")
            return out

        def must(driver: LinuxDriver, s: Session, script: str, what: str, kind: ErrorKind = "rejected") -> str:
            out = real_must(driver, s, script, what, kind)
            if what.startswith("ip -batch"):
                self.fault(driver, "after-ip")
            elif what == "nft -f nftables.nft":
                self.fault(driver, "after-nft")
            elif what == "tc -batch tc.batch":
                self.fault(driver, "after-tc" if point != "sshd-down-until-watchdog" else point)
            return out

        monkeypatch.setattr(LinuxDriver, "intended", intended)
        monkeypatch.setattr(LinuxDriver, "_must", must)

    def _restart_after_watchdog(self, router: SshRouter, workdir: str) -> None:
        wait_no_watchdog(router, 30)  # it restores confirm-timeout (5 s) after it started, then ends
        self.watchdog_left_folder[router.name] = Path(workdir).exists()
        start_sshd(router)

    def fault(self, driver: LinuxDriver, where: str) -> None:
        name = driver.device.name
        if where != self.point or name in self.fired:
            return
        self.fired.add(name)
        assert driver.workdir is not None
        self.workdirs[name] = driver.workdir
        if self.point == "sshd-down-until-watchdog":
            stop_sshd(self.routers[name])
            t = threading.Thread(target=self._restart_after_watchdog, args=(self.routers[name], driver.workdir))
            self.threads.append(t)
            t.start()
        else:
            kill_sessions(self.routers[name])

    def apply(self, policy: Path, known: Path, tmp_path: Path) -> tuple[Result, dict]:
        """``qoectl apply`` of ``policy`` with the fault armed; every router must have met it."""
        try:
            args = ("--workers", str(len(self.routers)), "--on-failure", "continue", "--confirm-timeout", "5")
            res, data = apply_cli(policy, known, tmp_path, "run-v2", *args)
        finally:
            for t in self.threads:
                t.join(timeout=60)
        assert self.fired == set(self.routers), (self.fired, res.output)
        return res, data


@pytest.mark.parametrize("point", POINTS)
def test_rollback_leaves_each_router_exactly_as_its_backup(
    point: str, linux_lab: LinuxLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """{no tree, v1 tree} x drop point: rolled_back / original, state byte-equal to the backup."""
    fresh, v1 = linux_lab.router("fresh"), linux_lab.router("v1")
    routers = {r.name: r for r in (fresh, v1)}
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    entries = [linux_device(r, linux_lab.client_key) for r in (fresh, v1)]

    # v1: the policy as it is, applied by qoectl to one router; traffic in its classes (counters).
    res, data = apply_cli(lab_policy(tmp_path / "policy-v1", [entries[1]]), known, tmp_path, "run-v1")
    assert res.exit_code == 0 and by_device(data)["v1"]["status"] == "changed", res.output
    v1.send_ef(3)
    assert class_packets(v1, "1:10") >= 3
    wait_no_watchdog(v1, 5)

    before = {
        name: {
            "state": qoectl_state(r),
            "ruleset": ruleset(r),
            "lab": r.state(),
            "handles": r.nft_handles(),
            "ef_packets": class_packets(r, "1:10") if r is v1 else 0,
        }
        for name, r in routers.items()
    }
    assert "burst 1599b" in before["v1"]["state"]  # the classes whose burst a naive restore turns into 1598b

    faults = Faults(point, routers, monkeypatch)
    monitors = {name: Monitors(r, tmp_path) for name, r in routers.items()}
    # v2: a faster WAN link (the tc tree changes) and a trusted LAN (the nft table changes).
    v2 = lab_policy(tmp_path / "policy-v2", [trusting(with_wan_kbps(e, V2_KBPS)) for e in entries])
    res, data = faults.apply(v2, known, tmp_path)
    events = {name: m.stop() for name, m in monitors.items()}
    workdirs, watchdog_left_folder = faults.workdirs, faults.watchdog_left_folder
    assert res.exit_code == 1, res.output
    results = by_device(data)
    audit = [json.loads(line) for line in (tmp_path / "run-v2" / "audit.jsonl").read_text().splitlines()]

    for name, r in routers.items():
        d = results[name]
        assert (d["status"], d["left_in"], d["error_kind"]) == ("rolled_back", "original", "session_lost"), d
        # Byte for byte: the backup qoectl saved, the router now, and the router before the run.
        backup = tmp_path / "run-v2" / "backups" / name
        assert (backup / "qoectl-state.txt").read_text() == before[name]["state"]
        assert qoectl_state(r) == before[name]["state"]
        assert (backup / "ruleset.nft").read_text().strip() == ruleset(r).strip() == before[name]["ruleset"].strip()
        assert r.state() == before[name]["lab"]
        # Nothing lingers on the router: no watchdog process, no work folder.
        assert wait_no_watchdog(r, 3) < 3, f"watchdog still running on {name}"
        assert not Path(workdirs[name]).exists()

        if point == "after-diff":
            # The push had sent nothing, so the rollback must not have touched the router at all.
            assert events[name] == {"tc": [], "nft": []}, events[name]
            assert r.nft_handles() == before[name]["handles"]
            if r is v1:  # a rebuilt tree would have started counting again from zero
                assert class_packets(r, "1:10") >= before[name]["ef_packets"] >= 3
            assert d["commands"] == [] and "nothing to restore" in d["rollback"], d
            assert not [e for e in audit if e["event"] == "pushed" and e.get("device") == name]
        elif point == "after-nft":
            # Only the nft table was changed, so only it was put back: wan0's qdiscs never changed.
            assert events[name]["tc"] == [], events[name]["tc"]
            assert events[name]["nft"]
            assert "nftables table" in d["rollback"] and "tc" not in d["rollback"], d["rollback"]
        elif point == "after-tc":
            assert events[name]["tc"] and events[name]["nft"]
            assert "nftables table" in d["rollback"] and "tc qdiscs" in d["rollback"], d["rollback"]
        else:
            assert watchdog_left_folder[name] is False, "the watchdog restored but left its work folder"
            assert "watchdog restored" in d["rollback"], d["rollback"]


def test_after_a_confirmed_apply_the_watchdog_ends_at_once(
    linux_lab: LinuxLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It does not sit out the whole --confirm-timeout once the change is confirmed and its folder removed."""
    r = linux_lab.router("r1")
    policy = lab_policy(tmp_path / "policy", [linux_device(r, linux_lab.client_key)])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    workdirs: list[str] = []
    real_confirm = LinuxDriver.confirm

    def confirm(self: LinuxDriver, s: Session, snap: Snapshot) -> None:
        assert watchdog_pids(r), "the watchdog should be running until the change is confirmed"
        workdirs.append(str(self.workdir))
        real_confirm(self, s, snap)

    monkeypatch.setattr(LinuxDriver, "confirm", confirm)
    res, data = apply_cli(policy, known, tmp_path, "run", "--confirm-timeout", "60")
    assert res.exit_code == 0 and by_device(data)["r1"]["status"] == "changed", res.output
    waited = wait_no_watchdog(r, 5)
    assert waited < 3, f"the watchdog was still running {waited:.1f}s after the apply (confirm timeout 60s)"
    assert workdirs and not Path(workdirs[0]).exists()


def test_restore_batch_rebuilds_htb_trees_exactly(lab: Lab) -> None:
    """The restore batch, run by the real tc, prints the saved state again: every rate range, burst, ATM cell.

    tc keeps an HTB burst as a time and prints it back truncated (``burst 1599b`` given back prints 1598b),
    so the batch gives the byte counts that print the saved values again (``burst_bytes``).
    """
    import random

    ns = lab.host("tcrt")
    ns.exec("ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p")
    ns.exec("ip", "link", "set", "wan0", "up")
    tick = tick_in_usec(Path("/proc/net/psched").read_text())
    rng = random.Random(20240611)

    def rate() -> int:  # bit/s that tc prints exactly (below 1 Mbit/s any byte rate, then whole kbit, Mbit)
        return rng.choice(
            [rng.randint(1, 124999) * 8, rng.randint(1000, 999999) * 1000, rng.randint(1000, 40000) * 10**6]
        )

    trees = [
        "qdisc replace dev wan0 root handle 1: htb default 17 r2q 10\n"
        "class replace dev wan0 parent 1: classid 1:1 htb rate 20000kbit ceil 20000kbit quantum 200000\n"
        "class replace dev wan0 parent 1:1 classid 1:10 htb rate 1800kbit ceil 1800kbit prio 0 quantum 22500\n"
        "qdisc replace dev wan0 parent 1:10 handle 10: pfifo limit 16\n",
        "qdisc replace dev wan0 root handle 7: htb default 0x20\n"
        "class replace dev wan0 parent 7: classid 7:1 htb rate 3mbit burst 2050 cburst 15k "
        "mpu 64 overhead 4 linklayer atm\n"
        "class replace dev wan0 parent 7:1 classid 7:2 htb rate 100kbit\n"
        "qdisc replace dev wan0 parent 7:2 handle 2: bfifo limit 30000\n",
    ]
    for _ in range(40):
        low = rate()
        high = max(low, rate())
        trees.append(
            "qdisc replace dev wan0 root handle 1: htb\n"
            f"class replace dev wan0 parent 1: classid 1:1 htb rate {low}bit ceil {high}bit "
            f"burst {rng.randint(100, 2_000_000)} cburst {rng.randint(100, 2_000_000)}\n"
            f"class replace dev wan0 parent 1:1 classid 1:2 htb rate {low}bit ceil {high}bit\n"
        )
    for tree in trees:
        ns.exec("sh", "-c", "tc qdisc del dev wan0 root 2>/dev/null; true")
        ns.exec("tc", "-batch", "-", input=tree)
        saved = normalize_state(ns.exec("sh", "-c", state_script(("wan0",))).stdout)
        ns.exec("tc", "-force", "-batch", "-", input=tc_restore_batch(saved, ("wan0",), tick))
        assert normalize_state(ns.exec("sh", "-c", state_script(("wan0",))).stdout) == saved, tree


def test_a_restore_set_that_would_not_rebuild_the_backup_stops_the_apply(
    linux_lab: LinuxLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work_folders: set[str]
) -> None:
    """The rollback is proven before the push: a restore batch that misses a class means nothing is sent."""
    r = linux_lab.router("r1")
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    entry = linux_device(r, linux_lab.client_key)
    res, data = apply_cli(lab_policy(tmp_path / "policy-v1", [entry]), known, tmp_path, "run-v1")
    assert res.exit_code == 0 and by_device(data)["r1"]["status"] == "changed", res.output
    before = qoectl_state(r)
    real = linux_driver.tc_restore_batch

    def missing_a_class(state: str, ifaces: tuple[str, ...], tick: float = 15.625) -> str:
        lines = real(state, ifaces, tick).splitlines(keepends=True)
        return "".join(line for line in lines if "classid 1:16 " not in line)

    monkeypatch.setattr(linux_driver, "tc_restore_batch", missing_a_class)
    monitors = Monitors(r, tmp_path)
    v2 = lab_policy(tmp_path / "policy-v2", [with_wan_kbps(entry, V2_KBPS)])
    res, data = apply_cli(v2, known, tmp_path, "run-v2")
    events = monitors.stop()
    assert res.exit_code == 1, res.output
    d = by_device(data)["r1"]
    assert (d["status"], d["left_in"], d["error_kind"], d["commands_sent"]) == ("failed", "original", "precondition", 0)
    assert "cannot guarantee a rollback, so nothing was sent" in d["error"] and "1:16" in d["error"], d["error"]
    assert events == {"tc": [], "nft": []}
    assert qoectl_state(r) == before
    assert wait_no_watchdog(r, 1) < 1
    assert work_folders and not [f for f in work_folders if Path(f).exists()]


# -- Two transports: a Linux SD-WAN edge's ip rules and routing tables ---------------------------------------
#
# qoectl owns rule priorities 30000-32599 and tables 29101-29199 (controller/linux_routing.py). Each router here
# also has routing of its own: a rule at 100 and one at 32700, table 100: they must never change.

# IPv4 and IPv6 (link-local): both families. The IPv4 gateway is outside 198.18.0.0/15, where the lab picks its
# routers' addresses at random (a gateway equal to the router's own address is "Nexthop has invalid gateway").
GATEWAYS = {"mpls": "192.0.2.1", "biz-internet": "fe80::1"}
STRICT_JOURNEY = """\
apiVersion: qoectl/v1
kind: Journey
metadata: {name: pinned-sync, owner: lab@example.com}
spec:
  traffic:
    match:
      - {protocol: tcp, destination_ports: [8873], destination_prefixes: [198.18.240.0/24]}
  target: {bulk: {min_throughput_kbps: 500}}
  priority: low
  bandwidth: {share_pct: 2}
  sdwan: {strict: true, preferred_transports: [mpls]}
"""
FOREIGN = (
    "ip rule add pref 100 fwmark 0x4000/0x4000 lookup 100 && ip route add 198.18.252.0/24 dev wan1 table 100 && "
    "ip rule add pref 32700 from 198.18.253.0/24 lookup 100"
)
EDGE_WANS = ("wan0", "wan1")  # the WAN interfaces of a two-transport edge
OWNED_RULE = re.compile(r"^(3[0-1]\d{3}|32[0-5]\d\d):", re.MULTILINE)


def sdwan_entry(router: SshRouter, key: Path, gateways: dict[str, str] = GATEWAYS, kbps: int = 20000) -> dict:
    """A two-transport edge: wan0 on mpls, wan1 on biz-internet, each with its gateway (onlink)."""
    entry = linux_device(router, key)
    wans = [
        {"name": f"wan{k}", "role": "wan", "transport": t, "bandwidth_kbps": kbps, "gateway": gateways[t]}
        for k, t in enumerate(("mpls", "biz-internet"))
    ]
    return {**entry, "interfaces": [*wans, {"name": "lan0", "role": "lan", "trust_dscp": False}]}


def sdwan_policy(dest: Path, entries: list[dict]) -> Path:
    """The lab policy with a strict journey added (pinned to mpls: no backup, unreachable)."""
    root = lab_policy(dest, entries)
    (root / "journeys" / "pinned-sync.yaml").write_text(STRICT_JOURNEY)
    return root


def edge(linux_lab: LinuxLab, name: str) -> SshRouter:
    router = linux_lab.router(name, wan_ifaces=("wan0", "wan1"))
    router.sh(FOREIGN)
    return router


def routing_state(router: SshRouter) -> str:
    """Every ip rule and every route of every table, both families (qoectl's and the router's own)."""
    return router.sh("ip -4 rule; ip -6 rule; ip -4 route show table all; ip -6 route show table all")


def foreign(router: SshRouter) -> str:
    """The router's own routing: every rule outside qoectl's range, table 100."""
    rules = [line for line in router.sh("ip -4 rule; ip -6 rule").splitlines() if not OWNED_RULE.match(line)]
    return "\n".join([*rules, router.sh("ip route show table 100")])


def test_two_transport_edge_apply_reapply_drift_and_back_to_one(linux_lab: LinuxLab, tmp_path: Path) -> None:
    r = edge(linux_lab, "edge")
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    policy = sdwan_policy(tmp_path / "policy", [sdwan_entry(r, linux_lab.client_key)])
    own = foreign(r)

    res, data = apply_cli(policy, known, tmp_path, "run-1")
    assert res.exit_code == 0 and by_device(data)["edge"]["status"] == "changed", res.output
    assert "ip -batch: the rules and routes that differ" in by_device(data)["edge"]["commands"]
    routes = r.sh("ip -6 route show table 29101; ip -4 route show table 29102")
    assert f"default via {GATEWAYS['biz-internet']} dev wan1 proto static metric 1024 onlink" in routes, routes
    assert f"default via {GATEWAYS['mpls']} dev wan0 proto static onlink" in routes, routes
    rules = r.sh("ip -4 rule; ip -6 rule")
    assert "unreachable" in rules and len(OWNED_RULE.findall(rules)) >= 5, rules
    assert foreign(r) == own

    # Again: nothing sent, not one rule or route event.
    mon = r.ns.popen("ip", "monitor", "rule", "route", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.3)
        res, data = apply_cli(policy, known, tmp_path, "run-2")
        assert res.exit_code == 0 and by_device(data)["edge"]["status"] == "unchanged", res.output
        assert by_device(data)["edge"]["commands_sent"] == 0
        # Drift: one of qoectl's rules deleted by hand is put back, and nothing else of the routing is touched.
        first = OWNED_RULE.findall(rules)[0]
        r.sh(f"ip rule del pref {first}")
        res, data = apply_cli(policy, known, tmp_path, "run-3")
        assert res.exit_code == 0 and by_device(data)["edge"]["status"] == "changed", res.output
        assert f"+{first}:" in by_device(data)["edge"]["diff"]
        assert by_device(data)["edge"]["commands"][1:] == ["ip -batch: the rules and routes that differ"]
        time.sleep(0.3)
    finally:
        mon.terminate()
        out, _ = mon.communicate(timeout=10)
    events = [line for line in out.decode().splitlines() if line.strip()]
    assert [e.split(":")[0].removeprefix("Deleted ") for e in events] == [first, first], events
    assert r.sh("ip -4 rule; ip -6 rule") == rules and foreign(r) == own

    # Down to one transport: qoectl's rules and tables go, the router's own stay.
    one = sdwan_entry(r, linux_lab.client_key)
    one["interfaces"] = [i for i in one["interfaces"] if i["name"] != "wan1"]
    res, data = apply_cli(lab_policy(tmp_path / "policy-one", [one]), known, tmp_path, "run-4")
    assert res.exit_code == 0 and by_device(data)["edge"]["status"] == "changed", res.output
    assert not OWNED_RULE.findall(r.sh("ip -4 rule; ip -6 rule"))
    assert not r.sh("ip -4 route show table all; ip -6 route show table all").count(" table 291")
    assert foreign(r) == own


SD_POINTS = ("after-diff", "after-ip", "after-nft", "after-tc", "sshd-down-until-watchdog")


@pytest.mark.parametrize("point", SD_POINTS)
def test_two_transport_rollback_restores_rules_and_tables_exactly(
    point: str, linux_lab: LinuxLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """{no qoectl routing, v1 routing} x drop point: rolled back, every rule and route as before, byte for byte."""
    fresh, v1 = edge(linux_lab, "sdfresh"), edge(linux_lab, "sdv1")
    routers = {r.name: r for r in (fresh, v1)}
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    entries = [sdwan_entry(r, linux_lab.client_key) for r in (fresh, v1)]
    res, data = apply_cli(sdwan_policy(tmp_path / "policy-v1", [entries[1]]), known, tmp_path, "run-v1")
    assert res.exit_code == 0 and by_device(data)["sdv1"]["status"] == "changed", res.output
    wait_no_watchdog(v1, 5)
    before = {n: (qoectl_state(r, EDGE_WANS), routing_state(r), ruleset(r), r.state()) for n, r in routers.items()}
    assert not OWNED_RULE.findall(routing_state(fresh)) and OWNED_RULE.findall(routing_state(v1))

    # v2: other gateways (routes change), a faster link (the tc tree changes), a trusted LAN (nft changes).
    moved = {"mpls": "192.0.2.9", "biz-internet": "fe80::9"}
    v2 = sdwan_policy(
        tmp_path / "policy-v2", [trusting(sdwan_entry(r, linux_lab.client_key, moved, V2_KBPS)) for r in (fresh, v1)]
    )
    faults = Faults(point, routers, monkeypatch)
    res, data = faults.apply(v2, known, tmp_path)
    assert res.exit_code == 1, res.output
    for name, r in routers.items():
        d = by_device(data)[name]
        assert (d["status"], d["left_in"], d["error_kind"]) == ("rolled_back", "original", "session_lost"), d
        backup = tmp_path / "run-v2" / "backups" / name
        assert (backup / "qoectl-state.txt").read_text() == before[name][0] == qoectl_state(r, EDGE_WANS)
        assert routing_state(r) == before[name][1], name  # every rule and route, qoectl's and the router's own
        assert ruleset(r) == before[name][2] and r.state() == before[name][3]
        assert wait_no_watchdog(r, 3) < 3, f"watchdog still running on {name}"
        assert not Path(faults.workdirs[name]).exists()
        if point == "after-diff":
            assert d["commands"] == [] and "nothing to restore" in d["rollback"], d
        elif point == "after-ip":
            assert "ip -batch: the rules and routes that differ" in d["commands"], d["commands"]
            assert "ip rules and routes" in d["rollback"] and "nftables" not in d["rollback"], d["rollback"]
        elif point in ("after-nft", "after-tc"):
            assert "ip rules and routes" in d["rollback"] and "nftables table" in d["rollback"], d["rollback"]
        else:
            assert faults.watchdog_left_folder[name] is False
            assert "watchdog restored" in d["rollback"], d["rollback"]
