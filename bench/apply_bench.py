"""Benchmark: ``qoectl apply --workers 10`` against a naive sequential netmiko loop, same 50 devices, same run.

    .venv/bin/python bench/apply_bench.py [--devices 50] [--workers 10] [--out bench/results/apply.json]

What is compared (all over real SSH to the FakeNOS-based emulators in
``tests/lab/emulators``, which run in a separate process so that client and
servers do not share one interpreter lock):

- **naive loop**: for each device in turn, ``ConnectHandler`` + one
  ``send_config_set`` of its rendered config (+ ``commit`` on Junos), the way a
  first script would do it. No backup, no diff, no verification.
- **qoectl**: the real engine (``controller.apply.run``) with ``workers`` SSH
  sessions at once, doing everything the naive loop skips: running-config
  backup, diff, archive/configure session/commit confirmed, read-back, save.

Between the two the devices are reset to their factory config, so both push
the full change. Reported as ratios, never as absolute pass/fail timings:

- ``speedup`` = naive wall time / qoectl wall time (goal: >= 5)
- ``per_device_ratio`` = mean qoectl per-device time / mean bare push time (goal: <= 1.5)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PASSWORD = "bench-lab-pw-5d1e"
MIX = ("cisco_iosxe", "arista_eos", "juniper_junos")

SERVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.lab.emulators import start_devices
specs = json.loads(sys.argv[2])
lab = start_devices([tuple(s) for s in specs], password=sys.argv[3])
factory = {n: d.running_config() for n, d in lab.devices.items()}
info = {n: {"platform": d.platform, "port": d.port, "key": d.host_key_line} for n, d in lab.devices.items()}
print(json.dumps(info), flush=True)
for line in sys.stdin:
    if line.strip() == "reset":
        for n, d in lab.devices.items():
            d.set_running_config(factory[n])
        print("ok", flush=True)
    elif line.strip() == "quit":
        break
lab.stop()
"""


class Emulators:
    """The emulated fleet in a child process (stopped by its PID in ``close``)."""

    def __init__(self, specs: list[tuple[str, str]]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(REPO), json.dumps(specs), PASSWORD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.devices: dict[str, dict[str, Any]] = json.loads(self.proc.stdout.readline())

    def reset(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("reset\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def naive_push(info: dict[str, Any], files: dict[str, str]) -> float:
    """One bare netmiko push of a device's rendered config; returns its seconds."""
    from netmiko import ConnectHandler

    from tests.lab.emulators import NETMIKO_DEVICE_TYPES

    start = time.perf_counter()
    platform = info["platform"]
    text = next(iter(files.values()))
    conn = ConnectHandler(
        device_type=NETMIKO_DEVICE_TYPES[platform],
        host="127.0.0.1",
        port=info["port"],
        username="qoectl",
        password=PASSWORD,
    )
    if platform == "juniper_junos":
        lines = [line for line in text.splitlines() if line.startswith("set ")]
        conn.send_config_set(lines, exit_config_mode=False)
        conn.commit()
        conn.exit_config_mode()
    else:
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("!")]
        conn.send_config_set([line for line in lines if line != "end"])
    conn.disconnect()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "apply.json")
    args = parser.parse_args()

    from controller.apply import ApplyOptions, HostKeyPolicy, Timeouts, render_all, run
    from controller.pipeline import build
    from tests.lab.sshd import emulated_device_entry, lab_policy

    specs = [(f"bench-{i:03d}", MIX[i % len(MIX)]) for i in range(args.devices)]
    emus = Emulators(specs)
    try:
        with tempfile.TemporaryDirectory(prefix="qoectl-bench-") as tmp:
            work = Path(tmp)
            entries = [emulated_device_entry(n, d["platform"], d["port"]) for n, d in emus.devices.items()]
            policy = lab_policy(work / "policy", entries)
            known = work / "known_hosts"
            known.write_text("".join(d["key"] + "\n" for d in emus.devices.values()))
            result = build(policy)
            assert result.ok, [d.format() for d in result.errors]
            rendered = render_all(result.plans)

            # 1. naive sequential loop
            start = time.perf_counter()
            naive = [naive_push(emus.devices[n], dict(rendered[n][1])) for n, _ in specs]
            naive_wall = time.perf_counter() - start
            emus.reset()

            # 2. qoectl apply with workers
            os.environ.update({"QOECTL_TEST_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD})
            options = ApplyOptions(
                host_keys=HostKeyPolicy(known), workers=args.workers, timeouts=Timeouts(connect=10, command=60)
            )
            start = time.perf_counter()
            fleet = run(result.policy.devices, rendered, options, run_dir=work / "run", lock_dir=work / "locks")
            qoectl_wall = time.perf_counter() - start
            statuses = {r.status for r in fleet.results}
            assert statuses == {"changed"}, [(r.device, r.status, r.error) for r in fleet.results if not r.ok]
            per_device = [r.duration_s for r in fleet.results]
    finally:
        emus.close()

    report = {
        "devices": args.devices,
        "workers": args.workers,
        "platforms": {p: sum(1 for _, q in specs if q == p) for p in MIX},
        "naive_wall_s": round(naive_wall, 3),
        "qoectl_wall_s": round(qoectl_wall, 3),
        "speedup": round(naive_wall / qoectl_wall, 2),
        "naive_per_device_mean_s": round(statistics.mean(naive), 3),
        "qoectl_per_device_mean_s": round(statistics.mean(per_device), 3),
        "per_device_ratio": round(statistics.mean(per_device) / statistics.mean(naive), 2),
        "goals": {"speedup_min": 5.0, "per_device_ratio_max": 1.5},
    }
    report["meets_goals"] = report["speedup"] >= 5.0 and report["per_device_ratio"] <= 1.5
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
