"""features/verify.feature: qoectl verify end to end through the CLI (pytest-bdd)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_bdd import given, parsers, scenarios, then, when

from controller.cli.main import cli
from tests.verify_support import T0, make_policy, voice_rows, write_csv

scenarios("verify.feature")


@dataclass
class World:
    folder: Path
    rows: list[tuple[object, ...]] = field(default_factory=list)
    survey: list[tuple[object, ...]] = field(default_factory=list)
    exit_code: int = -1
    report: dict[str, Any] = field(default_factory=dict)
    junit: ET.Element | None = None


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@given(parsers.parse("measurements where {site} voice has {delay:g} ms delay and {loss:g} % loss"))
def bad_branch(world: World, site: str, delay: float, loss: float) -> None:
    world.rows = voice_rows(site, delay, 5, loss) + voice_rows("branch-1", 30, 2, 0.1) + voice_rows("hq", 25, 1, 0)


@given("good network measurements and poor survey scores")
def unhappy_users(world: World) -> None:
    world.rows = voice_rows("branch-1", 30, 2, 0.1) + voice_rows("branch-2", 35, 2, 0.1) + voice_rows("hq", 25, 1, 0)
    world.survey = [("voice", "branch-1", T0 + 60 * k, 2, "mos") for k in range(6)]


@given("measurements for branch-1 only")
def one_branch(world: World) -> None:
    world.rows = voice_rows("branch-1", 30, 2, 0.1)


@when("I verify")
def verify(world: World) -> None:
    policy = make_policy(world.folder / "policies")
    args = ["verify", "--policies", str(policy), "--journey", "voice", "--json"]
    args += ["--measurements", str(write_csv(world.folder / "m.csv", world.rows))]
    if world.survey:
        survey = write_csv(world.folder / "survey.csv", world.survey, ("journey", "site", "time", "score", "kind"))
        args += ["--feedback", str(survey)]
    junit = world.folder / "junit.xml"
    result = CliRunner().invoke(cli, [*args, "--junit", str(junit)])
    world.exit_code = result.exit_code
    world.report = json.loads(result.stdout)
    world.junit = ET.parse(junit).getroot()


def _result(world: World, journey: str, site: str) -> dict[str, Any]:
    return next(r for r in world.report["results"] if r["journey"] == journey and r["segment"]["site"] == site)


@then(parsers.parse("the {journey} journey fails at {site} with MOS below {mos:g}"))
def fails_with_mos(world: World, journey: str, site: str, mos: float) -> None:
    result = _result(world, journey, site)
    assert result["status"] == "fail"
    measured = next(c for c in result["checks"] if c["metric"] == "mos")["measured"]
    assert measured < mos
    assert world.exit_code == 1
    assert world.report["results"][0] is result, "the worst comes first"


@then("the JUnit report has one failing case")
def one_failing_case(world: World) -> None:
    assert world.junit is not None
    failing = [c for c in world.junit.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failing] == ["voice @ branch-2"]
    assert world.junit.get("failures") == "1"


@then("the report shows a perception gap")
def perception_gap(world: World) -> None:
    result = _result(world, "voice", "branch-1")
    assert result["status"] == "pass"
    assert result["perception_gap"].startswith("network within budget, users unhappy: look beyond QoS")
    assert world.exit_code == 0


@then(parsers.parse("the {journey} journey is unknown at {site} with no measurements"))
def unknown(world: World, journey: str, site: str) -> None:
    result = _result(world, journey, site)
    assert result["status"] == "unknown" and result["reasons"] == ["no measurements"]
    assert world.exit_code == 3


@then("the JUnit report has no failing case but skipped cases")
def skipped_cases(world: World) -> None:
    assert world.junit is not None
    assert world.junit.get("failures") == "0"
    assert int(world.junit.get("skipped") or 0) == 2
