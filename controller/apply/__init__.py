"""``qoectl apply``: push rendered QoS configs to devices over SSH (netmiko), like ``terraform apply``.

Public API (the CLI, tests and the benchmark use only these):

- :func:`run` applies a fleet and returns a :class:`FleetResult`
- :class:`ApplyOptions`, :class:`HostKeyPolicy`, :class:`Timeouts` configure it
- :func:`rendered_from` gets the intended configs (render now, or a ``plan --out`` folder)

See ``docs/apply.md`` for the design.
"""

from __future__ import annotations

from controller.apply.connection import HostKeyPolicy, Timeouts
from controller.apply.engine import ApplyOptions, Target, apply_device, apply_fleet, targets_for
from controller.apply.errors import ApplyError, LockedError, UsageError
from controller.apply.result import DeviceResult, FleetResult
from controller.apply.runner import render_all, rendered_from, run, selected
from controller.apply.selection import Shard, parse_shard

__all__ = [
    "ApplyError",
    "ApplyOptions",
    "DeviceResult",
    "FleetResult",
    "HostKeyPolicy",
    "LockedError",
    "Shard",
    "Target",
    "Timeouts",
    "UsageError",
    "apply_device",
    "apply_fleet",
    "parse_shard",
    "render_all",
    "rendered_from",
    "run",
    "selected",
    "targets_for",
]
