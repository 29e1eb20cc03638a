"""Juniper Junos: ``set``/``delete`` in ``configure exclusive``, ``commit confirmed``, read back, then confirm.

Ownership (``show configuration | display set`` filtered, like ``| match
QOECTL``): set lines that name a ``QOECTL-`` object, and everything under
``class-of-service interfaces <if>`` for the interfaces the rendered file
configures. The diff compares those lines as sets; the push deletes stale
owned lines and sets missing ones, nothing else.

Atomicity is Junos's own: the candidate is private to the session
(``configure exclusive``) and discarded on any rejected line (``rollback 0``);
the change goes live with ``commit confirmed N`` so that if qoectl loses the
device before it confirms, Junos rolls the change back by itself after N
minutes. qoectl reads the active config back and confirms with a plain
``commit``; on a mismatch it undoes the change at once (``rollback 1`` +
``commit``) instead of waiting for the timer.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping

from controller.apply.connection import Session
from controller.apply.drivers.base import Driver, DriverContext, Snapshot
from controller.apply.errors import ApplyError
from controller.model import Device
from controller.platforms.juniper_junos.parser import set_lines

OWNED_WORD = re.compile(r"(?<![A-Za-z0-9_-])QOECTL-[A-Za-z0-9_-]+")
ERROR_PATTERN = r"syntax error|unknown command|^error:|missing argument|invalid value"


class JunosDriver(Driver):
    platform = "juniper_junos"
    device_type = "juniper_junos"
    config_file = "cos.set"

    def __init__(self, device: Device, files: Mapping[str, str], ctx: DriverContext) -> None:
        super().__init__(device, files, ctx)
        if self.config_file not in self.files:
            raise ApplyError("precondition", f"{device.name}: rendered file {self.config_file} missing")
        self.want_lines = list(dict.fromkeys(set_lines(self.files[self.config_file])))
        self.cos_ifaces = tuple(
            sorted(
                {
                    m.group(1)
                    for line in self.want_lines
                    if (m := re.match(r"set class-of-service interfaces (\S+) ", line))
                }
            )
        )
        stray = [line for line in self.want_lines if not self.owns(line)]
        if stray:
            raise ApplyError(
                "precondition", f"{device.name}: the rendered config has lines qoectl would not own: {stray[0]}"
            )
        self.committed = False

    def owns(self, line: str) -> bool:
        if OWNED_WORD.search(line):
            return True
        return any(line.startswith(f"set class-of-service interfaces {i} ") for i in self.cos_ifaces)

    def snapshot(self, s: Session) -> Snapshot:
        text = s.send("show configuration | display set")
        if re.search(ERROR_PATTERN, text, re.MULTILINE) or "set " not in text:
            raise ApplyError("precondition", f"{s.where}: cannot read the configuration: {text.strip()[:120]}")
        lines = set_lines(text)
        state = "".join(f"{line}\n" for line in sorted({line for line in lines if self.owns(line)}))
        return Snapshot(
            backup={"configuration.set": "".join(f"{line}\n" for line in lines)},
            state=state,
            extra={"all": "\n".join(lines)},
        )

    def intended(self, s: Session, before: Snapshot) -> str:
        return "".join(f"{line}\n" for line in sorted(set(self.want_lines)))

    def plan_commands(self, before: Snapshot) -> list[str]:
        have = set(before.state.splitlines())
        want = set(self.want_lines)
        return [f"delete {line[4:]}" for line in sorted(have - want)] + [
            line for line in self.want_lines if line not in have
        ]

    @property
    def confirm_minutes(self) -> int:
        return max(1, math.ceil(self.ctx.confirm_s / 60))

    def _discard(self, s: Session) -> None:
        """Throw the private candidate away and leave configuration mode."""
        with contextlib.suppress(ApplyError):
            s.send("rollback 0", expect=r"[#>]\s*$")
        with contextlib.suppress(ApplyError):
            s.call("exit_config_mode")

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        cmds = self.plan_commands(before)
        try:
            s.config(
                cmds, error_pattern=ERROR_PATTERN, config_mode_command="configure exclusive", exit_config_mode=False
            )
        except ApplyError as exc:
            if exc.kind == "rejected":
                self._discard(s)
            raise ApplyError(exc.kind, exc.message, sent=tuple(cmds)) from None
        try:
            s.call("commit", confirm=True, confirm_delay=self.confirm_minutes, read_timeout=s.timeouts.command)
        except ApplyError as exc:
            if exc.kind == "internal":  # netmiko raises ValueError with the commit errors
                self._discard(s)
                raise ApplyError(
                    "rejected", f"{s.where}: commit failed: {exc.message.split(':', 1)[-1].strip()[:200]}", sent=()
                ) from None
            raise ApplyError(exc.kind, exc.message, sent=tuple(cmds)) from None
        self.committed = True
        s.call("exit_config_mode")
        return (*cmds, f"commit confirmed {self.confirm_minutes}")

    def confirm(self, s: Session, before: Snapshot) -> None:
        s.call("commit", read_timeout=s.timeouts.command)
        s.call("exit_config_mode")

    def rollback(self, s: Session, before: Snapshot) -> str:
        self._discard_if_config(s)
        now = self.snapshot(s)
        if now.state == before.state:
            return "nothing was committed; the private candidate was discarded"
        s.send("configure exclusive", expect=r"#\s*$")
        # qoectl committed once ("commit confirmed"), or twice when the session dropped after the
        # confirming "commit": load the newer of rollback 1 and 2 that is the backup; commit nothing else.
        for n in (1, 2):
            out = s.send(f"rollback {n}", expect=r"#\s*$")
            if "error" in out:
                self._discard(s)
                raise ApplyError("rollback", f"{s.where}: rollback {n} failed: {out.strip()[:160]}")
            candidate = set_lines(s.send("show | display set", expect=r"#\s*$"))
            if "\n".join(candidate) == before.extra.get("all"):
                s.call("commit", read_timeout=s.timeouts.command)
                s.call("exit_config_mode")
                undone = "the unconfirmed commit" if n == 1 else "the confirmed change"
                return f"rollback {n} + commit ({undone} was undone at once)"
        self._discard(s)
        raise ApplyError("rollback", f"{s.where}: neither rollback 1 nor rollback 2 is the backup; nothing committed")

    def _discard_if_config(self, s: Session) -> None:
        with contextlib.suppress(ApplyError):
            if s.call("check_config_mode"):
                self._discard(s)

    def same(self, before: Snapshot, after: Snapshot) -> bool:
        return before.extra.get("all") == after.extra.get("all")

    def fallback_note(self) -> str:
        if self.committed:
            return f"Junos rolls the unconfirmed commit back by itself {self.confirm_minutes} minute(s) after it"
        return ""


DRIVER = JunosDriver
