"""qoectl apply for Cisco SD-WAN over real SSH: cEdges in config-transaction and a vSmart in CLI mode (emulated).

The emulators (tests/lab/emulators/viptela.py) keep a private ConfD candidate
per session, validate references at commit, and drop a session after k config
lines on request. Every fault must leave each device equal to its backup, byte
for byte, with the foreign policy objects present before the run untouched.
What every driver must do (each fault on the edge and on the controller, minimal
diff, re-apply) is in tests/test_apply_contract.py; here: what is particular to
SD-WAN (the merged controller policy, the order edges -> controller, exports).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
import yaml

from tests import apply_support
from tests.apply_support import by_device, config_lines_since
from tests.lab.emulators import DeviceLab
from tests.lab.emulators.fixtures import emulated_devices  # noqa: F401 - the fixture
from tests.lab.sshd import lab_policy

PASSWORD = "Sdwan-pw-41c9e2-never-print"
ENV = {"QOECTL_TEST_USER": "qoectl", "QOECTL_TEST_PASSWORD": PASSWORD}
CREDS = {"username_env": "QOECTL_TEST_USER", "password_env": "QOECTL_TEST_PASSWORD"}
SPECS = [("sd-edge1", "cisco_sdwan"), ("sd-edge2", "cisco_sdwan"), ("vsmart1", "cisco_sdwan_controller")]
apply_cli = partial(apply_support.apply_cli, env=ENV)
assert_no_secret = partial(apply_support.assert_no_secret, PASSWORD)

# Policy objects someone else configured: qoectl must never touch them.
FOREIGN_EDGE = """\
policy
 class-map
  class USER-VOICE queue 2
 !
 qos-scheduler USER-SCHED
  class USER-VOICE
  bandwidth-percent 5
  buffer-percent 5
  scheduling wrr
  drops tail-drop
 !
!
"""
FOREIGN_VSMART = """\
policy
 sla-class USER-SLA
  latency 200
 !
 lists
  site-list USER-SITES
   site-id 500
  !
  vpn-list USER-VPN
   vpn 20
  !
 !
 app-route-policy USER-AAR
  vpn-list USER-VPN
   sequence 1
    match
     dscp 10
    !
    action
     sla-class USER-SLA preferred-color mpls
    !
   !
  !
 !
!
apply-policy
 site-list USER-SITES
  app-route-policy USER-AAR
 !
