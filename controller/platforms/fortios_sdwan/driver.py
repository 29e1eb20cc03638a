"""FortiOS (FortiGate) SD-WAN and shaping: read ``show``, diff what qoectl owns, push the entries that differ.

The rendered ``fortios.conf`` is a FortiOS CLI script (``config``/``edit``/``set``/
``next``/``end``). The driver reads the same sections from the device with ``show
<section>`` (FortiOS prints only settings that differ from their default), parses both
into the same tree, keeps the part qoectl owns, and compares them as canonical text.

What qoectl owns (never anything else):

- entries named ``QOECTL-*`` in ``firewall address``, ``firewall service custom``,
  ``firewall shaping-profile`` and ``system sdwan`` > ``health-check``; numbered entries
  whose ``name`` (``class-name`` for traffic classes) is ``QOECTL-*`` in ``firewall
  traffic-class``, ``firewall shaping-policy`` and ``system sdwan`` > ``service``;
- SD-WAN members whose interface is one the rendered file makes a member, and the
  ``system sdwan`` settings the rendered file sets (``status``);
- on the interfaces the rendered file names, ``outbandwidth`` and ``egress-shaping-profile``;
  on any other interface, an ``egress-shaping-profile`` naming a ``QOECTL-`` profile (stale).

SD-WAN rules and shaping policies are matched by name, not number: a new one takes the
rendered number if the device has no entry with it, else the next free number, so a
foreign rule 1 is never overwritten. Traffic classes and members are referenced by number
(``class-id``, ``priority-members``): a rendered number held by a foreign entry stops the
apply before anything is sent.

Push: one block per section, entries that are missing or differ first (sections in the
rendered, dependency order), then the deletions of owned entries the new config no longer
has, in reverse order (rules before health checks before members, shaping policies before
profiles before traffic classes, services and addresses), because FortiOS refuses to
delete an entry something still references.

Rollback: FortiOS has no commit/confirm. ``config system global`` > ``set cfg-save revert``
(with ``cfg-revert-timeout``) keeps changes unsaved and, on timeout or ``execute cfg
reload``, *reboots* the FortiGate into its saved config: it is a device-wide mode that
would also drop other administrators' unsaved work, so qoectl does not use it. Instead a
rollback sends the inverse edit computed from a fresh read (re-creating deleted entries
with their ``uuid``), then ``move``s entries back to their place, and the engine verifies
that every section prints exactly as in the backup.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from controller.apply.connection import Session
from controller.apply.drivers.base import Driver, DriverContext, Snapshot
from controller.apply.errors import ApplyError
from controller.model import Device
from controller.platforms.fortios_sdwan.parser import Block, Value
from controller.platforms.fortios_sdwan.parser import tree as parse

# Sections in the renderer's (dependency) order.
SECTIONS = (
    "firewall address",
    "firewall service custom",
    "firewall traffic-class",
    "firewall shaping-profile",
    "firewall shaping-policy",
    "system interface",
    "system sdwan",
)
PREFIX = "QOECTL-"
ERROR_PATTERN = (
    r"Command fail\. Return code|command parse error|value parse error|entry not found|node_check_object fail"
    r"|Unknown action"
)
# "get system status" with virtual domains on (what netmiko's fortinet driver checks at login, too).
VDOMS = re.compile(r"Virtual domain configuration: (multiple|enable|split-task)")
# Settings the device writes by itself (not compared, but restored with an entry a rollback re-creates).
GENERATED = frozenset({"uuid"})
# Values FortiOS's "show" leaves out because they are the default (FortiOS CLI reference of each table).
DEFAULTS: Mapping[tuple[str, ...], Mapping[str, tuple[str, ...]]] = {
    ("system sdwan",): {"status": ("disable",)},
    ("system sdwan", "members"): {"cost": ("0",)},
    ("system sdwan", "health-check"): {"detect-mode": ("active",)},
    ("system sdwan", "service"): {"mode": ("manual",)},
    ("firewall shaping-profile",): {"type": ("policing",)},
    ("firewall shaping-profile", "shaping-entries"): {"priority": ("high",), "maximum-bandwidth-percentage": ("100",)},
}
IFACE_SETTINGS = ("outbandwidth", "egress-shaping-profile")
BY_NAME = {  # numbered tables whose entries qoectl matches by a name setting
    ("firewall traffic-class",): "class-name",
    ("firewall shaping-policy",): "name",
    ("system sdwan", "service"): "name",
}
MEMBERS = ("system sdwan", "members")
# Numbered tables whose entries qoectl matches on the device by a setting, whatever their number.
MATCH_BY = {("firewall shaping-policy",): "name", ("system sdwan", "service"): "name", MEMBERS: "interface"}
MEMBER_REFS = ((("system sdwan", "health-check"), "members"), (("system sdwan", "service"), "priority-members"))
ORDERED: tuple[tuple[str, ...], ...] = (("firewall shaping-policy",), ("system sdwan", "service"))  # first match wins
# The order deletions go in, inside "system sdwan" (a rule refers to health checks, they to members).
SDWAN_DELETE_ORDER = ("service", "health-check", "members")

Path = tuple[str, ...]


def _is_table(block: Block) -> bool:
    return block.entries is not None


def _copy(block: Block, keep: Callable[[str], bool] = lambda _: True) -> Block:
    return Block(
        {k: v for k, v in block.settings.items() if keep(k)},
        {k: _copy(b) for k, b in block.blocks.items()},
        None if block.entries is None else {k: _copy(e) for k, e in block.entries.items()},
    )


def drop_defaults(path: Path, block: Block) -> Block:
    """The block as ``show`` would print it: settings equal to their default left out."""
    defaults = DEFAULTS.get(path, {})
    out = Block(
        {k: v for k, v in block.settings.items() if defaults.get(k) != v.words},
        {k: drop_defaults((*path, k), b) for k, b in block.blocks.items()},
    )
    if block.entries is not None:
        out.entries = {k: drop_defaults(path, e) for k, e in block.entries.items()}
    return out


# -- canonical text -----------------------------------------------------------------------------------


def _word(w: str) -> str:
    return w if w and re.fullmatch(r"[A-Za-z0-9_./:@+-]+", w) else '"' + w.replace('"', '\\"') + '"'


def _entry_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def canonical_lines(block: Block, depth: int) -> list[str]:
    """Stable text of a block: settings and nested blocks by name, entries by number or name."""
    pad = "    " * depth
    out: list[str] = []
    if block.entries is not None:
        for key in sorted(block.entries, key=_entry_order):
            out += [f"{pad}edit {_key(key)}", *canonical_lines(block.entries[key], depth + 1), f"{pad}next"]
        return out
    for name in sorted(block.settings):
        if name not in GENERATED:
            out.append(f"{pad}set {name} " + " ".join(_word(w) for w in block.settings[name].words))
    for name in sorted(block.blocks):
        body = canonical_lines(block.blocks[name], depth + 1)
        if body:
            out += [f"{pad}config {name}", *body, f"{pad}end"]
    return out


def canonical(tops: Mapping[str, Block]) -> str:
    lines: list[str] = []
    for name in SECTIONS:
        body = canonical_lines(tops[name], 1) if name in tops else []
        if body:
            lines += [f"config {name}", *body, "end"]
    return "".join(f"{line}\n" for line in lines)


# -- ownership ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    """What qoectl owns on this device, from the rendered file (see the module docstring)."""

    interfaces: frozenset[str]  # interfaces whose outbandwidth / egress-shaping-profile are qoectl's
    members: frozenset[str]  # interfaces of the SD-WAN members qoectl renders
    sdwan_settings: frozenset[str]  # "system sdwan" settings qoectl renders

    def owns_entry(self, path: Path, key: str, entry: Block) -> bool:
        if path in BY_NAME:
            return entry.get(BY_NAME[path]).startswith(PREFIX)
        if path == MEMBERS:
            return entry.get("interface") in self.members
        return key.startswith(PREFIX)

    def owned(self, tops: Mapping[str, Block]) -> dict[str, Block]:
        out: dict[str, Block] = {}
        for name in SECTIONS:
            block = tops.get(name)
            if block is None:
                continue
            if name == "system interface":
                part = Block(entries={})
                for key, entry in (block.entries or {}).items():
                    kept = self._iface_settings(key, entry)
                    if kept and part.entries is not None:
                        part.entries[key] = Block(kept)
            elif name == "system sdwan":
                part = Block({k: v for k, v in block.settings.items() if k in self.sdwan_settings})
                for sub, table in block.blocks.items():
                    if sub in ("members", "health-check", "service"):
                        part.blocks[sub] = self._table((name, sub), table)
            else:
                part = self._table((name,), block)
            out[name] = part
        return out

    def _iface_settings(self, name: str, entry: Block) -> dict[str, Value]:
        """An interface's settings qoectl owns: both on a rendered interface, else a stale QOECTL- profile."""
        if name in self.interfaces:
            return {k: v for k, v in entry.settings.items() if k in IFACE_SETTINGS}
        if entry.get("egress-shaping-profile").startswith(PREFIX):
            return {"egress-shaping-profile": entry.settings["egress-shaping-profile"]}
        return {}

    def _table(self, path: Path, table: Block) -> Block:
        return Block(entries={k: _copy(e) for k, e in (table.entries or {}).items() if self.owns_entry(path, k, e)})


