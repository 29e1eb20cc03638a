"""Benchmark of issue 11: the closed loop on the bundled lab, at 2x overload, against no QoS and an idle link.

Per run, on a private copy of the bundled lab (a name, management /24 and state folder of its own, so a lab
someone runs is never touched), measured in the same run:

  (c) idle     the bulk overload off (load 0), no QoS on the routers: the floor
  (a) no QoS   bulk UDP at 2x the WAN's capacity, no QoS on the routers
  loop         ``qoectl loop``'s cycle (controller.loop.cycle, the demo's limits) from no policy, until every
               journey is in target: cycles, and the time from the start of the first violating measurement
               to the end of the first measurement with every journey in target
  (b) loop     the converged policy, bulk still at 2x

For each: voice one-way delay p99 (the worst of the two directions), loss, E-model MOS (voice@branch, the
verify engine's), web Apdex (against its target); for (b) also bulk's rate against the capacity the other
classes leave: the router's shaper (the capacity the policy gives the link) minus what voice, video and web
sent through the router's HTB classes during the window, all at IP level from the same counters.

Goals (issue 11): (b) p99 within 1 ms of (c), no voice loss, MOS >= 4.3, web Apdex >= its target, bulk >= 90 %
of what the others leave. The lab is always taken down (finally), also on Ctrl-C.

    sudo .venv/bin/python bench/lab_bench.py [--runs 3] [--out bench/results/lab.json] [--measure-s 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.adjust import Limits  # noqa: E402
from controller.evaluate.engine import Options, evaluate  # noqa: E402
from controller.lab import control  # noqa: E402
from controller.lab.measure import Measurement, measure  # noqa: E402
from controller.lab.netns import existing_namespaces, run  # noqa: E402
from controller.lab.policy import retarget  # noqa: E402
from controller.lab.state import USER_ENV, LabState, current  # noqa: E402
from controller.loop import LoopConfig, cycle  # noqa: E402
from controller.measure.samples import Vocabulary  # noqa: E402
from controller.pipeline import Build, build  # noqa: E402
from controller.platforms.linux.renderer import classid  # noqa: E402

LAB = REPO / "examples" / "lab" / "lab.yaml"
POLICY = REPO / "examples" / "lab" / "policies"
# The demo's and the loop tests' limits (examples/lab/loop-demo.sh): act on the first violating cycle.
LIMITS = Limits(act_after=1, relax_after=15, min_interval_s=120.0, max_step_pct=35.0, headroom=0.85)
LOOP_MEASURE_S = 3.0
OTHERS = ("voice", "video-conferencing", "web")


def free_management_net() -> ipaddress.IPv4Network:
    """A /24 of 198.19.0.0/16 no interface here uses (the bundled lab's 198.19.254.0/24 excluded)."""
    used = set()
    for line in run(["ip", "-o", "-4", "addr", "show"], check=False).splitlines():
        parts = line.split()
        if "inet" in parts:
            used.add(int(ipaddress.ip_interface(parts[parts.index("inet") + 1]).ip) >> 8)
    base = int(ipaddress.IPv4Address("198.19.0.0")) >> 8
    free = [base + i for i in range(1, 254) if base + i not in used]
    return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(random.choice(free) << 8)}/24")


