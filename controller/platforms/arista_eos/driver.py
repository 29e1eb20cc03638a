"""Arista EOS: minimal commands in a named ``configure session``, committed only when every line was accepted.

A configure session is EOS's transaction: lines go into the session, not the
running config, and ``commit`` applies them at once. A rejected line (``%
Invalid input``) or a dropped session means nothing was committed; the session
is aborted (``abort``, or ``no configure session NAME`` after reconnecting) and
the device never changed. If a committed change fails its read-back, qoectl
reverts it with the inverse minimal commands in a new session. Success is saved
with ``write memory``.
"""

from __future__ import annotations

import contextlib

from controller.apply.connection import Session
from controller.apply.drivers._ioslike import IosLikeDriver, Ownership, commands, owned, parse
from controller.apply.drivers.base import Snapshot
from controller.apply.errors import ApplyError


class EosDriver(IosLikeDriver):
    platform = "arista_eos"
    device_type = "arista_eos"
    ownership = Ownership(
        global_prefixes=("qos map ",),
        interface_prefixes=("service-policy", "qos trust", "no qos trust", "shape rate", "no shape rate", "tx-queue"),
    )

    def _session(self, s: Session, name: str, cmds: list[str]) -> None:
        """Send ``cmds`` in configure session ``name`` and commit; abort on any rejected line."""
        try:
            s.config(
                cmds,
                error_pattern=self.error_pattern,
                config_mode_command=f"configure session {name}",
                exit_config_mode=False,
            )
        except ApplyError:
            # The session is pending at worst; rollback() removes it after reconnecting.
            with contextlib.suppress(ApplyError):
                s.send("abort", expect=r"#\s*$")
            raise
        out = s.send("commit", expect=r"#\s*$")
        if "%" in out:
            raise ApplyError("rejected", f"{s.where}: commit of configure session {name} failed: {out.strip()[:160]}")

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        cmds = self.plan_commands(before)
        try:
            self._session(s, self.tag, cmds)
        except ApplyError as exc:
            raise ApplyError(exc.kind, exc.message, sent=tuple(cmds)) from None
        return tuple(cmds)

    def confirm(self, s: Session, before: Snapshot) -> None:
        out = s.send("write memory", expect=r"#\s*$")
        if "%" in out:
            raise ApplyError("verify", f"{s.where}: write memory failed: {out.strip()[:120]}")

    def rollback(self, s: Session, before: Snapshot) -> str:
        self.exec_mode(s)
        s.send(f"no configure session {self.tag}", expect=r"#\s*$")
        now = self.snapshot(s)
        if self.same(before, now):
            return f"configure session {self.tag} was not committed; discarded it"
        back = commands(
            owned(parse(now.backup["running-config.txt"]), self.ownership, self.managed),
            owned(parse(before.backup["running-config.txt"]), self.ownership, self.managed),
        )
        self._session(s, f"{self.tag}-rollback", back)
        return f"reverted the committed change with {len(back)} inverse lines in configure session {self.tag}-rollback"


DRIVER = EosDriver
