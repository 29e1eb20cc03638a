"""The built-in probes: RFC 3550 jitter, loss, reordering and DSCP from the voice prober; HTTP transactions.

Loopback tests run anywhere; the impairment tests create network namespaces
(root only) and shape the path with netem and nftables, so the expected
delay, loss and re-marking are known exactly.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from controller.measure import probes
from controller.measure.files import FileSource
from controller.measure.samples import Vocabulary
from tests.lab.netns import Lab, requires_netns
from tests.verify_support import make_policy

QOECTL = str(Path(sys.executable).parent / "qoectl")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- analysis, by hand


def arrival(seq: int, send_ms: float, recv_ms: float, tos: int | None = 46 << 2, count: int = 10) -> probes.Arrival:
    return probes.Arrival(seq, int(send_ms * 1e6), int(recv_ms * 1e6), tos, 20_000_000, count)


def test_rfc3550_jitter_by_hand() -> None:
    # transit times 10, 14, 11 ms: D = 4 then 3; J1 = 4/16, J2 = J1 + (3 - J1)/16
    arrivals = [arrival(0, 0, 10, count=3), arrival(1, 20, 34, count=3), arrival(2, 40, 51, count=3)]
    report = probes.analyse(arrivals, interval_s=10)
    j1 = 4 / 16
    assert report.jitter_ms == pytest.approx(j1 + (3 - j1) / 16)
    assert report.one_way_delay_ms == pytest.approx((10 + 14 + 11) / 3)
    assert (report.loss_pct, report.reordered, report.duplicates) == (0.0, 0, 0)


def test_loss_reordering_duplicates_and_dscp() -> None:
    arrivals = [
        arrival(0, 0, 10),
        arrival(2, 40, 50),
        arrival(1, 20, 55, tos=0),  # overtaken by 2, and re-marked to DSCP 0
        arrival(2, 40, 56),  # duplicate
        arrival(4, 80, 90),
    ]  # 3 and 5-9 lost
    report = probes.analyse(arrivals, interval_s=0.1)  # 5 packets per interval
    assert report.received == 4 and report.lost == 6 and report.loss_pct == pytest.approx(60)
    assert report.reordered == 1 and report.duplicates == 1
    assert report.dscp_seen == {46: 3, 0: 1}
    assert [(iv.expected, iv.received) for iv in report.intervals] == [(5, 4), (5, 0)]
    assert report.intervals[1].loss_pct == 100.0 and report.intervals[1].one_way_delay_ms is None
    samples = probes.voice_samples(report, "voice", "branch-2", None)
    assert {s["metric"] for s in samples} == {"one_way_delay_ms", "jitter_ms", "loss_pct", "reorder_pct", "dscp"}
    assert [s["value"] for s in samples if s["metric"] == "loss_pct"] == [20.0, 100.0]


def test_nothing_arrived_is_an_error() -> None:
    with pytest.raises(probes.ProbeError, match="no probe packets arrived"):
        probes.analyse([])


# --------------------------------------------------------------------------- loopback


def test_loopback_stream_with_kernel_timestamps_and_dscp(tmp_path: Path) -> None:
    port = free_port()
    sock = probes.open_receiver("127.0.0.1", port)
    result: dict[str, object] = {}

    def receive() -> None:
        result["arrivals"], result["kernel"] = probes.receive_voice(sock, timeout_s=30, idle_s=2)

    thread = threading.Thread(target=receive)
    thread.start()
    try:
        probes.send_voice("127.0.0.1", port, count=60, rate_pps=200, dscp=34)
    finally:
        thread.join(timeout=40)
        sock.close()
    report = probes.analyse(result["arrivals"], interval_s=0.1, kernel_timestamps=bool(result["kernel"]))  # type: ignore[arg-type]
    assert report.kernel_timestamps is True
    assert (report.count, report.received, report.loss_pct) == (60, 60, 0.0)
    assert report.dscp_seen == {34: 60}
    assert report.one_way_delay_min_ms is not None and report.one_way_delay_min_ms >= 0
    assert len(report.intervals) == 3  # 20 packets per 0.1 s at 200/s
    out = tmp_path / "probe.json"
    probes.write_samples(out, probes.voice_samples(report, "voice", "hq", None))
    assert json.loads(out.read_text())[0]["journey"] == "voice"


def test_probe_input_errors() -> None:
    with pytest.raises(probes.ProbeError, match="DSCP 64"):
        probes.send_voice("127.0.0.1", 9, dscp=64)
    with pytest.raises(probes.ProbeError, match="packet size"):
        probes.send_voice("127.0.0.1", 9, size=10)
    with pytest.raises(probes.ProbeError, match="cannot resolve"):
        probes.send_voice("no-such-host.invalid", 9, count=1)
    with pytest.raises(probes.ProbeError, match="http:// or https://"):
        probes.http_probe("ftp://127.0.0.1/")


# --------------------------------------------------------------------------- network namespaces


def _receiver(lab: Lab, rx: object, port: int, out: Path, site: str = "branch-2") -> subprocess.Popen[bytes]:
    proc = rx.popen(  # type: ignore[attr-defined]
        QOECTL,
        "probe",
        "voice-receive",
        "--listen",
        f"198.18.5.2:{port}",
        "--journey",
        "voice",
        "--site",
        site,
        "--out",
        str(out),
        "--json",
        "--idle-s",
        "3",
        "--timeout-s",
        "60",
        "--interval-s",
        "1",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = proc.stderr.readline().decode()  # type: ignore[union-attr]
    assert "listening on 198.18.5.2" in line, line
    return proc


def _netem() -> bool:
    """Whether this kernel has the netem qdisc (container kernels often lack sch_netem)."""
    import shutil
    import uuid

    if shutil.which("ip") is None or shutil.which("tc") is None:
        return False
    import os

    if os.geteuid() != 0:
        return False
    name = f"qoenetem{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode:
        return False
    try:
        probe = ["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
        return subprocess.run(probe, capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


requires_netem = pytest.mark.skipif(not _netem(), reason="the kernel has no netem qdisc (sch_netem) to add delay")


def _pair(lab: Lab) -> tuple[object, object]:
    tx, rx = lab.host("tx"), lab.host("rx")
    lab.link(tx, "eth0", "198.18.5.1/24", rx, "eth0", "198.18.5.2/24")
    return tx, rx


@requires_netns
def test_voice_probe_sees_delay_loss_and_remarking_then_verify_fails(lab: Lab, tmp_path: Path) -> None:
    tx, rx = _pair(lab)
    port = free_port()
    tx.exec(  # type: ignore[attr-defined]
        "nft",
        "-f",
        "-",
        input=(
            "table inet qoetest {\n chain post {\n  type filter hook postrouting priority 0;\n"
            f"  udp dport {port} numgen inc mod 10 == 0 drop\n"
            f"  udp dport {port} ip dscp set cs1\n }}\n}}\n"
        ),
    )
    out = tmp_path / "probe.json"
    receiver = _receiver(lab, rx, port, out)
    tx.exec(
        QOECTL,
        "probe",
        "voice-send",
        "--to",
        f"198.18.5.2:{port}",
        "--count",
        "200",
        "--rate-pps",
        "100",
        "--dscp",
        "ef",
    )  # type: ignore[attr-defined]
    stdout, _ = receiver.communicate(timeout=60)
    summary = json.loads(stdout)
    assert (summary["count"], summary["received"], summary["lost"]) == (200, 180, 20)  # every 10th dropped
    assert summary["loss_pct"] == 10.0
    assert summary["dscp_seen"] == {"8": 180}  # sent EF, arrived CS1
    assert 0.0 <= summary["one_way_delay_min_ms"] <= summary["one_way_delay_ms"]
    assert summary["kernel_timestamps"] is True

    policy = make_policy(tmp_path / "policy")
    vocab_check, diags = FileSource(out).read(
        Vocabulary(__import__("controller.pipeline").pipeline.build(policy).policy), 4e9
    )
    assert not [d for d in diags if d.severity == "error"] and len(vocab_check)
    junit = tmp_path / "junit.xml"
    done = subprocess.run(
        [
            QOECTL,
            "verify",
            "--policies",
            str(policy),
            "--measurements",
            str(out),
            "--journey",
            "voice",
            "--junit",
            str(junit),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    branch2 = next(r for r in data["results"] if r["segment"]["site"] == "branch-2")
    assert branch2["status"] == "fail"
    checks = {c["metric"]: c for c in branch2["checks"]}
    assert checks["loss_pct"]["measured"] == 10.0 and checks["mos"]["measured"] < 4.0
    assert checks["dscp"]["measured"] == 8 and checks["dscp"]["status"] == "fail"
    assert 'failures="1"' in junit.read_text()


@requires_netns
@requires_netem
def test_voice_probe_measures_added_delay(lab: Lab, tmp_path: Path) -> None:
    tx, rx = _pair(lab)
    port = free_port()
    tx.exec("tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "30ms")  # type: ignore[attr-defined]
    receiver = _receiver(lab, rx, port, tmp_path / "probe.json")
    tx.exec(QOECTL, "probe", "voice-send", "--to", f"198.18.5.2:{port}", "--count", "50", "--rate-pps", "100")  # type: ignore[attr-defined]
    summary = json.loads(receiver.communicate(timeout=60)[0])
    assert summary["lost"] == 0
    assert summary["one_way_delay_min_ms"] >= 30.0


@requires_netns
@requires_netem
def test_voice_probe_counts_reordering(lab: Lab, tmp_path: Path) -> None:
    tx, rx = _pair(lab)
    port = free_port()
    tx.exec("tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "50ms", "reorder", "100%", "gap", "5")  # type: ignore[attr-defined]
    receiver = _receiver(lab, rx, port, tmp_path / "probe.json")
    tx.exec(QOECTL, "probe", "voice-send", "--to", f"198.18.5.2:{port}", "--count", "100", "--rate-pps", "100")  # type: ignore[attr-defined]
    summary = json.loads(receiver.communicate(timeout=60)[0])
    assert summary["lost"] == 0
    assert summary["reordered"] > 0 and summary["reorder_pct"] > 0


@requires_netns
def test_http_probe_times_transactions_and_counts_errors(lab: Lab, tmp_path: Path) -> None:
    cli, srv = lab.host("cli"), lab.host("srv")
    lab.link(cli, "eth0", "198.18.6.1/24", srv, "eth0", "198.18.6.2/24")
    slow = _netem()
    if slow:
        srv.exec("tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "100ms")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>ok</html>")
    port = free_port()
    server = srv.popen(
        sys.executable,
        "-u",
        "-m",
        "http.server",
        str(port),
        "--bind",
        "198.18.6.2",
        "--directory",
        str(site),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert b"Serving HTTP" in server.stdout.readline()  # type: ignore[union-attr]
    ok_out, bad_out = tmp_path / "ok.json", tmp_path / "bad.json"
    base = [QOECTL, "probe", "http", "--journey", "web", "--site", "hq", "--count", "3", "--interval-s", "0"]
    cli.exec(*base[:3], f"http://198.18.6.2:{port}/", *base[3:], "--out", str(ok_out))
    cli.exec(*base[:3], f"http://198.18.6.2:{port}/missing", *base[3:], "--out", str(bad_out))
    ok = json.loads(ok_out.read_text())
    bad = json.loads(bad_out.read_text())
    assert [s["metric"] for s in ok] == ["response_time_ms"] * 3
    assert all(s["value"] > 0 for s in ok)
    if slow:
        assert all(s["value"] >= 200 for s in ok)  # SYN-ACK and response each wait 100 ms
    assert [(s["metric"], s["value"]) for s in bad] == [("errors", 1)] * 3