def ownership_of(want: Mapping[str, Block]) -> Ownership:
    ifaces = want.get("system interface")
    sdwan = want.get("system sdwan")
    members = sdwan.blocks.get("members") if sdwan else None
    return Ownership(
        interfaces=frozenset(ifaces.entries or {}) if ifaces else frozenset(),
        members=frozenset(e.get("interface") for e in ((members.entries or {}) if members else {}).values()),
        sdwan_settings=frozenset(sdwan.settings) if sdwan else frozenset(),
    )


def tables(tops: Mapping[str, Block]) -> Iterator[tuple[Path, Block]]:
    """The first-level tables of the sections (``("system sdwan", "service")`` ...)."""
    for name in SECTIONS:
        block = tops.get(name)
        if block is None:
            continue
        if _is_table(block):
            yield (name,), block
        for sub, inner in block.blocks.items():
            if _is_table(inner):
                yield (name, sub), inner


def _table_at(tops: Mapping[str, Block], path: Path) -> Block | None:
    block = tops.get(path[0])
    for name in path[1:]:
        block = block.blocks.get(name) if block is not None else None
    return block


def number(have: Mapping[str, Block], want: dict[str, Block], own: Ownership, device: str) -> list[str]:
    """Give rendered numbered entries the device's numbers; returns the conflicts found.

    SD-WAN rules and shaping policies are matched by name, members by interface: an owned entry
    keeps its number, a new one takes the rendered number if it is free, else the next free one;
    references to renumbered members (health checks' ``members``, rules' ``priority-members``) follow.
    Traffic classes keep the rendered numbers (profiles and policies refer to them): a foreign entry
    on one is a conflict. Changes ``want`` in place (the driver's own parsed copy of the rendered file).
    """
    problems: list[str] = []
    members: dict[str, str] = {}
    for path, table in list(tables(want)):
        if table.entries is None or (path not in BY_NAME and path not in MATCH_BY):
            continue
        dev = _table_at(have, path)
        dev_entries = (dev.entries or {}) if dev is not None else {}
        if path not in MATCH_BY:
            for key in table.entries:
                other = dev_entries.get(key)
                if other is not None and not own.owns_entry(path, key, other):
                    problems.append(
                        f"{device}: {' > '.join(path)} {key} is a foreign entry on the device "
                        f"({_describe(other)}); qoectl renders its own there and will not overwrite it"
                    )
            continue
        attr = MATCH_BY[path]
        matched = {e.get(attr): k for k, e in dev_entries.items() if own.owns_entry(path, k, e)}
        taken = set(dev_entries)
        renumbered: dict[str, Block] = {}
        for key, entry in table.entries.items():
            new = matched.get(entry.get(attr))
            if new is None:
                free = key not in taken and key not in renumbered
                new = key if free else str(max(int(k) for k in taken | set(renumbered) | {"0"}) + 1)
            renumbered[new] = entry
            if path == MEMBERS:
                members[key] = new
        table.entries = renumbered
    for path, attr in MEMBER_REFS:
        referrers = _table_at(want, path)
        for entry in (referrers.entries or {}).values() if referrers is not None else ():
            if attr in entry.settings:
                seqs = tuple(members.get(w, w) for w in entry.settings[attr].words)
                entry.settings[attr] = Value(seqs, " ".join(seqs))
    return problems


