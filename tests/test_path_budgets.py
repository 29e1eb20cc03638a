"""Every budget (one-way delay, jitter, loss) against every WAN path a journey can take (issue 10, item 6).

A path is a WAN interface of a device the journey reaches, with the delay,
jitter and loss of its transport in the inventory. At each device some path
must meet the journey's budgets at once, or validation fails at the budget's
line; a preferred transport that cannot meet them is a warning naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.errors import Diagnostic
from controller.pipeline import build
from tests.policy_builder import PolicyRepo, device, lan, transport, video_journey, voice_journey, wan


def _repo_with(transports: list[dict[str, Any]], wans: list[tuple[str, str]]) -> PolicyRepo:
    """The standard lab with extra transports, and br1-rtr1 on the given (interface, transport) WAN links."""
    repo = PolicyRepo.standard(journeys=False)
    repo.docs("inventory/sites.yaml")[0]["spec"]["transports"].extend(transports)
    devices = repo.devices()
    devices[0] = device(
        "br1-rtr1",
        "cisco_iosxe",
        "branch-1",
        interfaces=[*(wan(name, 20000, t) for name, t in wans), lan("GigabitEthernet0/1/0")],
    )
    return repo.set_devices(devices)


def _all(root: Path) -> list[Diagnostic]:
    return list(build(root).diagnostics)


def _conferencing(name: str, **target: Any) -> dict[str, Any]:
    doc = video_journey(name)
    doc["spec"]["target"]["video"].update(target)
    doc["spec"]["scope"] = {"sites": ["branch-1"]}
    return doc


def test_pinned_jitter_and_loss_no_path_can_meet(tmp_path: Path) -> None:
    """The issue's case: MOS 4.0 with jitter 0 and loss 0 pinned, on paths with 2 ms jitter, 0.01 % loss (was clean)."""
    repo = PolicyRepo.standard(journeys=False)
    target = {"voice": {"codec": "g711", "mos": 4.0, "jitter_ms": 0, "loss_pct": 0}}
    repo.add_journey(voice_journey("voice", target=target))
    diags = [d for d in _all(repo.write(tmp_path)) if d.severity == "error"]
    jitter = [d for d in diags if d.field == "spec.target.voice.jitter_ms"]
    loss = [d for d in diags if d.field == "spec.target.voice.loss_pct"]
    assert {d.message.split("at device ")[1].split(" ")[0] for d in jitter} == {"br1-rtr1", "hq-rtr1"}, [
        d.format() for d in diags
    ]
    assert {d.message.split("at device ")[1].split(" ")[0] for d in loss} == {"br1-rtr1", "hq-rtr1"}
    assert all(d.location.line == repo.line_of("journeys/voice.yaml", r"^      jitter_ms: 0") for d in jitter)
    assert all(d.location.line == repo.line_of("journeys/voice.yaml", r"^      loss_pct: 0") for d in loss)
    d = next(d for d in jitter if "br1-rtr1" in d.message)
    assert "jitter budget 0 ms" in d.message and "GigabitEthernet0/0/0 (mpls), 2 ms" in d.message, d.format()
    assert "at least 2 ms" in d.hint
    d = next(d for d in loss if "br1-rtr1" in d.message)
    assert "loss budget 0 %" in d.message and "0.01 %" in d.message, d.format()


def test_a_derived_budget_of_a_journey_without_experience_target_is_checked(tmp_path: Path) -> None:
    """Video conferencing is judged on its budgets (30 ms jitter by default): a 40 ms jitter path cannot carry it."""
    repo = _repo_with([transport("radio", 10, 40, 0.01)], [("GigabitEthernet0/0/0", "radio")])
    repo.add_journey(_conferencing("meet"))
    diags = [d for d in _all(repo.write(tmp_path)) if d.severity == "error"]
    hits = [d for d in diags if "jitter budget" in d.message]
    assert len(hits) == 1, [d.format() for d in diags]
    d = hits[0]
    assert d.field == "spec.target.video"  # derived, not written: the target is the line to change
    assert d.location.line == repo.line_of("journeys/meet.yaml", r"^    video:")
    assert "jitter budget 30 ms" in d.message and "br1-rtr1" in d.message and "radio), 40 ms" in d.message


