"""The step library must be able to fail: false claims, doctored configs and a user's own repo wiring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.pipeline import Build, render_plan
from controller.testing import bdd_steps as s
from controller.testing.config_probes import strict_priority_probe
from tests.conftest import EXAMPLE_POLICIES


@pytest.fixture(scope="module")
def outcome() -> s.Outcome:
    repo = s.PolicyRepo(EXAMPLE_POLICIES, scratch=False)
    result = s._run(repo, render=False)
    assert result.build is not None and result.build.ok, s._listing(result.errors)
    return result


def test_true_claims_pass(outcome: s.Outcome) -> None:
    s.then_validation_succeeds(outcome)
    s.then_gives_strict_priority(outcome, "every branch router", "voice")
    s.then_priority_share(outcome, None, "33")
    s.then_marked(outcome, "voice", "ef", "every device")
    s.then_budget_at_most(outcome, "one-way delay", "voice", "150", "ms")
    s.then_strict_on_every_platform(outcome, "voice")
    s.then_sla_latency_at_most(outcome, "voice", "150")


@pytest.mark.parametrize(
    ("step", "args", "expected"),
    [
        (s.then_gives_strict_priority, ("every branch router", "crm-web"), "which is not strict priority"),
        (s.then_gives_strict_priority, ('every device tagged "no-such-tag"', "voice"), "selects no device"),
        (s.then_gives_strict_priority, ("all the routers", "voice"), "cannot read the device selection"),
        (s.then_priority_share, (None, "5"), "priority traffic"),
        (s.then_priority_share, ("every branch router", "1.5"), "priority traffic"),
        (s.then_marked, ("voice", "af41", "every device"), "not af41"),
        (s.then_marked, ("voice", "ef", 'every device at site "no-such-site"'), "selects no device"),
        (s.then_marked, ("voice", "zz9", "every device"), "unknown DSCP"),
        (s.then_budget_at_most, ("one-way delay", "voice", "20", "ms"), "more than 20 ms"),
        (s.then_budget_at_most, ("loss", "backups", "1", "%"), "has no loss budget"),
        (s.then_budget_at_most, ("jitter", "no-such-journey", "1", "ms"), "has no budget"),
        (s.then_not_carried, ("voice", "every device"), "carries voice"),
        (s.then_validation_fails_with, ("anything",), "validation succeeded"),
        (s.then_error_points_at, ("qoectl.yaml", 1), "no error points at"),
        (s.then_device_count, (3,), "not 3"),
        (s.then_config_contains, ("cisco_iosxe", "br1-rtr1", "priority level 9"), "does not contain"),
        (s.then_config_contains, ("linux", "br1-rtr1", "priority"), "not linux"),
        (s.then_config_lacks, ("cisco_iosxe", "br1-rtr1", "priority level 1"), "does not contain"),
        (s.then_strict_on_every_platform, ("crm-web",), "not strict priority"),
        (s.then_sla_latency_at_most, ("voice", "149"), "300 ms round trip = 150 ms one-way"),
        (s.then_sla_latency_at_most, ("backups", "150"), "no SD-WAN device has an SLA class"),
    ],
)
def test_false_claims_fail(outcome: s.Outcome, step: object, args: tuple[object, ...], expected: str) -> None:
    with pytest.raises(AssertionError, match=expected):
        step(outcome, *args)  # type: ignore[operator]


def test_a_failed_build_fails_plan_steps(tmp_path: Path) -> None:
    repo = s.PolicyRepo(tmp_path, scratch=True)
    (tmp_path / "broken.yaml").write_text("apiVersion: qoectl/v1\nkind: Journey\nmetadata: {name: x}\n")
    result = s._run(repo, render=False)
    s.then_validation_fails_with(result, "required field is missing")
    s.then_error_points_at(result, "broken.yaml", 1)
    with pytest.raises(AssertionError, match="did not compile"):
        s.then_gives_strict_priority(result, "every device", "voice")
    with pytest.raises(AssertionError, match="validation failed"):
        s.then_validation_succeeds(result)


def test_policy_file_names_cannot_escape_the_repository(tmp_path: Path) -> None:
    repo = s.PolicyRepo(tmp_path / "r", scratch=True)
    for bad in ("../outside.yaml", "/etc/qoectl.yaml", "notes.txt"):
        with pytest.raises(AssertionError, match="relative path"):
            s.given_policy_file(bad, "a: 1", repo, tmp_path)
    assert not (tmp_path / "outside.yaml").exists()


def test_adding_a_file_never_writes_into_a_real_repository(tmp_path: Path) -> None:
    real = s.PolicyRepo(EXAMPLE_POLICIES, scratch=False)
    before = sorted(p.name for p in EXAMPLE_POLICIES.rglob("*"))
    copy = s.given_policy_file("journeys/extra.yaml", "# nothing", real, tmp_path)
    assert copy.scratch and copy.root != EXAMPLE_POLICIES and (copy.root / "journeys/extra.yaml").is_file()
    assert sorted(p.name for p in EXAMPLE_POLICIES.rglob("*")) == before


# Each platform's strict-priority statement, and a plausible non-strict replacement for it.
STRICT_TEXT = {
    "cisco_iosxe": ("priority level 1", "bandwidth remaining percent 9"),
    "linux": (" prio 0 ", " prio 1 "),
    "juniper_junos": ("priority strict-high", "priority low"),
    "arista_eos": ("priority strict", "no priority"),
    "fortios_sdwan": ("set priority top", "set priority high"),
    "cisco_sdwan": ("scheduling llq", "scheduling wrr"),
}


@pytest.mark.parametrize("platform", sorted(STRICT_TEXT))
def test_config_probe_fails_when_the_text_is_not_strict(platform: str, example_build: Build) -> None:
    """The plan says strict; a config that does not say so must fail the config-level check."""
    plan = next((p for p in example_build.plans if p.platform == platform), None)
    probe = strict_priority_probe(platform)
    if plan is None or probe is None:
        pytest.skip(f"the example has no {platform} device or there is no probe for it")
    assert plan is not None and probe is not None
    telephony = plan.qos_class("telephony")
    files = render_plan(plan)
    assert probe(files, plan, telephony) == []
    strict, loose = STRICT_TEXT[platform]
    doctored = {name: text.replace(strict, loose) for name, text in files.items()}
    assert doctored != files, f"{strict!r} not found in the {platform} config"
    assert probe(doctored, plan, telephony), "a config without the strict statement passed the probe"
    standard = plan.qos_class("standard")
    assert probe(files, plan, standard), "the default class passed as strict priority"


def test_every_example_platform_has_a_probe(example_build: Build) -> None:
    missing = sorted({p.platform for p in example_build.plans if strict_priority_probe(p.platform) is None})
    assert not missing, f"no strict-priority probe for {missing}: add one in controller/testing/config_probes.py"


FEATURE_TRUE = """Feature: ours
  Scenario: voice is protected
    Given the policies in "{policies}"
    When they are compiled
    Then every branch router gives voice strict priority
"""
FEATURE_FALSE = """Feature: ours
  Scenario: a false claim
    Given the policies in "{policies}"
    When they are compiled
    Then no WAN link carries more than 2 % priority traffic
"""


@pytest.mark.parametrize(
    ("feature", "code", "expected"), [(FEATURE_TRUE, 0, "1 passed"), (FEATURE_FALSE, 1, "1 failed")]
)
def test_a_users_repository_wired_as_documented(tmp_path: Path, feature: str, code: int, expected: str) -> None:
    """docs/bdd-steps.md: a conftest importing the steps, a feature file, a test module, plain pytest."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nbdd_features_base_dir = features/\n")
    (tmp_path / "conftest.py").write_text("from controller.testing.bdd_steps import *  # noqa: F403\n")
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "ours.feature").write_text(feature.format(policies=EXAMPLE_POLICIES))
    (tmp_path / "test_policies.py").write_text('from pytest_bdd import scenarios\n\nscenarios(".")\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert expected in proc.stdout
    if code:
        assert "priority traffic" in proc.stdout and "%" in proc.stdout