def _describe(entry: Block) -> str:
    for attr in ("name", "class-name", "interface"):
        if attr in entry.settings:
            return f"{attr} {entry.settings[attr].raw}"
    return "no name"


# -- commands -----------------------------------------------------------------------------------------


def _render_new(block: Block, depth: int) -> list[str]:
    """Every setting and nested block of a new entry, as written in its source."""
    pad = "    " * depth
    out = [f"{pad}set {k} {v.raw}" for k, v in block.settings.items()]
    for name, sub in block.blocks.items():
        body: list[str] = []
        if sub.entries is not None:
            for key, entry in sub.entries.items():
                body += [f"{pad}    edit {_key(key)}", *_render_new(entry, depth + 2), f"{pad}    next"]
        else:
            body = _render_new(sub, depth + 1)
        if body:
            out += [f"{pad}config {name}", *body, f"{pad}end"]
    return out


def _key(key: str) -> str:
    return key if key.isdigit() else '"' + key.replace('"', '\\"') + '"'


def edit_block(have: Block, want: Block, depth: int, *, compare_generated: bool) -> list[str]:
    """Lines inside an object or entry that turn ``have`` into ``want`` (nested tables in full)."""
    pad = "    " * depth
    out: list[str] = []
    for k, v in want.settings.items():
        old = have.settings.get(k)
        if (old is None or old.words != v.words) and (compare_generated or k not in GENERATED):
            out.append(f"{pad}set {k} {v.raw}")
    for k in have.settings:
        if k not in want.settings and k not in GENERATED:
            out.append(f"{pad}unset {k}")
    for name in [*want.blocks, *(b for b in have.blocks if b not in want.blocks)]:
        sub = edit_table(
            have.blocks.get(name, Block(entries={})),
            want.blocks.get(name, Block(entries={})),
            depth + 1,
            compare_generated=compare_generated,
        )
        if sub:
            out += [f"{pad}config {name}", *sub, f"{pad}end"]
    return out


