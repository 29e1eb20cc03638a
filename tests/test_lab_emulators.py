"""The emulated devices of tests/lab/emulators, driven by REAL netmiko/paramiko over SSH on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
import pytest
from netmiko import BaseConnection, ConnectHandler
from netmiko.exceptions import (
    ConfigInvalidException,
    NetmikoAuthenticationException,
    NetmikoTimeoutException,
    ReadTimeout,
)
from netmiko.juniper import JuniperSSH

from tests.lab.emulators import Commit, EmulatedDevice, start_devices
from tests.lab.emulators.fixtures import (
    LabFactory,
    emulated_devices_fixture,  # noqa: F401 - the emulated_devices fixture
)
from tests.lab.emulators.ios_like import GRAMMARS, Node, parse_config
from tests.lab.emulators.junos import reference_errors, validate_path

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"

#: netmiko error_pattern per platform
ERROR_PATTERN = {
    "cisco_iosxe": r"% Invalid input detected at '\^' marker\.",
    "arista_eos": r"% Invalid input",
    "juniper_junos": r"syntax error\.|unknown command\.",
}

ALL = ["cisco_iosxe", "arista_eos", "juniper_junos"]


@pytest.fixture(autouse=True)
def no_leftover_lab_threads() -> Iterator[None]:
    """Every SSH connection thread and commit-confirmed timer of a lab is gone after the test."""
    yield
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith(("lab-ssh-", "lab-junos-"))]
    assert leftovers == []


@contextmanager
def connect(device: EmulatedDevice, **overrides: Any) -> Iterator[BaseConnection]:
    conn = ConnectHandler(**device.netmiko_params(**overrides))
    try:
        yield conn
    finally:
        conn.disconnect()


def junos(conn: BaseConnection) -> JuniperSSH:
    assert isinstance(conn, JuniperSSH)
    return conn


def one(factory: LabFactory, platform: str, name: str = "r1", **kwargs: Any) -> EmulatedDevice:
    return factory([(name, platform)], **kwargs).devices[name]


def show_config(conn: BaseConnection, platform: str) -> str:
    cmd = "show configuration | display set" if platform == "juniper_junos" else "show running-config"
    out = conn.send_command(cmd)
    assert isinstance(out, str)
    return out


def tree_contains(haystack: list[Node], needle: list[Node]) -> list[str]:
    """Lines of ``needle`` missing from ``haystack`` at the same place of the hierarchy."""
    missing: list[str] = []
    for node in needle:
        same = next((h for h in haystack if h.text == node.text), None)
        if same is None:
            missing.append(node.text)
        else:
            missing += [f"{node.text} > {m}" for m in tree_contains(same.children, node.children)]
    return missing


def config_lines(path: Path) -> list[str]:
    """The lines of a rendered config as the apply engine would push them."""
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith(("!", "#"))]


# --------------------------------------------------------------------------------------------
# connecting, session preparation, show
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ALL)
def test_connect_and_show_running_config(emulated_devices: LabFactory, platform: str) -> None:
    dev = one(emulated_devices, platform)
    with connect(dev) as conn:
        prompt = conn.find_prompt()
        out = show_config(conn, platform)
    expected_prompt = {"cisco_iosxe": "r1#", "arista_eos": "r1#", "juniper_junos": "qoectl@r1>"}[platform]
    assert prompt == expected_prompt
    if platform == "juniper_junos":
        assert out.strip() == dev.running_config().strip()
        assert "set system host-name r1" in out
    else:
        body = dev.running_config()
        assert body.strip() in out
        assert "hostname r1" in out
    log = "\n".join(dev.command_log)
    prep = {
        "cisco_iosxe": ["terminal width 511", "terminal length 0"],
        "arista_eos": ["terminal width 511", "terminal length 0"],
        "juniper_junos": ["set cli screen-width 511", "set cli screen-length 0"],
    }[platform]
    for cmd in prep:
        assert f"exec: {cmd}" in log
    assert dev.logins == 1


def test_devices_get_distinct_ports_and_keys(emulated_devices: LabFactory) -> None:
    lab = emulated_devices([("a", "cisco_iosxe"), ("b", "arista_eos"), ("c", "juniper_junos"), ("d", "cisco_iosxe")])
    ports = [d.port for d in lab.devices.values()]
    assert len(set(ports)) == 4
    keys = [d.host_key_line.split()[2] for d in lab.devices.values()]
    assert len(set(keys)) == 4
    for dev in lab.devices.values():
        assert dev.host == "127.0.0.1"
        assert dev.host_key_line.startswith(f"[127.0.0.1]:{dev.port} ssh-ed25519 AAAA")


@pytest.mark.parametrize("platform", ALL)
def test_initial_config_is_settable(emulated_devices: LabFactory, platform: str) -> None:
    dev = one(emulated_devices, platform)
    if platform == "juniper_junos":
        dev.set_running_config("set system host-name edge9\nset interfaces ge-0/0/5 description uplink\n")
    else:
        dev.set_running_config("hostname edge9\n!\ninterface GigabitEthernet9\n description uplink\n!\nend\n")
    with connect(dev) as conn:
        assert conn.find_prompt() in ("edge9#", "qoectl@edge9>")
        out = show_config(conn, platform)
    assert "uplink" in out
    assert "uplink" in dev.running_config()


# --------------------------------------------------------------------------------------------
# IOS-XE
# --------------------------------------------------------------------------------------------

QOS_IOSXE = [
    "ip access-list extended VOICE-ACL",
    " permit udp any any range 16384 32767",
    "class-map match-any VOICE",
    " match access-group name VOICE-ACL",
    " match dscp ef",
    "policy-map WAN-OUT",
    " class VOICE",
    "  priority level 1",
    "  police cir 1800000",
    " class class-default",
    "  bandwidth remaining percent 50",
    "  fair-queue",
    "  random-detect dscp-based",
    "policy-map WAN-SHAPE",
    " class class-default",
    "  shape average 100000000",
    "  service-policy WAN-OUT",
    "interface GigabitEthernet0/0/0",
    " service-policy output WAN-SHAPE",
]


def test_iosxe_config_set_builds_hierarchy_and_save(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "cisco_iosxe")
    startup_before = dev.startup_config()
    with connect(dev) as conn:
        out = conn.send_config_set(QOS_IOSXE, error_pattern=ERROR_PATTERN["cisco_iosxe"])
        assert "r1(config-pmap-c)#" in out and "r1(config-cmap)#" in out and "r1(config-ext-nacl)#" in out
        assert "r1(config-pmap-c-police)#" in out and "r1(config-if)#" in out
        running = dev.running_config()
        assert (
            "policy-map WAN-OUT\n class VOICE\n  priority level 1\n  police cir 1800000\n"
            " class class-default\n  bandwidth remaining percent 50\n  fair-queue\n  random-detect dscp-based\n!"
        ) in running
        # ACL entries get sequence numbers, as IOS-XE shows them
        assert "ip access-list extended VOICE-ACL\n 10 permit udp any any range 16384 32767\n!" in running
        assert "interface GigabitEthernet0/0/0\n negotiation auto\n service-policy output WAN-SHAPE\n!" in running
        assert dev.startup_config() == startup_before  # not saved yet

        # a key statement replaces its sibling; "no" removes lines and blocks
        conn.send_config_set(
            ["policy-map WAN-OUT", " class class-default", "  bandwidth remaining percent 40", "  no fair-queue"]
        )
        conn.send_config_set(["no class-map VOICE", "int gi0/0/0", "no service-policy output WAN-SHAPE"])
        running = dev.running_config()
        assert "bandwidth remaining percent 40" in running and "percent 50" not in running
        assert "fair-queue" not in running
        assert "class-map" not in running
        assert "service-policy output" not in running

        section = conn.send_command("show running-config | section policy-map")
        assert isinstance(section, str)
        assert section.startswith("policy-map WAN-OUT") and "interface" not in section

        saved = conn.save_config()
        assert "[OK]" in saved
    assert dev.startup_config() == dev.running_config()


def test_iosxe_do_show_in_config_mode_and_exit_levels(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "cisco_iosxe")
    with connect(dev) as conn:
        out = conn.send_config_set(
            ["policy-map P", "class C", "exit", "exit", "hostname edge1", "do show running-config | include hostname"],
            exit_config_mode=False,
        )
        assert "r1(config-pmap)#" in out  # exit from the class goes up one level
        assert "edge1(config)#" in out  # the prompt follows the hostname
        assert "hostname edge1" in out.split("do show running-config")[-1]
        conn.exit_config_mode()
        assert conn.find_prompt() == "edge1#"
        conn.set_base_prompt()
        # abbreviations, and a pipe regex with an alternation
        filtered = conn.send_command("sh run | i ^hostname|^interface GigabitEthernet0/0/1")
        assert filtered == "hostname edge1\ninterface GigabitEthernet0/0/1"


def test_iosxe_invalid_line_error_and_caret(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "cisco_iosxe")
    with connect(dev) as conn:
        with pytest.raises(ConfigInvalidException, match="frobnicate"):
            conn.send_config_set(["policy-map P", "frobnicate everything"], error_pattern=ERROR_PATTERN["cisco_iosxe"])
        conn.exit_config_mode()
        out = conn.send_config_set(["class-map match-any C", "match dscp banana"])
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.endswith("match dscp banana"))
    assert lines[at + 2] == "% Invalid input detected at '^' marker."
    # the caret points at the offending word, counted from the start of the prompt
    assert lines[at + 1].index("^") == lines[at].index("banana")
    assert "banana" not in dev.running_config() and "frobnicate" not in dev.running_config()
    assert "policy-map P" in dev.running_config()


def test_iosxe_archive_and_configure_replace(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "cisco_iosxe")
    with connect(dev) as conn:
        out = conn.send_command("copy running-config flash:qoectl-base.cfg", expect_string=r"Destination filename")
        assert "[qoectl-base.cfg]?" in out
        out = conn.send_command("\n", expect_string=r"#", cmd_verify=False)
        assert "bytes copied" in out
        base = dev.running_config()
        assert dev.flash_files() == {"qoectl-base.cfg": base}
        out = conn.send_command("copy running-config startup-config", expect_string=r"Destination filename")
        assert "[startup-config]?" in out
        assert "[OK]" in str(conn.send_command("\n", expect_string=r"#", cmd_verify=False))

        conn.send_config_set(QOS_IOSXE)
        assert dev.running_config() != base
        listing = conn.send_command("dir flash:")
        assert isinstance(listing, str) and "qoectl-base.cfg" in listing
        archive = conn.send_command("show archive")
        assert isinstance(archive, str) and "flash:qoectl-base.cfg" in archive

        out = conn.send_command("configure replace flash:qoectl-base.cfg force")
        assert isinstance(out, str) and "Rollback Done" in out
        assert dev.running_config() == base

        # without "force" the device asks first
        conn.send_config_set(["hostname changed"])
        conn.set_base_prompt()
        out = conn.send_command("configure replace flash:qoectl-base.cfg", expect_string=r"\[no\]:")
        assert "Enter Y if you are sure you want to proceed" in out
        conn.send_command("Y", expect_string=r"#")
        assert dev.running_config() == base

        missing = conn.send_command("configure replace flash:nope.cfg force", expect_string=r"#")
        assert isinstance(missing, str) and "%Error opening flash:nope.cfg" in missing


def test_iosxe_file_prompt_quiet_skips_the_question(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "cisco_iosxe")
    with connect(dev) as conn:
        conn.send_config_set(["file prompt quiet"])
        out = conn.send_command("copy running-config flash:quiet.cfg")
        assert isinstance(out, str) and "bytes copied" in out
    assert "quiet.cfg" in dev.flash_files()


# --------------------------------------------------------------------------------------------
# EOS
# --------------------------------------------------------------------------------------------

QOS_EOS = [
    "qos map dscp 46 to traffic-class 7",
    "ip access-list VOICE-ACL",
    "permit udp any any range 16384 32767",
    "class-map type qos match-any VOICE",
    "match ip access-group VOICE-ACL",
    "policy-map type quality-of-service MARK",
    "class VOICE",
    "set dscp ef",
    "set traffic-class 7",
    "interface Ethernet1",
    "qos trust dscp",
    "service-policy type qos input MARK",
    "tx-queue 7",
    "priority strict",
    "tx-queue 0",
    "no priority",
    "bandwidth percent 60",
]


def test_eos_config_set_and_save(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "arista_eos")
    with connect(dev) as conn:
        out = conn.send_config_set(QOS_EOS, error_pattern=ERROR_PATTERN["arista_eos"])
        assert "r1(config-if-Et1-txq-0)#" in out and "r1(config-pmap-c-qos-MARK-VOICE)#" in out
        running = dev.running_config()
        assert "ip access-list VOICE-ACL\n   10 permit udp any any range 16384 32767\n!" in running
        assert (
            "interface Ethernet1\n   qos trust dscp\n   service-policy type qos input MARK\n"
            "   tx-queue 7\n      priority strict\n   tx-queue 0\n      no priority\n      bandwidth percent 60\n!"
        ) in running
        assert "qos map dscp 46 to traffic-class 7" in running
        # a stored negation and its positive form replace each other
        conn.send_config_set(["interface Ethernet1", "tx-queue 0", "priority strict", "exit", "no qos trust"])
        running = dev.running_config()
        assert "      no priority\n      bandwidth percent 60" not in running
        assert "   tx-queue 0\n      priority strict" in running
        assert "   no qos trust" in running and "qos trust dscp" not in running
        assert dev.startup_config() != running
        assert "Copy completed successfully." in conn.save_config()
    assert dev.startup_config() == dev.running_config()


def test_eos_invalid_line(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "arista_eos")
    with connect(dev) as conn:
        with pytest.raises(ConfigInvalidException):
            conn.send_config_set(["interface Ethernet2", "duplex full"], error_pattern=ERROR_PATTERN["arista_eos"])
        conn.exit_config_mode()
        out = conn.send_config_set(["interface Ethernet2", "duplex full", "qos map dscp 99 to traffic-class 1"])
    assert "r1(config-if-Et2)#duplex full\n% Invalid input (at token 0: 'duplex')\n" in out
    assert out.count("% Invalid input") == 2
    assert "duplex" not in dev.running_config() and "dscp 99" not in dev.running_config()


def test_eos_configure_session_commit_and_abort(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "arista_eos")
    before = dev.running_config()
    with connect(dev) as conn:
        out = conn.send_config_set(
            ["qos map dscp 46 to traffic-class 7", "interface Ethernet2", "description via-session"],
            config_mode_command="configure session qoectl1",
            exit_config_mode=False,
        )
        assert "r1(config-s-qoectl1-if-Et2)#" in out
        # changes are invisible until commit, also from another session
        assert dev.running_config() == before
        with connect(dev) as other:
            assert "via-session" not in show_config(other, "arista_eos")
        assert "via-session" in dev.config_sessions()["qoectl1"]
        diff = conn.send_command("show session-config", expect_string=r"\)#")
        assert isinstance(diff, str) and "description via-session" in diff
        conn.send_command("commit", expect_string=r"r1#")
        assert "description via-session" in dev.running_config()
        assert dev.config_sessions() == {}

        conn.send_config_set(
            ["interface Ethernet3", "description never", "abort"], config_mode_command="configure session qoectl2"
        )
        assert "never" not in dev.running_config()
        assert dev.config_sessions() == {}

        # "end" leaves a session pending; re-entering it continues it
        conn.send_config_set(["hostname later"], config_mode_command="configure session s3")
        assert "s3" in dev.config_sessions() and "hostname r1" in dev.running_config()
        conn.send_config_set(["commit"], config_mode_command="configure session s3")
    assert "hostname later" in dev.running_config()


# --------------------------------------------------------------------------------------------
# Junos
# --------------------------------------------------------------------------------------------

QOS_JUNOS = [
    "set class-of-service forwarding-classes class EF queue-num 5",
    "set class-of-service schedulers S-EF transmit-rate percent 20",
    "set class-of-service schedulers S-EF priority strict-high",
    "set class-of-service scheduler-maps SM forwarding-class EF scheduler S-EF",
    "set class-of-service interfaces ge-0/0/0 scheduler-map SM",
    "set firewall family inet filter MARK term VOICE from dscp ef",
    "set firewall family inet filter MARK term VOICE then forwarding-class EF",
    "set interfaces ge-0/0/0 unit 0 family inet filter input MARK",
]


def test_junos_commit_compare_and_rollback(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "juniper_junos")
    initial = dev.running_config()
    with connect(dev) as conn:
        conn.send_config_set(QOS_JUNOS, exit_config_mode=False, error_pattern=ERROR_PATTERN["juniper_junos"])
        assert dev.running_config() == initial  # only the candidate changed
        compare = conn.send_command("show | compare", expect_string=r"#\s*$")
        assert isinstance(compare, str)
        for line in QOS_JUNOS:
            assert f"+ {line}" in compare
        assert "commit complete" in junos(conn).commit(comment="qos v1")
        running = dev.running_config()
        for line in QOS_JUNOS:
            assert line in running
        assert dev.commits[-1].comment == "qos v1" and dev.commits[-1].user == "qoectl"

        # a single-valued leaf is replaced, not duplicated
        conn.send_config_set(["set class-of-service schedulers S-EF transmit-rate percent 30"], exit_config_mode=False)
        conn.commit()
        running = dev.running_config()
        assert "transmit-rate percent 30" in running and "transmit-rate percent 20" not in running

        # rollback 1 + commit restores the previous commit
        out = conn.send_command("rollback 1", expect_string=r"#\s*$")
        assert isinstance(out, str) and "load complete" in out
        conn.commit()
        assert "transmit-rate percent 20" in dev.running_config()
        # rollback 0 discards candidate changes
        conn.send_config_set(["delete class-of-service"], exit_config_mode=False)
        assert "class-of-service" not in dev.candidate_config()
        conn.send_command("rollback 0", expect_string=r"#\s*$")
        assert dev.candidate_config() == dev.running_config()
        conn.exit_config_mode()
        history = conn.send_command("show system commit")
        assert isinstance(history, str) and "by qoectl via cli" in history
    kinds = [c.kind for c in dev.commits]
    assert kinds == ["initial", "commit", "commit", "commit"]
    assert all(isinstance(c, Commit) for c in dev.commits)


def test_junos_commit_confirmed_rolls_back_unless_confirmed(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "juniper_junos")
    dev.set_seconds_per_minute(0.3)
    initial = dev.running_config()
    with connect(dev) as conn:
        conn.send_config_set(["set system host-name r1-new"], exit_config_mode=False)
        out = junos(conn).commit(confirm=True, confirm_delay=1)
        assert "commit confirmed will be automatically rolled back in 1 minutes unless confirmed" in out
        assert "host-name r1-new" in dev.running_config()
        assert dev.wait_for_commits(3, timeout=30)
    last = dev.commits[-1]
    assert last.kind == "rollback" and last.user == "root"
    assert dev.running_config() == initial
    assert dev.candidate_config() == initial

    # confirmed by a second commit: no rollback
    with connect(dev) as conn:
        conn.send_config_set(["set system host-name r1-new"], exit_config_mode=False)
        junos(conn).commit(confirm=True, confirm_delay=1)
        prompt_banner = conn.send_command("\n", expect_string=r"#\s*$", cmd_verify=False)
        assert "# commit confirmed will be rolled back in 1 minutes" in str(prompt_banner)
        conn.commit()
    time.sleep(1.5)  # five times the (scaled) minute: a pending rollback would have happened
    assert [c.kind for c in dev.commits][-2:] == ["commit confirmed", "commit"]
    assert "host-name r1-new" in dev.running_config()


def test_junos_errors(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "juniper_junos")
    with connect(dev) as conn:
        with pytest.raises(ConfigInvalidException):
            conn.send_config_set(
                ["set class-of-service schedulers S1 colour blue"], error_pattern=ERROR_PATTERN["juniper_junos"]
            )
        out = conn.send_config_set(
            ["set system host-name r1", "set protocolz ospf", "frobnicate"], exit_config_mode=False
        )
        assert "syntax error." in out and "unknown command." in out
        caret_line = out.splitlines()[out.splitlines().index("qoectl@r1# set protocolz ospf") + 1]
        assert caret_line.index("^") == len("qoectl@r1# set ")
        # a dangling reference fails the commit check; nothing is committed
        conn.send_config_set(["set class-of-service scheduler-maps SM forwarding-class EF scheduler NOPE"])
        with pytest.raises(ValueError, match="error: configuration check-out failed"):
            conn.commit()
        check = conn.send_command("commit check", expect_string=r"#\s*$")
        assert "Referenced scheduler 'NOPE' is not defined" in str(check)
    assert "NOPE" not in dev.running_config() and "NOPE" in dev.candidate_config()
    assert len(dev.commits) == 1


# --------------------------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------------------------

DROP_LINES = {
    "cisco_iosxe": ["hostname r1-a", "policy-map P1", "policy-map P2", "policy-map P3", "policy-map P4"],
    "arista_eos": ["hostname r1-a", "policy-map P1", "policy-map P2", "policy-map P3", "policy-map P4"],
    "juniper_junos": [f"set firewall policer P{i} then discard" for i in range(5)],
}


@pytest.mark.parametrize("platform", ALL)
def test_session_drop_mid_push_keeps_lines_sent_so_far(emulated_devices: LabFactory, platform: str) -> None:
    dev = one(emulated_devices, platform)
    lines = DROP_LINES[platform]
    dev.fail_after_lines(3)
    with connect(dev) as conn, pytest.raises((ReadTimeout, OSError, EOFError)):
        conn.send_config_set(lines, read_timeout=2)
    state = dev.candidate_config() if platform == "juniper_junos" else dev.running_config()
    for line in lines[:3]:
        assert line in state
    for line in lines[3:]:
        assert line not in state
    # one-shot: the repair session gets through
    with connect(dev) as conn:
        conn.send_config_set(lines[3:], exit_config_mode=platform != "juniper_junos")
        if platform == "juniper_junos":
            conn.commit()
    final = dev.running_config()
    for line in lines:
        assert line in final


@pytest.mark.parametrize("platform", ALL)
def test_reject_lines_matching_a_pattern(emulated_devices: LabFactory, platform: str) -> None:
    dev = one(emulated_devices, platform)
    lines = DROP_LINES[platform]
    dev.reject_lines(r"P2\b")
    with connect(dev) as conn:
        with pytest.raises(ConfigInvalidException, match="P2"):
            conn.send_config_set(lines, error_pattern=ERROR_PATTERN[platform])
        state = dev.candidate_config() if platform == "juniper_junos" else dev.running_config()
        assert lines[1] in state and lines[2] not in state and lines[3] not in state
        dev.reject_lines(None)
        if platform != "juniper_junos":
            conn.exit_config_mode()
        conn.send_config_set(lines[2:], error_pattern=ERROR_PATTERN[platform])
    state = dev.candidate_config() if platform == "juniper_junos" else dev.running_config()
    assert all(line in state for line in lines)


@pytest.mark.parametrize("platform", ALL)
def test_wrong_password_is_refused(emulated_devices: LabFactory, platform: str) -> None:
    dev = one(emulated_devices, platform)
    with pytest.raises(NetmikoAuthenticationException):
        ConnectHandler(**dev.netmiko_params(password="not-the-password"))
    with pytest.raises(NetmikoAuthenticationException):
        ConnectHandler(**dev.netmiko_params(username="intruder"))
    assert dev.auth_failures >= 2 and dev.logins == 0


# --------------------------------------------------------------------------------------------
# host keys
# --------------------------------------------------------------------------------------------


def paramiko_connect(dev: EmulatedDevice, known_hosts: Path) -> None:
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            dev.host,
            port=dev.port,
            username=dev.username,
            password=dev.password,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    finally:
        client.close()


def test_host_key_checked_against_known_hosts(emulated_devices: LabFactory, tmp_path: Path) -> None:
    lab = emulated_devices([("r1", "cisco_iosxe"), ("r2", "juniper_junos")])
    r1, r2 = lab.devices["r1"], lab.devices["r2"]
    known = lab.known_hosts_file(tmp_path / "known_hosts")
    assert known.read_text().splitlines() == [r1.host_key_line, r2.host_key_line]

    paramiko_connect(r1, known)  # accepted
    strict = {"ssh_strict": True, "system_host_keys": False, "alt_host_keys": True, "alt_key_file": str(known)}
    with connect(r1, **strict) as conn:
        assert conn.find_prompt() == "r1#"

    only_r2 = lab.known_hosts_file(tmp_path / "only_r2", ["r2"])
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        paramiko_connect(r1, only_r2)

    old_line = r1.host_key_line
    new_line = r1.rotate_host_key()
    assert new_line != old_line and new_line.startswith(f"[127.0.0.1]:{r1.port} ssh-ed25519 ")
    with pytest.raises(paramiko.BadHostKeyException):
        paramiko_connect(r1, known)
    with pytest.raises(NetmikoTimeoutException, match="Host key for server"):
        ConnectHandler(**r1.netmiko_params(**strict))
    paramiko_connect(r2, known)  # the other device is unaffected
    paramiko_connect(r1, lab.known_hosts_file(tmp_path / "rotated"))


def test_rsa_host_keys(emulated_devices: LabFactory, tmp_path: Path) -> None:
    lab = emulated_devices([("r1", "arista_eos")], host_key_type="rsa")
    dev = lab.devices["r1"]
    assert dev.host_key_line.startswith(f"[127.0.0.1]:{dev.port} ssh-rsa AAAA")
    paramiko_connect(dev, lab.known_hosts_file(tmp_path / "known_hosts"))


# --------------------------------------------------------------------------------------------
# lifecycle
# --------------------------------------------------------------------------------------------


def test_stop_closes_sessions_and_frees_the_port() -> None:
    lab = start_devices([("r1", "cisco_iosxe"), ("r2", "juniper_junos")])
    try:
        dev = lab.devices["r1"]
        conn = ConnectHandler(**dev.netmiko_params())
        assert conn.find_prompt() == "r1#"
    finally:
        lab.stop()
    try:
        channel = conn.remote_conn
        assert isinstance(channel, paramiko.Channel)
        transport = channel.get_transport()
        deadline = time.monotonic() + 10
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not transport.is_active()  # the server hung up on the open session
    finally:
        conn.disconnect()
    for device in lab.devices.values():
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", device.port), timeout=5):
            pass
    lab.stop()  # idempotent


def test_lab_context_manager_and_bad_specs() -> None:
    with start_devices([("x", "cisco_iosxe")]) as lab:
        port = lab["x"].port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(ValueError, match="unknown platform"):
        start_devices([("x", "cisco_nxos")])
    with pytest.raises(ValueError, match="duplicate"):
        start_devices([("x", "cisco_iosxe"), ("x", "arista_eos")])


# --------------------------------------------------------------------------------------------
# what qoectl renders is accepted (golden configs of the renderers, where present)
# --------------------------------------------------------------------------------------------

GOLDEN_FILES = sorted(
    [(p, "cisco_iosxe") for p in GOLDEN.glob("cisco_iosxe/*/qos.cfg")]
    + [(p, "arista_eos") for p in GOLDEN.glob("arista_eos/*/qos.cfg")]
    + [(p, "juniper_junos") for p in GOLDEN.glob("juniper_junos/*/*.set")]
)


@pytest.mark.parametrize(("path", "platform"), GOLDEN_FILES, ids=[f"{p.parent.name}-{pl}" for p, pl in GOLDEN_FILES])
def test_rendered_golden_config_is_accepted(emulated_devices: LabFactory, path: Path, platform: str) -> None:
    dev = one(emulated_devices, platform)
    lines = [ln for ln in config_lines(path) if ln.strip() != "end"]
    with connect(dev) as conn:
        out = conn.send_config_set(lines, exit_config_mode=platform != "juniper_junos", read_timeout=30)
        for err in ("% Invalid", "% Incomplete", "syntax error", "unknown command", "error:"):
            assert err not in out, out[max(out.find(err) - 300, 0) : out.find(err) + 100]
        if platform == "juniper_junos":
            assert "commit complete" in conn.commit()
    if platform == "juniper_junos":
        running = dev.running_config().splitlines()
        assert [ln for ln in lines if ln.startswith("set ") and ln not in running] == []
    else:
        grammar = GRAMMARS[platform]
        missing = tree_contains(parse_config(dev.running_config(), grammar), parse_config("\n".join(lines), grammar))
        assert missing == []


# --------------------------------------------------------------------------------------------
# grammar units (no SSH)
# --------------------------------------------------------------------------------------------


def test_parse_render_round_trip() -> None:
    grammar = GRAMMARS["cisco_iosxe"]
    text = "!\nhostname x\n!\npolicy-map P\n class C\n  priority level 1\n!\nend\n"
    from tests.lab.emulators.ios_like import render_config

    assert render_config(parse_config(text, grammar), 1) == text
    eos = "Building configuration...\n!\ninterface Ethernet1\n   tx-queue 0\n      no priority\n!\nend\n"
    tree = parse_config(eos, GRAMMARS["arista_eos"])
    assert tree[0].children[0].children[0].text == "no priority"


def test_junos_grammar_units() -> None:
    assert validate_path(["class-of-service", "schedulers", "S", "transmit-rate", "percent", "20"]) is None
    assert validate_path(["class-of-service", "schedulerz", "S"]) == 1
    assert validate_path(["interfaces", "bogus0", "unit", "0"]) == 1
    assert validate_path(["firewall", "family", "inet", "filter", "F", "term", "T", "from", "dscp", "ef"]) is None
    assert validate_path(["firewall", "family", "inet", "filter", "F", "term", "T", "when", "dscp", "ef"]) == 7
    problems = reference_errors(["set class-of-service interfaces ge-0/0/0 scheduler-map MISSING"])
    assert problems and "Referenced scheduler-map 'MISSING' is not defined" in problems[0]


def test_eos_session_drop_leaves_running_config_untouched(emulated_devices: LabFactory) -> None:
    dev = one(emulated_devices, "arista_eos")
    before = dev.running_config()
    dev.fail_after_lines(2)
    with connect(dev) as conn, pytest.raises((ReadTimeout, OSError, EOFError)):
        conn.send_config_set(
            ["interface Ethernet1", "description half", "description never", "commit"],
            config_mode_command="configure session push1",
            read_timeout=2,
        )
    assert dev.running_config() == before
    assert "description half" in dev.config_sessions()["push1"]


def test_port_taken_by_a_reuseport_listener_is_skipped(
    emulated_devices: LabFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray server listening with SO_REUSEPORT must not share its port with a device."""
    from tests.lab.emulators import lab as lab_module

    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(8)
        taken = squatter.getsockname()[1]
        real_free_port = lab_module.free_port
        ports = iter([taken])
        monkeypatch.setattr(lab_module, "free_port", lambda: next(ports, None) or real_free_port())
        dev = one(emulated_devices, "cisco_iosxe")
        assert dev.port != taken
        with connect(dev) as conn:
            assert conn.find_prompt() == "r1#"
        squatter.setblocking(False)
        with pytest.raises(BlockingIOError):
            squatter.accept()  # no connection was split off to the stray listener
    finally:
        squatter.close()
