"""qoectl apply against an emulated FortiGate over real SSH (netmiko ``fortinet``; tests/lab/emulators/fortios.py).

The emulator keeps FortiOS's semantics that matter here: a ``config`` block takes effect
at its ``end`` (``abort`` or a dropped session discards it), ``show`` leaves defaults out,
references are checked when set and when the referenced entry is deleted, new entries
go to the end of their table. Every failure must leave the device's sections exactly as
the backup in the run folder says (byte for byte), with foreign SD-WAN members, rules,
health checks, shaping policies and profiles untouched. No root needed.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli.main import cli
from controller.platforms.fortios_sdwan import parser
from controller.platforms.fortios_sdwan.driver import SECTIONS
from tests import apply_support
from tests.apply_support import apply_cli
from tests.lab.emulators import DeviceLab, EmulatedDevice
from tests.lab.emulators.fixtures import emulated_devices  # noqa: F401 - the fixture
from tests.lab.sshd import lab_policy

PASSWORD = "Fgt-pw-4b9e1d-never-print"
ENV = {"QOECTL_TEST_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD}
NAME = "br-fgt"
assert_no_secret = partial(apply_support.assert_no_secret, PASSWORD)

# Someone else's config on the same FortiGate: a member, a health check and a rule of their own (rule 1,
# the number qoectl renders for its first rule), a traffic class, an unattached shaping profile, a shaping
# policy 1 and an address. qoectl must not change a byte of it.
FOREIGN = """\
config system interface
    edit "wan3"
        set vdom "root"
        set ip 192.0.2.129 255.255.255.128
    next
end
config firewall address
    edit "USER-NET"
        set subnet 172.16.0.0 255.255.0.0
    next
end
config firewall traffic-class
    edit 20
        set class-name "USER-CLASS"
    next
end
config firewall shaping-profile
    edit "USER-PROFILE"
        set type queuing
        set default-class-id 20
        config shaping-entries
            edit 1
                set class-id 20
                set guaranteed-bandwidth-percentage 50
            next
        end
    next
end
config firewall shaping-policy
    edit 1
        set name "USER-SP"
        set srcintf "internal"
        set dstintf "wan3"
        set srcaddr "all"
        set dstaddr "USER-NET"
        set service "ALL"
        set class-id 20
    next
end
config system sdwan
    config members
        edit 10
            set interface "wan3"
        next
    end
    config health-check
        edit "USER-HC"
            set server "192.0.2.200"
            set members 10
        next
    end
    config service
        edit 1
            set name "USER-RULE"
            set dst "USER-NET"
            set priority-members 10
        next
    end
end
"""


def device_entry(port: int, wans: int = 3) -> dict[str, object]:
    return {
        "name": NAME,
        "platform": "fortios_sdwan",
        "host": "127.0.0.1",
        "port": port,
        "site": "branch-2",
        "tags": ["wan-edge", "lab", "sdwan"],
        "credentials": {"username_env": "QOECTL_TEST_USER", "password_env": "QOECTL_TEST_PASSWORD"},
        "interfaces": [
            *[
                {"name": "port1", "role": "wan", "transport": "mpls", "bandwidth_kbps": 20000},
                {
                    "name": "wan1",
                    "role": "wan",
                    "transport": "biz-internet",
                    "bandwidth_kbps": 100000,
                    "port_speed_kbps": 1000000,
                },
                {"name": "wan2", "role": "wan", "transport": "lte", "bandwidth_kbps": 20000},
            ][:wans],
            {"name": "internal", "role": "lan", "trust_dscp": False},
        ],
    }


class Fgt:
    """One emulated FortiGate with foreign config, its policy repository, and ``qoectl apply`` on it."""

    def __init__(self, lab: DeviceLab, tmp: Path, wans: int = 3) -> None:
        self.lab = lab
        self.tmp = tmp
        self.dev: EmulatedDevice = lab.devices[NAME]
        self.dev.set_running_config(FOREIGN)
        self.console("standard")  # as for an automation account; test_apply_clean... covers the default "more"
        self.policy = lab_policy(tmp / "policy", [device_entry(self.dev.port, wans)])
        self.known = lab.known_hosts_file(tmp / "known_hosts")
        self.runs = 0
        for journey in ("backups", "os-updates", "training-video"):  # fewer lines to push: a faster test
            self.drop_journey(journey)

    def apply(self, *extra: str, env: dict[str, str] = ENV, known: Path | None = None) -> tuple[Result, dict]:
        self.runs += 1
        result, data = apply_cli(self.policy, known or self.known, self.tmp, f"run-{self.runs}", *extra, env=env)
        return result, data["devices"][0]

    def console(self, mode: str) -> None:
        self.dev.set_running_config(f"config system console\n    set output {mode}\nend\n")

    def console_mode(self) -> str:
        return self.dev._state.show("system console", full=True)  # type: ignore[attr-defined]

    def sections(self) -> str:
        """What the FortiGate's ``show`` prints for the sections the backup holds, read from the emulator itself."""
        state = self.dev._state  # the emulator's own state, not through qoectl's SSH session
        return "".join(state.show(name) for name in SECTIONS)  # type: ignore[attr-defined]

    def backup(self) -> str:
        return (self.tmp / f"run-{self.runs}" / "backups" / NAME / "sections.conf").read_text()

    def config_lines(self, since: int = 0) -> list[str]:
        return [line for line in self.dev.command_log[since:] if " config: " in line]

    def drop_journey(self, name: str) -> None:
        """Remove one journey from the policy (the next apply deletes what only it needed)."""
        for path in (self.policy / "journeys").glob("*.yaml"):
            docs = path.read_text().split("\n---\n")
            kept = [d for d in docs if f"name: {name}\n" not in d]
            if len(kept) != len(docs):
                path.write_text("\n---\n".join(kept))
                return
        raise AssertionError(f"journey {name} not found")

    def rendered(self) -> str:
        out = self.tmp / "plan"
        res = CliRunner().invoke(cli, ["plan", str(self.policy), "--out", str(out)], catch_exceptions=False)
        assert res.exit_code in (0, 2), res.output
        return (out / NAME / "fortios.conf").read_text()


