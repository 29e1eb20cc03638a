"""``qoectl lab`` without root: the lab file, the bundled lab and its policy, queue readings, pacing, samples.

The root-only tests with real namespaces, sshd and traffic are in tests/test_lab.py.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from controller.cli.main import cli
from controller.evaluate.engine import evaluate
from controller.lab import control, gen, probe, queues
from controller.lab import measure as measure_mod
from controller.lab import traffic as tr
from controller.lab.config import LabFileError, load_lab, parse_lab
from controller.lab.measure import Measurement, Sample
from controller.lab.policy import retarget
from controller.lab.state import DEFAULT_ROOT, LabFiles, new_state
from controller.load.loader import load_policy
from controller.loop import queue_states
from controller.measure.samples import Vocabulary
from controller.pipeline import build
from controller.spec.schema import json_schema
from tests.conftest import REPO

LAB = REPO / "examples" / "lab" / "lab.yaml"
POLICY = REPO / "examples" / "lab" / "policies"


# --------------------------------------------------------------------------- the lab file


def test_the_bundled_lab_loads_with_every_address_worked_out() -> None:
    cfg = load_lab(LAB)
    assert cfg.name == "branch-hub" and cfg.policy == str(POLICY)
    assert [(r.name, r.address, r.peer) for r in cfg.routers] == [
        ("branch-rtr", "198.19.254.1", "198.19.254.2"),
        ("hub-rtr", "198.19.254.5", "198.19.254.6"),
    ]
    branch = cfg.host("branch")
    assert (branch.address, branch.router_address, branch.router_interface) == ("198.18.10.2", "198.18.10.1", "lan0")
    wan = cfg.wan("wan")
    assert wan.capacity_kbps == 10000 and wan.buffer_ms == 1000
    assert [(link.router, link.interface, link.router_address, link.isp_address) for link in wan.links] == [
        ("branch-rtr", "wan0", "198.18.30.1", "198.18.30.2"),
        ("hub-rtr", "wan0", "198.18.30.5", "198.18.30.6"),
    ]
    assert cfg.namespaces == tuple(
        f"qlab-branch-hub-{n}" for n in ("branch", "hub", "branch-rtr", "hub-rtr", "isp-wan")
    )
    assert {t.kind for t in cfg.traffic} == {"voice", "video", "web", "bulk_tcp", "bulk_udp"}
    assert cfg.bulk_load == 2.0
    assert {(p.journey, p.kind, p.site) for p in cfg.probes} >= {
        ("voice", "voice", "branch"),
        ("voice", "voice", "hub"),
        ("video-conferencing", "video", "branch"),
        ("web", "http", "branch"),
        ("bulk", "throughput", "branch"),
    }
    assert all(len(cfg.root_interface(i)) <= 15 for i in range(len(cfg.routers)))


def test_the_bundled_policy_reaches_the_bundled_lab() -> None:
    """examples/lab/policies names the lab's routers as `qoectl lab up` builds them, and its journeys its probes."""
    cfg = load_lab(LAB)
    result = build(POLICY)
    assert result.ok, [d.format() for d in result.errors]
    policy = result.policy
    devices = {d.name: d for d in policy.devices}
    assert set(devices) == {r.name for r in cfg.routers}
    for r in cfg.routers:
        d = devices[r.name]
        assert (d.platform, d.host, d.port) == ("linux", r.address, 22)
        assert d.credentials.username_env == "QOECTL_LAB_USER"
        assert d.credentials.key_file == str(DEFAULT_ROOT / cfg.name / "id_ed25519")
        link = cfg.wan_of(r.name).link_of(r.name)
        assert link is not None
        wan = next(i for i in d.interfaces if i.role == "wan")
        assert wan.name == link.interface
        # The shaper sits under the real capacity (so the router's queue is the one that fills), and the
        # range lets a loop shape from below 8 Mbit/s up to the full 10.
        assert wan.bandwidth_kbps is not None and wan.bandwidth_kbps < cfg.wan_of(r.name).capacity_kbps
        assert wan.min_kbps is not None and wan.min_kbps < 8000 and wan.max_kbps == 10000
    sites = {s.name for s in policy.sites}
    assert {h.site for h in cfg.hosts} <= sites
    journeys = {j.name for j in policy.journeys}
    assert {p.journey for p in cfg.probes} == journeys == {"voice", "video-conferencing", "web", "bulk"}
    voice = policy.journey("voice")
    assert voice is not None
    assert [m.destination_ports for m in voice.matches] == [((16384, 32767),)]
    assert all(16384 <= p.port <= 32767 for p in cfg.probes if p.journey == "voice")
    assert all(t.port >= 16384 and t.port + t.calls - 1 <= 32767 for t in cfg.traffic if t.kind == "voice")


