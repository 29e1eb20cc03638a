"""Which journeys reach which devices, decided once per group of look-alike devices.

A journey's scope looks at three things of a device: its site, its tags and its
site's context, and only at the values some journey actually names. Devices
that agree on those values (a :data:`ScopeKey`) are reached by exactly the same
journeys, and a real fleet has few such groups (tens for 10,000 devices), so
the per device x journey scope test, and everything derived from the journeys
that reach a device, can be done once per group instead of once per device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.model import Device, Journey

# (the device's site if some journey names it, the device tags some journey names (sorted),
#  the context if some journey names it)
ScopeKey = tuple[str | None, tuple[str, ...], str | None]


def in_scope(journey: Journey, device: Device, context: str) -> bool:
    if journey.sites and device.site not in journey.sites:
        return False
    if journey.device_tags and not any(t in device.tags for t in journey.device_tags):
        return False
    return not (journey.contexts and context not in journey.contexts)


@dataclass(frozen=True, slots=True)
class Scopes:
    """The journeys whose scopes are looked at, and every site, tag and context they name."""

    journeys: tuple[Journey, ...]
    sites: frozenset[str]
    tags: frozenset[str]
    contexts: frozenset[str]

    @classmethod
    def of(cls, journeys: Iterable[Journey]) -> Scopes:
        js = tuple(journeys)
        return cls(
            js,
            frozenset(s for j in js for s in j.sites),
            frozenset(t for j in js for t in j.device_tags),
            frozenset(c for j in js for c in j.contexts),
        )

    def key(self, device: Device, context: str) -> ScopeKey:
        """What the scopes can tell about this device: equal keys, equal journeys in scope.

        ``in_scope`` asks "is the device's site among the journey's sites", "does
        the device carry any of the journey's tags" and "is the context among the
        journey's contexts"; each answer depends only on the part of the device
        that some journey names, which is what the key keeps.
        """
        site = device.site if device.site in self.sites else None
        tags = tuple(sorted(self.tags.intersection(device.tags))) if self.tags else ()
        return site, tags, context if context in self.contexts else None

    def reaching(self, device: Device, context: str) -> tuple[int, ...]:
        """Positions in :attr:`journeys` of the journeys in scope of ``device``, in order."""
        return tuple(i for i, j in enumerate(self.journeys) if in_scope(j, device, context))

    def groups(
        self, devices: Iterable[Device], context_of: Callable[[Device], str]
    ) -> tuple[list[ScopeKey], dict[ScopeKey, tuple[int, ...]]]:
        """Each device's key (in order) and, per key, :meth:`reaching` (tested on its first device).

        ``context_of`` gives a device's site context (callers differ in what they
        call the context of an unknown site).
        """
        keys: list[ScopeKey] = []
        reach: dict[ScopeKey, tuple[int, ...]] = {}
        for dev in devices:
            context = context_of(dev)
            key = self.key(dev, context)
            if key not in reach:
                reach[key] = self.reaching(dev, context)
            keys.append(key)
        return keys, reach