@pytest.fixture
def fgt(emulated_devices, tmp_path: Path) -> Fgt:  # noqa: F811
    return Fgt(emulated_devices([(NAME, "fortios_sdwan")], password=PASSWORD), tmp_path)


@pytest.fixture
def fgt1(emulated_devices, tmp_path: Path) -> Fgt:  # noqa: F811
    """A FortiGate with one WAN link (a smaller change for the line-by-line drop matrix)."""
    return Fgt(emulated_devices([(NAME, "fortios_sdwan")], password=PASSWORD), tmp_path, wans=1)


WANS = ("port1", "wan1", "wan2")


def foreign_entries(text: str) -> dict[tuple[str, str], object]:
    """Every entry of the sections that is not qoectl's (read by the platform's parser), by table and key."""
    tree = parser.tree(text)
    sdwan = tree["system sdwan"]
    tables = {name: t.entries or {} for name, t in tree.items() if name != "system sdwan"}
    tables.update({f"sdwan {name}": t.entries or {} for name, t in sdwan.blocks.items()})
    out: dict[tuple[str, str], object] = {}
    for name, table in tables.items():
        for key, entry in table.items():
            ours = key.startswith("QOECTL-") or any(
                (entry.get(a) or "").startswith("QOECTL-") for a in ("name", "class-name")
            )
            if name == "sdwan members":
                ours = entry.get("interface") in WANS
            if name == "system interface" and key in WANS:
                entry = parser.Block({k: v for k, v in entry.settings.items() if k not in IFACE_OWNED})
            if not ours:
                out[(name, key)] = entry
    return out


IFACE_OWNED = ("outbandwidth", "egress-shaping-profile")


def meaning(text: str) -> dict:
    """The platform parser's per-journey treatment of a FortiOS text (rule headers from the rule names)."""
    rules = parser.tree(text)["system sdwan"].table("service")
    headers = [
        f"# sdwan rule {rid}: journey {m.group(1)}"
        for rid, rule in rules.items()
        if (m := re.fullmatch(r"QOECTL-(.+)-\d+", rule.get("name")))
    ]
    return parser.parse({"fortios.conf": "\n".join(headers) + "\n" + text})


# -- apply, re-apply, minimal change ------------------------------------------------------------------


CONSOLE = {"set output standard", "set output more", "end"}  # netmiko's paging switch at login and back


