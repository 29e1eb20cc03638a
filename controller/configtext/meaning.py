"""What a rendered device config means, read back from its text: the types every platform's parser returns.

Each platform's ``controller.platforms.<name>.parser`` reads only the config
*text* (never the plan or the renderer) and follows the chain a packet of each
journey takes on that device: the marking rule that recognises the journey ->
the DSCP it sets -> the class/queue that DSCP lands in -> whether that queue is
strict priority -> the queue's bandwidth share of each WAN link, normalized to
percent of the link rate. The same parser serves apply (its syntax layer reads
the running config and the rendered file into one tree), ``qoectl explain``
(what the text does with the journey), the BDD config probes and the
cross-platform meaning tests.

A parser module has

- ``parse(files: dict[str, str]) -> DeviceTreatment`` (required: a platform
  without it cannot register),
- ``control(files) -> ControlTreatment`` where the plan owns the queues: what
  happens to traffic no journey claims (every DSCP, on trusted and untrusted
  LANs, and the router's own traffic), for the network-control rule,
- ``paths(files) -> DevicePaths`` on SD-WAN platforms: where each journey goes
  while every path is healthy.

Journeys are keyed by their config identifier: the journey name upper-cased
with ``.`` replaced by ``_`` (:func:`journey_key`), which is how every renderer
names them.

Parsers of platforms whose text says what happens on each LAN ingress also fill
:attr:`JourneyTreatment.lan`: they walk that ingress's rules *in order* with a
packet of the journey arriving with the DSCP the journey matches, so a bleaching
rule that runs before a ``dscp:`` match shows up as a wrong DSCP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from controller import registry

DSCP_VALUES: dict[str, int] = {
    "default": 0,
    "be": 0,
    "ef": 46,
    "le": 1,
    "va": 44,
    **{f"cs{i}": 8 * i for i in range(8)},
    **{f"af{c}{d}": 8 * c + 2 * d for c in range(1, 5) for d in range(1, 4)},
}


class ParseError(ValueError):
    """The text is not the platform's config language, or it is inconsistent: a dangling reference or a chain
    that does not close."""


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


def single_mark(journey: str, dscps: set[int]) -> int:
    """The one DSCP a journey is marked with (several: the text marks it two ways)."""
    if len(dscps) != 1:
        raise ParseError(f"journey {journey} is marked with several DSCPs: {sorted(dscps)}")
    return next(iter(dscps))


Scheduling = tuple[bool, bool, dict[str, float | None]]  # (strict, early drop, share of each WAN link)


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


def queue_scheduling(per_interface: dict[str, tuple[bool, bool, float | None]], what: str) -> Scheduling:
    """(strict, early drop, share of each WAN link) of one queue from its (strict, early drop, share) per WAN
    interface: strictness and early drop must be the same on every interface."""
    strict = {s for s, _, _ in per_interface.values()}
    red = {r for _, r, _ in per_interface.values()}
    if len(strict) > 1 or len(red) > 1:
        raise ParseError(f"{what} is scheduled differently on different WAN interfaces")
    shares = {name: share for name, (_, _, share) in per_interface.items()}
    return bool(strict and strict.pop()), bool(red and red.pop()), shares


def link_share(link: float | None, cap: float | None, percent_of_rest: float, strict_total: float) -> float | None:
    """Percent of a link (rate ``link``, None: the text does not state it) a queue gets: a strict queue its cap;
    any other ``percent_of_rest`` of what the strict queues (capped at ``strict_total`` together) leave."""
    if not link:
        return None
    if cap is not None:
        return 100.0 * cap / link
    return percent_of_rest * (link - strict_total) / link


def journeys(
    marks: dict[str, set[int]], lan: dict[str, dict[str, set[int]]], scheduling: Callable[[int], Scheduling]
) -> DeviceTreatment:
    """Each journey's treatment from the DSCPs it is marked with, where each ingress sends it, and how the queue
    of a DSCP is scheduled."""
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        dscp = single_mark(journey, dscps)
        strict, _, shares = scheduling(dscp)
        per_if = {name: (strict, share) for name, share in shares.items()}
        out[journey] = treatment(journey, dscp, per_if, lan.get(journey, {}))
    return out


def queues(names: set[str], scheduling: Callable[[str], Scheduling]) -> dict[str, Queue]:
    """Each named queue as its scheduling states it."""
    out: dict[str, Queue] = {}
    for name in names:
        strict, red, shares = scheduling(name)
        out[name] = Queue(strict=strict, early_drop=red, shares=tuple(sorted(shares.items())))
    return out


@dataclass(frozen=True, slots=True)
class PathChoice:
    """Where an SD-WAN edge sends one journey.

    ``preferred`` is what carries the journey while every path is up and meets
    its SLA: TLOC colours on Cisco SD-WAN, member interfaces on FortiOS, WAN
    devices on Linux (the caller maps interfaces to transports from the
    inventory). Empty when the text states no preference the device acts on (it
    spreads the journey over every path). ``sla`` is the round-trip thresholds
    the steering measures paths against (``latency``/``jitter`` ms, ``loss``
    %), None when nothing is measured.
    """

    preferred: frozenset[str]
    sla: dict[str, float] | None
    # Every path in the order the device falls back through them while the earlier ones are down (FortiOS:
    # priority-members; Linux: its ip rules), None where the text states no order (Cisco spreads the journey).
    order: tuple[str, ...] | None = None


DevicePaths = dict[str, PathChoice]
PathParser = Callable[[dict[str, str]], DevicePaths]


def parser_of(platform: str) -> ModuleType:
    """The parser module of a registered platform (its package's ``parser``; :mod:`controller.registry` refuses a
    platform without one); :class:`LookupError` for a name no platform is registered under."""
    module = registry.module(platform, "parser")
    if module is None:
        raise LookupError(f"no platform {platform!r} is registered")
    return module


def parse(platform: str, files: dict[str, str]) -> DeviceTreatment:
    """What ``files`` (one device's rendered or running config) do with each journey, by the platform's parser."""
    result: DeviceTreatment = parser_of(platform).parse(files)
    return result


def control_parser(platform: str) -> ControlParser | None:
    found: ControlParser | None = getattr(parser_of(platform), "control", None)
    return found


def path_parser(platform: str) -> PathParser | None:
    found: PathParser | None = getattr(parser_of(platform), "paths", None)
    return found