def lab_file(work: Path, idle: bool = False) -> tuple[str, Path]:
    """The bundled lab under a name and management /24 of its own; ``idle``: without any bulk traffic."""
    doc = yaml.safe_load(LAB.read_text(encoding="utf-8"))
    name = f"b{secrets.token_hex(3)}"
    net = free_management_net()
    doc["metadata"]["name"] = name
    for i, router in enumerate(doc["spec"]["routers"]):
        router["management"] = f"{net.network_address + 4 * i}/30"
    doc["spec"]["policy"] = str(POLICY)
    doc["spec"]["load"] = {"bulk": 0.0}
    if idle:
        spec = doc["spec"]
        spec["traffic"] = [t for t in spec["traffic"] if not ({"bulk_tcp", "bulk_udp"} & set(t))]
        spec["probes"] = [p for p in spec["probes"] if "throughput" not in p]
    path = work / ("idle.yaml" if idle else "lab.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return name, path


def figures(m: Measurement, result: Build) -> dict[str, Any]:
    """Voice p99/loss/MOS, web Apdex, per-class router rates of one measurement."""
    vocab = Vocabulary(result.policy)
    samples, _ = m.sample_set(vocab)
    ev = evaluate(result, samples, [], Options(now=time.time()))
    verdicts = {f"{r.journey}@{r.segment.name}": r.status for r in ev.results}
    qoe = {f"{r.journey}@{r.segment.name}": r.qoe.value for r in ev.results if r.qoe is not None}
    voice = [p for p in m.probes if p.journey == "voice" and p.ok]
    web = result.policy.journey("web")
    out: dict[str, Any] = {
        "voice_p99_ms": max((p.delay_p99_ms or 0.0) for p in voice) if voice else None,
        "voice_p50_ms": max((p.delay_p50_ms or 0.0) for p in voice) if voice else None,
        "voice_loss_pct": max((p.loss_pct or 0.0) for p in voice) if voice else None,
        "voice_mos": qoe.get("voice@branch"),
        "web_apdex": qoe.get("web@branch"),
        "web_apdex_target": getattr(web.target, "apdex", None) if web else None,
        "bulk_probe_kbps": next((p.throughput_kbps for p in m.probes if p.journey == "bulk"), None),
        "verdicts": verdicts,
    }
    router = m.router("branch-rtr")
    plan = result.plan("branch-rtr")
    out["shaper_kbps"] = router.rate_kbps
    out["wan_kbps"] = m.bottleneck_into("hub-rtr").rate_kbps  # the ISP's real capacity towards the hub
    if plan is not None and router.window_s > 0:
        rates: dict[str, float] = {}
        for c in plan.classes:
            stats = router.cls(classid(c))
            if stats is None:
                continue
            kbps = stats.sent_bytes * 8 / router.window_s / 1000
            for j in c.journeys or (c.name,):
                rates[j] = rates.get(j, 0.0) + kbps / max(len(c.journeys), 1)
        if rates:
            out["class_kbps"] = {k: round(v, 1) for k, v in sorted(rates.items())}
            if router.rate_kbps:
                left = router.rate_kbps - sum(rates.get(j, 0.0) for j in OTHERS)
                out["others_kbps"] = round(router.rate_kbps - left, 1)
                out["left_kbps"] = round(left, 1)
                out["bulk_kbps"] = round(rates.get("bulk", 0.0), 1)
                out["bulk_share_of_left_pct"] = round(100 * rates.get("bulk", 0.0) / left, 1) if left > 0 else None
                wan = out["wan_kbps"]
                if wan:  # what the WAN's real capacity leaves (the shaper keeps ~10 % of it unused on purpose)
                    wan_left = wan - (router.rate_kbps - left)
                    out["bulk_share_of_wan_left_pct"] = round(100 * rates.get("bulk", 0.0) / wan_left, 1)
    return out


def wait_drained(state: LabState, limit_s: float = 15.0) -> float:
    """Wait until the ISP's queue towards the hub is short (a standing queue from before a change drains)."""
    from controller.lab.measure import read_queues

    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        _, bottlenecks = read_queues(state)
        into = next(b for b in bottlenecks if b.towards == "hub-rtr")
        if into.backlog_bytes < 3000:
            break
        time.sleep(0.5)
    return time.monotonic() - t0


def take_down(root: Path, name: str) -> list[str]:
    """Remove the lab; what is left afterwards (empty: nothing)."""
    report = control.down(root)
    left = list(report.left) if report is not None else []
    return left + [x for x in existing_namespaces() if x.startswith(f"qlab-{name}-")]


def idle_run(work: Path, measure_s: float) -> tuple[dict[str, Any], list[str]]:
    """(c): the lab without any bulk traffic (no TCP backup, no UDP overload), no QoS: only voice, video, web."""
    name, path = lab_file(work, idle=True)
    root = work / "idle-state"
    try:
        control.up(path, root)
        state = current(root)
        assert state is not None
        policy = retarget(POLICY, state, work / "idle-policy")
        result = build(policy)
        assert result.ok, [d.format() for d in result.errors]
        time.sleep(2)
        return figures(measure(state, result, measure_s), result), []
    finally:
        left = take_down(root, name)
        if left:
            raise RuntimeError(f"the idle lab {name} left behind: {left}")


def one_run(n: int, measure_s: float, max_cycles: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="qoectl-lab-bench-"))
    out: dict[str, Any] = {"run": n}
    out["idle"], _ = idle_run(work, measure_s)
    name, path = lab_file(work)
    root = work / "state"
    out["lab"] = name
    try:
        control.up(path, root)
        state = current(root)
        assert state is not None
        policy = retarget(POLICY, state, work / "policy")
        result = build(policy)
        assert result.ok, [d.format() for d in result.errors]
        time.sleep(2)
        out["tcp_only"] = figures(measure(state, result, measure_s), result)  # load 0: the TCP backup alone
        control.set_load(root, 2.0)
        state = current(root)
        assert state is not None
        time.sleep(3)  # the overload fills the ISP's FIFO
        out["no_qos"] = figures(measure(state, result, measure_s), result)
        environ = dict(os.environ)
        environ.setdefault(USER_ENV, "root")
        cfg = LoopConfig(
            policy=policy,
            lab=state,
            known_hosts=Path(state.files.known_hosts),
            run_root=work / "runs",
            state_path=work / "loop-state" / "state.json",
            lock_dir=work / "locks",
            limits=LIMITS,
            duration_s=LOOP_MEASURE_S,
            environ=environ,
        )
        cycles: list[dict[str, Any]] = []
        first_violation: float | None = None
        converged_at: float | None = None
        for i in range(1, max_cycles + 1):
            r = cycle(cfg, i)
            m = r.measurement
            verdicts = {f"{x.journey}@{x.segment.name}": x.status for x in r.evaluation.results}
            ok = all(v == "pass" for v in verdicts.values())
            started = m.started if m is not None else time.time() - r.duration_s
            ended = m.ended if m is not None else time.time()
            acts = [(a.kind, a.device, a.before, a.after) for a in r.decision.actions]
            cycles.append({"cycle": i, "s": round(r.duration_s, 2), "all_pass": ok, "actions": acts})
            if not ok and first_violation is None:
                first_violation = started
            if ok and first_violation is not None:
                converged_at = ended
                break
        out["loop"] = {
            "cycles": cycles,
            "cycles_to_target": len(cycles) if converged_at is not None else None,
            "time_to_target_s": round(converged_at - first_violation, 2)
            if converged_at is not None and first_violation is not None
            else None,
        }
        converged = build(policy)  # with the loop's adjustments
        state = current(root)
        assert state is not None
        out["drain_wait_s"] = round(wait_drained(state), 2)
        out["loop_policy"] = figures(measure(state, converged, measure_s), converged)
        adjustments = policy / "adjustments" / "loop.yaml"
        out["adjustments"] = adjustments.read_text(encoding="utf-8") if adjustments.exists() else None
    finally:
        out["left_behind"] = take_down(root, name)
    out["goals"] = goals(out)
    return out


