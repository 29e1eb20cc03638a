"""Which devices a run touches, and in what order: ``--limit``, ``--shard K/N`` and ``--canary N``.

Why round-robin over sorted names for shards: every job of a CI matrix sees
the same inventory, so each computes the same split without talking to the
others; round-robin keeps the shards within one device of each other in size
(a hash split can leave one shard with twice the work).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from controller.apply.errors import UsageError
from controller.model import Device


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 1-based
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str) -> Shard:
    parts = text.split("/")
    try:
        k, n = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--shard '{text}': expected K/N, e.g. 1/4") from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard '{text}': K must be between 1 and N (N >= 1)")
    return Shard(k, n)


def limit_tokens(values: Sequence[str]) -> tuple[str, ...]:
    """``--limit a,b --limit site:x`` -> ``("a", "b", "site:x")``."""
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


def _matches(device: Device, token: str) -> bool:
    if token.startswith("site:"):
        return fnmatch.fnmatchcase(device.site, token[5:])
    if token.startswith("tag:"):
        return any(fnmatch.fnmatchcase(t, token[4:]) for t in device.tags)
    name = token[7:] if token.startswith("device:") else token
    return fnmatch.fnmatchcase(device.name, name)


def select(devices: Sequence[Device], limit: Sequence[str]) -> list[Device]:
    """Devices matching any ``--limit`` token (names and globs, ``site:NAME``, ``tag:NAME``), sorted by name.

    A token that matches no device is an error: a typo must not silently shrink a rollout.
    """
    ordered = sorted(devices, key=lambda d: d.name)
    tokens = limit_tokens(limit)
    if not tokens:
        return ordered
    unknown = [t for t in tokens if not any(_matches(d, t) for d in ordered)]
    if unknown:
        names = ", ".join(d.name for d in ordered[:20])
        raise UsageError(f"--limit {', '.join(unknown)}: matches no device (devices: {names})")
    return [d for d in ordered if any(_matches(d, t) for t in tokens)]


def shard(devices: Sequence[Device], part: Shard | None) -> list[Device]:
    ordered = sorted(devices, key=lambda d: d.name)
    if part is None:
        return ordered
    return [d for i, d in enumerate(ordered) if i % part.total == part.index - 1]


def canary_split(devices: Sequence[Device], n: int) -> tuple[list[Device], list[Device]]:
    """The first ``n`` devices (in name order) go first; the rest only if all of those succeed."""
    if n < 0:
        raise UsageError("--canary must be 0 or more")
    ordered = list(devices)
    return ordered[:n], ordered[n:]
