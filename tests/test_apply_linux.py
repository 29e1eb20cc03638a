"""qoectl apply against real Linux routers: network namespaces, OpenSSH sshd, netmiko ``linux``, nft and tc.

Every router is a namespace with its own sshd (key-only, management address
only); the test talks to it over a veth from its own namespace. The pushed
config must really take effect: EF traffic sent by the router lands in the
strict-priority HTB class, and a second apply sends nothing (the kernel's rule
handles and class counters survive it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli.main import cli
from tests.conftest import REPO
from tests.lab.netns import Lab
from tests.lab.sshd import LinuxLab, SshRouter, keygen, lab_policy, linux_device, requires_sshd

pytestmark = [requires_sshd, pytest.mark.root]

PASSWORD = "Pw-linux-0xC0FFEE-do-not-leak"  # a test secret that must never appear in any output
ENV = {"QOECTL_TEST_USER": "root", "QOECTL_TEST_PASSWORD": PASSWORD}


def apply_cli(policy: Path, known_hosts: Path, tmp: Path, run: str, *extra: str) -> tuple[Result, dict]:
    """Run ``qoectl apply --json`` in-process; return the click result and the parsed JSON."""
    args = [
        "apply",
        str(policy),
        "--known-hosts",
        str(known_hosts),
        "--lock-dir",
        str(tmp / "locks"),
        "--run-dir",
        str(tmp / run),
        "--command-timeout",
        "30",
        "--json",
        *extra,
    ]
    if "--connect-timeout" not in extra:
        args += ["--connect-timeout", "5"]
    result = CliRunner().invoke(cli, args, env=ENV, catch_exceptions=False)
    return result, json.loads(result.stdout)


def by_device(data: dict) -> dict[str, dict]:
    return {d["device"]: d for d in data["devices"]}


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
def linux_lab(lab: Lab, tmp_path: Path) -> Iterator[LinuxLab]:
    ll = LinuxLab(lab, tmp_path / "lab")
    try:
        yield ll
    finally:
        ll.close()


def test_apply_dry_run_then_apply_then_nothing_sent(linux_lab: LinuxLab, tmp_path: Path) -> None:
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
    assert "class htb 1:10" in r2.tc_classes()

    # No temporary folder is left on the routers (they share this machine's /tmp).
    assert not list(Path("/tmp").glob("qoectl.*/claim"))


def test_faults_leave_each_router_as_it_was_and_harm_no_other(linux_lab: LinuxLab, tmp_path: Path) -> None:
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


def test_changed_host_key_is_refused_even_when_accepting_new_keys(linux_lab: LinuxLab, tmp_path: Path) -> None:
    r = linux_lab.router("r1")
    other = linux_lab.router("r2")
    policy = lab_policy(tmp_path / "policy", [linux_device(r, linux_lab.client_key)])
    # known_hosts claims r1 has r2's key: a man in the middle, as far as qoectl can tell.
    forged = f"[{r.host}]:{r.port} " + " ".join(other.host_key_line.split()[1:])
    known = tmp_path / "known_hosts"
    known.write_text(forged + "\n")
    before = r.state()
    res, data = apply_cli(policy, known, tmp_path, "run", "--accept-new-host-keys")
    assert res.exit_code == 1
    d = by_device(data)["r1"]
    assert (d["status"], d["error_kind"], d["commands_sent"]) == ("failed", "host_key", 0)
    assert "CHANGED" in d["error"]
    assert r.state() == before
    assert known.read_text() == forged + "\n"


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
    """An unprivileged login on this machine (the routers share its users) allowed to ``sudo -s``.

    ``request.param``: "password" (sudo asks for SUDO_PASSWORD) or "nopasswd". The user
    and its sudoers file are removed afterwards, pass or fail. Yields (name, sudo asks a password).
    """
    import secrets
    import shutil

    if not (shutil.which("sudo") and shutil.which("useradd")):
        pytest.skip("needs sudo and useradd (apt-get install sudo passwd)")
    name = f"qoectl-t{secrets.token_hex(3)}"
    rule = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        # A password also unlocks the account (sshd without PAM refuses locked accounts, even for keys).
        subprocess.run(["chpasswd"], input=f"{name}:{SUDO_PASSWORD}\n", text=True, check=True)
        tag = "NOPASSWD: " if request.param == "nopasswd" else ""
        rule.write_text(f"{name} ALL=(ALL) {tag}ALL\n")
        rule.chmod(0o440)
        yield name, request.param == "password"
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", name], check=False)


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
        args = ["apply", str(policy), "--known-hosts", str(known), "--lock-dir", str(tmp_path / "locks")]
        args += ["--run-dir", str(tmp_path / run), "--connect-timeout", "5", "--command-timeout", "30", "--json"]
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        return result, json.loads(result.stdout)

    res, data = apply("run-1")
    assert res.exit_code == 0, res.output
    assert by_device(data)["r1"]["status"] == "changed", data
    assert 'comment "journey voice"' in r1.nft_table() and "qdisc htb 1: root" in r1.tc_qdiscs()
    res, data = apply("run-2")
    assert res.exit_code == 0 and by_device(data)["r1"]["status"] == "unchanged", data
    for text in [res.output, *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())]:
        assert SUDO_PASSWORD not in text


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