def test_apply_clean_then_nothing_sent_and_foreign_kept(fgt: Fgt) -> None:
    fgt.console("more")  # a FortiGate's default: netmiko switches paging off at login and back on at logout
    before = fgt.sections()
    res, dry = fgt.apply("--dry-run", "--detailed-exitcode")
    assert res.exit_code == 2 and dry["status"] == "would_change", dry
    assert "+config system sdwan" in dry["diff"] and '+        edit "QOECTL-VOICE"' in dry["diff"]
    # A dry run sends nothing but netmiko's own paging switch, which it undoes.
    assert fgt.sections() == before and {line.split(": ", 1)[1] for line in fgt.config_lines()} <= CONSOLE
    assert "set output more" in fgt.console_mode()

    res, r = fgt.apply()
    assert res.exit_code == 0 and (r["status"], r["left_in"]) == ("changed", "intended"), r
    after = fgt.sections()
    assert len(foreign_entries(before)) >= 12 and foreign_entries(after) == foreign_entries(before)
    # What the device now does means what the rendered file means (the independent parser on both texts).
    assert meaning(after) == meaning(fgt.rendered())
    # The foreign rule 1 and shaping policy 1 kept their numbers; qoectl's took free ones.
    tree = parser.tree(after)
    assert tree["system sdwan"].table("service")["1"].get("name") == "USER-RULE"
    assert (tree["firewall shaping-policy"].entries or {})["1"].get("name") == "USER-SP"
    # What was sent is FortiOS syntax the platform's parser reads (balanced blocks, known statements).
    parser.tree("\n".join(r["commands"]))

    mark = len(fgt.dev.command_log)
    res, again = fgt.apply("--detailed-exitcode")
    assert res.exit_code == 0 and again["status"] == "unchanged" and again["commands_sent"] == 0, again
    assert {line.split(": ", 1)[1] for line in fgt.config_lines(mark)} <= CONSOLE
    assert "set output more" in fgt.console_mode()
    assert_no_secret(res, fgt.tmp)


def test_a_removed_journey_is_deleted_with_minimal_commands(fgt: Fgt) -> None:
    _, r = fgt.apply()
    assert r["status"] == "changed", r
    fgt.drop_journey("crm-web")
    _, r = fgt.apply()
    assert (r["status"], r["left_in"]) == ("changed", "intended"), r
    cmds = r["commands"]
    deletes = [c.strip() for c in cmds if c.strip().startswith("delete ")]
    assert 'delete "QOECTL-CRM-WEB"' in deletes  # the health check
    assert 'delete "QOECTL-NET-10.50.10.0-24"' in deletes and 'delete "QOECTL-CRM-WEB-1"' in deletes
    # Referrers go first: the SD-WAN rule before its health check, shaping policy before service and address.
    flat = [c.strip() for c in cmds]
    assert flat.index("config service") < flat.index("config health-check")
    assert flat.index("config firewall shaping-policy") < flat.index("config firewall service custom")
    assert len(cmds) < 60, cmds  # only what changed: no other entry is re-sent
    assert "QOECTL-CRM-WEB" not in fgt.sections()
    assert meaning(fgt.sections()) == meaning(fgt.rendered())
    _, r = fgt.apply()
    assert r["status"] == "unchanged", r


def test_a_foreign_entry_on_a_rendered_number_stops_before_anything_is_sent(fgt: Fgt) -> None:
    fgt.dev.set_running_config(
        'config firewall traffic-class\n    edit 2\n        set class-name "NOC"\n    next\nend\n'
    )
    before = fgt.sections()
    _, r = fgt.apply()
    assert (r["status"], r["left_in"], r["error_kind"]) == ("failed", "original", "precondition"), r
    assert "firewall traffic-class 2 is a foreign entry" in r["error"]
    assert fgt.sections() == before and not fgt.config_lines()


def test_an_existing_member_keeps_its_number_and_the_rules_follow(fgt: Fgt) -> None:
    """port1 is already SD-WAN member 7 (someone set it up before qoectl): qoectl uses member 7 for it."""
    fgt.dev.set_running_config(
        'config system sdwan\n    config members\n        edit 7\n            set interface "port1"\n'
        "        next\n    end\nend\n"
    )
    _, r = fgt.apply()
    assert r["status"] == "changed", r
    sdwan = parser.tree(fgt.sections())["system sdwan"]
    members = {k: e.get("interface") for k, e in sdwan.table("members").items()}
    assert members["7"] == "port1" and "port1" not in [i for k, i in members.items() if k != "7"], members
    rendered = parser.tree(fgt.rendered())["system sdwan"]
    seq = {k: e.get("interface") for k, e in rendered.table("members").items()}
    to_device = {k: next(d for d, i in members.items() if i == iface) for k, iface in seq.items()}
    rules = {e.get("name"): e for e in sdwan.table("service").values()}
    for want in rendered.table("service").values():
        expected = tuple(to_device[m] for m in want.words("priority-members"))
        assert rules[want.get("name")].words("priority-members") == expected
    checks = {k: e for k, e in sdwan.table("health-check").items() if k.startswith("QOECTL-")}
    assert all("7" in c.words("members") for c in checks.values()), checks
    assert meaning(fgt.sections()) == meaning(fgt.rendered())
    _, r = fgt.apply()
    assert r["status"] == "unchanged", r


# -- the fault matrix ---------------------------------------------------------------------------------