def edit_table(
    have: Block,
    want: Block,
    depth: int,
    *,
    compare_generated: bool,
    deletions: bool = True,
    additions: bool = True,
    attrs_only: bool = False,
) -> list[str]:
    """Lines inside a table (or object) turning ``have`` into ``want``.

    ``attrs_only``: the entries are not qoectl's, only some of their settings (interfaces):
    an entry that leaves is edited to unset them, never deleted.
    """
    pad = "    " * depth
    if want.entries is None and have.entries is None:
        return edit_block(have, want, depth, compare_generated=compare_generated) if additions else []
    have_e, want_e = have.entries or {}, want.entries or {}
    out: list[str] = []
    if additions:
        for key, entry in want_e.items():
            old = have_e.get(key)
            body = (
                _render_new(entry, depth + 1)
                if old is None
                else edit_block(old, entry, depth + 1, compare_generated=compare_generated)
            )
            if body:
                out += [f"{pad}edit {_key(key)}", *body, f"{pad}next"]
    if deletions:
        for key, entry in have_e.items():
            if key in want_e:
                continue
            if attrs_only:
                out += [f"{pad}edit {_key(key)}", *(f"{pad}    unset {k}" for k in entry.settings), f"{pad}next"]
            else:
                out.append(f"{pad}delete {_key(key)}")
    return out


