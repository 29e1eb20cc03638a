"""What ``qoectl loop`` remembers between cycles (and invocations): counters and times, never the changes.

The changes themselves live in the Adjustments document of the policy
repository (the one source of truth, which people review and may edit); the
state holds only what the guardrails need:

* ``bad`` / ``good``: consecutive violating / good cycles per journey@segment
  (hysteresis: act after N, relax after M);
* ``bloat`` / ``calm``: consecutive cycles per WAN interface with the delay up
  while the router's queue is short / with the delay at its floor (the capacity
  remediation);
* ``last_change``: when each device was last changed (the minimum time between
  changes to one device);
* ``backoff`` / ``relaxed``: per change, how often it had to be made again soon
  after being relaxed (each time, relaxing it waits twice as many good cycles),
  and the cycle it was last relaxed in;
* ``direction``: per shaper, whether it last went up or down;
* ``path_good`` / ``path_moved``: per journey@device steered away from its home
  transport, the consecutive cycles the home transport met the journey's SLA
  class, and the cycle the journey's path last changed (path steering's hold
  time and no-flap rule).

It is a small JSON file in a folder qoectl owns (``.qoectl-loop/state.json``
beside the run folders by default), never inside the policy repository:
:func:`save` refuses a path there. Writes are atomic (a temporary file renamed
over the old one), so an interrupted loop leaves the previous state whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.adjust.files import write_atomic

FORMAT = "qoectl-loop-state/1"
STATE_DIR = ".qoectl-loop"
STATE_FILE = "state.json"


class StateError(ValueError):
    """A state file that cannot be used, or a place it may not be written."""


@dataclass(frozen=True)
class LoopState:
    cycle: int = 0
    bad: Mapping[str, int] = field(default_factory=dict)
    good: Mapping[str, int] = field(default_factory=dict)
    bloat: Mapping[str, int] = field(default_factory=dict)
    calm: Mapping[str, int] = field(default_factory=dict)
    last_change: Mapping[str, float] = field(default_factory=dict)
    backoff: Mapping[str, int] = field(default_factory=dict)
    relaxed: Mapping[str, int] = field(default_factory=dict)
    direction: Mapping[str, str] = field(default_factory=dict)
    path_good: Mapping[str, int] = field(default_factory=dict)
    path_moved: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "cycle": self.cycle,
            **{
                name: dict(sorted(getattr(self, name).items()))
                for name in (
                    "bad",
                    "good",
                    "bloat",
                    "calm",
                    "last_change",
                    "backoff",
                    "relaxed",
                    "direction",
                    "path_good",
                    "path_moved",
                )
            },
        }

    @staticmethod
    def from_json(data: Any, source: str = "state") -> LoopState:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateError(f'{source}: not a qoectl loop state (expected "format": "{FORMAT}")')
        try:
            names = ("bad", "good", "bloat", "calm", "path_good", "path_moved")
            ints = {k: {str(a): int(b) for a, b in data.get(k, {}).items()} for k in names}
            return LoopState(
                cycle=int(data.get("cycle", 0)),
                last_change={str(a): float(b) for a, b in data.get("last_change", {}).items()},
                backoff={str(a): int(b) for a, b in data.get("backoff", {}).items()},
                relaxed={str(a): int(b) for a, b in data.get("relaxed", {}).items()},
                direction={str(a): str(b) for a, b in data.get("direction", {}).items()},
                **ints,
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"{source}: malformed loop state ({exc})") from None


def default_path(run_root: Path = Path("qoectl-runs")) -> Path:
    """``.qoectl-loop/state.json`` beside the run folders' root (``qoectl-runs`` by default)."""
    return run_root.parent / STATE_DIR / STATE_FILE


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def load(path: Path) -> LoopState:
    """The saved state, or a fresh one when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LoopState()
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return LoopState.from_json(json.loads(text), str(path))
    except json.JSONDecodeError as exc:
        raise StateError(f"{path}: not JSON: {exc}") from None


def save(path: Path, state: LoopState, policy_root: Path | None = None) -> Path:
    """Write the state atomically; refuses a path inside the policy repository (``policy_root``)."""
    if policy_root is not None and _inside(path, policy_root if policy_root.is_dir() else policy_root.parent):
        raise StateError(
            f"{path}: the loop's state does not belong in the policy repository {policy_root}; "
            f"keep it in a folder of its own (default {STATE_DIR}/ beside the run folders)"
        )
    return write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