def assert_as_backup(fgt: Fgt, r: dict, kind: str) -> None:
    """The device prints every section exactly as its backup, byte for byte.

    One exception, which the result must state: FortiOS lists a table in creation order and can
    ``move`` entries only in rules and shaping policies, so an address, service, class, profile,
    health check or member a rollback re-created is listed last. Then the same lines must be there
    (settings and uuids included), every table must hold the same entries, and rules and shaping
    policies must be in the backup's order.
    """
    assert (r["status"], r["left_in"], r["error_kind"]) == ("rolled_back", "original", kind), r
    now, backup = fgt.sections(), fgt.backup()
    if now == backup:
        return
    assert "re-created entries are listed last" in r["rollback"], r
    assert sorted(now.splitlines()) == sorted(backup.splitlines())
    assert parser.tree(now) == parser.tree(backup)
    for tree in (parser.tree(now), parser.tree(backup)):
        order = (list(tree["firewall shaping-policy"].entries or {}), list(tree["system sdwan"].table("service")))
        backup_tree = parser.tree(backup)
        assert order == (
            list(backup_tree["firewall shaping-policy"].entries or {}),
            list(backup_tree["system sdwan"].table("service")),
        )


def test_session_dropped_after_every_line_of_a_change_is_rolled_back(fgt1: Fgt) -> None:
    """A device under qoectl, a change of N lines: the session drops after line k, for k = 1, 2, ... N.

    The device counts the lines typed inside a config block (a top-level ``config`` line alone changes
    nothing). The loop ends when k is past the change (the drop never fires and the apply goes through):
    that apply must have typed exactly k - 1 such lines, so every one of them was a drop point.
    """
    fgt = fgt1
    _, r = fgt.apply()
    assert r["status"] == "changed", r
    fgt.drop_journey("crm-web")
    rollbacks: dict[int, str] = {}
    for k in range(1, 200):
        before = fgt.sections()
        fgt.dev.fail_after_lines(k)
        res, r = fgt.apply()
        assert fgt.backup() == before  # the backup is what the device printed
        if r["status"] == "changed":
            assert len([c for c in r["commands"] if not c.startswith("config ")]) == k - 1, (k, r["commands"])
            break
        assert_as_backup(fgt, r, "session_lost")
        rollbacks[k] = r["rollback"]
    fgt.dev.fail_after_lines(None)
    assert_no_secret(res, fgt.tmp)
    assert len(rollbacks) >= 15 and any(d for c in r["commands"] if (d := c.strip().startswith("delete "))), r
    print(
        f"\nFortiOS: a change of {len(rollbacks)} lines, dropped after each: "
        + "; ".join(f"k={k}: {how}" for k, how in rollbacks.items())
    )
    assert "QOECTL-CRM-WEB" not in fgt.sections()


@pytest.mark.parametrize("where", ["first line", "first block's end", "half-way", "last line"])
def test_session_dropped_during_a_first_apply_is_rolled_back(fgt: Fgt, where: str) -> None:
    """A clean device: dropped inside the first block, right after it took effect, mid-way, after the last end."""
    before = fgt.sections()
    _, dry = fgt.apply("--dry-run")
    added = [x[1:] for x in dry["diff"].splitlines() if x.startswith("+") and not x.startswith("+++")]
    typed = [x for x in added if not x.startswith("config ")]  # the lines the device counts
    k = {"first line": 1, "first block's end": typed.index("end") + 1, "half-way": len(typed) // 2}.get(
        where, len(typed)
    )
    fgt.dev.fail_after_lines(k)
    _, r = fgt.apply()
    assert fgt.backup() == before
    assert_as_backup(fgt, r, "session_lost")
    if where != "first line":
        assert "restored" in r["rollback"], r  # blocks had taken effect: they were undone, not just discarded


@pytest.mark.parametrize(
    ("pattern", "first_apply"),
    [
        (r"set class-id 5$", True),  # a shaping-profile entry: blocks before it took effect
        (r'^delete "QOECTL-NET-10\.50\.10', False),  # a deletion at the very end of a change
    ],
)
def test_a_rejected_line_is_rolled_back(fgt: Fgt, pattern: str, first_apply: bool) -> None:
    if not first_apply:
        res, r = fgt.apply()
        assert r["status"] == "changed", r
        fgt.drop_journey("crm-web")
    before = fgt.sections()
    fgt.dev.reject_lines(pattern)
    res, r = fgt.apply()
    assert_as_backup(fgt, r, "rejected")
    assert "Return code -61" in r["error"] or "command parse error" in r["error"], r
    assert fgt.backup() == before
    fgt.dev.reject_lines(None)
    assert_no_secret(res, fgt.tmp)
