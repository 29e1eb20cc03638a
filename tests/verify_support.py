"""Shared by the verify/measure/QoE tests: a small policy of our own and sample writers.

The tests use their own policy (not the bundled example) so that changes to the
example policies cannot change what these tests expect.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from controller.measure.samples import SampleSet
from controller.pipeline import Build, build

T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z
HEADER = ("timestamp", "journey", "site", "metric", "value")

POLICY = """\
apiVersion: qoectl/v1
kind: Inventory
metadata: {name: lab}
spec:
  sites:
    - {name: hq, context: campus}
    - {name: branch-1, context: branch}
    - {name: branch-2, context: branch}
  transports:
    - {name: inet, base_delay_ms: 20, jitter_ms: 2, loss_pct: 0.1}
  devices:
    - name: hq-r1
      platform: linux
      host: 198.18.0.10
      site: hq
      tags: [wan-edge]
      interfaces:
        - {name: wan0, role: wan, transport: inet, bandwidth_kbps: 100000}
        - {name: lan0, role: lan}
    - name: b1-r1
      platform: linux
      host: 198.18.0.11
      site: branch-1
      tags: [wan-edge]
      interfaces:
        - {name: wan0, role: wan, transport: inet, bandwidth_kbps: 50000}
        - {name: lan0, role: lan}
    - name: b2-r1
      platform: linux
      host: 198.18.0.12
      site: branch-2
      tags: [wan-edge]
      interfaces:
        - {name: wan0, role: wan, transport: inet, bandwidth_kbps: 50000}
        - {name: lan0, role: lan}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {name: voice}
spec:
  traffic:
    match: [{protocol: udp, destination_ports: ["16384-32767"], destination_prefixes: [198.18.20.0/24]}]
  target: {voice: {codec: g711, mos: 4.0}}
  priority: critical
  bandwidth: {per_flow_kbps: 90, concurrent_flows: 10}
  verify:
    window: 5m
    objective_pct: 99
---
apiVersion: qoectl/v1
kind: Journey
metadata: {name: web}
spec:
  traffic:
    match: [{protocol: tcp, destination_ports: [443], destination_prefixes: [198.18.10.0/24]}]
  target: {interactive: {apdex_t_ms: 500, apdex: 0.9, response_time_ms: 2000, error_rate_pct: 5}}
  priority: high
  bandwidth: {share_pct: 10}
  verify: {window: 5m, objective_pct: 90}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {name: tv}
spec:
  traffic:
    match: [{protocol: tcp, destination_ports: [443], destination_prefixes: [198.18.30.0/24]}]
  target: {video: {mode: streaming, bitrate_kbps: 2000, startup_s: 4, rebuffering_pct: 2}}
  bandwidth: {share_pct: 10}
  verify: {window: 10m, objective_pct: 90}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {name: backups}
spec:
  traffic:
    match: [{protocol: tcp, destination_ports: [8400], destination_prefixes: [198.18.40.0/24]}]
  target: {bulk: {min_throughput_kbps: 1000}}
  priority: low
  bandwidth: {share_pct: 5}
"""


def journey_yaml(
    name: str,
    match: tuple[str, int | str, str],
    target: Mapping[str, Any],
    verify: Mapping[str, Any],
    *,
    priority: str | None = None,
    bandwidth: Mapping[str, Any] | None = None,
    **metadata: str,
) -> str:
    """One Journey document (``---`` first) to append to :data:`POLICY` as ``extra``.

    ``match`` is one ``(protocol, port or "first-last", prefix)``; ``bandwidth`` defaults to 5 % of each link;
    ``metadata`` adds keys after the name (owner, description).
    """
    protocol, port, prefix = match
    spec: dict[str, Any] = {
        "traffic": {"match": [{"protocol": protocol, "destination_ports": [port], "destination_prefixes": [prefix]}]},
        "target": dict(target),
    }
    if priority is not None:
        spec["priority"] = priority
    spec["bandwidth"] = dict(bandwidth or {"share_pct": 5})
    spec["verify"] = dict(verify)
    doc = {"apiVersion": "qoectl/v1", "kind": "Journey", "metadata": {"name": name, **metadata}, "spec": spec}
    return "---\n" + yaml.safe_dump(doc, sort_keys=False, width=1000)


def make_policy(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text(POLICY + extra, encoding="utf-8")
    return folder


def policy_build(folder: Path, extra: str = "") -> Build:
    result = build(make_policy(folder, extra))
    assert result.ok, "\n".join(d.format() for d in result.errors)
    return result


def write_csv(path: Path, rows: Iterable[Sequence[object]], header: Sequence[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def voice_rows(site: str, delay: float, jitter: float, loss: float, minutes: int = 10) -> list[tuple[object, ...]]:
    """One delay, jitter and loss sample per minute for ``minutes`` minutes from T0."""
    rows: list[tuple[object, ...]] = []
    for k in range(minutes):
        ts = T0 + 60 * k
        rows += [
            (ts, "voice", site, "one_way_delay_ms", delay),
            (ts, "voice", site, "jitter_ms", jitter),
            (ts, "voice", site, "loss_pct", loss),
        ]
    return rows


def assert_same_samples(a: SampleSet, b: SampleSet) -> None:
    """Two readers' samples are the same: every column (dtype and values, NaN equal to NaN) and the sessions."""
    for name in ("ts", "journey", "segment", "metric", "value", "session", "position"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=True), name
    assert a.sessions == b.sessions
