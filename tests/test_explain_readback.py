"""``qoectl explain`` shows what each device's rendered config does with the journey, read by the platform's parser.

The read-back must agree with the plan it is printed next to (DSCP, strict priority, one share per queued WAN
interface), and it must change when the text does: a config whose strict statement is replaced reads back as not
strict (the same doctoring as the BDD probe test).
"""

from __future__ import annotations

from controller.configtext.meaning import dscp_value
from controller.explain import explain, read_back
from controller.pipeline import Build, render_plan
from tests.test_features_steps import STRICT_TEXT  # each platform's strict statement and a non-strict stand-in


def test_explain_reads_every_device_back_as_the_plan_says(example_build: Build) -> None:
    checked = set()
    for journey in example_build.policy.journeys:
        for d in explain(example_build, journey.name)["devices"]:
            back = d["read_back"]
            assert back is not None and "error" not in back, (journey.name, d["device"], back)
            assert back["dscp"] == dscp_value(d["dscp"]), (journey.name, d["device"])
            assert back["strict_priority"] == d["strict_priority"], (journey.name, d["device"])
            assert {s["interface"] for s in back["shares"]} >= {a["interface"] for a in d["interfaces"]}
            if d["path"]:
                assert back["path"] is not None and back["path"]["preferred"], (journey.name, d["device"])
            checked.add(d["platform"])
    assert checked == {p.platform for p in example_build.plans}


def test_explain_read_back_follows_the_text_not_the_plan(example_build: Build) -> None:
    seen = set()
    for plan in example_build.plans:
        if plan.platform in seen:
            continue
        seen.add(plan.platform)
        files = render_plan(plan)
        assert read_back(plan.platform, files, "voice")["strict_priority"] is True
        strict, loose = STRICT_TEXT[plan.platform]
        doctored = {name: text.replace(strict, loose) for name, text in files.items()}
        assert doctored != files, plan.platform
        back = read_back(plan.platform, doctored, "voice")
        assert back.get("strict_priority") is not True, (plan.platform, back)
    assert seen == set(STRICT_TEXT)


def test_explain_prints_the_read_back_of_every_device(example_build: Build) -> None:
    from click.testing import CliRunner

    from controller.cli.main import cli
    from tests.conftest import EXAMPLE_POLICIES

    result = CliRunner().invoke(cli, ["explain", "voice", str(EXAMPLE_POLICIES)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "the rendered config, read back:" in line]
    carrying = [p for p in example_build.plans if any(m.journey == "voice" for m in p.markings)]
    assert len(lines) == len(carrying) and all("DSCP 46; strict priority; shares " in line for line in lines), lines