def goals(run_: dict[str, Any]) -> dict[str, bool | None]:
    b, c = run_.get("loop_policy"), run_.get("idle")
    if not b or not c:
        return {}

    def ge(x: float | None, y: float | None) -> bool | None:
        return None if x is None or y is None else x >= y - 1e-9

    return {
        "p99_within_1ms_of_idle": None
        if b["voice_p99_ms"] is None or c["voice_p99_ms"] is None
        else b["voice_p99_ms"] <= c["voice_p99_ms"] + 1.0,
        "no_voice_loss": b["voice_loss_pct"] == 0.0 if b["voice_loss_pct"] is not None else None,
        "mos_ge_4.3": ge(b["voice_mos"], 4.3),
        "web_apdex_ge_target": ge(b["web_apdex"], b["web_apdex_target"]),
        "bulk_ge_90pct_of_left": ge(b.get("bulk_share_of_left_pct"), 90.0),
    }


ROWS = (
    ("voice p99 one-way delay, ms", "voice_p99_ms"),
    ("voice p50 one-way delay, ms", "voice_p50_ms"),
    ("voice loss, %", "voice_loss_pct"),
    ("voice MOS (E-model)", "voice_mos"),
    ("web Apdex", "web_apdex"),
)


def spread(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    fmt = (lambda x: f"{x:.3g}") if max(abs(v) for v in got) < 10 else (lambda x: f"{x:.0f}")
    if len(got) == 1:
        return fmt(got[0])
    return f"{fmt(min(got))} / {fmt(statistics.median(got))} / {fmt(max(got))}"


def table(runs: list[dict[str, Any]]) -> str:
    n = len(runs)
    head = (
        f"| min / median / max of {n} run(s) | (a) no QoS, bulk 2x | (b) loop's policy, bulk 2x | (c) idle "
        "| no QoS, bulk TCP only |"
    )
    lines = [head, "|---|---|---|---|---|"]
    for label, key in ROWS:
        phases = ("no_qos", "loop_policy", "idle", "tcp_only")
        cells = [spread([r.get(phase, {}).get(key) for r in runs]) for phase in phases]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        f"| web Apdex target | | {spread([r.get('loop_policy', {}).get('web_apdex_target') for r in runs])} | |"
    )
    b = [r.get("loop_policy", {}) for r in runs]
    lines.append(f"| router shaper, kbit/s | | {spread([x.get('shaper_kbps') for x in b])} | |")
    lines.append(
        f"| voice + video + web through the router, kbit/s | | {spread([x.get('others_kbps') for x in b])} | |"
    )
    lines.append(f"| left for bulk (shaper - the others), kbit/s | | {spread([x.get('left_kbps') for x in b])} | |")
    lines.append(f"| bulk through the router, kbit/s | | {spread([x.get('bulk_kbps') for x in b])} | |")
    lines.append(f"| bulk / left, % | | {spread([x.get('bulk_share_of_left_pct') for x in b])} | |")
    wan_share = spread([x.get("bulk_share_of_wan_left_pct") for x in b])
    lines.append(f"| bulk / (WAN capacity - the others), % | | {wan_share} | |")
    lines.append(
        f"| bulk probe (payload), kbit/s | {spread([r.get('no_qos', {}).get('bulk_probe_kbps') for r in runs])} "
        f"| {spread([x.get('bulk_probe_kbps') for x in b])} "
        f"| {spread([r.get('idle', {}).get('bulk_probe_kbps') for r in runs])} "
        f"| {spread([r.get('tcp_only', {}).get('bulk_probe_kbps') for r in runs])} |"
    )
    loops = [r.get("loop", {}) for r in runs]
    lines.append(
        f"| loop: cycles to every journey in target | | {spread([x.get('cycles_to_target') for x in loops])} | |"
    )
    lines.append(
        f"| loop: first violating measurement -> all in target, s | | "
        f"{spread([x.get('time_to_target_s') for x in loops])} | |"
    )
    lines = [x + " |" * (6 - x.count("|")) if x.startswith("|") else x for x in lines]  # 5 columns each
    lines.append("")
    for r in runs:
        met = ", ".join(f"{k} {'yes' if v else ('no' if v is False else '?')}" for k, v in r.get("goals", {}).items())
        lines.append(f"run {r['run']}: {met or 'no figures'}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lab.json")
    ap.add_argument("--measure-s", type=float, default=5.0, help="the (a), (b), (c) measurement windows")
    ap.add_argument("--max-cycles", type=int, default=8)
    args = ap.parse_args()
    try:
        control.preflight()
    except control.LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    runs: list[dict[str, Any]] = []
    t0 = time.time()
    for n in range(1, args.runs + 1):
        print(f"== run {n}/{args.runs}", file=sys.stderr, flush=True)
        try:
            runs.append(one_run(n, args.measure_s, args.max_cycles))
        finally:
            data = {
                "benchmark": "lab",
                "started": t0,
                "measure_s": args.measure_s,
                "loop_measure_s": LOOP_MEASURE_S,
                "limits": dataclasses.asdict(LIMITS),
                "load_average": os.getloadavg(),
                "runs": runs,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    print(table(runs))
    print(f"\n{args.out} ({time.time() - t0:.0f} s; load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
