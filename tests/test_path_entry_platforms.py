"""A loop's path move is steering on every SD-WAN platform, read back from each platform's own text.

The ``path`` entry of ``kind: Adjustments`` (what ``qoectl loop`` writes when it moves a journey off a
transport that misses its SLA class) must change where the device sends that journey, and nothing else,
on each platform that selects paths: Cisco SD-WAN (app-route preferred colour), FortiOS (the SD-WAN rule's
first priority member) and a Linux edge (the journey's first ip rule). Read back by the
SD-WAN platforms' parsers (``paths`` in ``controller/platforms/<name>/parser.py``), never from the plan.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller import registry
from controller.configtext.meaning import DevicePaths, PathParser, journey_key, path_parser
from controller.pipeline import build, render_plan
from tests.policy_builder import (
    PolicyRepo,
    bulk_journey,
    device,
    document,
    interactive_journey,
    lan,
    transport,
    voice_journey,
    wan,
)

# Every registered platform whose parser reads path preference (the SD-WAN ones).
PATH_PARSERS: dict[str, PathParser] = {p: c for p in registry.names() if (c := path_parser(p))}

EDGE = "br1-edge"
VOICE = journey_key("voice")
INET = "public-internet"  # a Cisco SD-WAN colour, so the same policy is valid on all three
WANS = {"eth0": ("mpls", "198.18.1.1"), "eth1": (INET, "198.18.2.1")}


def _repo(platform: str, *moves: tuple[str, str]) -> PolicyRepo:
    r = PolicyRepo.standard(journeys=False)
    r.docs("inventory/sites.yaml")[0]["spec"]["transports"].append(transport(INET, 35, 5, 0.1, cost=5))
    wans = [{**wan(name, 20000, t), "gateway": gw} for name, (t, gw) in WANS.items()]
    r.set_devices([device(EDGE, platform, "branch-1", interfaces=[*wans, lan("eth2")])])
    r.add_journey(voice_journey("voice"))
    r.add_journey(interactive_journey("crm-web", priority="high"))
    r.add_journey(bulk_journey("bulk"))
    if moves:
        entries = [
            {
                "path": {"journey": j, "device": EDGE, "transport": t},
                "reason": "test",
                "measurements": {},
                "time": "2025-05-01T10:00:00Z",
            }
            for j, t in moves
        ]
        r.add("adjustments/loop.yaml", document("Adjustments", "qoectl-loop", {"entries": entries}))
    return r


def _paths(tmp: Path, platform: str, *moves: tuple[str, str]) -> dict[str, tuple[str, ...]]:
    """journey -> the transports the rendered text sends it over, first choice first."""
    result = build(_repo(platform, *moves).write(tmp))
    assert result.ok, [d.format() for d in result.errors]
    plan = result.plan(EDGE)
    assert plan is not None
    read: DevicePaths = PATH_PARSERS[platform](render_plan(plan))
    transport_of = {name: t for name, (t, _) in WANS.items()}

    def named(x: str) -> str:  # FortiOS and Linux name interfaces; Cisco names colours
        return transport_of.get(x, x)

    return {
        journey: tuple(named(x) for x in (choice.order or sorted(choice.preferred))) for journey, choice in read.items()
    }


@pytest.mark.parametrize("platform", sorted(PATH_PARSERS))
def test_a_path_move_changes_where_the_device_sends_that_journey_only(platform: str, tmp_path: Path) -> None:
    home = _paths(tmp_path / "home", platform)
    assert home, f"{platform}: the text states no path for any journey"
    voice_home = home[VOICE][0]
    elsewhere = INET if voice_home == "mpls" else "mpls"
    moved = _paths(tmp_path / "moved", platform, ("voice", elsewhere))
    assert moved[VOICE][0] == elsewhere, f"{platform}: voice still goes {moved['voice']}"
    if len(home[VOICE]) > 1:  # where the text states a fallback order, home becomes the backup
        assert moved[VOICE][1] == voice_home
    assert {j: p for j, p in moved.items() if j != VOICE} == {j: p for j, p in home.items() if j != VOICE}
    back = _paths(tmp_path / "back", platform)  # the loop removes its entry when it moves the journey home
    assert back == home
