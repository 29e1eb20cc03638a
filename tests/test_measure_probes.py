"""The built-in probes: RFC 3550 jitter, loss, reordering and DSCP from the voice prober; HTTP transactions.

Loopback tests run anywhere; the impairment tests create network namespaces
(root only) and shape the path with nftables (loss, re-marking) and a
user-space relay in a middle namespace (delay, jitter, reordering: this
kernel has no netem), so the expected impairments are known exactly.
"""

from __future__ import annotations

import itertools
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
from tests.lab.relay import extra_delays_ms
from tests.verify_support import make_policy

QOECTL = str(Path(sys.executable).parent / "qoectl")
REPO = Path(__file__).resolve().parent.parent


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


def _receiver(
    lab: Lab,
    rx: object,
    port: int,
    out: Path,
    site: str = "branch-2",
    *,
    listen: str = "198.18.5.2",
    interval_s: float = 1.0,
) -> subprocess.Popen[bytes]:
    proc = rx.popen(  # type: ignore[attr-defined]
        QOECTL,
        "probe",
        "voice-receive",
        "--listen",
        f"{listen}:{port}",
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
        str(interval_s),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = proc.stderr.readline().decode()  # type: ignore[union-attr]
    assert f"listening on {listen}" in line, line
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


# The impairment path without netem: sender -> relay namespace -> receiver. The sender sends to the relay's
# address; the relay (tests/lab/relay.py) holds each datagram and forwards it to the receiver. The sender has
# no route to the receiver and the relay namespace does not forward, so every packet crosses the relay.
RELAY_IN, RX_ADDR = "198.18.8.2", "198.18.9.2"


def _relayed_path(lab: Lab) -> tuple[object, object, object]:
    tx, mid, rx = lab.host("tx"), lab.host("mid"), lab.host("rx")
    lab.link(tx, "eth0", "198.18.8.1/24", mid, "in0", f"{RELAY_IN}/24")
    lab.link(mid, "out0", "198.18.9.1/24", rx, "eth0", f"{RX_ADDR}/24")
    assert tx.exec("ip", "route", "get", RX_ADDR, check=False).returncode != 0  # no way around the relay
    assert mid.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    return tx, mid, rx


def _relay(
    mid: object, port: int, *, delay_ms: float, jitter_ms: float = 0, swap_every: int = 0
) -> subprocess.Popen[bytes]:
    proc = mid.popen(  # type: ignore[attr-defined]
        sys.executable,
        "-m",
        "tests.lab.relay",
        "--listen",
        f"{RELAY_IN}:{port}",
        "--to",
        f"{RX_ADDR}:{port}",
        "--delay-ms",
        str(delay_ms),
        "--jitter-ms",
        str(jitter_ms),
        "--swap-every",
        str(swap_every),
        "--time-limit-s",
        "30",
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = proc.stderr.readline().decode()  # type: ignore[union-attr]
    assert f"relay listening on {RELAY_IN}:{port}" in line, line + proc.stderr.read().decode()  # type: ignore[union-attr]
    return proc


def _relay_stats(proc: subprocess.Popen[bytes]) -> dict[str, object]:
    """Stop the relay (by PID, SIGTERM) and read its counters; the lab's teardown stops it too on failure."""
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return json.loads(out)


def _rfc3550_jitter(transits_ms: list[float]) -> float:
    jitter = 0.0
    for prev, cur in itertools.pairwise(transits_ms):
        jitter += (abs(cur - prev) - jitter) / 16.0
    return jitter


def _relayed_stream(
    lab: Lab, tx: object, mid: object, rx: object, out: Path, *, count: int, rate_pps: int, dscp: str, **relay: float
) -> tuple[dict[str, object], dict[str, object]]:
    """One probe stream through a fresh relay: the receiver's summary and the relay's counters."""
    port = free_port()
    proc = _relay(mid, port, **relay)  # type: ignore[arg-type]
    receiver = _receiver(lab, rx, port, out, listen=RX_ADDR, interval_s=0.1)
    tx.exec(  # type: ignore[attr-defined]
        QOECTL,
        "probe",
        "voice-send",
        "--to",
        f"{RELAY_IN}:{port}",
        "--count",
        str(count),
        "--rate-pps",
        str(rate_pps),
        "--dscp",
        dscp,
    )
    summary = json.loads(receiver.communicate(timeout=30)[0])
    return summary, _relay_stats(proc)


@requires_netns
def test_voice_probe_measures_added_delay(lab: Lab, tmp_path: Path) -> None:
    """40 ms added by the relay, first without then with 20 ms of (seeded, order-keeping) jitter."""
    tx, mid, rx = _relayed_path(lab)
    delay, jitter, count = 40.0, 20.0, 50
    runs = {}
    for extra in (0.0, jitter):
        runs[extra] = _relayed_stream(
            lab,
            tx,
            mid,
            rx,
            tmp_path / f"probe-{extra:g}.json",
            count=count,
            rate_pps=50,
            dscp="af41",
            delay_ms=delay,
            jitter_ms=extra,
        )
    for extra, (summary, stats) in runs.items():
        assert stats["received"] == stats["forwarded"] == count, stats  # all of the stream went through the relay
        assert (summary["lost"], summary["duplicates"], summary["reordered"]) == (0, 0, 0), summary
        assert summary["kernel_timestamps"] is True
        assert summary["dscp_seen"] == {"34": count}  # the relay kept the sender's AF41
        # outcome check of the prober: it sees at least the added delay, and nothing absurd on top
        assert summary["one_way_delay_min_ms"] >= delay, summary
        assert summary["one_way_delay_ms"] < delay + extra + 200.0, summary
        assert summary["one_way_delay_max_ms"] < delay + extra + 200.0, summary
    still, jittery = runs[0.0][0], runs[jitter][0]
    assert still["jitter_ms"] < jittery["jitter_ms"]
    # 50/s is 20 ms apart, so 0-20 ms of extra delay never has to be clamped to keep the order: the transit
    # times differ by exactly the relay's draws, whose RFC 3550 jitter is known in advance (about J/3).
    expected = _rfc3550_jitter(extra_delays_ms(1, jitter, count))
    assert jittery["jitter_ms"] == pytest.approx(expected, abs=max(2.0, 0.25 * expected)), (jittery, expected)
    spread = jittery["one_way_delay_max_ms"] - jittery["one_way_delay_min_ms"]
    assert spread >= 0.5 * jitter, jittery


@requires_netns
def test_voice_probe_counts_reordering(lab: Lab, tmp_path: Path) -> None:
    """The relay swaps every 5th pair: 100 packets, 50 pairs, exactly 10 overtaken, one per 10-packet interval."""
    tx, mid, rx = _relayed_path(lab)
    out = tmp_path / "probe.json"
    summary, stats = _relayed_stream(
        lab, tx, mid, rx, out, count=100, rate_pps=100, dscp="ef", delay_ms=50.0, swap_every=5
    )
    assert stats["received"] == stats["forwarded"] == 100 and stats["swapped_pairs"] == 10, stats
    assert (summary["received"], summary["lost"], summary["duplicates"]) == (100, 0, 0), summary
    assert summary["reordered"] == 10 and summary["reorder_pct"] == 10.0, summary
    assert summary["dscp_seen"] == {"46": 100}
    assert summary["one_way_delay_min_ms"] >= 50.0, summary
    assert summary["one_way_delay_max_ms"] < 50.0 + 200.0, summary
    reorder = [s["value"] for s in json.loads(out.read_text()) if s["metric"] == "reorder_pct"]
    assert reorder == [10.0] * 10  # seqs 8/9, 18/19 ... 98/99: one swap in each interval of 10 packets


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
