"""Independent parsers of rendered device configs back into one normalized meaning.

Each platform module reads only the rendered *text* (never the plan or the
renderer's helpers) and follows the chain a packet of each journey takes on
that device: the marking rule that recognises the journey -> the DSCP it sets
-> the class/queue that DSCP lands in -> whether that queue is strict priority
-> the queue's bandwidth share of each WAN link, normalized to percent of the
link rate. ``tests/test_cross_platform.py`` compares these across platforms.

Adding a platform: write ``tests/parsers/<platform>.py`` with a
``parse(files: dict[str, str]) -> DeviceTreatment`` function and add one line
to :data:`PARSERS` below.

Journeys are keyed by their config identifier: the journey name upper-cased
with ``.`` replaced by ``_`` (:func:`journey_key`), which is how every renderer
names them.

Parsers of platforms whose text says what happens on each LAN ingress also
fill :attr:`JourneyTreatment.lan`: they walk that ingress's rules *in order*
with a packet of the journey arriving with the DSCP the journey matches, so a
bleaching rule that runs before a ``dscp:`` match shows up as a wrong DSCP.

Platforms whose plan owns the queues also have a ``control(files)`` function in
:data:`CONTROL_PARSERS`: what happens to traffic no journey claims (every DSCP,
on trusted and on untrusted LANs, and the router's own traffic), read the same
way, for the network-control rule of the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DSCP_VALUES: dict[str, int] = {
    "default": 0,
    "be": 0,
    "ef": 46,
    "le": 1,
    "va": 44,
    **{f"cs{i}": 8 * i for i in range(8)},
    **{f"af{c}{d}": 8 * c + 2 * d for c in range(1, 5) for d in range(1, 4)},
}


class ParseError(AssertionError):
    """The rendered text is inconsistent: a dangling reference or a chain that does not close."""


def dscp_value(token: str) -> int:
    """A DSCP as any vendor writes it: a name (ef, af41, cs5, be), a decimal, or a 6-bit pattern."""
    t = token.strip().lower()
    if t in DSCP_VALUES:
        return DSCP_VALUES[t]
    if len(t) == 6 and set(t) <= {"0", "1"}:
        return int(t, 2)
    if t.isdigit() and 0 <= int(t) <= 63:
        return int(t)
    raise ParseError(f"not a DSCP: {token!r}")


def journey_key(name: str) -> str:
    return name.upper().replace(".", "_")


@dataclass(frozen=True, slots=True)
class JourneyTreatment:
    """What one journey gets on one device, read back from the rendered config."""

    dscp: int
    strict: bool
    # (WAN interface, share of that link in percent); None where the text does not state the link rate.
    shares: tuple[tuple[str, float | None], ...]
    # (LAN ingress, DSCP on the WAN) for a packet of the journey arriving there with the DSCP the journey matches
    # (0 when it matches any); empty when the parser does not follow LAN ingresses.
    lan: tuple[tuple[str, int], ...] = ()

    def share(self, interface: str) -> float | None:
        return dict(self.shares)[interface]


DeviceTreatment = dict[str, JourneyTreatment]
Parser = Callable[[dict[str, str]], DeviceTreatment]


def treatment(
    journey: str,
    dscp: int,
    per_interface: dict[str, tuple[bool, float | None]],
    lan: dict[str, set[int]] | None = None,
) -> JourneyTreatment:
    """Fold one journey's per-WAN-interface (strict, share) into a treatment; strictness must agree."""
    kinds = {strict for strict, _ in per_interface.values()}
    if len(kinds) > 1:
        raise ParseError(f"journey {journey} is strict on some WAN interfaces and not on others")
    return JourneyTreatment(
        dscp=dscp,
        strict=kinds.pop() if kinds else False,
        shares=tuple(sorted((name, share) for name, (_, share) in per_interface.items())),
        lan=tuple(sorted((name, d) for name, ds in (lan or {}).items() for d in ds)),
    )


@dataclass(frozen=True, slots=True)
class Queue:
    """One egress queue as the text states it (the same on every WAN interface but for its shares)."""

    strict: bool  # strict priority (and so capped)
    early_drop: bool  # RED/WRED/AQM drops before the queue is full
    # (WAN interface, guaranteed share of that link in percent); None where the text does not state the rate.
    shares: tuple[tuple[str, float | None], ...]


@dataclass(frozen=True, slots=True)
class ControlTreatment:
    """What a device does with traffic no journey claims, read back from its text.

    Queues are named by whatever the platform names them (HTB classid, class-map,
    forwarding class, tx-queue); only their identity and :class:`Queue` matter.
    """

    queues: dict[str, Queue]
    queue_of: dict[int, str]  # every DSCP 0-63 -> the queue it takes on the WAN
    trusted: dict[int, int]  # DSCP arriving on a trusted LAN -> DSCP on the WAN (every DSCP 0-63; empty: none)
    untrusted: dict[int, int]  # the same for an untrusted LAN (empty when the device has none)
    host_queue: str | None  # the queue of the router's own traffic when the text sets one, else None (by its DSCP)
    host: dict[int, int]  # DSCP the router's own traffic is sent with -> DSCP on the WAN (every DSCP 0-63)


ControlParser = Callable[[dict[str, str]], ControlTreatment]


def lan_maps(maps: dict[bool, list[dict[int, int]]], what: str = "LANs") -> tuple[dict[int, int], dict[int, int]]:
    """(trusted, untrusted) DSCP maps from every LAN's map, keyed by "bleaches"; all LANs of a kind must agree."""
    for kind, found in maps.items():
        if any(m != found[0] for m in found):
            raise ParseError(f"{'untrusted' if kind else 'trusted'} {what} are treated differently")
    return (maps[False][0] if maps.get(False) else {}), (maps[True][0] if maps.get(True) else {})


def _registry() -> dict[str, Parser]:
    from tests.parsers import arista_eos, cisco_iosxe, cisco_sdwan, fortios_sdwan, juniper_junos, linux

    return {
        "linux": linux.parse,
        "cisco_iosxe": cisco_iosxe.parse,
        "juniper_junos": juniper_junos.parse,
        "arista_eos": arista_eos.parse,
        "cisco_sdwan": cisco_sdwan.parse,
        "fortios_sdwan": fortios_sdwan.parse,
    }


PARSERS: dict[str, Parser] = _registry()


def _control_registry() -> dict[str, ControlParser]:
    from tests.parsers import arista_eos, cisco_iosxe, juniper_junos, linux

    return {
        "linux": linux.control,
        "cisco_iosxe": cisco_iosxe.control,
        "juniper_junos": juniper_junos.control,
        "arista_eos": arista_eos.control,
    }


CONTROL_PARSERS: dict[str, ControlParser] = _control_registry()