def test_the_bundled_files_validate() -> None:
    result = CliRunner().invoke(cli, ["validate", str(POLICY)])
    assert result.exit_code == 0, result.output
    assert "ok: 4 journeys, 2 devices, 2 sites" in result.output


LAB_PROBLEMS = """\
apiVersion: qoectl/v1
kind: Lab
metadata: {name: broken}
spec:
  routers:
    - {name: r1, management: 198.19.1.0/30}
    - {name: r2, management: 10.0.0.0/30}
  hosts:
    - {name: h1, router: r1, lan: 198.18.1.0/24, site: a}
    - {name: h2, router: r9, lan: 198.18.1.128/25, site: b}
  wans:
    - name: wan
      capacity_kbps: 1000
      links:
        - {router: r1, prefix: 198.18.9.0/30}
        - {router: r2, interface: a-much-too-long-name, prefix: 198.18.9.4/30}
  traffic:
    - {name: v, from: h1, to: h2, voice: {port: 20000, calls: 2}}
    - {name: v, from: h1, to: h1, video: {port: 9000, bitrate_kbps: 100}}
  probes:
    - {journey: voice, from: h1, to: h2, voice: {port: 20001}}
    - {journey: web, from: h1, to: h2, http: {port: 8080}}
    - {journey: bulk, throughput: {generators: [nope]}}
"""


def test_lab_file_problems_are_all_reported_at_their_lines() -> None:
    with pytest.raises(LabFileError) as caught:
        parse_lab(LAB_PROBLEMS, "lab.yaml", Path("/"))
    lines = [d.format() for d in caught.value.diagnostics]
    text = "\n".join(lines)
    assert "lab.yaml:7:" in text and "10.0.0.0/30 is outside 198.18.0.0/15" in text
    assert "lab.yaml:10:" in text and "unknown router 'r9'" in text
    assert "198.18.1.128/25 overlaps 198.18.1.0/24" in text
    assert "'a-much-too-long-name' is not a Linux interface name" in text
    assert "name 'v' is used twice" in text
    assert "sit behind the same router" in text
    assert "unknown generator 'nope'" in text
    assert "lab.yaml:5:" not in text or "router 'r" in text
    # Unknown keys and two kinds at once: the schema model's own errors, with the right spelling suggested.
    with pytest.raises(LabFileError) as caught:
        parse_lab(LAB_PROBLEMS.replace("capacity_kbps", "capacity_kpbs"), "lab.yaml", Path("/"))
    found = [d.format() for d in caught.value.diagnostics]
    assert any("unknown field 'capacity_kpbs'; hint: did you mean 'capacity_kbps'?" in d for d in found), found
    with pytest.raises(LabFileError) as caught:
        parse_lab(
            LAB_PROBLEMS.replace("voice: {port: 20000, calls: 2}", "voice: {port: 1}, web: {port: 2}"), "x", Path("/")
        )
    assert "give exactly one traffic kind" in "\n".join(d.message for d in caught.value.diagnostics)
    with pytest.raises(LabFileError) as caught:
        parse_lab(LAB.read_text().replace("http: {port: 8080}", "http: {port: 8081}"), "lab.yaml", LAB.parent)
    (only,) = caught.value.diagnostics
    assert "lab.yaml:73:14: spec.probes[4].http.port: no web generator serves port 8081 on 'hub'" in only.format()


