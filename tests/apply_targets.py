"""The apply driver contract's fixture table: one row a driver, and the target each row starts.

tests/test_apply_contract.py states the contract once; this table says, for every apply driver, how
to start a device it can talk to (an SSH emulator of tests/lab/emulators, or a real Linux router in a
network namespace), how to read that device's state *from the device itself* (not through qoectl),
what the device prints for the backup, how to drift a value qoectl owns and which exact lines repair
it, and how to arm each fault. A driver that cannot satisfy a contract case names it in ``xfail``
with the reason (run as a strict xfail, so a fix shows up as a failure to remove the mark).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from controller.platforms.linux.driver import normalize_state, state_script
from tests.apply_support import apply_cli, by_device, config_lines_since
from tests.lab.emulators import DeviceLab, EmulatedDevice
from tests.lab.emulators.lab import generate_host_key
from tests.lab.sshd import FAULTS, LinuxLab, SshRouter, keygen, lab_policy, linux_device
from tests.test_apply_cisco_sdwan import FOREIGN_EDGE, FOREIGN_VSMART, vsmart_entry, write_policy
from tests.test_apply_fortios import FOREIGN, SECTIONS, device_entry

PASSWORD = "Contract-pw-5d83a0-never-print"
ENV = {"QOECTL_TEST_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD}


@dataclass
class Target(ABC):
    """One device under a driver (and the devices its policy needs), with ``qoectl apply --limit`` on it."""

    name: str
    policy: Path
    known: Path
    tmp: Path
    env: dict[str, str]
    row: Row
    runs: int = 0

    # -- running qoectl ---------------------------------------------------------------------------
    def apply(
        self, *extra: str, env: Mapping[str, str] | None = None, known: Path | None = None, policy: Path | None = None
    ) -> tuple[Result, dict[str, Any]]:
        """``qoectl apply --json --limit NAME`` in a run folder of its own; the result and this device's entry."""
        self.runs += 1
        args = ("--limit", self.name, *self.row.args, *extra)
        res, data = apply_cli(
            policy or self.policy, known or self.known, self.tmp, self.run, *args, env=env or self.env
        )
        return res, by_device(data)[self.name]

    @property
    def run(self) -> str:
        return f"run-{self.runs}"

    def backup(self) -> str:
        """The backup the last run saved, every file of it."""
        folder = self.tmp / self.run / "backups" / self.name
        return "".join(p.read_text() for p in sorted(folder.iterdir()))

    def inventory_with(self, **changes: Any) -> Path:
        """A copy of the policy in which this device's inventory entry has ``changes``."""
        dest = self.tmp / f"policy-{self.runs}-{'-'.join(sorted(changes))}"
        if not dest.exists():
            import shutil

            shutil.copytree(self.policy, dest)
        path = dest / "inventory" / "devices.yaml"
        doc = yaml.safe_load(path.read_text())
        for entry in [*doc["spec"]["devices"], *doc["spec"].get("sdwan_controllers", [])]:
            if entry["name"] == self.name:
                entry.update(json.loads(json.dumps(changes)))
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return dest

    def known_hosts_with_forged_key(self) -> Path:
        """known_hosts in which this device's line carries another key (a man in the middle, to qoectl)."""
        forged = self.tmp / f"known_hosts-forged-{self.runs}"
        lines = self.known.read_text().splitlines()
        ours = [x for x in lines if x.split()[0] == self.host_pattern()]
        assert len(ours) == 1, (self.host_pattern(), lines)
        key = generate_host_key()
        forged.write_text(
            "".join(f"{x}\n" for x in lines if x not in ours)
            + f"{self.host_pattern()} {key.get_name()} {key.get_base64()}\n"
        )
        return forged

    def known_hosts_without(self) -> Path:
        path = self.tmp / f"known_hosts-without-{self.runs}"
        path.write_text(
            "".join(f"{x}\n" for x in self.known.read_text().splitlines() if x.split()[0] != self.host_pattern())
        )
        return path

    # -- what each kind of target answers -----------------------------------------------------------
    @abstractmethod
    def host_pattern(self) -> str:
        """The device's known_hosts name ("[host]:port")."""

    @abstractmethod
    def state(self) -> str:
        """Everything qoectl may change on the device, read from the device itself."""

    @abstractmethod
    def printed(self) -> str:
        """What the device prints for qoectl's read (what the backup must hold), read from the device itself."""

    @abstractmethod
    def mark(self) -> object:
        """A value that changes whenever the device is configured (config lines received, rule handles)."""

    @abstractmethod
    def arm_drop(self, k: int) -> bool:
        """Drop the session after the k-th config line; False when the target has no drop point k."""

    @abstractmethod
    def arm_reject(self) -> None:
        """Make the device refuse a line of the next push."""

    @abstractmethod
    def disarm(self) -> None:
        """No more faults."""

    def wrong_credentials(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`apply` that log in with a wrong password (or key)."""
        return {"env": {**self.env, "QOECTL_TEST_PASSWORD": "not-the-password"}}


@dataclass
class EmulatedTarget(Target):
    lab: DeviceLab = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def dev(self) -> EmulatedDevice:
        return self.lab[self.name]

    def host_pattern(self) -> str:
        return f"[{self.dev.host}]:{self.dev.port}"

    def state(self) -> str:
        return self.row.state(self.dev)

    def printed(self) -> str:
        return self.row.printed(self.dev)

    def mark(self) -> object:
        return len(config_lines_since(self.dev, 0))

    def arm_drop(self, k: int) -> bool:
        self.dev.fail_after_lines(k)
        return True

    def arm_reject(self) -> None:
        self.dev.reject_lines(self.row.reject)

    def disarm(self) -> None:
        self.dev.fail_after_lines(None)
        self.dev.reject_lines(None)


PASSTHROUGH_TC = '#!/bin/sh\nexec /usr/sbin/tc "$@"\n'


@dataclass
class LinuxTarget(Target):
    router: SshRouter = field(default=None, repr=False)  # type: ignore[assignment]
    client_key: Path = field(default=None, repr=False)  # type: ignore[assignment]
    armed: bool = False

    def host_pattern(self) -> str:
        return f"[{self.router.host}]:{self.router.port}"

    def state(self) -> str:
        return normalize_state(self.router.sh(state_script(("wan0",))))

    def printed(self) -> str:
        return self.state()  # qoectl-state.txt: the state script's output, normalized (counters out)

    def backup(self) -> str:
        return (self.tmp / self.run / "backups" / self.name / "qoectl-state.txt").read_text()

    def mark(self) -> object:
        return (self.router.nft_handles(), self.router.tc_classes(stats=True))

    def _tc(self, program: str) -> None:
        (self.router.workdir / "faultbin" / "tc").write_text(program.replace("{rdir}", str(self.router.workdir)))

    def arm_drop(self, k: int) -> bool:
        if k > 1:  # the router's fault program drops the session at one point only: when tc loads tc.batch
            return False
        self._tc(FAULTS["drop_session_on_tc"])
        return True

    def arm_reject(self) -> None:
        self._tc(FAULTS["reject_tc_line"])

    def disarm(self) -> None:
        self._tc(PASSTHROUGH_TC)

    def wrong_credentials(self) -> dict[str, Any]:
        wrong = self.tmp / "not_authorized_ed25519"
        if not wrong.exists():
            keygen(wrong)
        return {"policy": self.inventory_with(credentials={"username_env": "QOECTL_TEST_USER", "key_file": str(wrong)})}


# -- the rows ------------------------------------------------------------------------------------------


def _drift_value(pattern: str, new: str) -> Callable[[Target], list[str]]:
    """Drift: the device's value matched by ``pattern`` (group 'v') is set to ``new`` behind qoectl's back."""

    def drift(t: Target) -> list[str]:
        assert isinstance(t, EmulatedTarget)
        text = t.dev.running_config()
        m = re.search(pattern, text, re.MULTILINE)
        assert m, (pattern, text)
        t.dev.set_running_config(text[: m.start("v")] + new + text[m.end("v") :])
        return [line.format(old=m.group("v"), new=new, **m.groupdict()) for line in t.row.repair]

    return drift


def _running(dev: EmulatedDevice) -> str:
    return dev.running_config() + "\n# startup\n" + dev.startup_config()


@dataclass(frozen=True)
class Row:
    """One apply driver: its target and what is particular to it."""

    platform: str
    reject: str = ""  # a line of the first push the device refuses (regex), for emulators
    repair: tuple[str, ...] = ()  # the exact lines that undo :attr:`drift` (formatted with its match)
    drift: Callable[[Target], list[str]] | None = None
    state: Callable[[EmulatedDevice], str] = _running
    printed: Callable[[EmulatedDevice], str] = lambda d: d.running_config()
    pushed: Callable[[Target, dict[str, Any]], None] = lambda t, r: None  # platform facts after a push
    xfail: Mapping[str, str] = field(default_factory=dict)  # contract case -> why this driver cannot
    args: tuple[str, ...] = ()  # more options for qoectl apply
    rollback_says: str = ""  # how the driver undoes a push (in the result's "rollback")
    # How many of a change's lines the device can drop the session after (it counts config lines).
    drop_points: Callable[[list[str]], int] = len


def _ios_pushed(t: Target, r: dict[str, Any]) -> None:
    assert isinstance(t, EmulatedTarget)
    # Voice in a strict-priority class, the shaper on the WAN interface.
    assert re.search(r"class QOECTL-TELEPHONY\n  priority level 1\n  police cir \d+", t.dev.running_config())
    assert "service-policy output QOECTL-SHAPE-GIGABITETHERNET0-0-0" in t.dev.running_config()
    assert t.dev.startup_config() == t.dev.running_config()  # saved
    assert not [f for f in t.dev.flash_files() if f.startswith("qoectl-")]  # the rollback archive was cleaned up


def _eos_pushed(t: Target, r: dict[str, Any]) -> None:
    assert isinstance(t, EmulatedTarget)
    assert re.search(r"tx-queue 7\n\s+priority strict", t.dev.running_config())  # voice's queue
    assert t.dev.startup_config() == t.dev.running_config() and not t.dev.config_sessions()


def _junos_pushed(t: Target, r: dict[str, Any]) -> None:
    assert isinstance(t, EmulatedTarget)
    assert "schedulers QOECTL-GE-0-0-0-TELEPHONY priority strict-high" in t.dev.running_config()
    assert [c.kind for c in t.dev.commits[-2:]] == ["commit confirmed", "commit"]
    assert r["commands"][-1].startswith("commit confirmed")


def _fortios_sections(dev: EmulatedDevice) -> str:
    return "".join(dev._state.show(name) for name in SECTIONS)  # type: ignore[attr-defined]


def _sdwan_pushed(t: Target, r: dict[str, Any]) -> None:
    assert r["commands"][-1] == "commit", r["commands"]


DROP = "session_dropped_after_every_line_of_a_change_is_rolled_back"
IOS_BANNER = "Building configuration...\n\nCurrent configuration : {n} bytes\n"
EOS_BANNER = "! Command: show running-config\n! device: {host} (vEOS-lab, EOS-4.31.2F)\n"

ROWS: dict[str, Row] = {
    "cisco_iosxe": Row(
        "cisco_iosxe",
        reject=r"QOECTL-J-VOICE",
        drift=_drift_value(
            r"^(?P<ctx>policy-map \S+)\n(?: .*\n)*? class QOECTL-SIGNALING\n  bandwidth remaining percent (?P<v>\d+)$",
            "77",
        ),
        repair=(
            "{ctx}",
            " class QOECTL-SIGNALING",
            "  no bandwidth remaining percent {new}",
            "  bandwidth remaining percent {old}",
        ),
        printed=lambda d: IOS_BANNER.format(n=len(d.running_config())) + d.running_config(),
        pushed=_ios_pushed,
        rollback_says="configure replace flash:",
    ),
    "arista_eos": Row(
        "arista_eos",
        reject=r"QOECTL-J-VOICE",
        drift=_drift_value(
            r"^(?P<ctx>policy-map type quality-of-service \S+)\n(?:   .*\n)*?   (?P<cls>class QOECTL-\S+)\n"
            r"      set dscp (?P<v>\S+)$",
            "cs1",
        ),
        repair=("{ctx}", " {cls}", "  no set dscp {new}", "  set dscp {old}"),
        printed=lambda d: EOS_BANNER.format(host=d.name) + d.running_config(),
        pushed=_eos_pushed,
        xfail={
            DROP: "dropped right after the configure session's commit, the driver reverts with inverse lines; "
            "they re-add the drifted 'set dscp' after 'set traffic-class' (the emulator keeps the order lines "
            "were added in), so the device's text differs from the backup in order and the result is "
            "failed/unknown, not rolled_back (the read-back catches it)",
        },
    ),
    "juniper_junos": Row(
        "juniper_junos",
        reject=r"scheduler-maps QOECTL-SM",
        drift=_drift_value(
            r"^set (?P<ctx>class-of-service schedulers QOECTL-\S+) transmit-rate percent (?P<v>\d+)$", "77"
        ),
        repair=(
            "delete {ctx} transmit-rate percent {new}",
            "set {ctx} transmit-rate percent {old}",
            "commit confirmed 2",
        ),
        pushed=_junos_pushed,
    ),
    "fortios_sdwan": Row(
        "fortios_sdwan",
        reject=r"dscp-forward-tag 101110",
        drift=_drift_value(
            r'^ +edit "(?P<ctx>QOECTL-[^"]+)"\n(?: +(?:set|config|edit|next|end).*\n)*? +config shaping-entries\n'
            r" +edit (?P<entry>\d+)\n(?: +set .*\n)*? +set guaranteed-bandwidth-percentage (?P<v>\d+)$",
            "77",
        ),
        repair=(
            "config firewall shaping-profile",
            '    edit "{ctx}"',
            "        config shaping-entries",
            "            edit {entry}",
            "                set guaranteed-bandwidth-percentage {old}",
            "            next",
            "        end",
            "    next",
            "end",
        ),
        state=_fortios_sections,
        printed=_fortios_sections,
        drop_points=lambda lines: len([x for x in lines if not x.startswith("config ")]),  # a bare "config" is not
    ),
    "cisco_sdwan": Row(
        "cisco_sdwan",
        reject=r"QOECTL-GE0-1-Q3",
        drift=_drift_value(r"(?P<ctx>qos-scheduler QOECTL-GE0-1-Q7)\n(?:  .*\n)*?  bandwidth-percent (?P<v>\d+)", "77"),
        repair=(
            "policy",
            " {ctx}",
            "  no bandwidth-percent {new}",
            "  bandwidth-percent {old}",
            " exit",
            "exit",
            "commit",
        ),
        state=lambda d: d.running_config(),
        pushed=_sdwan_pushed,
    ),
    "cisco_sdwan_controller": Row(
        "cisco_sdwan_controller",
        reject=r"sla-class QOECTL-SLA-VOICE",
        drift=_drift_value(r"(?P<ctx>sla-class QOECTL-SLA-VOICE)\n  latency (?P<v>\d+)", "301"),
        repair=("policy", " {ctx}", "  no latency {new}", "  latency {old}", " exit", "exit", "commit"),
        state=lambda d: d.running_config(),
        pushed=_sdwan_pushed,
    ),
    # Each apply builds a throwaway namespace on the router to check the config: a longer command timeout.
    "linux": Row(
        "linux",
        repair=("watchdog: restore what the push touched unless confirmed within 120s", "tc -batch tc.batch"),
        args=("--command-timeout", "30"),
        drop_points=lambda lines: 1,  # the router's fault program drops the session when tc loads tc.batch
    ),
}


def _linux_drift(t: Target) -> list[str]:
    """Someone deletes qoectl's qdisc tree on wan0 by hand."""
    assert isinstance(t, LinuxTarget)
    t.router.ns.exec("tc", "qdisc", "del", "dev", "wan0", "root")
    return list(t.row.repair)


DRIFTS: dict[str, Callable[[Target], list[str]]] = {"linux": _linux_drift}


def drift(t: Target) -> list[str]:
    """Change one value qoectl owns on ``t`` behind its back; the exact lines qoectl must send to repair it."""
    fn = DRIFTS.get(t.row.platform) or t.row.drift
    assert fn is not None, t.row.platform
    return fn(t)


# -- starting targets ----------------------------------------------------------------------------------

EMULATED_ENTRY_PLATFORMS = ("cisco_iosxe", "arista_eos", "juniper_junos")


def start(
    platform: str, emulated_devices: Callable[..., DeviceLab], tmp: Path, linux_lab: Callable[[], LinuxLab]
) -> Target:
    """The target of ``platform``'s driver, in a fresh lab below ``tmp``."""
    row = ROWS[platform]
    if platform == "linux":
        lab = linux_lab()
        router = lab.router("r1", fault="gate_tc")  # a tc program of the test's own: armed per case
        policy = lab_policy(tmp / "policy", [linux_device(router, lab.client_key)])
        t = LinuxTarget(
            "r1",
            policy,
            lab.known_hosts_file(tmp / "known_hosts"),
            tmp,
            {**ENV, "QOECTL_TEST_USER": "root"},
            row,
            router=router,
            client_key=lab.client_key,
        )
        t.disarm()
        return t
    if platform in EMULATED_ENTRY_PLATFORMS:
        from tests.lab.sshd import emulated_device_entry

        lab = emulated_devices([("dut", platform)], password=PASSWORD)
        policy = lab_policy(tmp / "policy", [emulated_device_entry("dut", platform, lab["dut"].port)])
        name = "dut"
    elif platform == "fortios_sdwan":
        lab = emulated_devices([("br-fgt", platform)], password=PASSWORD)
        lab["br-fgt"].set_running_config(FOREIGN)
        # Paging off, as for an automation account (else netmiko's login switches it, in config mode, and back).
        lab["br-fgt"].set_running_config("config system console\n    set output standard\nend\n")
        policy = lab_policy(tmp / "policy", [device_entry(lab["br-fgt"].port, wans=1)])
        name = "br-fgt"
    else:
        lab = emulated_devices(
            [("sd-edge1", "cisco_sdwan"), ("sd-edge2", "cisco_sdwan"), ("vsmart1", "cisco_sdwan_controller")],
            password=PASSWORD,
        )
        for n, extra in (("sd-edge1", FOREIGN_EDGE), ("sd-edge2", FOREIGN_EDGE), ("vsmart1", FOREIGN_VSMART)):
            lab[n].set_running_config(lab[n].running_config().replace("\nend", "\n" + extra + "end"))
        policy = write_policy(tmp, lab, vsmart_entry(lab))
        name = "sd-edge1" if platform == "cisco_sdwan" else "vsmart1"
    return EmulatedTarget(name, policy, lab.known_hosts_file(tmp / "known_hosts"), tmp, dict(ENV), row, lab=lab)
