"""qoectl apply against emulated IOS-XE, EOS and Junos devices over real SSH (FakeNOS-based, tests/lab/emulators).

The emulators keep real state (running/startup config, flash archives, EOS
configure sessions, Junos candidate and commit history), speak SSH on their own
loopback port, and can drop a session after k config lines or reject lines.
These tests need no root.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest

from tests import apply_support
from tests.apply_support import by_device, config_lines_since
from tests.lab.emulators import DeviceLab
from tests.lab.emulators.fixtures import emulated_devices  # noqa: F401 - the fixture
from tests.lab.sshd import emulated_device_entry, lab_policy

PASSWORD = "Emu-pw-7f3a9c-never-print"
ENV = {"QOECTL_TEST_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD}
SPECS = [("edge-ios", "cisco_iosxe"), ("edge-eos", "arista_eos"), ("edge-junos", "juniper_junos")]
apply_cli = partial(apply_support.apply_cli, env=ENV)
assert_no_secret = partial(apply_support.assert_no_secret, PASSWORD)


def setup(emulated_devices, tmp_path: Path) -> tuple[DeviceLab, Path, Path]:  # noqa: F811
    lab = emulated_devices(SPECS, password=PASSWORD)
    policy = lab_policy(
        tmp_path / "policy", [emulated_device_entry(n, d.platform, d.port) for n, d in lab.devices.items()]
    )
    known = lab.known_hosts_file(tmp_path / "known_hosts")
    return lab, policy, known


def test_apply_three_platforms_then_nothing_sent(emulated_devices, tmp_path: Path) -> None:  # noqa: F811
    lab, policy, known = setup(emulated_devices, tmp_path)
    ios, eos, junos = (lab.devices[n] for n, _ in SPECS)
    before = {n: d.running_config() for n, d in lab.devices.items()}

    res, data = apply_cli(policy, known, tmp_path, "dry", "--dry-run", "--detailed-exitcode")
    assert res.exit_code == 2
    assert {d["status"] for d in data["devices"]} == {"would_change"}
    assert {n: d.running_config() for n, d in lab.devices.items()} == before
    assert all(not config_lines_since(d, 0) for d in lab.devices.values())

    res, data = apply_cli(policy, known, tmp_path, "run-1", "--workers", "3")
    assert res.exit_code == 0, res.output
    results = by_device(data)
    assert {d["status"] for d in data["devices"]} == {"changed"}, data
    # Voice is in a strict-priority class on every platform, and the change was saved/committed.
    assert re.search(r"class QOECTL-TELEPHONY\n  priority level 1\n  police cir \d+", ios.running_config())
    assert "service-policy output QOECTL-SHAPE-GIGABITETHERNET0-0-0" in ios.running_config()
    assert ios.startup_config() == ios.running_config()
    assert not [f for f in ios.flash_files() if f.startswith("qoectl-")]  # the archive was cleaned up
    assert re.search(r"tx-queue 7\n\s+priority strict", eos.running_config())
    assert eos.startup_config() == eos.running_config() and not eos.config_sessions()
    assert re.search(r"schedulers QOECTL-GE-0-0-0-TELEPHONY priority strict-high", junos.running_config())
    assert [c.kind for c in junos.commits[-2:]] == ["commit confirmed", "commit"]
    assert results["edge-junos"]["commands"][-1].startswith("commit confirmed")
    # Everything that was not qoectl's is untouched.
    for name, d in lab.devices.items():
        for line in before[name].splitlines():
            if "hostname" in line or "host-name" in line:
                assert line in d.running_config()

    marks = {n: len(d.command_log) for n, d in lab.devices.items()}
    res, data = apply_cli(policy, known, tmp_path, "run-2", "--detailed-exitcode")
    assert res.exit_code == 0, res.output
    assert {d["status"] for d in data["devices"]} == {"unchanged"}
    assert all(d["commands_sent"] == 0 for d in data["devices"])
    assert all(not config_lines_since(d, marks[n]) for n, d in lab.devices.items())  # nothing sent
    assert_no_secret(res, tmp_path)


def test_drift_gets_minimal_commands_and_foreign_config_is_kept(emulated_devices, tmp_path: Path) -> None:  # noqa: F811
    lab, policy, known = setup(emulated_devices, tmp_path)
    ios, _eos, junos = (lab.devices[n] for n, _ in SPECS)
    res, _ = apply_cli(policy, known, tmp_path, "run-1")
    assert res.exit_code == 0, res.output

    # Someone edits a qoectl value, leaves a stale qoectl object behind, and adds their own config.
    text = ios.running_config()
    m = re.search(r"(class QOECTL-SIGNALING\n  bandwidth remaining percent )(\d+)", text)
    assert m, text
    original = m.group(2)
    text = text[: m.start(2)] + "77" + text[m.end(2) :]
    text = text.replace(
        "\nend",
        "\nclass-map match-any QOECTL-OLD\n match dscp cs2\n!\nclass-map match-any USER-CM\n match dscp cs3\n!\nend",
    )
    ios.set_running_config(text)
    junos.set_running_config(
        junos.running_config() + "set class-of-service forwarding-classes class QOECTL-OLD queue-num 7\n"
    )

    res, data = apply_cli(policy, known, tmp_path, "run-2")
    assert res.exit_code == 0, res.output
    results = by_device(data)
    assert results["edge-eos"]["status"] == "unchanged"
    cmds = results["edge-ios"]["commands"]
    assert "no class-map match-any QOECTL-OLD" in cmds
    assert "  no bandwidth remaining percent 77" in cmds and f"  bandwidth remaining percent {original}" in cmds
    assert len(cmds) <= 6, cmds  # removal + the one class edited in its context, nothing else
    assert "USER-CM" in ios.running_config() and "QOECTL-OLD" not in ios.running_config()
    assert results["edge-junos"]["commands"] == [
        "delete class-of-service forwarding-classes class QOECTL-OLD queue-num 7",
        "commit confirmed 2",
    ]
    assert "QOECTL-OLD" not in junos.running_config()


@pytest.mark.parametrize("fault", ["drop", "reject"])
def test_fault_on_each_platform_leaves_it_as_it_was(emulated_devices, tmp_path: Path, fault: str) -> None:  # noqa: F811
    """A session dropped mid-push or a rejected line: rolled back the platform's way, others unaffected."""
    lab = emulated_devices([*SPECS, ("other-ios", "cisco_iosxe")], password=PASSWORD)
    policy = lab_policy(
        tmp_path / "policy", [emulated_device_entry(n, d.platform, d.port) for n, d in lab.devices.items()]
    )
    known = lab.known_hosts_file(tmp_path / "known_hosts")
    faulty = [lab.devices[n] for n, _ in SPECS]
    for d in faulty:
        if fault == "drop":
            d.fail_after_lines(12)
        else:
            d.reject_lines(r"QOECTL-J-VOICE|QOECTL-J6-CALL|scheduler-maps QOECTL-SM")
    before = {d.name: (d.running_config(), d.startup_config()) for d in faulty}

    res, data = apply_cli(policy, known, tmp_path, "run", "--on-failure", "continue")
    assert res.exit_code == 1
    results = by_device(data)
    for d in faulty:
        r = results[d.name]
        assert (r["status"], r["left_in"]) == ("rolled_back", "original"), r
        assert r["error_kind"] == ("session_lost" if fault == "drop" else "rejected"), r
        assert r["rollback"], r
        assert (d.running_config(), d.startup_config()) == before[d.name], d.name
    assert not lab.devices["edge-eos"].config_sessions()
    assert results["other-ios"]["status"] == "changed"
    assert "QOECTL-TELEPHONY" in lab.devices["other-ios"].running_config()
    assert "configure replace flash:" in results["edge-ios"]["rollback"]
    assert_no_secret(res, tmp_path)


