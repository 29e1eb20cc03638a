"""Cisco IOS-XE: minimal commands in ``configure terminal``, rollback by ``configure replace`` of an archive.

Before the first line is sent the running config is archived on the device
(``copy running-config flash:qoectl-<run>.cfg``). Any failure afterwards, a
rejected line (netmiko ``error_pattern`` on ``% Invalid input`` and friends), a
dropped session, a read-back that does not match, is undone with ``configure
replace flash:<archive> force``, which restores the whole running config
exactly, not just qoectl's part. Success is saved with ``write memory`` and the
archive deleted. If the rollback itself cannot be verified the archive is kept
on flash so an engineer can replace to it by hand.
"""

from __future__ import annotations

import re

from controller.apply.connection import Session
from controller.apply.drivers._ioslike import IosLikeDriver, one_line
from controller.apply.drivers.base import Snapshot
from controller.apply.errors import ApplyError


class IosXeDriver(IosLikeDriver):
    platform = "cisco_iosxe"
    device_type = "cisco_xe"

    archived = False

    @property
    def archive(self) -> str:
        return f"flash:{self.tag}.cfg"

    def _answer_prompts(self, s: Session, command: str, done: str) -> str:
        """Run a command that may ask for a file name or confirmation; accept the defaults."""
        out = s.send(command, expect=rf"\?|\[confirm\]|{done}|%|#\s*$")
        for _ in range(3):
            if re.search(r"\?\s*$|\[confirm\]\s*$|\]\?\s*$", out.strip()):
                out += s.send("", expect=rf"\?|\[confirm\]|{done}|%|#\s*$", cmd_verify=False)
            else:
                break
        return out

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        out = self._answer_prompts(s, f"copy running-config {self.archive}", r"bytes copied")
        if "%" in out or "bytes copied" not in out:
            raise ApplyError("precondition", f"{s.where}: cannot archive the running config to {self.archive}")
        self.archived = True
        cmds = self.plan_commands(before)
        try:
            s.config(cmds, error_pattern=self.error_pattern)
        except ApplyError as exc:
            raise ApplyError(exc.kind, exc.message, sent=tuple(cmds)) from None
        return tuple(cmds)

    def confirm(self, s: Session, before: Snapshot) -> None:
        out = s.send("write memory", expect=r"\[OK\]|%|#\s*$")
        if "[OK]" not in out:
            raise ApplyError("verify", f"{s.where}: write memory did not confirm: {one_line(out)}")
        self._delete_archive(s)

    def rollback(self, s: Session, before: Snapshot) -> str:
        if not self.archived:
            raise ApplyError("rollback", f"{s.where}: no archive to restore from")
        self.exec_mode(s)
        out = s.send(f"configure replace {self.archive} force", expect=r"Rollback Done|%|#\s*$")
        if "%" in out and "Rollback Done" not in out:
            raise ApplyError("rollback", f"{s.where}: configure replace failed: {one_line(out)}")
        self._delete_archive(s)
        return f"configure replace {self.archive} force"

    def _delete_archive(self, s: Session) -> None:
        if self.archived:
            self._answer_prompts(s, f"delete /force {self.archive}", r"#\s*$")
            self.archived = False


DRIVER = IosXeDriver
