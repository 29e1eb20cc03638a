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

    def share(self, interface: str) -> float | None:
        return dict(self.shares)[interface]


DeviceTreatment = dict[str, JourneyTreatment]
Parser = Callable[[dict[str, str]], DeviceTreatment]


def treatment(journey: str, dscp: int, per_interface: dict[str, tuple[bool, float | None]]) -> JourneyTreatment:
    """Fold one journey's per-WAN-interface (strict, share) into a treatment; strictness must agree."""
    kinds = {strict for strict, _ in per_interface.values()}
    if len(kinds) > 1:
        raise ParseError(f"journey {journey} is strict on some WAN interfaces and not on others")
    return JourneyTreatment(
        dscp=dscp,
        strict=kinds.pop() if kinds else False,
        shares=tuple(sorted((name, share) for name, (_, share) in per_interface.items())),
    )


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