def test_wrong_password_and_host_keys(emulated_devices, tmp_path: Path) -> None:  # noqa: F811
    lab, policy, known = setup(emulated_devices, tmp_path)
    before = {n: d.running_config() for n, d in lab.devices.items()}
    wrong = {**ENV, "QOECTL_TEST_PASSWORD": "not-the-password"}
    res, data = apply_cli(policy, known, tmp_path, "wrong", env=wrong)
    assert res.exit_code == 1
    assert {(d["status"], d["error_kind"], d["left_in"]) for d in data["devices"]} == {("failed", "auth", "original")}

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    res, data = apply_cli(policy, empty, tmp_path, "unknown")
    assert {d["error_kind"] for d in data["devices"]} == {"host_key"}
    assert all("--accept-new-host-keys" in d["error"] for d in data["devices"])

    lab.devices["edge-ios"].rotate_host_key()
    res, data = apply_cli(policy, known, tmp_path, "rotated", "--limit", "edge-ios", "--accept-new-host-keys")
    d = by_device(data)["edge-ios"]
    assert (d["status"], d["error_kind"]) == ("failed", "host_key") and "CHANGED" in d["error"]
    assert {n: dev.running_config() for n, dev in lab.devices.items()} == before


def test_a_class_added_between_existing_classes_lands_in_its_place(emulated_devices, tmp_path: Path) -> None:  # noqa: F811
    """Classes of a policy-map are matched in order: a journey whose class sorts between existing ones.

    The devices append a new class at the end (before class-default), so qoectl
    re-adds the classes from the first one out of place, and the read-back
    finds the intended order.
    """
    lab, policy, known = setup(emulated_devices, tmp_path)
    video = policy / "journeys" / "video.yaml"
    full = video.read_text()
    docs = full.split("\n---\n")
    meetings = [d for d in docs if "name: video-meetings" in d]
    assert len(meetings) == 1
    video.write_text("\n---\n".join(d for d in docs if d not in meetings))
    res, data = apply_cli(policy, known, tmp_path, "without")
    assert res.exit_code == 0, res.output
    ios, eos = lab.devices["edge-ios"], lab.devices["edge-eos"]
    assert "QOECTL-MULTIMEDIA-CONFERENCING" not in ios.running_config()

    video.write_text(full)
    res, data = apply_cli(policy, known, tmp_path, "with")
    assert res.exit_code == 0, res.output
    results = by_device(data)
    assert {results[n]["status"] for n in ("edge-ios", "edge-eos", "edge-junos")} == {"changed"}, data

    def classes(text: str, policy_map: str) -> list[str]:
        block = text.split(f"\n{policy_map}\n", 1)[1].split("\n!", 1)[0]
        return [line.strip() for line in block.splitlines() if line.strip().startswith("class ")]

    queues = classes(ios.running_config(), "policy-map QOECTL-Q-GIGABITETHERNET0-0-0")
    assert queues.index("class QOECTL-SIGNALING") + 1 == queues.index("class QOECTL-MULTIMEDIA-CONFERENCING")
    assert queues[-1] == "class class-default"
    marks = classes(ios.running_config(), "policy-map QOECTL-MARK")
    assert marks.index("class QOECTL-J-VIDEO-MEETINGS") + 1 == marks.index("class QOECTL-J-VOICE")
    eos_marks = classes(eos.running_config(), "policy-map type quality-of-service QOECTL-MARK")
    assert eos_marks.index("class QOECTL-J-VIDEO-MEETINGS") + 1 == eos_marks.index("class QOECTL-J-VOICE")
    # Only the classes from the insertion point on were re-sent, not the whole policy-map.
    sent = results["edge-ios"]["commands"]
    assert " no class QOECTL-J-VOICE" in sent and " no class QOECTL-J-BACKUPS" not in sent, sent

    res, data = apply_cli(policy, known, tmp_path, "again", "--detailed-exitcode")
    assert res.exit_code == 0 and {d["status"] for d in data["devices"]} == {"unchanged"}, data
