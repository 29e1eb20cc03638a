"""Issue 10, item 13: multi-line descriptions are accepted; ``qoectl explain`` prints only what is set."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result

from controller.cli.main import cli
from controller.errors import PolicyError
from controller.pipeline import build
from tests.conftest import EXAMPLE_POLICIES
from tests.policy_builder import PolicyRepo

NOTES_JOURNEY = """\
apiVersion: qoectl/v1
kind: Journey
metadata:
  name: notes
  description: |
    Shared notes app.
    Owned by: nobody yet; see ticket #42 {draft}!
spec:
  traffic:
    match:
      - protocol: tcp
        destination_ports: [8443]
        destination_prefixes: [198.18.1.0/24]
  target:
    voice:
      mos: 4.0
  priority: high
  bandwidth:
    share_pct: 5
"""
CLASSES = """\
apiVersion: qoectl/v1
kind: ServiceClasses
metadata:
  name: lab-classes
  description: >
    Classes of this lab,
    folded into one line.
spec:
  classes:
    - name: gold
      dscp: [5]
      description: >-
        For the few
        who pay.
"""
SITE = """\
apiVersion: qoectl/v1
kind: Inventory
metadata:
  name: more-sites
spec:
  sites:
    - name: branch-9
      description: |-
        Ground floor,
        closet 2.
"""


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _repo(tmp_path: Path, journey: str = NOTES_JOURNEY) -> Path:
    repo = PolicyRepo.standard()
    repo.add_raw("journeys/notes.yaml", journey)
    repo.add_raw("classes/classes.yaml", CLASSES)
    repo.add_raw("inventory/more-sites.yaml", SITE)
    return repo.write(tmp_path / "policies")


def test_literal_and_folded_descriptions_are_accepted_as_written(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    assert run("validate", root).exit_code == 0, run("validate", root).output
    result = build(root)
    notes = result.policy.journey("notes")
    assert notes is not None
    assert notes.description == "Shared notes app.\nOwned by: nobody yet; see ticket #42 {draft}!\n"
    gold = next(c for c in result.policy.classes if c.name == "gold")
    assert gold.description == "For the few who pay."


def test_owner_stays_on_one_line(tmp_path: Path) -> None:
    """The owner is printed inline (explain's header): a line break there is still an error at its line."""
    root = _repo(tmp_path, NOTES_JOURNEY.replace("  name: notes\n", "  name: notes\n  owner: |\n    a\n    b\n"))
    try:
        diagnostics = list(build(root).errors)
    except PolicyError as exc:
        diagnostics = exc.diagnostics
    assert [(d.field, d.location.line) for d in diagnostics] == [("metadata.owner", 5)]


def test_explain_omits_an_owner_that_is_not_set(tmp_path: Path) -> None:
    result = run("explain", "notes", "--policies", _repo(tmp_path))
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    assert header == "journey notes (voice, priority high)"
    assert "None" not in result.stdout and "null" not in result.stdout
    assert 'target: {"codec": "g711", "mos": 4.0}' in result.stdout


def test_explain_shows_an_owner_that_is_set(tmp_path: Path) -> None:
    result = run("explain", "voice", "--policies", _repo(tmp_path))
    assert result.stdout.splitlines()[0] == "journey voice (voice, priority critical, owner tests@lab.example)"


def test_explain_sla_class_lists_only_the_limits_it_has() -> None:
    """crm-web is interactive: its SD-WAN SLA class has latency and loss, no jitter."""
    result = run("explain", "crm-web", "--policies", EXAMPLE_POLICIES)
    assert result.exit_code == 0, result.output
    assert "None" not in result.stdout and "null" not in result.stdout
    sla = [line.strip() for line in result.stdout.splitlines() if "SLA class" in line]
    assert sla, result.stdout
    for line in sla:
        assert re.fullmatch(r"SLA class crm-web: latency [0-9.]+ ms, loss [0-9.]+ %", line), line


def test_explain_prints_an_owner_with_brackets_as_written(tmp_path: Path) -> None:
    """The owner is free text: '[/team]' is printed, not read as a rich closing tag (that was a traceback)."""
    journey = NOTES_JOURNEY.replace("  name: notes\n", '  name: notes\n  owner: "ops [/team] [bold]x"\n')
    result = run("explain", "notes", "--policies", _repo(tmp_path, journey))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "journey notes (voice, priority high, owner ops [/team] [bold]x)"
