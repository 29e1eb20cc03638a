"""``qoectl lab`` on this machine: namespaces, routers with sshd, an ISP bottleneck, real congestion, real QoS.

Root only (network namespaces, tc, sshd); skipped elsewhere with the reason. Each test runs a private
copy of the bundled lab (tests/lab/qoelab.py: own name, management /24 and state folder), and takes it
down in teardown, pass or fail: every process by PID, every namespace.

The thresholds are network outcomes with wide margins (hundreds of ms of queueing against a few ms),
never timings of qoectl's own code.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.lab import control
from controller.lab.measure import Measurement, measure, read_queues
from controller.lab.netns import existing_namespaces, namespace_pids, run
from controller.lab.state import LabState
from controller.measure.samples import Vocabulary
from controller.pipeline import build
from tests.lab.qoelab import lab_copy, requires_lab, running_lab, take_down

pytestmark = [requires_lab, pytest.mark.root]

EF = 46
DRAIN_S = 40.0  # bound on waiting for a standing queue to drain or build (it takes about 10 s)


def lab_cli(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["lab", "--state-dir", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_up_status_down_and_up_twice(tmp_path: Path) -> None:
    lab = lab_copy(tmp_path)
    try:
        code, out, err = lab_cli(lab.root, "up", str(lab.lab_file), "--json")
        assert code == 0, err
        up = json.loads(out)
        code, out, err = lab_cli(lab.root, "status", "--json")
        assert code == 0, err
        status = json.loads(out)
        assert status["up"] is True and status["name"] == lab.name
        prefix = f"qlab-{lab.name}-"
        assert sorted(status["namespaces"]) == sorted(
            prefix + n for n in ("branch", "hub", "branch-rtr", "hub-rtr", "isp-wan")
        )
        present = existing_namespaces()
        assert set(status["namespaces"]) <= present
        assert status["hosts"]["branch"] == {
            "namespace": prefix + "branch",
            "addresses": ["198.18.10.2/24"],
            "router": "branch-rtr",
            "site": "branch",
            "gateway": "198.18.10.1",
        }
        assert status["hosts"]["hub"]["addresses"] == ["198.18.20.2/24"]
        branch_rtr = status["routers"]["branch-rtr"]
        assert branch_rtr["namespace"] == prefix + "branch-rtr"
        assert {"198.18.10.1/24", "198.18.30.1/30"} <= set(branch_rtr["addresses"])
        assert branch_rtr["wan"] == {"name": "wan", "interface": "wan0"}
        assert {(link["kind"], link["a"]["node"], link["b"]["node"]) for link in status["links"]} >= {
            ("lan", "branch", "branch-rtr"),
            ("wan", "branch-rtr", "isp-wan"),
            ("wan", "hub-rtr", "isp-wan"),
            ("management", "hub-rtr", None),
        }
        assert status["wans"]["wan"]["capacity_kbps"] == 10000
        # Every host address answers from the other side of the WAN, and each router's sshd from here.
        state = lab.state()
        hub = state.config.host("hub")
        out_ping = run(
            [
                "ip",
                "netns",
                "exec",
                prefix + "branch",
                "python3",
                "-c",
                "import socket,sys;s=socket.create_connection((sys.argv[1],8080),timeout=5);"
                "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n');print(s.recv(12).decode())",
                hub.address,
            ]
        )
        assert out_ping.startswith("HTTP/1.0 200"), out_ping
        for r in status["routers"].values():
            with socket.create_connection((r["management"]["host"], r["management"]["port"]), timeout=5) as s:
                assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
        processes = {p["name"]: p for p in status["processes"]}
        assert {"sshd-branch-rtr", "sshd-hub-rtr", "calls.send", "calls.recv", "overload.send", "web.send"} <= set(
            processes
        )
        assert all(p["running"] for p in processes.values()), processes
        pids = [p["pid"] for p in status["processes"]]
        assert up["processes"] == status["processes"]
        assert Path(status["apply"]["known_hosts"]).read_text().count("ssh-ed25519") == 2

        # A second lab while this one is there: refused, with the way out.
        code, _, err = lab_cli(lab.root, "up", str(lab.lab_file))
        assert code == 1
        assert f"lab '{lab.name}' is still there" in err and "`qoectl lab down` removes it" in err
        assert [p for p in status["namespaces"] if p in existing_namespaces()] == status["namespaces"]

        # The bulk load changes while it runs: the overload sender is replaced (new PID, new rate), nothing else.
        code, _, err = lab_cli(lab.root, "load", "--bulk", "0.5")
        assert code == 0, err
        after = {p.name: p for p in lab.state().processes}
        assert after["overload.send"].pid != processes["overload.send"]["pid"] and after["overload.send"].alive()
        assert "5000.0" in after["overload.send"].argv
        assert not alive(processes["overload.send"]["pid"])
        assert after["calls.send"].pid == processes["calls.send"]["pid"]
        pids.append(after["overload.send"].pid)
        code, _, err = lab_cli(lab.root, "capacity", "wan", "8000")
        assert code == 0, err
        isp = run(["ip", "netns", "exec", prefix + "isp-wan", "tc", "class", "show", "dev", "eth1"])
        assert "rate 8Mbit ceil 8Mbit" in isp
        overload = next(p for p in lab.state().processes if p.name == "overload.send")
        assert "4000.0" in overload.argv  # 0.5 x the new capacity
        pids.append(overload.pid)

        # Down: no namespace, no process of the lab (by PID and by namespace), no state.
        code, out, err = lab_cli(lab.root, "down", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["ok"] and report["removed"] == lab.name and report["left"] == []
        assert not [n for n in existing_namespaces() if n.startswith(prefix)]
        assert prefix not in run(["ip", "netns", "list"])
        assert not [pid for pid in pids if alive(pid)]
        assert not (lab.root / lab.name).exists()
        code, out, _ = lab_cli(lab.root, "status", "--json")
        assert code == 0 and json.loads(out) == {"up": False}
        code, out, _ = lab_cli(lab.root, "down")
        assert code == 0 and "no lab is up" in out
    finally:
        left = take_down(lab)
        assert not left, left


def _wait_bottleneck(state: LabState, router: str, done: Callable[[int], bool], timeout: float = DRAIN_S) -> int:
    """Poll the ISP queue towards ``router`` until ``done(backlog_bytes)``; returns the last backlog."""
    deadline = time.monotonic() + timeout
    while True:
        _, bottlenecks = read_queues(state)
        backlog = next(b for b in bottlenecks if b.towards == router).backlog_bytes
        if done(backlog) or time.monotonic() > deadline:
            return backlog
        time.sleep(0.5)


def _verify(policy: Path, cycle: Measurement, tmp_path: Path, name: str) -> tuple[int, dict]:
    samples = tmp_path / f"{name}.json"
    cycle.write_samples(samples)
    result = CliRunner().invoke(cli, ["verify", str(policy), "--measurements", str(samples), "--json"])
    return result.exit_code, json.loads(result.stdout)


def _status(report: dict, journey: str, site: str) -> str:
    return next(r["status"] for r in report["results"] if r["journey"] == journey and r["segment"]["site"] == site)


@pytest.mark.slow
def test_congestion_then_qos_then_a_bottleneck_downstream(tmp_path: Path, record_property) -> None:  # type: ignore[no-untyped-def]
    with running_lab(tmp_path) as lab:
        state = lab.state()
        policy = lab.policy(tmp_path / "policy")
        built = build(policy)
        assert built.ok, [d.format() for d in built.errors]

        # 1. No QoS on the routers, bulk at 2x: voice waits in the ISP's FIFO (1 s) or is dropped there.
        _wait_bottleneck(state, "hub-rtr", lambda b: b > 500_000, timeout=15)
        plain = measure(state, built, 5.0)
        plain_voice = plain.probe("voice")
        assert plain_voice is not None and plain_voice.ok, plain_voice
        assert (plain_voice.delay_p50_ms or 0) > 300 or (plain_voice.loss_pct or 0) > 5, plain_voice
        isp = plain.bottleneck_into("hub-rtr")
        assert isp.max_backlog_bytes > 500_000 and isp.drops > 0, isp
        assert plain.router("branch-rtr").rate_kbps is None  # noqueue: no shaper, nothing queues on the router
        code, report = _verify(policy, plain, tmp_path, "plain")
        assert code == 1 and _status(report, "voice", "branch") == "fail"

        # 2. qoectl apply (netmiko, the lab's known_hosts, key-only root login) of the compiled lab policy.
        result = CliRunner().invoke(
            cli,
            [
                "apply",
                str(policy),
                "--known-hosts",
                str(state.files.known_hosts),
                "--lock-dir",
                str(tmp_path / "locks"),
                "--run-dir",
                str(tmp_path / "run"),
                "--json",
            ],
            env={"QOECTL_LAB_USER": "root"},
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        applied = {d["device"]: d for d in json.loads(result.stdout)["devices"]}
        assert {d["status"] for d in applied.values()} == {"changed"}, applied
        # The shaper (9 of 10 Mbit/s) drains the standing queue the ISP had built, then keeps it empty.
        assert _wait_bottleneck(state, "hub-rtr", lambda b: b < 20_000) < 20_000
        qos = measure(state, built, 5.0)
        qos_voice = qos.probe("voice")
        assert qos_voice is not None and qos_voice.ok, qos_voice
        assert qos_voice.delay_p99_ms is not None and qos_voice.delay_p99_ms < 20, qos_voice
        assert qos_voice.loss_pct is not None and qos_voice.loss_pct < 1, qos_voice
        assert qos_voice.dscp_seen == ((EF, qos_voice.packets_received),)
        router = qos.router("branch-rtr")
        assert router.rate_kbps == 9000 and router.drops > 0  # the router's own shaper now drops the overload
        assert router.cls("1:10") is not None and router.cls("1:10").max_backlog_bytes < 5_000  # voice: no queue
        web = qos.probe("web")
        assert web is not None and web.ok and web.errors == 0 and (web.transactions or 0) >= 5, web
        code, report = _verify(policy, qos, tmp_path, "qos")
        assert _status(report, "voice", "branch") == "pass", report
        assert _status(report, "web", "branch") == "pass", report
        assert code in (0, 3)
        samples, problems = qos.sample_set(Vocabulary(built.policy))
        assert not problems and len(samples) == len(qos.samples)

        # 3. The real capacity drops below the router's shaper: the queue moves downstream, into the ISP.
        control.set_capacity(lab.root, "wan", 7000)
        _wait_bottleneck(lab.state(), "hub-rtr", lambda b: b > 400_000)
        downstream = measure(lab.state(), built, 5.0)
        voice = downstream.probe("voice")
        assert voice is not None and voice.ok and voice.delay_p50_ms is not None and voice.delay_p50_ms > 300, voice
        isp = downstream.bottleneck_into("hub-rtr")
        router = downstream.router("branch-rtr")
        assert isp.rate_kbps == 7000 and isp.max_queue_delay_ms > 400, isp
        assert router.cls("1:10") is not None and router.cls("1:10").max_backlog_bytes < 5_000  # voice class empty
        assert isp.max_backlog_bytes > 2 * router.max_backlog_bytes, (isp, router)
        code, report = _verify(policy, downstream, tmp_path, "downstream")
        assert code == 1 and _status(report, "voice", "branch") == "fail"

        figures = {
            "plain_voice_p50_ms": plain_voice.delay_p50_ms,
            "plain_voice_loss_pct": plain_voice.loss_pct,
            "qos_voice_p99_ms": qos_voice.delay_p99_ms,
            "qos_voice_loss_pct": qos_voice.loss_pct,
            "downstream_voice_p50_ms": voice.delay_p50_ms,
            "downstream_isp_backlog_bytes": isp.max_backlog_bytes,
            "downstream_router_backlog_bytes": router.max_backlog_bytes,
            "cycle_s": round(qos.ended - qos.started, 2),
        }
        for key, value in figures.items():
            record_property(key, value)
        print("\n" + "\n".join(f"{k}: {v}" for k, v in figures.items()))


def test_processes_left_in_the_namespaces_are_stopped_too(tmp_path: Path) -> None:
    """Something started in a router namespace after `up` (an apply's watchdog, say) does not survive `down`."""
    with running_lab(tmp_path) as lab:
        ns = lab.state().config.namespace("branch-rtr")
        stray = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"], start_new_session=True)
        try:
            time.sleep(0.2)
            assert stray.pid in namespace_pids(ns)
            report = control.down(lab.root)
            assert report is not None and not report.left
            stray.wait(timeout=10)
            assert not alive(stray.pid)
        finally:
            if stray.poll() is None:
                stray.kill()
                stray.wait(timeout=10)


def test_an_up_that_fails_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The routers' sshd cannot start: `up` says why in one line and removes the namespaces it had made."""
    from controller.lab import sshd

    monkeypatch.setattr(sshd, "SSHD", "/bin/false")
    lab = lab_copy(tmp_path)
    try:
        code, _, err = lab_cli(lab.root, "up", str(lab.lab_file))
        assert code == 1
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: sshd of branch-rtr exited: it printed nothing"), err
        assert "lab: failed: removing what was created" in err
        assert not [n for n in existing_namespaces() if n.startswith(f"qlab-{lab.name}-")]
        assert not (lab.root / lab.name).exists()
    finally:
        left = take_down(lab)
        assert not left, left


def test_down_needs_nothing_but_the_state_it_wrote(tmp_path: Path) -> None:
    """A state whose lab file no longer loads (another qoectl version) is still removed completely."""
    with running_lab(tmp_path) as lab:
        state_file = lab.root / lab.name / "state.json"
        data = json.loads(state_file.read_text())
        data["lab_text"] = data["lab_text"].replace("capacity_kbps", "capacity_in_some_future_version")
        state_file.write_text(json.dumps(data))
        pids = [p["pid"] for p in data["processes"]]
        code, _, err = lab_cli(lab.root, "status")
        assert code == 1 and "the lab file kept in the state does not load any more" in err
        assert "`qoectl lab down` still removes the lab" in err
        code, _, err = lab_cli(lab.root, "down")
        assert code == 0, err
        assert not [pid for pid in pids if alive(pid)]
        assert not [n for n in existing_namespaces() if n.startswith(f"qlab-{lab.name}-")]