def test_no_single_path_meets_every_budget(tmp_path: Path) -> None:
    """One path is fast but lossy, the other clean but slow: each budget alone can be met, not all on one path."""
    repo = _repo_with(
        [transport("fast-lossy", 10, 1, 0.5), transport("slow-clean", 80, 1, 0.001)],
        [("GigabitEthernet0/0/0", "fast-lossy"), ("GigabitEthernet0/0/2", "slow-clean")],
    )
    repo.add_journey(_conferencing("meet", one_way_delay_ms=50, loss_pct=0.1))
    diags = [d for d in _all(repo.write(tmp_path)) if d.severity == "error"]
    hits = [d for d in diags if "meets every budget" in d.message]
    assert len(hits) == 1, [d.format() for d in diags]
    d = hits[0]
    assert d.field == "spec.target.video"
    assert d.location.line == repo.line_of("journeys/meet.yaml", r"^    video:")
    assert "no WAN path at device br1-rtr1" in d.message
    assert "GigabitEthernet0/0/0 (fast-lossy): loss 0.5 % > 0.1 %" in d.message, d.format()
    assert "GigabitEthernet0/0/2 (slow-clean): one-way 80 ms > 50 ms" in d.message, d.format()


def test_one_path_that_meets_every_budget_is_enough(tmp_path: Path) -> None:
    repo = _repo_with(
        [transport("fast-lossy", 10, 1, 0.5), transport("clean", 30, 1, 0.01)],
        [("GigabitEthernet0/0/0", "fast-lossy"), ("GigabitEthernet0/0/2", "clean")],
    )
    repo.add_journey(_conferencing("meet", one_way_delay_ms=50, loss_pct=0.1))
    result = build(repo.write(tmp_path))
    assert result.ok, [d.format() for d in result.errors]


def test_a_derived_budget_under_an_experience_target_is_not_an_error(tmp_path: Path) -> None:
    """Streaming with a start-up target: its derived loss (Mathis at the largest RTT) is a detail, as in verify."""
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(video_journey("tv", "streaming", port=8080, startup_s=5))  # derived loss 0.008 % < mpls 0.01 %
    result = build(repo.write(tmp_path))
    assert result.ok, [d.format() for d in result.errors]
    assert result.budgets["tv"].loss_pct is not None and result.budgets["tv"].loss_pct < 0.01


def test_a_preferred_transport_that_cannot_meet_the_budgets_is_a_warning(tmp_path: Path) -> None:
    """A 55 ms LTE transport preferred for a 33 ms budget: a warning naming it; mpls (20 ms) is fine."""
    repo = _repo_with(
        [transport("lte", 55, 10, 0.2)], [("GigabitEthernet0/0/0", "mpls"), ("GigabitEthernet0/0/2", "lte")]
    )
    doc = _conferencing("meet", one_way_delay_ms=33)
    doc["spec"]["sdwan"] = {"preferred_transports": ["lte", "mpls"]}
    repo.add_journey(doc)
    result = build(repo.write(tmp_path))
    assert result.ok, [d.format() for d in result.errors]  # mpls meets every budget: no error
    warnings = [d for d in result.diagnostics if d.severity == "warning"]
    assert len(warnings) == 1, [d.format() for d in result.diagnostics]
    w = warnings[0]
    assert w.field == "spec.sdwan.preferred_transports[0]"
    assert w.location.line == repo.line_of("journeys/meet.yaml", r"^    - lte")
    assert "preferred transport lte" in w.message and "one-way 55 ms > 33 ms" in w.message, w.format()
    assert w.format().startswith("warning: ")


def test_a_preferred_transport_is_held_to_derived_budgets_too(tmp_path: Path) -> None:
    """Voice at MOS 4.0 gets a 9.9 ms jitter budget (its SD-WAN SLA class): LTE's 15 ms jitter is out of it."""
    repo = _repo_with(
        [transport("lte", 60, 15, 0.2)], [("GigabitEthernet0/0/0", "mpls"), ("GigabitEthernet0/0/2", "lte")]
    )
    repo.add_journey(voice_journey("voice", scope={"sites": ["branch-1"]}, sdwan={"preferred_transports": ["lte"]}))
    result = build(repo.write(tmp_path))
    assert result.ok, [d.format() for d in result.errors]
    warnings = [d for d in result.diagnostics if d.severity == "warning"]
    assert [w.field for w in warnings] == ["spec.sdwan.preferred_transports[0]"], [w.format() for w in warnings]
    assert "jitter 15 ms > 9.9 ms" in warnings[0].message


def test_the_bundled_example_policies_stay_clean() -> None:
    root = Path(__file__).resolve().parent.parent / "policies"
    result = build(root)
    assert result.ok, [d.format() for d in result.errors]
