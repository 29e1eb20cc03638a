"""Unit tests of qoectl apply's pure parts: selection, sharding, manifests, credentials, secrets, locks,
Linux state/restore parsing, IOS-like and Junos diffs, exit codes, and CLI usage errors. No root, no SSH."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.apply.connection import Timeouts
from controller.apply.credentials import resolve
from controller.apply.drivers import driver_for, drivers
from controller.apply.drivers._ioslike import Ownership, canonical, commands, owned, parse
from controller.apply.drivers.base import DriverContext, Snapshot
from controller.apply.engine import targets_for
from controller.apply.errors import ApplyError, LockedError, UsageError
from controller.apply.lock import device_locks
from controller.apply.result import DeviceResult, FleetResult
from controller.apply.secrets import Secret, redact
from controller.apply.selection import canary_split, parse_shard, select, shard
from controller.apply.sources import read_rendered
from controller.cli.main import cli
from controller.model import Credentials, Device
from controller.platforms.juniper_junos.driver import JunosDriver
from controller.platforms.linux.driver import Unsupported, nft_restore, normalize_state, tc_restore_batch
from controller.render.outputs import write_tree
from tests.conftest import EXAMPLE_POLICIES


def dev(name: str, site: str = "s1", tags: tuple[str, ...] = (), platform: str = "linux", port: int = 22) -> Device:
    return Device(name, platform, f"{name}.lab", port, site, tags, Credentials("U"), (), ())


FLEET = [dev(f"r{i:02d}", site="hq" if i % 3 == 0 else "br", tags=("core",) if i < 4 else ()) for i in range(20)]


def test_limit_by_name_glob_site_tag_and_unknown_token() -> None:
    assert [d.name for d in select(FLEET, ["r01,r02"])] == ["r01", "r02"]
    assert [d.name for d in select(FLEET, ["r1*"])] == [f"r{i}" for i in range(10, 20)]
    assert {d.site for d in select(FLEET, ["site:hq"])} == {"hq"}
    assert [d.name for d in select(FLEET, ["tag:core", "r05"])] == ["r00", "r01", "r02", "r03", "r05"]
    with pytest.raises(UsageError, match="r99: matches no device"):
        select(FLEET, ["r01", "r99"])


def test_shards_cover_the_fleet_once_balanced_and_deterministic() -> None:
    parts = [shard(FLEET, parse_shard(f"{k}/3")) for k in (1, 2, 3)]
    names = Counter(d.name for p in parts for d in p)
    assert set(names) == {d.name for d in FLEET} and set(names.values()) == {1}
    assert sorted(len(p) for p in parts) == [6, 7, 7]
    assert shard(list(reversed(FLEET)), parse_shard("2/3")) == parts[1]
    for bad in ("0/3", "4/3", "1/0", "a/b", "2"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    first, rest = canary_split(FLEET[:5], 2)
    assert [d.name for d in first] == ["r00", "r01"] and len(rest) == 3


def test_rendered_folder_is_verified_against_its_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"r1": ("linux", {"nftables.nft": "table inet qoectl {}\n", "tc.batch": "\n"})})
    assert read_rendered(out)["r1"] == ("linux", {"nftables.nft": "table inet qoectl {}\n", "tc.batch": "\n"})
    (out / "r1" / "tc.batch").write_text("qdisc del dev wan0 root\n")
    with pytest.raises(UsageError, match="does not match the SHA-256"):
        read_rendered(out)
    with pytest.raises(UsageError, match=r"no \.qoectl-plan\.json"):
        read_rendered(tmp_path / "nothing")


def test_credentials_come_from_the_environment_and_errors_name_the_variable(tmp_path: Path) -> None:
    d = Device("r1", "linux", "h", 22, "s", (), Credentials("QU", "QP", None), (), ())
    c = resolve(d, {"QU": "admin", "QP": "hunter2-secret"})
    assert c.username == "admin" and c.password is not None and c.password.reveal() == "hunter2-secret"
    assert "hunter2" not in repr(c) and "hunter2" not in str(c.password)
    with pytest.raises(ApplyError, match="environment variable QP \\(password_env\\) is not set"):
        resolve(d, {"QU": "admin"})
    with pytest.raises(ApplyError, match="QU \\(username_env\\) is not set"):
        resolve(d, {})
    keyed = Device("r1", "linux", "h", 22, "s", (), Credentials("QU", None, str(tmp_path / "missing")), (), ())
    with pytest.raises(ApplyError, match=r"key_file .* does not exist"):
        resolve(keyed, {"QU": "admin"})
    agent = Device("r1", "linux", "h", 22, "s", (), Credentials("QU"), (), ())
    with pytest.raises(ApplyError, match="no SSH agent"):
        resolve(agent, {"QU": "admin"})
    assert resolve(agent, {"QU": "admin", "SSH_AUTH_SOCK": "/x"}).allow_agent


def test_become_sudo_credentials(tmp_path: Path) -> None:
    sudo = Credentials("QU", "QP", None, become="sudo", become_password_env="QS")
    d = Device("r1", "linux", "h", 22, "s", (), sudo, (), ())
    c = resolve(d, {"QU": "ops", "QP": "login-secret", "QS": "sudo-secret-77"})
    assert c.become == "sudo" and c.become_password is not None
    assert c.netmiko_args()["secret"] == "sudo-secret-77" and "sudo-secret" not in repr(c)
    with pytest.raises(ApplyError, match="QS \\(become_password_env\\) is not set"):
        resolve(d, {"QU": "ops", "QP": "login-secret"})
    ios = Device("r1", "cisco_iosxe", "h", 22, "s", (), sudo, (), ())
    with pytest.raises(ApplyError, match="become: sudo is for Linux routers, not cisco_iosxe"):
        resolve(ios, {"QU": "ops", "QP": "login-secret", "QS": "x"})
    nopasswd = resolve(
        Device("r1", "linux", "h", 22, "s", (), Credentials("QU", "QP", None, "sudo"), (), ()),
        {"QU": "ops", "QP": "login-secret"},
    )
    assert nopasswd.become == "sudo" and "secret" not in nopasswd.netmiko_args()


def test_redact_removes_registered_secrets_everywhere() -> None:
    s = Secret("pa55-word-xyz")
    assert redact("login pa55-word-xyz failed") == "login ******** failed"
    assert "pa55" not in f"{s!r} {s}"


def test_device_locks_exclude_overlapping_runs_and_allow_disjoint_ones(tmp_path: Path) -> None:
    a, b, c = dev("a"), dev("b"), dev("c")
    with device_locks(tmp_path, [a, b], "run-1"):
        with (
            pytest.raises(LockedError, match=r"another apply is running on: b \(held by pid \d+"),
            device_locks(tmp_path, [b, c], "run-2"),
        ):
            pass
        with device_locks(tmp_path, [c], "run-3"):  # disjoint shard: fine
            pass
    with device_locks(tmp_path, [a, b, c], "run-4"):  # released
        pass


LIVE_STATE = """### nft table inet qoectl
(absent)
### tc qdisc wan0
qdisc noqueue 0: root refcnt 2
### tc class wan0
### tc filter wan0
"""

CLASS_10 = (
    "class htb 1:10 parent 1:1 leaf 10: prio 0 quantum 22500 rate 1800Kbit ceil 1800Kbit linklayer ethernet "
    "burst 1599b/1 mpu 0b cburst 1599b/1 mpu 0b level 0"
)
CLASS_1 = (
    "class htb 1:1 root rate 20Mbit ceil 20Mbit linklayer ethernet burst 1600b/1 mpu 0b cburst 1600b/1 mpu 0b level 7"
)
HTB_STATE = """### nft table inet qoectl
table inet qoectl {
\tchain old {
\t}
}
### tc qdisc wan0
qdisc pfifo 10: parent 1:10 limit 16p
qdisc htb 1: root refcnt 3 r2q 10 default 0x17 direct_packets_stat 42 ver 3.17 direct_qlen 1000
qdisc ingress ffff: parent ffff:fff1 ----------------
### tc class wan0
CLASS_10
CLASS_1
### tc filter wan0
""".replace("CLASS_10", CLASS_10).replace("CLASS_1\n", CLASS_1 + "\n")


def test_linux_state_is_normalized_and_restore_batches_rebuild_it() -> None:
    state = normalize_state(HTB_STATE)
    assert "direct_packets_stat" not in state and "refcnt" not in state
    assert state.index("qdisc htb 1:") < state.index("qdisc pfifo 10:")  # sorted
    batch = tc_restore_batch(state, ("wan0",)).splitlines()
    assert batch[:3] == [
        "qdisc replace dev wan0 root pfifo limit 1000",
        "qdisc replace dev wan0 root bfifo limit 1514000",
        "qdisc replace dev wan0 root handle 1: htb r2q 10 default 17 direct_qlen 1000",
    ]
    assert batch[3].startswith("class replace dev wan0 parent 1: classid 1:1 htb rate 20Mbit")  # parents first
    assert "class replace dev wan0 parent 1:1 classid 1:10 htb prio 0 quantum 22500 rate 1800Kbit" in batch[4]
    assert batch[5] == "qdisc replace dev wan0 parent 1:10 handle 10: pfifo limit 16"
    assert not any("ingress" in line for line in batch)  # not touched by the root swap, not rebuilt
    assert tc_restore_batch(normalize_state(LIVE_STATE), ("wan0",)).splitlines()[-1] == "qdisc del dev wan0 root"
    assert nft_restore(normalize_state(LIVE_STATE)) == "table inet qoectl\ndelete table inet qoectl\n"
    assert "chain old {" in nft_restore(state)
    with pytest.raises(Unsupported, match="tc filters on wan0"):
        tc_restore_batch(state + "filter parent 1: protocol ip pref 1 u32\n", ("wan0",))
    with pytest.raises(Unsupported, match="qdisc cake"):
        tc_restore_batch(state.replace("qdisc htb 1: root", "qdisc cake 1: root"), ("wan0",))


RUNNING = """!
hostname r1
ip access-list extended QOECTL-J-VOICE
 10 permit udp any any range 16384 32767
 20 permit udp any any eq 5004
