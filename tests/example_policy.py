"""The bundled example with a few documents added, for tests that need more than it shows.

``MARKED_JOURNEYS`` classify by the DSCP a packet arrives with (``match: {dscp: ...}``):
on an untrusted LAN they must still match, because every platform classifies the arriving
DSCP before it bleaches what no journey claimed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import EXAMPLE_POLICIES

MARKED_JOURNEYS = """\
apiVersion: qoectl/v1
kind: Journey
metadata: {name: marked-voice}
spec:
  traffic:
    match:
      - {protocol: udp, destination_ports: [5004], dscp: ef}
  target: {voice: {codec: g711, mos: 4.0}}
  priority: critical
  bandwidth: {per_flow_kbps: 90, concurrent_flows: 2}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {name: marked-video}
spec:
  traffic:
    match:
      - {protocol: udp, destination_ports: [5006], dscp: af41}
  target: {video: {mode: conferencing, bitrate_kbps: 400}}
  priority: high
  bandwidth: {per_flow_kbps: 500, concurrent_flows: 1}
"""


def example_with(root: Path, extra: dict[str, str]) -> Path:
    """A copy of the bundled example under ``root`` plus ``extra`` (relative path -> YAML text)."""
    policy = root / "policy"
    shutil.copytree(EXAMPLE_POLICIES, policy)
    for rel, text in extra.items():
        (policy / rel).write_text(text, encoding="utf-8")
    return policy
