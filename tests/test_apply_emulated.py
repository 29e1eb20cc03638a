"""qoectl apply against emulated IOS-XE, EOS and Junos devices over real SSH (FakeNOS-based, tests/lab/emulators).

The emulators keep real state (running/startup config, flash archives, EOS
configure sessions, Junos candidate and commit history) and speak SSH on their own
loopback port. What every driver must do (push, re-apply, minimal diff, rollback,
each fault) is in tests/test_apply_contract.py; here: what is particular to these
three (stale objects removed, foreign config kept, a class inserted in its place).
These tests need no root.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from tests import apply_support
from tests.apply_support import by_device
from tests.lab.emulators import DeviceLab
from tests.lab.emulators.fixtures import emulated_devices  # noqa: F401 - the fixture
from tests.lab.sshd import emulated_device_entry, lab_policy

PASSWORD = "Emu-pw-7f3a9c-never-print"
ENV = {"QOECTL_TEST_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD}
SPECS = [("edge-ios", "cisco_iosxe"), ("edge-eos", "arista_eos"), ("edge-junos", "juniper_junos")]
apply_cli = partial(apply_support.apply_cli, env=ENV)


def setup(emulated_devices, tmp_path: Path) -> tuple[DeviceLab, Path, Path]:  # noqa: F811
    lab = emulated_devices(SPECS, password=PASSWORD)
    policy = lab_policy(
        tmp_path / "policy", [emulated_device_entry(n, d.platform, d.port) for n, d in lab.devices.items()]
    )
    known = lab.known_hosts_file(tmp_path / "known_hosts")
    return lab, policy, known


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
