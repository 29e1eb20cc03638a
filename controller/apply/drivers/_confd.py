"""Cisco Catalyst SD-WAN CLIs (ConfD-based): nested ownership, one transaction per push, inverse-lines rollback.

A cEdge in controller mode (IOS-XE, ``config-transaction``) and a vSmart in CLI
mode (``config``) both edit a private candidate that only ``commit`` makes
live, validated as a whole (a dangling reference aborts the commit). So:

- a rejected line, a refused commit or a dropped session before ``commit``
  leaves the device untouched (``abort``; a dropped session's candidate dies
  with it);
- a committed change whose read-back differs is reverted with the inverse
  minimal lines in a new transaction.

What qoectl owns (it never touches anything else): inside the containers
``policy``, ``policy lists``, ``policy class-map``, ``apply-policy``, ``vpn N``
and ``vpn N interface X``, the entries whose line names a ``QOECTL-`` object
(with everything under them), and on the interfaces the rendered file
configures, their ``qos-map``, ``shaping-rate`` and ``access-list`` lines.
Containers themselves are never removed. Commands are the smallest tree edit
with explicit ``exit`` after every block, so where a line lands never depends on
the CLI guessing the block from indentation.

Before anything is read for a diff, the device's mode is checked: a device in
vManage mode (``vManaged: true``) takes no CLI configuration, so it is a
``precondition`` failure with nothing sent, naming SD-WAN Manager.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import ClassVar

from controller.apply.connection import Session
from controller.apply.drivers._ioslike import OWNED_WORD, IosLikeDriver, Node, _negate, canonical, one_line, parse
from controller.apply.drivers.base import Snapshot
from controller.apply.errors import ApplyError

INTERFACE_KINDS = ("qos-map ", "shaping-rate ", "access-list ")
COMMIT_FAILED = re.compile(r"^(Aborted|Error|%\s*(Invalid|Incomplete|Ambiguous|Failed))", re.MULTILINE)


def is_container(path: tuple[str, ...], line: str) -> bool:
    """Blocks qoectl shares with everyone: it edits inside them and never removes them."""
    if not path:
        return line in ("policy", "apply-policy") or re.fullmatch(r"vpn \d+", line) is not None
    if path == ("policy",):
        return line in ("lists", "class-map")
    return len(path) == 1 and path[0].startswith("vpn ") and line.startswith("interface ")


def managed_in(intended: Sequence[Node]) -> frozenset[str]:
    """``vpn N|interface X`` of every interface the rendered config configures."""
    return frozenset(
        f"{vpn.line}|{i.line}"
        for vpn in intended
        if is_container((), vpn.line) and vpn.line.startswith("vpn ")
        for i in vpn.children
    )


def owned_nested(nodes: Sequence[Node], managed: frozenset[str], path: tuple[str, ...] = ()) -> list[Node]:
    """The part of a config tree qoectl owns (see the module docstring), as a new tree."""
    out: list[Node] = []
    for n in nodes:
        if is_container(path, n.line):
            kids = owned_nested(n.children, managed, (*path, n.line))
            if kids:
                out.append(Node(n.line, kids))
        elif path and path[-1].startswith("interface ") and "|".join(path) in managed:
            if n.line.startswith(INTERFACE_KINDS) or OWNED_WORD.search(n.line):
                out.append(n.copy())
        elif OWNED_WORD.search(n.line):
            out.append(n.copy())
    return out


def _block(n: Node, depth: int) -> list[str]:
    """A new entry and everything under it, each block closed by ``exit``."""
    pad = " " * depth
    if not n.children:
        return [pad + n.line]
    return [pad + n.line, *(line for c in n.children for line in _block(c, depth + 1)), pad + "exit"]


def edit(have: Sequence[Node], want: Sequence[Node], path: tuple[str, ...] = ()) -> list[str]:
    """Lines that turn the owned tree ``have`` into ``want``: stale entries ``no``-ed, missing ones added.

    Inside a container or an entry that stays, only the differences are sent (in
    that block's context, closed by ``exit``). ConfD validates the whole
    transaction at commit, so removals and additions need no dependency order.
    """
    depth = len(path)
    pad = " " * depth
    want_by = {n.line: n for n in want}
    have_by = {n.line: n for n in have}
    out: list[str] = []
    for n in have:
        if n.line in want_by:
            continue
        if is_container(path, n.line):
            inner = edit(n.children, [], (*path, n.line))
            out += [pad + n.line, *inner, pad + "exit"] if inner else []
        else:
            out.append(pad + _negate(n.line))
    for n in want:
        old = have_by.get(n.line)
        if old is None:
            out += (
                _block(n, depth)
                if not is_container(path, n.line)
                else [
                    pad + n.line,
                    *edit([], n.children, (*path, n.line)),
                    pad + "exit",
                ]
            )
        elif n.children or old.children:
            inner = edit(old.children, n.children, (*path, n.line))
            out += [pad + n.line, *inner, pad + "exit"] if inner else []
    return out


class ConfdDriver(IosLikeDriver):
    """Shared by the cEdge (localized policy) and vSmart (centralized policy) drivers."""

    show_command: ClassVar[str]
    status_command: ClassVar[str]
    enter_command: ClassVar[str]
    error_pattern = r"^%\s*(Invalid|Incomplete|Ambiguous)|^syntax error|^Error:|^Aborted"

    managed_in = staticmethod(managed_in)

    def own(self, tree: Sequence[Node]) -> list[Node]:
        return owned_nested(tree, self.managed)

    def running(self, s: Session) -> str:
        status = s.send(self.status_command)
        if re.search(r"^\s*vManaged:\s*true", status, re.MULTILINE):
            raise ApplyError(
                "precondition",
                f"{s.where}: managed by SD-WAN Manager (vManaged: true), so it takes no CLI configuration; "
                f"load {self.config_file} in SD-WAN Manager instead",
            )
        out = s.send(self.show_command)
        if not out.strip() or re.search(self.error_pattern, out, re.MULTILINE):
            raise ApplyError("precondition", f"{s.where}: cannot read the configuration: {out.strip()[:120]}")
        return out

    def intended(self, s: Session, before: Snapshot) -> str:
        outside = sorted(set(canonical(self.want_tree).splitlines()) - set(canonical(self.want).splitlines()))
        if outside:
            raise ApplyError(
                "precondition", f"{s.where}: {self.config_file} has lines qoectl would not own: {outside[0]}"
            )
        present = {
            f"{vpn.line}|{i.line}"
            for vpn in parse(before.backup["running-config.txt"])
            if vpn.line.startswith("vpn ")
            for i in vpn.children
        }
        missing = sorted(m.replace("|", " ") for m in self.managed - present)
        if missing:
            raise ApplyError("precondition", f"{s.where}: interface(s) not on the device: {', '.join(missing)}")
        return canonical(self.want)

    def plan_commands(self, before: Snapshot) -> list[str]:
        return edit(self.own(parse(before.backup["running-config.txt"])), self.want)

    def _abort(self, s: Session) -> None:
        with contextlib.suppress(ApplyError):
            if s.call("check_config_mode"):
                s.send("abort", expect=r"#\s*$")

    def _transaction(self, s: Session, cmds: list[str]) -> None:
        """Send ``cmds`` in a new transaction and commit; abort (device untouched) on any refusal."""
        try:
            s.config(
                cmds, error_pattern=self.error_pattern, config_mode_command=self.enter_command, exit_config_mode=False
            )
        except ApplyError as exc:
            if exc.kind == "rejected":
                self._abort(s)
            raise
        out = s.send("commit", expect=r"#\s*$")
        if COMMIT_FAILED.search(out):
            self._abort(s)
            raise ApplyError("rejected", f"{s.where}: commit refused: {one_line(out)}")
        s.send("end", expect=r"#\s*$")

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        cmds = self.plan_commands(before)
        try:
            self._transaction(s, cmds)
        except ApplyError as exc:
            raise ApplyError(exc.kind, exc.message, sent=tuple(cmds)) from None
        return (*cmds, "commit")

    def rollback(self, s: Session, before: Snapshot) -> str:
        self._abort(s)
        now = self.snapshot(s)
        if self.same(before, now):
            return "nothing was committed; the transaction was aborted"
        back = edit(
            self.own(parse(now.backup["running-config.txt"])), self.own(parse(before.backup["running-config.txt"]))
        )
        self._transaction(s, back)
        return f"reverted the committed change with {len(back)} inverse lines in a new transaction"
