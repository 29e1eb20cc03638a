"""Block-structured CLI configs (IOS-XE, EOS): find what qoectl owns, and compute minimal commands.

The config text is read by the platforms' one syntax layer (:mod:`controller.configtext.cli_tree`), the
same tree their parsers read the meaning from.

Why ownership and not "the whole config": qoectl must never touch what it
did not write. It owns

- top-level blocks and lines whose header names a ``QOECTL-`` object (ACLs,
  class-maps, policy-maps) and, per platform, a few global lines (EOS ``qos map``)
- on the interfaces the rendered config mentions, the child lines of the kinds
  it renders there (``service-policy``; on EOS also ``qos trust``, ``shape
  rate``, ``tx-queue`` blocks)
- on any other interface, a child line that references a ``QOECTL-`` object
  (so a stale attachment is found and removed before its policy is)

The canonical owned state is that subset rendered with one space per level
and top-level blocks in a stable order; the same function serves the running
and the intended config, so they compare directly.

Commands are the smallest tree edit: missing blocks and lines are added;
stale lines are removed with ``no`` (``no <seq>`` for numbered ACL entries) in
their block's context; stale blocks are removed with ``no <header>`` in
dependency order (interface attachments, then policy-maps, parents first,
then class-maps, then ACLs).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from controller.apply.connection import Session
from controller.apply.drivers.base import Driver, DriverContext, Snapshot
from controller.apply.errors import ApplyError
from controller.configtext.cli_tree import Node, parse
from controller.model import Device

__all__ = ["IosLikeDriver", "Node", "Ownership", "canonical", "commands", "one_line", "owned", "parse"]

OWNED_WORD = re.compile(r"(?<![A-Za-z0-9_-])QOECTL-[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Ownership:
    """What qoectl owns on one platform (see the module docstring)."""

    global_prefixes: tuple[str, ...] = ()  # top-level lines owned by their start (EOS: "qos map ")
    interface_prefixes: tuple[str, ...] = ("service-policy",)  # owned children of managed interfaces

    def owns_top(self, node: Node) -> bool:
        if node.line.startswith("interface "):
            return False
        return bool(OWNED_WORD.search(node.line)) or node.line.startswith(self.global_prefixes)

    def owns_child(self, child: Node, managed: bool) -> bool:
        if managed and child.line.startswith(self.interface_prefixes):
            return True
        return bool(OWNED_WORD.search(child.line))


def owned(config: Sequence[Node], ownership: Ownership, managed_ifaces: frozenset[str]) -> list[Node]:
    """The part of ``config`` qoectl owns, as a new tree (interfaces keep only owned children)."""
    out: list[Node] = []
    for node in config:
        if node.line.startswith("interface "):
            managed = node.line in managed_ifaces
            kids = [c.copy() for c in node.children if ownership.owns_child(c, managed)]
            if kids:
                out.append(Node(node.line, kids))
        elif ownership.owns_top(node):
            out.append(node.copy())
    return out


def managed_interfaces(intended: Sequence[Node]) -> frozenset[str]:
    return frozenset(n.line for n in intended if n.line.startswith("interface "))


def _order(node: Node) -> tuple[int, str]:
    line = node.line
    rank = 0 if "access-list" in line else 1 if line.startswith("class-map") else 2
    if line.startswith("policy-map"):
        rank = 3
    elif line.startswith("interface "):
        rank = 4
    return rank, line


def _child_key(node: Node) -> tuple[int, str]:
    words = node.line.split()
    if words[0].isdigit():
        return int(words[0]), ""
    if words[0] == "sequence" and len(words) > 1 and words[1].isdigit():
        return int(words[1]), ""
    return 1 << 30, node.line


def _sorted(node: Node) -> Node:
    """Children in a stable order, except where order means something (a policy-map's classes).

    Devices print attribute lines in their own order (a line changed by hand may
    move to the end of its block); ACL entries are ordered by sequence number.
    """
    kids = [_sorted(c) for c in node.children]
    if not node.line.startswith("policy-map"):
        kids.sort(key=_child_key)
    return Node(node.line, kids)


def canonical(tree: Sequence[Node]) -> str:
    """Stable text of an owned tree: blocks sorted by kind then header, children as in :func:`_sorted`."""
    lines: list[str] = []
    for node in sorted(tree, key=_order):
        lines += _sorted(node).render()
    return "\n".join(lines) + ("\n" if lines else "")


def _negate(line: str) -> str:
    words = line.split()
    if words[0].isdigit():
        return f"no {words[0]}"  # numbered ACL entry
    if words[0] == "sequence" and len(words) > 1 and words[1].isdigit():
        return f"no sequence {words[1]}"
    if words[0] == "no":
        return "default " + " ".join(words[1:])
    return f"no {line}"


def _same_key(a: str, b: str) -> bool:
    """Two lines that set the same thing (the later replaces the earlier on the device)."""
    wa, wb = a.split(), b.split()
    if wa[0] == "no":
        wa = wa[1:]
    if wb[0] == "no":
        wb = wb[1:]
    return wa[:2] == wb[:2]


def _edit(path: list[str], have: Sequence[Node], want: Sequence[Node], depth: int) -> list[str]:
    """Commands that turn the children ``have`` into ``want`` under the block ``path``."""
    have_by = {n.line: n for n in have}
    want_by = {n.line: n for n in want}
    ctx = [" " * i + p for i, p in enumerate(path)]
    pad = " " * depth
    removals: list[str] = []
    for n in have:
        if n.line not in want_by:
            if n.line.startswith("no ") and any(_same_key(n.line, w.line) for w in want):
                continue  # "no qos trust" is replaced by "qos trust dscp" itself
            removals.append(pad + _negate(n.line))
    additions: list[str] = []
    nested: list[str] = []
    for n in want:
        old = have_by.get(n.line)
        if old is None:
            additions += n.render(depth)
        elif n.children or old.children:
            nested += _edit([*path, n.line], old.children, n.children, depth + 1)
    body = removals + additions
    return (ctx + body if body else []) + nested


DEFAULT_CLASS = "class class-default"


def _out_of_place(have: Sequence[Node], want: Sequence[Node]) -> list[Node]:
    """A policy-map's classes (in ``have``) that must be removed and added again to reach ``want``'s order.

    A device adds a new class at the end (class-default always stays last), and
    classes match in order. The classes kept from ``have`` must already be in
    ``want``'s order and come before every new one; from the first kept class
    where that breaks, the kept classes are re-added (in ``want``'s order, with
    the new ones). Removing a class never moves the others.
    """
    want_classes = [n.line for n in want if n.line.startswith("class ") and n.line != DEFAULT_CLASS]
    wanted = set(want_classes)
    kept = [n for n in have if n.line in wanted]
    for k, node in enumerate(kept):
        if node.line != want_classes[k]:
            return kept[k:]
    return []


def _edit_policy_map(header: str, have: Sequence[Node], want: Sequence[Node]) -> list[str]:
    """:func:`_edit` for a policy-map, first removing the classes :func:`_out_of_place` names."""
    moved = _out_of_place(have, want)
    gone = {n.line for n in moved}
    rest = _edit([header], [n for n in have if n.line not in gone], want, 1)
    if not moved:
        return rest
    if rest and rest[0] == header:
        rest = rest[1:]  # already in the policy-map's context
    return [header] + [" " + _negate(n.line) for n in moved] + rest


def _removal_rank(node: Node) -> int:
    line = node.line
    if line.startswith("interface "):
        return 0
    if line.startswith("policy-map"):
        return 1
    if line.startswith("class-map"):
        return 2
    if "access-list" in line:
        return 3
    return 4


def commands(have: Sequence[Node], want: Sequence[Node]) -> list[str]:
    """Config lines (with indentation) that turn the owned tree ``have`` into ``want``."""
    want_by = {n.line: n for n in want}
    have_by = {n.line: n for n in have}
    out: list[str] = []
    # 1. stale whole blocks, dependency order (attachments before policies, parents before children)
    stale = [n for n in have if n.line not in want_by]
    for _i, n in sorted(enumerate(stale), key=lambda p: (_removal_rank(p[1]), -p[0])):
        if n.line.startswith("interface "):
            out += [n.line] + [" " + _negate(c.line) for c in n.children]
        else:
            out.append(_negate(n.line))
    # 2. changes inside blocks that stay, then new blocks, in the intended (dependency) order
    for n in want:
        old = have_by.get(n.line)
        if old is None:
            out += n.render()
        elif n.line.startswith("policy-map"):
            out += _edit_policy_map(n.line, old.children, n.children)
        else:
            out += _edit([n.line], old.children, n.children, 1)
    return out


# Lines a device prints around or inside its config that change without a config change.
VOLATILE = re.compile(
    r"^(Building configuration|Current configuration :|! Last configuration change|! NVRAM config last|"
    r"! Time:|! Command:|! device:|! Startup-config last modified)"
)


def stable_text(text: str) -> str:
    """The running config without timestamps and byte counts, for "exactly as it was" comparisons."""
    lines = [line.rstrip() for line in text.replace("\r", "").splitlines()]
    return "\n".join(line for line in lines if line.strip() and not VOLATILE.match(line.strip())) + "\n"


class IosLikeDriver(Driver):
    """Shared by IOS-XE and EOS: read ``show running-config``, diff the owned part, push minimal commands."""

    ownership: ClassVar[Ownership] = Ownership()
    config_file: ClassVar[str] = "qos.cfg"
    # netmiko error_pattern: the device's complaint about a config line.
    error_pattern: ClassVar[str] = r"^%\s*(Invalid|Incomplete|Ambiguous|Error)|^% .*(not allowed|failed|in use)"

    def __init__(self, device: Device, files: Mapping[str, str], ctx: DriverContext) -> None:
        super().__init__(device, files, ctx)
        if self.config_file not in self.files:
            raise ApplyError("precondition", f"{device.name}: rendered file {self.config_file} missing")
        self.want_tree = parse(self.files[self.config_file])
        self.managed = self.managed_in(self.want_tree)
        want = self.own(self.want_tree)
        outside = [n.line for n in self.want_tree if n.line not in {w.line for w in want}]
        if outside:
            raise ApplyError(
                "precondition",
                f"{device.name}: the rendered config has lines qoectl would not own on the device: {outside[0]}",
            )
        self.want = want
        self.tag = f"qoectl-{ctx.run_id}".replace(":", "")

    @staticmethod
    def managed_in(intended: Sequence[Node]) -> frozenset[str]:
        """The interfaces the rendered config configures (their owned kinds of lines are qoectl's)."""
        return managed_interfaces(intended)

    def own(self, tree: Sequence[Node]) -> list[Node]:
        """The part of a parsed config qoectl owns on this platform."""
        return owned(tree, self.ownership, self.managed)

    def running(self, s: Session) -> str:
        out = s.send("show running-config")
        if not out.strip() or re.search(self.error_pattern, out, re.MULTILINE):
            raise ApplyError("precondition", f"{s.where}: cannot read the running config: {out.strip()[:120]}")
        return out

    def snapshot(self, s: Session) -> Snapshot:
        text = self.running(s)
        tree = parse(text)
        return Snapshot(
            backup={"running-config.txt": text if text.endswith("\n") else text + "\n"},
            state=canonical(self.own(tree)),
            extra={"stable": stable_text(text)},
        )

    def intended(self, s: Session, before: Snapshot) -> str:
        present = {n.line for n in parse(before.backup["running-config.txt"]) if n.line.startswith("interface ")}
        missing = sorted(i.split(" ", 1)[1] for i in self.managed - present)
        if missing:
            raise ApplyError("precondition", f"{s.where}: interface(s) not on the device: {', '.join(missing)}")
        return canonical(self.want)

    def plan_commands(self, before: Snapshot) -> list[str]:
        have = self.own(parse(before.backup["running-config.txt"]))
        return commands(have, self.want)

    def same(self, before: Snapshot, after: Snapshot) -> bool:
        return before.extra.get("stable") == after.extra.get("stable")

    @staticmethod
    def exec_mode(s: Session) -> None:
        """Leave config mode if a failed ``send_config_set`` left the session there."""
        with contextlib.suppress(ApplyError):
            if s.call("check_config_mode"):
                s.call("exit_config_mode")


def one_line(text: str) -> str:
    """The device's complaint in one line (the ``%`` line, else the last non-blank one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "^"]
    errors = [line for line in lines if line.startswith("%")]
    return (errors or lines or ["no output"])[-1][:200]