!
"""


def edge_entry(name: str, port: int, site: str) -> dict[str, object]:
    return {
        "name": name,
        "platform": "cisco_sdwan",
        "host": "127.0.0.1",
        "port": port,
        "site": site,
        "tags": ["wan-edge", "sdwan"],
        "credentials": CREDS,
        "interfaces": [
            {"name": "ge0/0", "role": "wan", "transport": "mpls", "bandwidth_kbps": 20000, "port_speed_kbps": 1000000},
            {"name": "ge0/1", "role": "wan", "transport": "biz-internet", "bandwidth_kbps": 50000},
            {"name": "ge0/3", "role": "lan", "trust_dscp": False, "vpn": 10},
        ],
    }


def write_policy(tmp: Path, lab: DeviceLab, controller: dict[str, object] | None) -> Path:
    policy = lab_policy(tmp / "policy", [edge_entry(n, lab[n].port, f"sd-{n[-1]}") for n in ("sd-edge1", "sd-edge2")])
    doc = yaml.safe_load((policy / "inventory" / "devices.yaml").read_text())
    doc["spec"]["sites"] = [
        {"name": "sd-1", "context": "branch", "sdwan_site_id": 1001},
        {"name": "sd-2", "context": "branch", "sdwan_site_id": 1002},
    ]
    if controller is not None:
        doc["spec"]["sdwan_controllers"] = [controller]
    (policy / "inventory" / "devices.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return policy


def vsmart_entry(lab: DeviceLab, mode: str = "cli") -> dict[str, object]:
    return {"name": "vsmart1", "host": "127.0.0.1", "port": lab["vsmart1"].port, "credentials": CREDS, "mode": mode}


@pytest.fixture(name="sdwan")
def sdwan_fixture(emulated_devices, tmp_path: Path) -> tuple[DeviceLab, Path, Path]:  # noqa: F811
    lab = emulated_devices(SPECS, password=PASSWORD)
    for name in ("sd-edge1", "sd-edge2"):
        lab[name].set_running_config(lab[name].running_config().replace("\nend", "\n" + FOREIGN_EDGE + "end"))
    lab["vsmart1"].set_running_config(lab["vsmart1"].running_config().replace("\nend", "\n" + FOREIGN_VSMART + "end"))
    policy = write_policy(tmp_path, lab, vsmart_entry(lab))
    return lab, policy, lab.known_hosts_file(tmp_path / "known_hosts")


def states(lab: DeviceLab) -> dict[str, str]:
    return {n: d.running_config() for n, d in lab.devices.items()}


def test_apply_merges_pushes_and_sends_nothing_the_second_time(sdwan, tmp_path: Path) -> None:
    lab, policy, known = sdwan
    before = states(lab)
    res, data = apply_cli(policy, known, tmp_path, "dry", "--dry-run", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    assert {d["status"] for d in data["devices"]} == {"would_change"}, data
    assert states(lab) == before and not any(config_lines_since(d, 0) for d in lab.devices.values())

    res, data = apply_cli(policy, known, tmp_path, "run-1")
    assert res.exit_code == 0, res.output
    results = by_device(data)
    assert {r["status"] for r in results.values()} == {"changed"}, data
    e1, e2, vs = (lab[n] for n, _ in SPECS)
    # the edge: schedulers on the WAN interfaces, the marking list on the LAN side, in one commit
    assert re.search(r"interface ge0/0\n  qos-map QOECTL-QOS-GE0-0\n  shaping-rate 20000", e1.running_config())
    assert "access-list QOECTL-MARK-UNTRUSTED in" in e1.running_config()
    assert results["sd-edge1"]["commands"][-1] == "commit"
    # the controller: one policy for both sites, each site list bound to its own app-route policy
    cfg = vs.running_config()
    for site in (1001, 1002):
        assert f"site-list QOECTL-SITE-{site}\n  app-route-policy QOECTL-AAR-SITE-{site}" in cfg
    assert cfg.count("sla-class QOECTL-SLA-VOICE\n") == 1
    # foreign objects untouched, everywhere
    assert FOREIGN_VSMART.replace("!\n", "") in cfg.replace("!\n", "") or all(
        line in cfg for line in FOREIGN_VSMART.splitlines() if line.strip() != "!"
    )
    for d in (e1, e2):
        assert "class USER-VOICE queue 2" in d.running_config() and "qos-scheduler USER-SCHED" in d.running_config()
    marks = {n: len(d.command_log) for n, d in lab.devices.items()}
    res, data = apply_cli(policy, known, tmp_path, "run-2", "--detailed-exitcode")
    assert res.exit_code == 0, res.output
    assert {d["status"] for d in data["devices"]} == {"unchanged"} and all(not d["commands"] for d in data["devices"])
    assert all(not config_lines_since(d, marks[n]) for n, d in lab.devices.items())  # nothing sent
    # the controller alone, by name
    vs.set_running_config(vs.running_config().replace("latency 300", "latency 299"))
    res, data = apply_cli(policy, known, tmp_path, "run-3", "--limit", "vsmart1")
    assert res.exit_code == 0, res.output
    assert [(d["device"], d["status"]) for d in data["devices"]] == [("vsmart1", "changed")]
    assert "latency 299" not in vs.running_config() and "latency 300" in vs.running_config()
    assert_no_secret(res, tmp_path)


def test_without_a_cli_controller_the_policy_is_exported_for_sd_wan_manager(sdwan, tmp_path: Path) -> None:
    lab, _policy, known = sdwan
    vs_before = lab["vsmart1"].running_config()
    for mode, controller in (("none", None), ("manager", vsmart_entry(lab, "manager"))):
        policy = write_policy(tmp_path / mode, lab, controller)
        res, data = apply_cli(policy, known, tmp_path, f"run-{mode}")
        assert res.exit_code == 0, res.output
        assert set(by_device(data)) == {"sd-edge1", "sd-edge2"}
        assert len(data["notes"]) == 1 and "NOT pushed" in data["notes"][0], data["notes"]
        exported = (tmp_path / f"run-{mode}" / "sdwan-manager" / "centralized-policy.cfg").read_text()
        assert "apply-policy\n site-list QOECTL-SITE-1001\n  app-route-policy QOECTL-AAR-SITE-1001" in exported
        assert "site-list QOECTL-SITE-1002" in exported
    assert lab["vsmart1"].logins == 0 and lab["vsmart1"].running_config() == vs_before
    # A controller named for CLI that SD-WAN Manager actually owns: refused before anything is sent.
    lab["vsmart1"].set_vmanaged(True)
    policy = write_policy(tmp_path / "cli", lab, vsmart_entry(lab))
    res, data = apply_cli(policy, known, tmp_path, "run-vmanaged")
    r = by_device(data)["vsmart1"]
    assert (r["status"], r["error_kind"], r["left_in"]) == ("failed", "precondition", "original"), r
    assert "SD-WAN Manager" in r["error"] and not config_lines_since(lab["vsmart1"], 0)
    assert res.exit_code == 1


def fault_run(
    lab: DeviceLab, policy: Path, known: Path, tmp: Path, run: str, *extra: str, env: dict[str, str] = ENV
) -> dict[str, dict]:
    """An apply that must fail: every device that failed ends equal to its backup; returns the results."""
    before = states(lab)
    res, data = apply_cli(policy, known, tmp, run, "--on-failure", "continue", *extra, env=env)
    results = by_device(data)
    assert res.exit_code == (0 if all(r["status"] in ("changed", "unchanged") for r in results.values()) else 1)
    for name, r in results.items():
        if r["status"] in ("rolled_back", "failed", "skipped"):
            assert r["left_in"] == "original", r
            assert lab[name].running_config() == before[name], (name, r)  # byte for byte
            if r["backup"]:
                saved = (Path(r["backup"]) / "running-config.txt").read_text().strip("\n")
                assert saved in before[name], name
    assert_no_secret(res, tmp)
    return results


def test_fresh_edge_dropped_mid_push_and_at_commit(sdwan, tmp_path: Path) -> None:
    lab, policy, known = sdwan
    _, data = apply_cli(policy, known, tmp_path, "dry", "--dry-run", "--limit", "sd-edge2")
    n = len([line for line in data["devices"][0]["diff"].splitlines() if line.startswith("+")])
    assert n > 100
    for k in (1, 2, 40, 150):
        lab["sd-edge2"].fail_after_lines(k)
        r = fault_run(lab, policy, known, tmp_path, f"fresh-{k}", "--limit", "sd-edge2")["sd-edge2"]
        assert (r["status"], r["error_kind"]) == ("rolled_back", "session_lost"), r
        lab["sd-edge2"].fail_after_lines(None)


def test_rejected_line_and_refused_commit(sdwan, tmp_path: Path) -> None:
    lab, policy, known = sdwan
    lab["sd-edge1"].reject_lines(r"QOECTL-GE0-1-Q3")
    results = fault_run(lab, policy, known, tmp_path, "reject")
    assert (results["sd-edge1"]["status"], results["sd-edge1"]["error_kind"]) == ("rolled_back", "rejected")
    assert results["sd-edge2"]["status"] == "changed"
    # The controller's policy is only pushed when every edge took its own.
    assert results["vsmart1"]["status"] == "skipped" and "sd-edge1" in results["vsmart1"]["error"]
    lab["sd-edge1"].reject_lines(None)
    # A foreign site list that uses a qoectl object qoectl would delete: the commit is refused as a whole.
    res, _ = apply_cli(policy, known, tmp_path, "ok")
    assert res.exit_code == 0, res.output
    vs = lab["vsmart1"]
    vs.set_running_config(
        vs.running_config().replace("\nend", "\npolicy\n sla-class QOECTL-STALE\n  latency 50\n!\n")
        + "apply-policy\n site-list USER-SITES\n  app-route-policy USER-AAR\n!\nend\n"
    )
    vs.set_running_config(
        vs.running_config().replace("sla-class USER-SLA preferred", "sla-class QOECTL-STALE preferred")
    )
    r = fault_run(lab, policy, known, tmp_path, "refused-commit")["vsmart1"]
    assert (r["status"], r["error_kind"]) == ("rolled_back", "rejected") and "commit refused" in r["error"], r
    assert "illegal reference" in r["error"]


def test_edges_that_cannot_log_in_hold_the_controller_and_an_unreachable_controller_holds_no_edge(
    sdwan, tmp_path: Path
) -> None:
    lab, policy, known = sdwan
    wrong = {**ENV, "QOECTL_TEST_PASSWORD": "not-the-password"}
    results = fault_run(lab, policy, known, tmp_path, "wrong", env=wrong)
    assert {(r["status"], r["error_kind"]) for n, r in results.items() if n != "vsmart1"} == {("failed", "auth")}
    assert results["vsmart1"]["status"] == "skipped"
    # edges fine, controller gone: a typed result for it, the edges keep their (valid) localized policy
    vs_known = known.read_text()
    lab["vsmart1"].stop()
    results = fault_run(lab, policy, known, tmp_path, "no-controller")
    assert {results[n]["status"] for n in ("sd-edge1", "sd-edge2")} == {"changed"}
    r = results["vsmart1"]
    assert (r["status"], r["error_kind"], r["left_in"]) == ("failed", "connect", "original"), r
    assert vs_known == known.read_text()


def test_merge_joins_sites_and_refuses_conflicting_shared_objects() -> None:
    """Shared objects must be identical on every edge; site objects differ by name; containers are merged."""
    from controller.apply.errors import UsageError
    from controller.apply.sdwan import merge

    def edge(site: int, latency: int) -> str:
        return (
            f"policy\n sla-class QOECTL-SLA-VOICE\n  latency {latency}\n !\n app-route-policy QOECTL-AAR-SITE-{site}\n"
            f"  vpn-list QOECTL-VPN1\n   sequence 10\n    match\n     dscp 46\n    !\n   !\n  !\n !\n lists\n"
            f"  site-list QOECTL-SITE-{site}\n   site-id {site}\n  !\n  vpn-list QOECTL-VPN1\n   vpn 1\n  !\n !\n!\n"
            f"apply-policy\n site-list QOECTL-SITE-{site}\n  app-route-policy QOECTL-AAR-SITE-{site}\n !\n!\n"
        )

    text = merge({"a": edge(1, 300), "b": edge(2, 300)})
    assert text.count("sla-class QOECTL-SLA-VOICE\n") == 1 and text.count("\npolicy\n") == 1
    assert (
        text.count("\napply-policy\n") == 1 and "site-list QOECTL-SITE-2\n  app-route-policy QOECTL-AAR-SITE-2" in text
    )
    with pytest.raises(UsageError, match=r"edges a and b need different 'policy sla-class QOECTL-SLA-VOICE'"):
        merge({"a": edge(1, 300), "b": edge(2, 250)})


def test_plan_notes_where_the_centralized_policy_goes() -> None:
    from controller.pipeline import build

    result = build(Path(__file__).resolve().parents[1] / "policies")
    plan = result.plan("br3-edge1")
    assert plan is not None and any("sdwan_controllers" in n and "SD-WAN Manager" in n for n in plan.notes)