def _schema_errors(doc: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(json_schema())
    return [e.message for e in validator.iter_errors(doc)]


def test_the_json_schema_checks_lab_files_like_qoectl_lab() -> None:
    bundled = yaml.safe_load(LAB.read_text())
    assert _schema_errors(bundled) == []
    for broken in (
        LAB.read_text().replace("capacity_kbps: 10000", "capacity_kbs: 10000"),  # unknown key
        LAB.read_text().replace("voice: {port: 20000, calls: 4}", "voice: {port: 20000}\n      web: {port: 1}"),
        LAB.read_text().replace(
            "      from: branch\n      to: hub\n      voice: {port: 20000", "      to: hub\n      voice: {port: 20000"
        ),
        LAB.read_text().replace("buffer_ms: 1000", "buffer_ms: 0"),
    ):
        assert broken != LAB.read_text()
        assert _schema_errors(yaml.safe_load(broken)), broken
        with pytest.raises(LabFileError):
            parse_lab(broken, "lab.yaml", LAB.parent)
    # Beyond JSON Schema (named in its $comment): references across the file.
    dangling = LAB.read_text().replace("router: hub-rtr, lan", "router: nowhere, lan")
    assert _schema_errors(yaml.safe_load(dangling)) == []
    with pytest.raises(LabFileError):
        parse_lab(dangling, "lab.yaml", LAB.parent)
    assert "in a Lab file" in json_schema()["$comment"]


def test_a_lab_document_is_not_a_policy_document(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB.read_text())
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1 and "unknown kind 'Lab'" in result.output + result.stderr


# --------------------------------------------------------------------------- processes and state, no root needed


def test_bulk_overload_follows_the_load_and_the_capacity(tmp_path: Path) -> None:
    cfg = load_lab(LAB)
    files = LabFiles(tmp_path)
    plan = tr.plan(cfg, files, lambda wan: 10000, 2.0)
    names = [s.name for s in plan]
    assert names.index("overload.recv") < names.index("calls.send")  # every receiver before any sender
    overload = next(s for s in plan if s.name == "overload.send")
    assert overload.bulk and overload.node == "branch"
    assert overload.argv[overload.argv.index("--kbps") + 1] == "20000.0"
    (slow,) = tr.bulk_senders(cfg, files, lambda wan: 8000, 0.5)
    assert slow.argv[slow.argv.index("--kbps") + 1] == "4000.0"
    assert tr.bulk_senders(cfg, files, lambda wan: 8000, 0.0) == []  # load 0: no sender at all
    calls = next(s for s in plan if s.name == "calls.send")
    assert calls.argv[-8:] == ("--flows", "4", "--pps", "50.0", "--size", "172", "--tos", "0")


def test_status_json_names_every_namespace_and_address(tmp_path: Path) -> None:
    cfg = load_lab(LAB)
    state = new_state(tmp_path, cfg, LAB.read_text(), LAB.parent)
    data = control.status_json(state)
    assert data["namespaces"] == list(cfg.namespaces)
    assert set(data["hosts"]) == {"branch", "hub"} and set(data["routers"]) == {"branch-rtr", "hub-rtr"}
    assert data["routers"]["hub-rtr"]["addresses"] == ["198.19.254.5/30", "198.18.20.1/24", "198.18.30.5/30"]
    assert data["routers"]["hub-rtr"]["interfaces"] == {
        "mgmt0": "198.19.254.5/30",
        "lan0": "198.18.20.1/24",
        "wan0": "198.18.30.5/30",
    }
    assert data["wans"]["wan"]["bottleneck"] == {"eth0": "branch-rtr", "eth1": "hub-rtr"}
    assert len(data["links"]) == 6
    # This state lives outside /run/qoectl/lab, so the policy needs aiming at it first.
    assert data["apply"]["command"].startswith(f"qoectl lab --state-dir {tmp_path} policy --out DIR && ")
    json.dumps(data)


def test_retarget_aims_the_inventory_at_a_running_lab(tmp_path: Path) -> None:
    cfg = load_lab(LAB)
    text = LAB.read_text().replace("198.19.254.0/30", "198.19.7.0/30").replace("198.19.254.4/30", "198.19.7.4/30")
    state = new_state(tmp_path / "state", parse_lab(text, "lab.yaml", LAB.parent), text, LAB.parent)
    dest = retarget(POLICY, state, tmp_path / "policy")
    policy, problems = load_policy(dest)
    assert not [p for p in problems if p.severity == "error"]
    devices = {d.name: d for d in policy.devices}
    assert devices["branch-rtr"].host == "198.19.7.1" and devices["hub-rtr"].host == "198.19.7.5"
    assert devices["hub-rtr"].credentials.key_file == str(tmp_path / "state" / cfg.name / "id_ed25519")
    assert (dest / "journeys" / "voice.yaml").read_bytes() == (POLICY / "journeys" / "voice.yaml").read_bytes()


def test_without_root_lab_commands_say_why_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for args in (["up", str(LAB)], ["down"], ["status"], ["load", "--bulk", "1"], ["capacity", "wan", "8000"]):
        result = CliRunner().invoke(cli, ["lab", "--state-dir", str(tmp_path), *args])
        assert result.exit_code == 1, args
        assert result.stderr.strip().splitlines() == [
            "error: qoectl lab needs root: it creates network namespaces, veth links and sshd servers (run with sudo)"
        ]
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- queue readings


QDISCS = (
    '[{"kind":"htb","handle":"1:","root":true,"refcnt":3,"options":{"r2q":10},"bytes":33305130,"packets":27249,'
    '"drops":28218,"overlimits":27239,"requeues":0,"backlog":1249634,"qlen":1035},'
    '{"kind":"bfifo","handle":"10:","parent":"1:1","options":{"limit":1250000},"bytes":33305130,"packets":27249,'
    '"drops":28218,"overlimits":0,"requeues":0,"backlog":1249634,"qlen":1035}]'
)
CLASSES = """\
class htb 1:1 root leaf 10: prio 0 quantum 1514 rate 10Mbit ceil 10Mbit linklayer ethernet burst 1600b/1 \
mpu 0b cburst 1600b/1 mpu 0b level 0
 Sent 33308014 bytes 27251 pkt (dropped 28219, overlimits 27241 requeues 0)
 backlog 1219Kb 1034p requeues 0
 lended: 27251 borrowed: 0 giants: 0
 tokens: -17684 ctokens: -17684

class htb 1:10 parent 1:1 leaf 10: prio 0 quantum 11250 rate 900Kbit ceil 900Kbit linklayer ethernet \
burst 1599b/1 mpu 0b cburst 1599b/1 mpu 0b level 0
 Sent 265146 bytes 1233 pkt (dropped 0, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0
"""


def test_queue_readings_from_tc() -> None:
    text = f"{queues.MARK} qdisc eth1\n{QDISCS}\n{queues.MARK} class eth1\n{CLASSES}"
    (readings,) = queues.parse_script_output(text).values()
    root, fifo, top, voice = readings
    assert (root.kind, root.handle, root.parent, root.backlog_bytes, root.drops) == ("htb", "1:", None, 1249634, 28218)
    assert (fifo.kind, fifo.parent, fifo.backlog_packets) == ("bfifo", "1:1", 1035)
    assert (top.handle, top.parent, top.rate_kbps, top.ceil_kbps, top.prio) == ("1:1", None, 10000.0, 10000.0, 0)
    assert top.backlog_bytes == 1249634  # its leaf's exact figure, not tc's rounded "1219Kb"
    assert (voice.parent, voice.rate_kbps, voice.sent_packets, voice.backlog_bytes) == ("1:1", 900.0, 1233, 1249634)
    assert queues._size("1219Kb") == 1219 * 1024 and queues._size("2Mb") == 2 * 1024**2 and queues._size("7b") == 7
    assert "tc -s -d -j qdisc show dev eth1" in queues.script(["eth1"])


def test_a_window_counts_what_happened_in_it() -> None:
    def reading(sent: int, drops: int, backlog: int) -> list[queues.Reading]:
        return [queues.Reading("bfifo", "10:", "1:1", False, sent, sent // 1000, drops, 0, backlog, backlog // 1000)]

    stats = queues.window([reading(10_000, 5, 3000), reading(50_000, 9, 90_000), reading(80_000, 12, 4000)])
    (s,) = stats
    assert (s.sent_bytes, s.drops, s.backlog_bytes, s.max_backlog_bytes) == (70_000, 7, 4000, 90_000)
    # A queue replaced during the window (counters restarted) counts from zero.
    (r,) = queues.window([reading(10_000, 5, 0), reading(2_000, 1, 0)])
    assert (r.sent_bytes, r.drops) == (2_000, 1)


def test_rates_are_bytes_over_the_readings_window_not_the_whole_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    # The anomaly of scenario B: 8 Mbit/s through the ISP over a 3 s send window, divided by the whole
    # cycle (probe start-up and the receivers' tail: ~7 s), read as ~3.4 Mbit/s and took the shaper to its floor.
    cfg = load_lab(LAB)
    sent = iter(range(0, 10**9, 1_000_000))  # every reading: 1 MB more through each interface
    clock = iter(itertools.count(100.0, 0.5))  # two clock reads per namespace per reading

    def fake_run(argv: list[str], check: bool = True, timeout: float = 0) -> str:
        n = next(sent)
        return "".join(
            f"{queues.MARK} qdisc {dev}\n"
            f'[{{"kind":"htb","handle":"1:","root":true,"bytes":{n},"packets":1,"drops":0,"backlog":0,"qlen":0}}]\n'
            f"{queues.MARK} class {dev}\n"
            for dev in ("wan0", "eth0", "eth1")
        )

    monkeypatch.setattr(measure_mod, "run", fake_run)
    monkeypatch.setattr(measure_mod.time, "monotonic", lambda: next(clock))
    watch = measure_mod._QueueWatch(cfg)
    for _ in range(4):
        watch.read()
    routers, bottlenecks = watch.interfaces()
    into_hub = next(b for b in bottlenecks if b.towards == "hub-rtr")
    # one reading of the 3 namespaces takes 3 s of this clock: 4 readings span 9 s
    assert into_hub.readings == 4 and into_hub.window_s == pytest.approx(9.0)
    assert into_hub.sent_bytes == 3 * 3_000_000
    assert into_hub.sent_kbps == pytest.approx(9_000_000 * 8 / 9.0 / 1000)

    # The loop's view: the capacity hint is the far ISP interface's rate over its readings, whatever the cycle took.
    m = Measurement("branch-hub", 0.0, 60.0, 3.0, (), (), tuple(routers), tuple(bottlenecks))

    class NoPlans:
        def plan(self, name: str) -> None:
            return None

    states = {s.device: s for s in queue_states(m, NoPlans())}  # type: ignore[arg-type]
    assert states["branch-rtr"].capacity_kbps == pytest.approx(into_hub.sent_kbps)
    assert states["branch-rtr"].delivered_kbps == pytest.approx(
        next(r for r in routers if r.node == "branch-rtr").sent_kbps
    )
    one = replace(into_hub, readings=1, window_s=0.0)
    assert one.sent_kbps is None  # no window, no rate


# --------------------------------------------------------------------------- pacing of the generators and probes


def _clock(step: float) -> Iterator[float]:
    """Readings of a clock that starts at 0 and then advances ``step`` per reading."""
    return itertools.chain([0.0], itertools.count(0.0, step))


def test_paced_senders_keep_their_rate() -> None:
    sent = 0
    for (n, _), _t in zip(gen.schedule(50.0, None, _clock(0.001)), range(10_000), strict=False):
        sent += n
    assert sent in (500, 501)  # 10 s of a 1 ms clock at 50 packets/s (slot 0 at the start)
    bursts = [n for (n, _), _ in zip(gen.schedule(183.0, 30.0, _clock(1 / 30)), range(300), strict=False)]
    # One burst of 6-7 packets per frame (two when a reading comes late, as after a late wake-up).
    assert abs(sum(bursts) - 183 * 10) <= 14 and max(bursts) <= 14
    # After a stall the schedule moves on instead of sending everything it missed at once.
    stalled = iter([0.0, 0.01, 5.0, 5.01])
    got = [n for n, _ in gen.schedule(1000.0, None, stalled)]
    assert max(got) <= 1000 * gen.MAX_CATCH_UP_S + 1


def test_video_probe_layout_makes_its_bitrate() -> None:
    for kbps, fps in ((1800.0, 30), (500.0, 25), (8000.0, 60)):
        per_frame, size = probe.video_layout(kbps, fps)
        rate = per_frame * fps * (size + probe.IPV4_UDP_OVERHEAD) * 8 / 1000
        assert abs(rate - kbps) / kbps < 0.01 and size <= 1472
    assert probe.percentile([5.0, 1.0, 3.0], 50) == 3.0 and probe.percentile([], 99) is None


# --------------------------------------------------------------------------- samples for the verify engine


def test_measurement_samples_feed_the_verify_engine(tmp_path: Path) -> None:
    result = build(POLICY)
    now = 1_700_000_000.0
    samples = tuple(
        Sample(now + i, journey, site, metric, value)
        for i in range(5)
        for journey, site, metric, value in (
            ("voice", "branch", "one_way_delay_ms", 2.0),
            ("voice", "branch", "jitter_ms", 0.3),
            ("voice", "branch", "loss_pct", 0.0),
            ("voice", "branch", "dscp", 46),
            ("web", "branch", "response_time_ms", 20.0),
        )
    )
    cycle = Measurement("branch-hub", now, now + 6, 5.0, samples, (), (), ())
    coded, problems = cycle.sample_set(Vocabulary(result.policy), now=now + 10)
    assert problems == [] and len(coded) == len(samples)
    evaluation = evaluate(result, coded)
    status = {(r.journey, r.segment.name): r.status for r in evaluation.results}
    assert status[("voice", "branch")] == "pass" and status[("web", "branch")] == "pass"
    path = tmp_path / "samples.json"
    cycle.write_samples(path)
    assert next(s for s in json.loads(path.read_text()) if s["metric"] == "dscp") == {
        "journey": "voice",
        "metric": "dscp",
        "site": "branch",
        "timestamp": now,
        "value": 46,
    }
    out = CliRunner().invoke(cli, ["verify", str(POLICY), "--measurements", str(path), "--journey", "voice", "--json"])
    assert out.exit_code in (0, 3), out.output
    data = json.loads(out.stdout)
    assert {(r["journey"], r["segment"]["site"], r["status"]) for r in data["results"]} >= {("voice", "branch", "pass")}
