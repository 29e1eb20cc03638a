"""The entries of ``Adjustments`` documents, as the compiler applies them on top of the journeys.

An adjustment never edits a journey or the inventory; the compiler reads it like
any policy (docs/loop.md):

* ``shaper``: the WAN interface is shaped to ``kbps`` and its classes are
  allocated on that rate instead of ``bandwidth_kbps``;
* ``bandwidth``: the journey counts ``kbps`` on each WAN link of that device
  instead of its bandwidth, so its class's guarantee changes there;
* ``strict_priority``: the journey is put in the strict-priority class (on every
  device: a class is end to end, its DSCP with it);
* ``marking``: on that device the journey's marking rule matches its traffic
  whatever DSCP it arrives with (its matches without ``dscp``);
* ``path``: on that SD-WAN edge the journey prefers the transport: it is the
  one ``preferred`` transport of the journey's path preference, every other
  transport it had (preferred, then backup, in their order) its backup; ``strict``
  is kept.

When two entries change the same thing, the last one written counts (validation
reports the duplicate). :func:`effective_policy` is the policy the compiler
builds its per-journey facts from: the journeys with their strict-priority
moves; the per-device changes are read from :class:`Adjusted` while a device
is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.model import (
    Adjustment,
    BandwidthChange,
    MarkingChange,
    PathChange,
    Policy,
    ServiceClass,
    ShaperChange,
    StrictPriorityChange,
)
from controller.model.catalogue import DEFAULT_CLASS
from controller.plan import MarkingRule, PathPreference, PlanMatch

NETWORK_CONTROL_CLASS = "network-control"


@dataclass(frozen=True)
class Adjusted:
    """Lookups of a policy's adjustments (empty when it has none)."""

    shaper: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (device, interface) -> kbps
    bandwidth: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # device -> journey -> kbps
    strict: frozenset[str] = frozenset()  # journeys moved to strict priority
    marking: Mapping[str, frozenset[str]] = field(default_factory=dict)  # device -> journeys marked at its edge
    path: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # device -> journey -> preferred transport

    @classmethod
    def of(cls, adjustments: Iterable[Adjustment]) -> Adjusted:
        shaper: dict[tuple[str, str], int] = {}
        bandwidth: dict[str, dict[str, float]] = {}
        strict: set[str] = set()
        marking: dict[str, set[str]] = {}
        path: dict[str, dict[str, str]] = {}
        for a in adjustments:
            c = a.change
            if isinstance(c, ShaperChange):
                shaper[(c.device, c.interface)] = c.kbps
            elif isinstance(c, BandwidthChange):
                bandwidth.setdefault(c.device, {})[c.journey] = c.kbps
            elif isinstance(c, StrictPriorityChange):
                strict.add(c.journey)
            elif isinstance(c, MarkingChange):
                marking.setdefault(c.device, set()).add(c.journey)
            elif isinstance(c, PathChange):
                path.setdefault(c.device, {})[c.journey] = c.transport
        return cls(
            shaper,
            bandwidth,
            frozenset(strict),
            {d: frozenset(js) for d, js in marking.items()},
            path,
        )

    @property
    def empty(self) -> bool:
        return not (self.shaper or self.bandwidth or self.strict or self.marking or self.path)


NO_ADJUSTMENTS = Adjusted()


def strict_class(classes: Iterable[ServiceClass]) -> str | None:
    """The class a journey moved to strict priority goes to: the first strict-priority class of the catalogue
    (``telephony``, EF, in RFC 4594's), never network control or the default class."""
    for c in classes:
        if c.strict_priority and c.name not in (DEFAULT_CLASS, NETWORK_CONTROL_CLASS):
            return c.name
    return None


def effective_policy(policy: Policy) -> Policy:
    """The policy with its journeys moved to strict priority (``service_class`` set); the same object without."""
    moved = {a.change.journey for a in policy.adjustments if isinstance(a.change, StrictPriorityChange)}
    target = strict_class(policy.classes) if moved else None
    if target is None:
        return policy
    journeys = tuple(dataclasses.replace(j, service_class=target) if j.name in moved else j for j in policy.journeys)
    return dataclasses.replace(policy, journeys=journeys)


def without_arrival_dscp(matches: tuple[PlanMatch, ...]) -> tuple[PlanMatch, ...]:
    """The matches of a journey marked at the edge: the same traffic, whatever DSCP it arrives with."""
    out: list[PlanMatch] = []
    for m in matches:
        relaxed = dataclasses.replace(m, dscp=None) if m.dscp is not None else m
        if relaxed not in out:
            out.append(relaxed)
    return tuple(out)


def marked_at_edge(markings: tuple[MarkingRule, ...], journeys: frozenset[str]) -> tuple[MarkingRule, ...]:
    """A device's marking rules with the given journeys marked whatever DSCP they arrive with."""
    return tuple(
        dataclasses.replace(r, matches=without_arrival_dscp(r.matches)) if r.journey in journeys else r
        for r in markings
    )


def steer(pref: PathPreference, transport: str) -> PathPreference:
    """The path preference with ``transport`` first: the one preferred transport, every other one it had
    (preferred, then backup, in their order) its backup; ``strict`` kept. Unchanged when ``transport`` is not
    one of its transports (validation reports such an entry)."""
    order = (*pref.preferred, *pref.backup)
    if transport not in order or pref.preferred == (transport,):
        return pref
    return dataclasses.replace(pref, preferred=(transport,), backup=tuple(t for t in order if t != transport))


def steered(prefs: tuple[PathPreference, ...], moves: Mapping[str, str] | None) -> tuple[PathPreference, ...]:
    """A device's path preferences with its ``path`` adjustments (journey -> transport) applied."""
    if not moves:
        return prefs
    return tuple(steer(p, moves[p.journey]) if p.journey in moves else p for p in prefs)
