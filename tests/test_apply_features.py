"""Steps of features/apply.feature: real Linux routers (sshd in namespaces) and an emulated IOS-XE router."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_bdd import given, parsers, scenarios, then, when

from controller.cli.main import cli
from tests.lab.emulators import DeviceLab, start_devices
from tests.lab.netns import Lab
from tests.lab.sshd import LinuxLab, SshRouter, emulated_device_entry, lab_policy, linux_device, requires_sshd

pytestmark = [requires_sshd, pytest.mark.root]

scenarios("apply.feature")

PASSWORD = "bdd-lab-pw-91ac3e"
ENV = {"QOECTL_TEST_USER": "root", "QOECTL_IOS_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD}


@dataclass
class World:
    tmp: Path
    linux: LinuxLab
    emulated: DeviceLab | None = None
    routers: dict[str, SshRouter] = field(default_factory=dict)
    policy: Path | None = None
    known: Path | None = None
    before: dict[str, str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, Any] = field(default_factory=dict)
    faulty: str = ""

    def state(self, name: str) -> str:
        if name in self.routers:
            return self.routers[name].state()
        assert self.emulated is not None
        return self.emulated.devices[name].running_config()

    def names(self) -> list[str]:
        return sorted([*self.routers, *(self.emulated.devices if self.emulated else {})])

    @property
    def last(self) -> dict[str, dict[str, Any]]:
        return {d["device"]: d for d in self.runs[-1]["devices"]}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    lab = Lab()
    linux = LinuxLab(lab, tmp_path / "lab")
    w = World(tmp_path, linux)
    try:
        yield w
    finally:
        if w.emulated is not None:
            w.emulated.stop()
        linux.close()


@given("a lab of two Linux routers and an IOS-XE router")
def lab_of_three(world: World) -> None:
    world.routers = {"linux-1": world.linux.router("linux-1"), "linux-2": world.linux.router("linux-2")}
    world.emulated = start_devices([("ios-1", "cisco_iosxe")], password=PASSWORD)
    world.before = {n: world.state(n) for n in world.names()}


def _write_inventory(world: World) -> None:
    """The policy repo and known_hosts for the routers the scenario ended up with."""
    assert world.emulated is not None
    ios = world.emulated.devices["ios-1"]
    entries = [{**linux_device(r, world.linux.client_key), "name": n} for n, r in world.routers.items()]
    entries.append(emulated_device_entry("ios-1", "cisco_iosxe", ios.port, user_env="QOECTL_IOS_USER"))
    world.policy = lab_policy(world.tmp / "policy", entries)
    world.known = world.tmp / "known_hosts"
    lines = [r.host_key_line for r in world.routers.values()] + [ios.host_key_line]
    world.known.write_text("".join(line + "\n" for line in lines))


@given(parsers.parse('the router "{name}" drops the session mid-push'))
def drops_session(world: World, name: str) -> None:
    world.faulty = name
    if name in world.routers:
        # The same router name, now served by a router whose tc drops the SSH session.
        world.routers[name] = world.linux.router(f"{name}-faulty", fault="drop_session_on_tc")
    else:
        assert world.emulated is not None
        world.emulated.devices[name].fail_after_lines(8)
    world.before = {n: world.state(n) for n in world.names()}


def _apply(world: World, *extra: str) -> None:
    if world.policy is None:
        _write_inventory(world)
    n = len(world.runs)
    args = ["apply", str(world.policy), "--known-hosts", str(world.known), "--lock-dir", str(world.tmp / "locks")]
    args += ["--run-dir", str(world.tmp / f"run-{n}"), "--json", *extra]
    world.marks = {
        "handles": {n: r.nft_handles() for n, r in world.routers.items()},
        "log": len(world.emulated.devices["ios-1"].command_log) if world.emulated else 0,
    }
    result = CliRunner().invoke(cli, args, env=ENV, catch_exceptions=False)
    data = json.loads(result.stdout)
    assert "devices" in data, result.output
    assert PASSWORD not in result.output
    world.runs.append(data)


@when("I apply the example policies")
def apply_policies(world: World) -> None:
    _apply(world)


@when(parsers.parse('I apply the example policies with "{options}"'))
def apply_with(world: World, options: str) -> None:
    _apply(world, *options.split())


@when("I apply again")
def apply_again(world: World) -> None:
    _apply(world)


@then(parsers.parse('every router reports "{status}"'))
def every_reports(world: World, status: str) -> None:
    assert {n: d["status"] for n, d in world.last.items()} == dict.fromkeys(world.names(), status)


@then("every router reports voice in a strict-priority class")
def voice_strict(world: World) -> None:
    for name, r in world.routers.items():
        # nft puts EF into an HTB class; that class has HTB priority 0 (strict), rate == ceil.
        m = re.search(r"ip dscp ef meta priority set (1:[0-9a-f]+)", r.nft_table())
        assert m, name
        assert re.search(rf"class htb {m.group(1)} parent 1:1 leaf \S+ prio 0 rate (\S+) ceil \1", r.tc_classes()), name
    assert world.emulated is not None
    ios = world.emulated.devices["ios-1"].running_config()
    assert re.search(r"class-map match-any QOECTL-TELEPHONY\n match dscp ef", ios)
    assert re.search(r"class QOECTL-TELEPHONY\n  priority level 1", ios)


@then("nothing is sent")
def nothing_sent(world: World) -> None:
    assert all(d["commands_sent"] == 0 for d in world.last.values())
    assert {n: r.nft_handles() for n, r in world.routers.items()} == world.marks["handles"]
    assert world.emulated is not None
    log = world.emulated.devices["ios-1"].command_log[world.marks["log"] :]
    assert not [line for line in log if " config: " in line]


@then("every router is left as it was")
def all_as_before(world: World) -> None:
    assert {n: world.state(n) for n in world.names()} == world.before


@then("that router is left as it was")
def faulty_as_before(world: World) -> None:
    assert world.state(world.faulty) == world.before[world.faulty]
    assert world.last[world.faulty]["left_in"] == "original"


@then(parsers.parse('that router reports "{status}"'))
def faulty_reports(world: World, status: str) -> None:
    assert world.last[world.faulty]["status"] == status, world.last[world.faulty]


@then("the others are changed")
def others_changed(world: World) -> None:
    for name, d in world.last.items():
        if name != world.faulty:
            assert d["status"] == "changed", d
            assert world.state(name) != world.before[name]