def commands(have: Mapping[str, Block], want: Mapping[str, Block], *, compare_generated: bool = False) -> list[str]:
    """The minimal change from the owned ``have`` to ``want``: changes in section order, then deletions in reverse."""
    empty = Block(entries={})
    out: list[str] = []
    for name in SECTIONS:  # 1. new and changed entries (and interfaces let go), dependency order
        h, w = have.get(name, empty), want.get(name, empty)
        iface = name == "system interface"
        if name == "system sdwan":
            body = edit_block_sdwan(h, w, compare_generated, deletions=False)
        else:
            body = edit_table(h, w, 1, compare_generated=compare_generated, deletions=iface, attrs_only=iface)
        if body:
            out += [f"config {name}", *body, "end"]
    for name in reversed(SECTIONS):  # 2. entries the new config no longer has, referrers first
        if name == "system interface":
            continue
        h, w = have.get(name, empty), want.get(name, empty)
        if name == "system sdwan":
            body = edit_block_sdwan(h, w, compare_generated, deletions=True)
        else:
            body = edit_table(h, w, 1, compare_generated=compare_generated, additions=False)
        if body:
            out += [f"config {name}", *body, "end"]
    return out


def edit_block_sdwan(have: Block, want: Block, compare_generated: bool, *, deletions: bool) -> list[str]:
    """``system sdwan``: its settings and tables; additions in rendered order, deletions rules-first."""
    empty = Block(entries={})
    out: list[str] = []
    if not deletions:
        for k, v in want.settings.items():
            old = have.settings.get(k)
            if old is None or old.words != v.words:
                out.append(f"    set {k} {v.raw}")
        out += [f"    unset {k}" for k in have.settings if k not in want.settings]
    order = SDWAN_DELETE_ORDER if deletions else tuple(reversed(SDWAN_DELETE_ORDER))
    for sub in order:
        body = edit_table(
            have.blocks.get(sub, empty),
            want.blocks.get(sub, empty),
            2,
            compare_generated=compare_generated,
            deletions=deletions,
            additions=not deletions,
        )
        if body:
            out += [f"    config {sub}", *body, "    end"]
    return out


def moves(current: list[str], target: list[str]) -> list[str]:
    """``move`` commands that put ``current`` (a table's keys) in ``target``'s order (keys in both)."""
    cur = [k for k in current if k in target]
    goal = [k for k in target if k in cur]
    out: list[str] = []
    for i, key in enumerate(goal):
        if cur.index(key) == i:
            continue
        cur.remove(key)
        if i == 0:
            out.append(f"move {_key(key)} before {_key(cur[0])}")
        else:
            out.append(f"move {_key(key)} after {_key(goal[i - 1])}")
        cur.insert(i, key)
    return out


def order_commands(now: Mapping[str, Block], backup: Mapping[str, Block]) -> list[str]:
    """Put rules and shaping policies back in their place (a re-created entry is appended to its table).

    Only these tables take ``move`` (it exists "only in tables where the order of entries makes a
    difference", Fortinet KB 197353); elsewhere a re-created entry stays at the end, see :func:`unordered`.
    """
    out: list[str] = []
    for path in ORDERED:
        b, n = _table_at(backup, path), _table_at(now, path)
        if b is None or n is None:
            continue
        mv = moves(list(n.entries or {}), list(b.entries or {}))
        if mv and len(path) == 1:
            out += [f"config {path[0]}", *(f"    {m}" for m in mv), "end"]
        elif mv:
            out += [f"config {path[0]}", f"    config {path[1]}", *(f"        {m}" for m in mv), "    end", "end"]
    return out


