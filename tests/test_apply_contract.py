"""The contract every apply driver keeps, written once and run against every driver's target (as NAPALM does).

Targets (tests/apply_targets.py): the SSH emulators of tests/lab/emulators (IOS-XE, EOS, Junos,
FortiOS, Cisco SD-WAN edge and controller) and a real Linux router in a network namespace (root and
OpenSSH needed: skipped elsewhere with the reason). Each case drives ``qoectl apply`` as a user does and
judges by what the device itself holds, read without qoectl:

* backup: a dry run sends nothing and saves exactly what the device printed;
* push, read-back, idempotent re-apply: a push changes the device, a read-back finds nothing left to
  do, and a second apply sends the device nothing;
* minimal diff: a value drifted on the device is repaired with exactly the lines that undo it;
* rollback: the session dropped after every line k of a change, or a line rejected: the device ends
  byte for byte as before, which is also what its backup holds;
* wrong password, unknown host key, changed host key, unreachable: failed, nothing sent.

A driver that cannot keep a case says so in its row's ``xfail`` (strict).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.apply_support import assert_no_secret
from tests.apply_targets import PASSWORD, ROWS, Target, drift, start
from tests.lab.emulators.fixtures import emulated_devices  # noqa: F401 - the fixture
from tests.lab.emulators.lab import free_port
from tests.lab.netns import Lab
from tests.lab.sshd import LinuxLab, have_sshd

CASES: dict[str, Callable[[Target], None]] = {}


def case(fn: Callable[[Target], None]) -> Callable[[Target], None]:
    CASES[fn.__name__] = fn
    return fn


@pytest.fixture
def linux_lab_factory(tmp_path: Path) -> Iterator[Callable[[], LinuxLab]]:
    """A Linux lab on demand (only the linux rows need root); stopped after the test, pass or fail."""
    made: list[tuple[Lab, LinuxLab]] = []

    def make() -> LinuxLab:
        ok, why = have_sshd()
        if not ok:
            pytest.skip(why)
        lab = Lab()
        made.append((lab, LinuxLab(lab, tmp_path / "lab")))
        return made[-1][1]

    yield make
    for lab, ll in made:
        try:
            ll.close()
        finally:
            lab.close()


def expect(r: dict, status: str, left_in: str, kind: str | None = None) -> None:
    assert (r["status"], r["left_in"], r["error_kind"]) == (status, left_in, kind), r


def nothing_sent(t: Target, r: dict, mark: object, before: str) -> None:
    assert r["commands_sent"] == 0, r
    assert t.mark() == mark, "the device received configuration"
    assert t.state() == before


# -- the cases -------------------------------------------------------------------------------------------


@case
def dry_run_backs_up_what_the_device_printed(t: Target) -> None:
    before, printed, mark = t.state(), t.printed(), t.mark()
    res, r = t.apply("--dry-run", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    expect(r, "would_change", "original")
    assert r["diff"] and r["diff"].startswith("---"), r
    nothing_sent(t, r, mark, before)
    assert t.backup() == printed  # byte for byte


@case
def push_reads_back_and_a_second_apply_sends_nothing(t: Target) -> None:
    before = t.state()
    res, r = t.apply()
    assert res.exit_code == 0, res.output
    expect(r, "changed", "intended")
    assert r["commands"] and t.state() != before
    t.row.pushed(t, r)
    res, r = t.apply("--dry-run", "--detailed-exitcode")  # the read-back: nothing left to change
    assert res.exit_code == 0 and r["status"] == "unchanged" and r["diff"] == "", r
    after, mark = t.state(), t.mark()
    res, r = t.apply("--detailed-exitcode")
    assert res.exit_code == 0, res.output
    expect(r, "unchanged", "intended")
    nothing_sent(t, r, mark, after)
    assert_no_secret(PASSWORD, res, t.tmp)


@case
def drift_is_repaired_with_exactly_the_lines_that_undo_it(t: Target) -> None:
    _, r = t.apply()
    assert r["status"] == "changed", r
    repair = drift(t)
    drifted = t.state()
    _, r = t.apply()
    expect(r, "changed", "intended")
    assert r["commands"] == repair
    assert t.state() != drifted
    _, r = t.apply("--dry-run")  # the read-back: the drift is gone
    assert r["status"] == "unchanged", r


@case
def session_dropped_after_every_line_of_a_change_is_rolled_back(t: Target) -> None:
    """A change of N lines: dropped after line k, for k = 1, 2, ... until k is past the change.

    Every line of the change must have been a drop point (the row says how many the device counts).
    """
    _, r = t.apply()
    assert r["status"] == "changed", r
    repair = drift(t)
    drops = 0
    for k in range(1, 100):
        if not t.arm_drop(k):
            break
        before, printed = t.state(), t.printed()
        res, r = t.apply("--on-failure", "continue")
        if r["status"] == "changed":  # k is past the change: the drop never fired
            break
        expect(r, "rolled_back", "original", "session_lost")
        assert t.state() == before, k  # byte for byte
        assert t.backup() == printed, k
        drops += 1
    t.disarm()
    assert drops >= t.row.drop_points(repair), (drops, repair)
    assert_no_secret(PASSWORD, res, t.tmp)


@case
def a_rejected_line_is_rolled_back(t: Target) -> None:
    before, printed = t.state(), t.printed()
    t.arm_reject()
    res, r = t.apply()
    t.disarm()
    assert res.exit_code == 1, res.output
    expect(r, "rolled_back", "original", "rejected")
    assert r["commands"], r  # lines were sent before the rejected one
    assert t.row.rollback_says in r["rollback"], r
    assert t.state() == before  # byte for byte
    assert t.backup() == printed
    assert_no_secret(PASSWORD, res, t.tmp)


@case
def wrong_password_sends_nothing(t: Target) -> None:
    before, mark = t.state(), t.mark()
    res, r = t.apply(**t.wrong_credentials())
    assert res.exit_code == 1
    expect(r, "failed", "original", "auth")
    nothing_sent(t, r, mark, before)
    assert "not-the-password" not in res.output


@case
def unknown_host_key_sends_nothing(t: Target) -> None:
    before, mark = t.state(), t.mark()
    res, r = t.apply(known=t.known_hosts_without())
    assert res.exit_code == 1
    expect(r, "failed", "original", "host_key")
    assert "--accept-new-host-keys" in r["error"], r
    nothing_sent(t, r, mark, before)


@case
def changed_host_key_is_refused_even_when_accepting_new_keys(t: Target) -> None:
    before, mark = t.state(), t.mark()
    forged = t.known_hosts_with_forged_key()
    text = forged.read_text()
    res, r = t.apply("--accept-new-host-keys", known=forged)
    assert res.exit_code == 1
    expect(r, "failed", "original", "host_key")
    assert "CHANGED" in r["error"], r
    nothing_sent(t, r, mark, before)
    assert forged.read_text() == text  # a changed key is never recorded


@case
def unreachable_device_fails_without_sending(t: Target) -> None:
    before, mark = t.state(), t.mark()
    res, r = t.apply("--connect-timeout", "3", policy=t.inventory_with(port=free_port()))
    assert res.exit_code == 1
    expect(r, "failed", "original", "connect")
    nothing_sent(t, r, mark, before)


def params() -> list[object]:
    out = []
    for platform, row in ROWS.items():
        for name in CASES:
            marks = [pytest.mark.xfail(reason=row.xfail[name], strict=True)] if name in row.xfail else []
            if platform == "linux":
                marks.append(pytest.mark.root)
            out.append(pytest.param(platform, name, id=f"{platform}-{name}", marks=marks))
    return out


@pytest.mark.parametrize(("platform", "name"), params())
def test_driver_contract(
    platform: str,
    name: str,
    emulated_devices,  # noqa: F811
    tmp_path: Path,
    linux_lab_factory: Callable[[], LinuxLab],
) -> None:
    target = start(platform, emulated_devices, tmp_path, linux_lab_factory)
    CASES[name](target)