class-map match-any QOECTL-OLD
 match dscp cs2
class-map match-any USER
 match dscp cs3
policy-map QOECTL-Q
 class QOECTL-TELEPHONY
  priority level 1
  police cir 1000000
policy-map QOECTL-STALE
 class class-default
  shape average 1000
interface GigabitEthernet0/0/0
 description uplink
 service-policy output QOECTL-STALE
end
"""

INTENDED = """ip access-list extended QOECTL-J-VOICE
 10 permit udp any any range 16384 32767
policy-map QOECTL-Q
 class QOECTL-TELEPHONY
  priority level 1
  police cir 2000000
interface GigabitEthernet0/0/0
 service-policy output QOECTL-Q
end
"""


def test_ioslike_minimal_commands_and_ownership() -> None:
    want = parse(INTENDED)
    managed = frozenset({"interface GigabitEthernet0/0/0"})
    have = owned(parse(RUNNING), Ownership(), managed)
    assert "USER" not in canonical(have) and "description uplink" not in canonical(have)
    assert commands(have, owned(want, Ownership(), managed)) == [
        "no policy-map QOECTL-STALE",
        "no class-map match-any QOECTL-OLD",
        "ip access-list extended QOECTL-J-VOICE",
        " no 20",
        "policy-map QOECTL-Q",
        " class QOECTL-TELEPHONY",
        "  no police cir 1000000",
        "  police cir 2000000",
        "interface GigabitEthernet0/0/0",
        " no service-policy output QOECTL-STALE",
        " service-policy output QOECTL-Q",
    ]
    assert commands(owned(want, Ownership(), managed), owned(want, Ownership(), managed)) == []


def _pmap(*classes: str) -> list:
    body = "".join(f" class {c}\n  bandwidth remaining percent 5\n" for c in classes)
    return parse(f"policy-map QOECTL-Q\n{body} class class-default\n  fair-queue\n")


@pytest.mark.parametrize(
    ("have", "want", "expected"),
    [
        # a new class after the existing ones: just added (the device puts it before class-default)
        (("A", "B"), ("A", "B", "C"), ["policy-map QOECTL-Q", " class C", "  bandwidth remaining percent 5"]),
        # a class removed: the others keep their places
        (("A", "B", "C"), ("A", "C"), ["policy-map QOECTL-Q", " no class B"]),
        # a new class between existing ones: the classes from there on are re-added in order
        (
            ("A", "C", "D"),
            ("A", "B", "C", "D"),
            ["policy-map QOECTL-Q", " no class C", " no class D"]
            + [line for c in "BCD" for line in (f" class {c}", "  bandwidth remaining percent 5")],
        ),
        # two classes swapped
        (
            ("A", "B", "C"),
            ("A", "C", "B"),
            ["policy-map QOECTL-Q", " no class B", " no class C"]
            + [line for c in "CB" for line in (f" class {c}", "  bandwidth remaining percent 5")],
        ),
    ],
)
def test_policy_map_classes_reach_the_intended_order(have: tuple, want: tuple, expected: list[str]) -> None:
    assert commands(_pmap(*have), _pmap(*want)) == expected


def test_junos_diff_deletes_stale_owned_lines_and_sets_missing_ones() -> None:
    d = Device("j1", "juniper_junos", "h", 22, "s", (), Credentials("U"), (), ())
    files = {
        "cos.set": "delete class-of-service scheduler-maps QOECTL-SM\n"
        "set class-of-service forwarding-classes class QOECTL-TEL queue-num 1\n"
        "set class-of-service interfaces ge-0/0/0 shaping-rate 100m\n"
    }
    drv = JunosDriver(d, files, DriverContext("r", Timeouts(), 90))
    before = Snapshot(
        backup={},
        state="set class-of-service forwarding-classes class QOECTL-OLD queue-num 7\n"
        "set class-of-service interfaces ge-0/0/0 shaping-rate 50m\n",
    )
    assert drv.plan_commands(before) == [
        "delete class-of-service forwarding-classes class QOECTL-OLD queue-num 7",
        "delete class-of-service interfaces ge-0/0/0 shaping-rate 50m",
        "set class-of-service forwarding-classes class QOECTL-TEL queue-num 1",
        "set class-of-service interfaces ge-0/0/0 shaping-rate 100m",
    ]
    assert drv.owns("set interfaces ge-0/0/1 unit 0 family inet filter input QOECTL-MARK")
    assert not drv.owns("set system host-name j1")
    assert drv.confirm_minutes == 2
    with pytest.raises(ApplyError, match="would not own"):
        JunosDriver(d, {"cos.set": "set system host-name evil\n"}, DriverContext("r", Timeouts()))


def test_every_netmiko_platform_has_a_driver_module() -> None:
    assert {"linux", "cisco_iosxe", "arista_eos", "juniper_junos"} <= set(drivers())
    assert driver_for("nosuch") is None
    with pytest.raises(UsageError, match="no apply driver for platform 'nosuch'"):
        targets_for([dev("x", platform="nosuch")], {"x": ("nosuch", {})})
    with pytest.raises(UsageError, match="rendered for 'linux' but the inventory says 'cisco_iosxe'"):
        targets_for([dev("x", platform="cisco_iosxe")], {"x": ("linux", {})})


def test_exit_codes() -> None:
    ok = DeviceResult("a", "linux", "h:22", "changed", "intended")
    same = DeviceResult("b", "linux", "h:22", "unchanged", "intended")
    bad = DeviceResult("c", "linux", "h:22", "rolled_back", "original")
    fleet = FleetResult.of([ok, same], run_dir="x", run_id="y", dry_run=False)
    assert (fleet.exit_code(False), fleet.exit_code(True)) == (0, 2)
    assert FleetResult.of([same], run_dir="x", run_id="y", dry_run=False).exit_code(True) == 0
    assert FleetResult.of([ok, bad], run_dir="x", run_id="y", dry_run=False).exit_code(True) == 1


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["apply", str(EXAMPLE_POLICIES), *args], catch_exceptions=False)
    return res.exit_code, res.output


def test_cli_usage_errors_are_one_clear_line_without_traceback(tmp_path: Path) -> None:
    code, output = _cli("--shard", "5/2")
    assert code == 1 and "--shard '5/2'" in output and "Traceback" not in output
    code, output = _cli("--limit", "no-such-router", "--run-dir", str(tmp_path / "r"))
    assert code == 1 and "matches no device" in output and "Traceback" not in output
    code, output = _cli("--out", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r2"))
    assert code == 1 and "no .qoectl-plan.json" in output
    res = CliRunner().invoke(cli, ["apply", str(tmp_path / "no-policies"), "--json"])
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_cli_unreachable_hosts_fail_per_device_with_exit_1(tmp_path: Path) -> None:
    """The example inventory's hosts do not resolve: each device fails cleanly, nothing else happens."""
    env = {"QOECTL_USER": "netops", "QOECTL_PASSWORD": "pw-unit-test-1234", "HOME": str(tmp_path)}
    key = tmp_path / ".ssh" / "qoectl_ed25519"
    key.parent.mkdir()
    key.write_text("not really a key\n")
    known = tmp_path / "known_hosts"
    known.write_text("")
    res = CliRunner().invoke(
        cli,
        ["apply", str(EXAMPLE_POLICIES), "--limit", "hq-rtr1,br2-rtr1", "--known-hosts", str(known)]
        + ["--run-dir", str(tmp_path / "run"), "--lock-dir", str(tmp_path / "l"), "--json", "--connect-timeout", "2"],
        env=env,
        catch_exceptions=False,
    )
    data = json.loads(res.stdout)
    assert res.exit_code == 1
    assert {d["status"] for d in data["devices"]} <= {"failed", "skipped"}
    assert all(d["left_in"] == "original" and d["commands_sent"] == 0 for d in data["devices"])
    for path in (tmp_path / "run").rglob("*"):
        assert "pw-unit-test-1234" not in path.read_text()
    assert hashlib.sha256((tmp_path / "run" / "result.json").read_bytes()).hexdigest()