@dataclass
class _Line:
    text: str
    children: list[_Line] = field(default_factory=list)


def unordered(text: str) -> str:
    """``show`` text with the entries of tables whose order means nothing sorted (all but :data:`ORDERED`).

    FortiOS lists every table in creation order, but only rules and shaping policies can be moved:
    an address a rollback re-creates is listed last, with the same uuid and settings. This is the
    text two snapshots must share to be "the same device"; everything else is compared byte for byte.
    """
    roots: list[_Line] = []
    stack: list[tuple[int, _Line]] = []
    for raw in text.splitlines():
        if raw.strip() in ("next", "end"):
            continue  # implied by the indentation
        indent = len(raw) - len(raw.lstrip(" "))
        node = _Line(raw)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(node)
        stack.append((indent, node))

    def render(nodes: list[_Line], path: Path) -> list[str]:
        out: list[str] = []
        for n in nodes:
            words = n.text.split()
            sub = (*path, " ".join(words[1:])) if words[:1] == ["config"] else path
            kids = n.children
            entries = [k for k in kids if k.text.strip().startswith("edit ")]
            if entries and sub not in ORDERED:
                kids = sorted(entries, key=lambda k: k.text) + [k for k in kids if k not in entries]
            out += [n.text, *render(kids, sub)]
        return out

    return "\n".join(render(roots, ())) + "\n"


# -- the driver ---------------------------------------------------------------------------------------


