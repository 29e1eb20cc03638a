"""qoectl apply against Linux routers whose logins read the distribution's default dotfiles (issue 9).

A stock Debian login shows the working directory in its prompt (``root@host:~#``,
``PS1='...\\u@\\h:\\w\\$ '``), so every ``cd`` changes the prompt. qoectl sets a fixed
prompt of its own right after login (and again after ``sudo -s``), so no ``cd`` or
dotfile can make it wait for a prompt that no longer comes; a shell that will not
take that prompt is a ``prompt`` error at login, not a command timeout.

Also here: ``--dry-run`` reports every device, whatever ``--on-failure`` says.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko  # type: ignore[import-untyped]
import pytest
from click.testing import Result

from tests import apply_support
from tests.lab.sshd import LinuxLab, SshRouter, keygen, lab_policy, linux_device, requires_sshd
from tests.lab.users import sudo_login
from tests.test_apply_linux import ENV, SUDO_PASSWORD, apply_cli, by_device, changed_then_unchanged

pytestmark = [requires_sshd, pytest.mark.root]


@pytest.fixture
def sudo_user() -> Iterator[str]:
    """An unprivileged login (the routers share this machine's users) that may ``sudo -s`` with SUDO_PASSWORD."""
    with sudo_login(SUDO_PASSWORD, prefix="qoectl-d") as name:
        yield name


def login_prompt(router: SshRouter, user: str, key_file: Path) -> str:
    """The last line a fresh interactive login shows once it is quiet (its prompt), ANSI codes removed."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a lab router
    client.connect(router.host, router.port, username=user, key_filename=str(key_file), timeout=5, allow_agent=False)
    try:
        chan = client.invoke_shell(term="vt100")
        chan.settimeout(0.5)
        seen, quiet_since, deadline = "", time.monotonic(), time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                data = chan.recv(4096).decode(errors="replace")
            except TimeoutError:
                data = ""
            if data:
                seen, quiet_since = seen + data, time.monotonic()
            elif seen.rstrip().endswith(("#", "$")) and time.monotonic() - quiet_since > 1:
                break
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", seen)
        return text.replace("\r", "").split("\n")[-1]
    finally:
        client.close()


def test_root_login_with_default_dotfiles(linux_lab: LinuxLab, tmp_path: Path) -> None:
    """Root's prompt is ``root@host:~#`` and the upload's ``cd /`` changes it: apply must not care."""
    r1 = linux_lab.router("r1", dotfiles=True)
    assert login_prompt(r1, "root", linux_lab.client_key).endswith(":~# ")  # the lab really is a stock login
    policy = lab_policy(tmp_path / "policy", [linux_device(r1, linux_lab.client_key)])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    before = r1.state()

    res, data = apply_cli(policy, known, tmp_path, "run-dry", "--dry-run", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    d = by_device(data)["r1"]
    assert (d["status"], d["error_kind"], d["commands_sent"]) == ("would_change", None, 0), d
    assert "+table inet qoectl {" in d["diff"]
    assert r1.state() == before

    res, data = apply_cli(policy, known, tmp_path, "run-1")
    assert res.exit_code == 0, res.output
    assert by_device(data)["r1"]["status"] == "changed", data
    assert 'comment "journey voice"' in r1.nft_table() and "qdisc htb 1: root" in r1.tc_qdiscs()

    res, data = apply_cli(policy, known, tmp_path, "run-2")
    assert res.exit_code == 0 and by_device(data)["r1"]["status"] == "unchanged", data


def test_sudo_user_login_with_default_dotfiles(linux_lab: LinuxLab, tmp_path: Path, sudo_user: str) -> None:
    """An ordinary user (``user@host:~$``, /etc/skel dotfiles) that becomes root with ``sudo -s``."""
    user = sudo_user
    r1 = linux_lab.router("r1", dotfiles=True)
    assert login_prompt(r1, user, linux_lab.client_key).endswith(":~$ ")
    entry = linux_device(r1, linux_lab.client_key, user_env="QOECTL_SUDO_USER")
    creds = {**entry["credentials"], "become": "sudo", "become_password_env": "QOECTL_SUDO_PASSWORD"}  # type: ignore[dict-item]
    policy = lab_policy(tmp_path / "policy", [{**entry, "credentials": creds}])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    env = {**ENV, "QOECTL_SUDO_USER": user, "QOECTL_SUDO_PASSWORD": SUDO_PASSWORD}
    before = r1.state()

    def apply(run: str, *extra: str) -> tuple[Result, dict]:
        return apply_support.apply_cli(policy, known, tmp_path, run, "--command-timeout", "30", *extra, env=env)

    res, data = apply("run-dry", "--dry-run")
    assert res.exit_code == 0, res.output
    assert by_device(data)["r1"]["status"] == "would_change", data
    assert r1.state() == before

    changed_then_unchanged(apply, r1, tmp_path)


# Site customisations that keep qoectl's prompt from ever appearing.
STUBBORN_PROMPTS = {
    # An audit setup: a read-only PROMPT_COMMAND (here one that also redraws PS1 before every prompt).
    "readonly-prompt-command": "PROMPT_COMMAND='PS1=\"\\u@\\h:\\w\\\\$ \"'\nreadonly PROMPT_COMMAND\n",
    # A read-only prompt that does not even end in $ or #.
    "readonly-ps1": "PS1='\\u@\\h:\\w> '\nreadonly PS1\n",
}


@pytest.mark.parametrize("custom", sorted(STUBBORN_PROMPTS))
def test_a_prompt_that_never_appears_is_a_prompt_error_not_a_timeout(
    linux_lab: LinuxLab, tmp_path: Path, custom: str
) -> None:
    r1 = linux_lab.router("r1", dotfiles=True, bashrc_append=STUBBORN_PROMPTS[custom])
    policy = lab_policy(tmp_path / "policy", [linux_device(r1, linux_lab.client_key)])
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    before = r1.state()
    res, data = apply_cli(policy, known, tmp_path, "run", "--dry-run", "--command-timeout", "90")
    assert res.exit_code == 1, res.output
    d = by_device(data)["r1"]
    assert (d["status"], d["left_in"], d["error_kind"], d["commands_sent"]) == ("failed", "original", "prompt", 0), d
    assert "qoectl's prompt" in d["error"] and "PS1" in d["error"] and "PROMPT_COMMAND" in d["error"], d
    assert d["duration_s"] < 60, d  # hang guard only: the error comes at login, not after --command-timeout
    assert r1.state() == before


def test_dry_run_reports_every_device_even_with_on_failure_stop(linux_lab: LinuxLab, tmp_path: Path) -> None:
    """The first device (name order, one worker) cannot be read; the dry run still reads and diffs the rest."""
    r1, r2 = linux_lab.router("r1"), linux_lab.router("r2")
    devices = [linux_device(r, linux_lab.client_key) for r in (r1, r2)]
    devices.append({**devices[0], "name": "a-refused", "port": 1})  # nothing listens there
    wrong_key = tmp_path / "not_authorized_ed25519"
    keygen(wrong_key)
    devices.append(
        {**devices[1], "name": "b-wrong-key", "credentials": {**devices[1]["credentials"], "key_file": str(wrong_key)}}
    )  # type: ignore[dict-item]
    policy = lab_policy(tmp_path / "policy", devices)
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    before = {r.name: r.state() for r in (r1, r2)}

    res, data = apply_cli(policy, known, tmp_path, "run-dry", "--dry-run", "--on-failure", "stop", "--workers", "1")
    assert res.exit_code == 1, res.output  # a device could not be read
    results = by_device(data)
    assert set(results) == {"a-refused", "b-wrong-key", "r1", "r2"}
    assert data["stopped"] == "" and data["counts"]["skipped"] == 0, data
    assert (results["a-refused"]["status"], results["a-refused"]["error_kind"]) == ("failed", "connect")
    assert (results["b-wrong-key"]["status"], results["b-wrong-key"]["error_kind"]) == ("failed", "auth")
    for name in ("r1", "r2"):
        assert results[name]["status"] == "would_change" and "+table inet qoectl {" in results[name]["diff"]
    assert {r.name: r.state() for r in (r1, r2)} == before

    # A real push still stops at the first failure: nothing else is started.
    res, data = apply_cli(policy, known, tmp_path, "run", "--on-failure", "stop", "--workers", "1")
    assert res.exit_code == 1, res.output
    results = by_device(data)
    assert results["a-refused"]["status"] == "failed"
    assert {results[n]["status"] for n in ("b-wrong-key", "r1", "r2")} == {"skipped"}, data
    assert "device a-refused failed" in data["stopped"]
    assert {r.name: r.state() for r in (r1, r2)} == before