class FortiosDriver(Driver):
    platform = "fortios_sdwan"
    device_type = "fortinet"
    config_file = "fortios.conf"

    def __init__(self, device: Device, files: Mapping[str, str], ctx: DriverContext) -> None:
        super().__init__(device, files, ctx)
        if self.config_file not in self.files:
            raise ApplyError("precondition", f"{device.name}: rendered file {self.config_file} missing")
        try:
            rendered = parse(self.files[self.config_file])
        except ValueError as exc:
            raise ApplyError("precondition", f"{device.name}: {self.config_file}: {exc}") from None
        outside = sorted(set(rendered) - set(SECTIONS))
        if outside:
            raise ApplyError(
                "precondition", f"{device.name}: the rendered config has a section qoectl does not own: {outside[0]}"
            )
        self.want = {name: drop_defaults((name,), block) for name, block in rendered.items()}
        self.own = ownership_of(self.want)
        stray = canonical(self.want) != canonical(self.own.owned(self.want))
        if stray:
            raise ApplyError(
                "precondition", f"{device.name}: the rendered config has entries qoectl would not own on the device"
            )

    # -- reading ------------------------------------------------------------------------------------
    def _prompt(self, s: Session) -> str:
        base = re.escape(str(s.conn.base_prompt).strip())
        return base + r" (?:\([^)\n]*\) )?#\s*$"

    def read(self, s: Session) -> str:
        texts = []
        for name in SECTIONS:
            out = self._exchange(s, f"show {name}")
            if re.search(ERROR_PATTERN, out) or not out.strip().startswith(f"config {name}"):
                raise ApplyError("precondition", f"{s.where}: cannot read '{name}': {out.strip()[:120]}")
            texts.append(out.strip().replace("\r", "") + "\n")
        return "".join(texts)

    def snapshot(self, s: Session) -> Snapshot:
        if VDOMS.search(self._exchange(s, "get system status")):
            raise ApplyError(
                "precondition",
                f"{s.where}: virtual domains are enabled; qoectl reads and writes the global sections of a "
                "FortiGate without VDOMs only",
            )
        text = self.read(s)
        return Snapshot(
            backup={"sections.conf": text}, state=canonical(self.own.owned(parse(text))), extra={"sections": text}
        )

    def _want(self, before: Snapshot) -> dict[str, Block]:
        have = parse(before.backup["sections.conf"])
        want = {k: _copy(v) for k, v in self.want.items()}
        problems = number(have, want, self.own, self.device.name)
        ifaces = have.get("system interface")
        present = set(ifaces.entries or {}) if ifaces else set()
        missing = sorted((self.own.interfaces | self.own.members) - present)
        if missing:
            problems.append(f"{self.device.name}: interface(s) not on the device: {', '.join(missing)}")
        if problems:
            raise ApplyError("precondition", "; ".join(problems))
        return want

    def intended(self, s: Session, before: Snapshot) -> str:
        return canonical(self._want(before))

    def plan_commands(self, before: Snapshot) -> list[str]:
        have = self.own.owned(parse(before.backup["sections.conf"]))
        return commands(have, self._want(before))

    # -- writing ------------------------------------------------------------------------------------
    def _to_top(self, s: Session) -> None:
        """Leave any config block a failed line left open, discarding it (``abort``)."""
        for _ in range(8):
            prompt = str(s.call("find_prompt"))
            if "(" not in prompt:
                return
            s.send("abort", expect=self._prompt(s), cmd_verify=False)

    def _send(self, s: Session, lines: list[str]) -> None:
        """Type ``lines`` one by one, each checked for an error before the next; a rejected line aborts its block.

        Like netmiko's ``send_config_set`` (echo, then the prompt, then ``error_pattern``), but polling the
        channel every millisecond instead of every 10 ms: a first apply is hundreds of lines.
        """
        try:
            self._type(s, lines)
        except ApplyError as exc:
            raise ApplyError(exc.kind, exc.message, sent=tuple(lines)) from None

    def _exchange(self, s: Session, line: str) -> str:
        """Type one line and return what the device answered (without the echo and the next prompt)."""
        prompt = re.compile(self._prompt(s))
        s.call("write_channel", s.conn.normalize_cmd(line))
        out = ""
        deadline = time.monotonic() + s.timeouts.command
        while not prompt.search(out):
            if time.monotonic() > deadline:
                raise ApplyError("timeout", f"{s.where}: no prompt after {line.strip()!r}")
            data = str(s.call("read_channel"))
            out += data.replace("\r", "")
            if not data:
                time.sleep(0.001)
        return "\n".join(out.split("\n")[1:-1])

    def _type(self, s: Session, lines: list[str]) -> None:
        errors = re.compile(ERROR_PATTERN, re.MULTILINE)
        for line in lines:
            out = self._exchange(s, line)
            if errors.search(out):
                with contextlib.suppress(ApplyError):
                    self._to_top(s)
                complaint = " / ".join(x.strip() for x in out.splitlines() if x.strip())
                raise ApplyError("rejected", f"{s.where}: device rejected a line: {line.strip()}: {complaint[:200]}")

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        cmds = self.plan_commands(before)
        self._send(s, cmds)
        return tuple(cmds)

    def rollback(self, s: Session, before: Snapshot) -> str:
        with contextlib.suppress(ApplyError):
            self._to_top(s)
        backup = parse(before.backup["sections.conf"])
        now_text = self.read(s)
        if now_text == before.extra["sections"]:
            return "nothing had taken effect (FortiOS discards an entry not ended with next)"
        now = parse(now_text)
        own = self.own
        # What qoectl owns now (entries the push created are removed) against what it owned before
        # (entries the push deleted come back, with their uuid).
        restore = commands(own.owned(now), own.owned(backup), compare_generated=True)
        if restore:
            self._send(s, restore)
            now = parse(self.read(s))
        reorder = order_commands(now, backup)
        if reorder:
            self._send(s, reorder)
        how = f"restored the owned entries from the backup ({len(restore)} lines, {len(reorder)} to reorder)"
        if restore and self.read(s) != before.extra["sections"]:
            how += "; re-created entries are listed last in tables FortiOS cannot reorder (same settings and uuid)"
        return how

    def same(self, before: Snapshot, after: Snapshot) -> bool:
        """Every section as in the backup, byte for byte, but the place of entries in unordered tables."""
        return unordered(before.extra["sections"]) == unordered(after.extra["sections"])


DRIVER = FortiosDriver
