"""FortiOS (FortiGate): ``config``/``edit``/``set``/``next``/``end`` tables, edited line by line.

The configuration is a tree of :class:`Node`: a *table* (``config firewall address``) holds
entries by key (a quoted name or a number), an *object* (``config system sdwan``) or an entry
holds settings and nested ``config`` blocks. What this emulator knows of FortiOS's schema is
:data:`TABLES` / :data:`OBJECTS` (which blocks exist and how their entries are keyed),
:data:`ATTRS` (which settings a block takes), :data:`DEFAULTS` (values ``show`` leaves out),
:data:`CHOICES` (enumerations) and :data:`REFS` (datasources: a setting or entry key that must
name an existing entry of another table, checked on ``set``/``edit`` and on ``delete``).

Semantics kept from a real FortiGate:

* what a session types is staged and takes effect as the FortiOS CLI reference says: a table
  entry when it is ended with ``next`` (an entry nested in an entry being edited, with that
  entry), ``delete`` and ``move`` at once, an object's own settings (``config system sdwan``
  > ``set status``) at its ``end``; ``abort`` ("exit both the edit and/or config commands
  without saving") or a dropped session discards what was not saved yet;
* ``show <path>`` prints the non-default settings in the device's own attribute order
  (string values quoted), ``show full-configuration <path>`` the defaults too; new entries
  are appended to their table; ``move K before|after K2`` exists only in the tables whose order
  means something (shaping policies, SD-WAN rules); addresses and shaping policies get a
  ``uuid`` unless one is set;
* errors as FortiOS prints them: ``command parse error before 'x'`` + ``Command fail.
  Return code -61`` (unknown command, setting or value), ``entry not found in datasource`` +
  ``value parse error before 'x'`` + ``Return code -3`` (a reference to nothing),
  ``The entry is used by other N entries`` + ``Return code -23`` (deleting a referenced entry);
* what netmiko's ``fortinet`` driver asks at login: ``get system status | grep ...``
  (version 7.2, VDOMs disabled) and ``get system console``; ``config system console`` /
  ``set output standard|more`` changes the paging mode (``more`` pages ``show`` output).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paramiko
from paramiko.kex_group14 import KexGroup14
from paramiko.primes import ModulusPack

from .base import DeviceState, LabShell, split_pipe

Path = tuple[str, ...]


def names(text: str) -> frozenset[str]:
    return frozenset(text.split())


def ordered(text: str) -> list[str]:
    return text.split()


#: tables and how their entries are keyed ("name": quoted string, "id": number)
TABLES: dict[Path, str] = {
    ("firewall address",): "name",
    ("firewall service custom",): "name",
    ("firewall traffic-class",): "id",
    ("firewall shaping-profile",): "name",
    ("firewall shaping-profile", "shaping-entries"): "id",
    ("firewall shaping-policy",): "id",
    ("system interface",): "name",
    ("system sdwan", "members"): "id",
    ("system sdwan", "health-check"): "name",
    ("system sdwan", "health-check", "sla"): "id",
    ("system sdwan", "service"): "id",
    ("system sdwan", "service", "sla"): "name",
}
OBJECTS: frozenset[Path] = frozenset({("system sdwan",), ("system global",), ("system console",)})
TOP = sorted({p[0] for p in (*TABLES, *OBJECTS)}, key=len, reverse=True)

ATTRS: dict[Path, frozenset[str]] = {
    p: frozenset(v.split())
    for p, v in {
        ("firewall address",): "uuid subnet type comment associated-interface color",
        ("firewall service custom",): "protocol tcp-portrange udp-portrange sctp-portrange icmptype comment category",
        ("firewall traffic-class",): "class-name",
        ("firewall shaping-profile",): "type default-class-id comment",
        ("firewall shaping-profile", "shaping-entries"): "class-id priority guaranteed-bandwidth-percentage "
        "maximum-bandwidth-percentage",
        ("firewall shaping-policy",): "uuid name comment status srcintf dstintf srcaddr dstaddr service tos "
        "tos-mask class-id diffserv-forward diffservcode-forward",
        ("system interface",): "vdom ip allowaccess type alias role outbandwidth inbandwidth egress-shaping-profile",
        ("system sdwan",): "status load-balance-mode",
        ("system sdwan", "members"): "interface gateway cost priority status",
        ("system sdwan", "health-check"): "server protocol detect-mode members mos-codec",
        ("system sdwan", "health-check", "sla"): "link-cost-factor latency-threshold jitter-threshold "
        "packetloss-threshold mos-threshold",
        ("system sdwan", "service"): "name mode protocol start-port end-port start-src-port end-src-port tos "
        "tos-mask src dst dscp-forward dscp-forward-tag dscp-reverse dscp-reverse-tag priority-members",
        ("system sdwan", "service", "sla"): "id",
        ("system global",): "hostname admintimeout timezone",
        ("system console",): "output",
    }.items()
}

DEFAULTS: dict[Path, dict[str, str]] = {
    ("system sdwan",): {"status": "disable"},
    ("system sdwan", "members"): {"cost": "0"},
    ("system sdwan", "health-check"): {"detect-mode": "active"},
    ("system sdwan", "service"): {"mode": "manual"},
    ("firewall shaping-profile",): {"type": "policing"},
    ("firewall shaping-profile", "shaping-entries"): {"priority": "high", "maximum-bandwidth-percentage": "100"},
    ("system console",): {"output": "more"},
}

SDWAN_SVC: Path = ("system sdwan", "service")
#: enumerations, per block and setting
CHOICES: dict[tuple[Path, str], frozenset[str]] = {
    (p, a): frozenset(v.split())
    for p, a, v in (
        (("firewall shaping-profile", "shaping-entries"), "priority", "top critical high medium low"),
        (("firewall shaping-profile",), "type", "policing queuing"),
        (("firewall service custom",), "protocol", "TCP/UDP/SCTP ICMP ICMP6 IP ALL"),
        (SDWAN_SVC, "mode", "auto manual priority sla load-balance"),
        (SDWAN_SVC, "dscp-forward", "enable disable"),
        (SDWAN_SVC, "dscp-reverse", "enable disable"),
        (("system sdwan", "health-check"), "detect-mode", "active passive prefer-passive"),
        (("system sdwan", "health-check"), "mos-codec", "g711 g722 g729"),
        (("system sdwan",), "status", "enable disable"),
        (("firewall shaping-policy",), "diffserv-forward", "enable disable"),
        (("system console",), "output", "standard more"),
    )
}
NUMBERS = names(
    "class-id default-class-id guaranteed-bandwidth-percentage maximum-bandwidth-percentage latency-threshold "
    "jitter-threshold packetloss-threshold start-port end-port start-src-port end-src-port outbandwidth cost id "
    "members priority-members"
)
PERCENT = frozenset({"guaranteed-bandwidth-percentage", "maximum-bandwidth-percentage", "packetloss-threshold"})
DSCP_TAG = re.compile(r"[01]{6}")

#: (block the setting is in, setting) -> table its values name; "<key>" = the entry key itself
REFS: dict[tuple[Path, str], Path] = {
    (("firewall shaping-policy",), "srcintf"): ("system interface",),
    (("firewall shaping-policy",), "dstintf"): ("system interface",),
    (("firewall shaping-policy",), "srcaddr"): ("firewall address",),
    (("firewall shaping-policy",), "dstaddr"): ("firewall address",),
    (("firewall shaping-policy",), "service"): ("firewall service custom",),
    (("firewall shaping-policy",), "class-id"): ("firewall traffic-class",),
    (("firewall shaping-profile",), "default-class-id"): ("firewall traffic-class",),
    (("firewall shaping-profile", "shaping-entries"), "class-id"): ("firewall traffic-class",),
    (("system interface",), "egress-shaping-profile"): ("firewall shaping-profile",),
    (("system sdwan", "members"), "interface"): ("system interface",),
    (("system sdwan", "health-check"), "members"): ("system sdwan", "members"),
    (("system sdwan", "service"), "src"): ("firewall address",),
    (("system sdwan", "service"), "dst"): ("firewall address",),
    (("system sdwan", "service"), "priority-members"): ("system sdwan", "members"),
    (("system sdwan", "service", "sla"), "<key>"): ("system sdwan", "health-check"),
}
QUOTED = names(
    "name comment class-name srcintf dstintf srcaddr dstaddr service src dst interface egress-shaping-profile "
    "mos-threshold alias hostname server vdom"
)
UUID_TABLES = frozenset({("firewall address",), ("firewall shaping-policy",)})
#: tables whose order means something and so take ``move`` (Fortinet KB "Using the CLI to change the order of
#: the IPv4, traffic shaping, local-in and SD-WAN policy list": "only available in tables where the order of
#: entries makes a difference"); every table prints its entries in the order they were created
ORDERED = frozenset({("firewall shaping-policy",), ("system sdwan", "service")})

#: the order ``show`` prints settings and nested blocks in (others follow, alphabetically)
ORDER = {
    k: n
    for n, k in enumerate(
        ordered(
            "uuid name class-name comment status interface gateway cost type default-class-id shaping-entries subnet "
            "protocol tcp-portrange udp-portrange mode server detect-mode members health-check mos-codec "
            "link-cost-factor latency-threshold jitter-threshold packetloss-threshold mos-threshold id start-port "
            "end-port start-src-port end-src-port srcintf dstintf srcaddr dstaddr service tos tos-mask src dst "
            "class-id priority guaranteed-bandwidth-percentage maximum-bandwidth-percentage dscp-forward "
            "dscp-forward-tag dscp-reverse dscp-reverse-tag sla priority-members diffserv-forward "
            "diffservcode-forward vdom ip allowaccess alias role outbandwidth inbandwidth egress-shaping-profile "
            "hostname admintimeout timezone output"
        )
    )
}

PARSE_ERROR = "command parse error before '{}'\nCommand fail. Return code -61"
NOT_FOUND = "entry not found in datasource\n\nvalue parse error before '{}'\nCommand fail. Return code -3"
IN_USE = "The entry is used by other {} entries\nCommand fail. Return code -23"
UNKNOWN_ACTION = "Unknown action 0\nCommand fail. Return code -1"
TOKEN_RE = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
VERSION = "FortiGate-VM64 v7.2.8,build1639,240313 (GA.M)"
PAGE_LINES = 22


def serve_group_exchange() -> None:
    """Give paramiko's server the primes for ``diffie-hellman-group-exchange`` (a FortiGate offers it).

    netmiko's ``fortinet`` driver allows only group-exchange, group14-sha1 and group1 key
    exchanges. A paramiko server without a moduli file still advertises group exchange but
    cannot do it, so the client's pick fails; with primes (OpenSSH's moduli file, else the
    RFC 3526 2048-bit group) it works, as with a real FortiGate.
    """
    if paramiko.Transport._modulus_pack is None and not paramiko.Transport.load_server_moduli():
        pack = ModulusPack()
        pack.pack[KexGroup14.P.bit_length()] = [(KexGroup14.G, KexGroup14.P)]
        paramiko.Transport._modulus_pack = pack


def tokens(line: str) -> list[str]:
    return [m.group(2) if m.group(1) is None else m.group(1).replace('\\"', '"') for m in TOKEN_RE.finditer(line)]


@dataclass
class Node:
    """An object or entry (settings + nested blocks), or a table (``entries`` is not None)."""

    settings: dict[str, list[str]] = field(default_factory=dict)
    blocks: dict[str, Node] = field(default_factory=dict)
    entries: dict[str, Node] | None = None


def new_block(path: Path) -> Node:
    return Node(entries={}) if path in TABLES else Node()


def _value(attr: str, value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"' if attr in QUOTED else value


def _key(path: Path, key: str) -> str:
    return key if TABLES[path] == "id" else f'"{key}"'


def _order(name: str) -> tuple[int, str]:
    return ORDER.get(name, len(ORDER)), name


def render(path: Path, node: Node, depth: int, full: bool = False) -> list[str]:
    """The body of a block as ``show`` prints it (``full``: defaults too)."""
    pad = "    " * depth
    out: list[str] = []
    if node.entries is not None:
        for key, entry in node.entries.items():
            out.append(f"{pad}edit {_key(path, key)}")
            out += render(path, entry, depth + 1, full)
            out.append(f"{pad}next")
        return out
    settings = dict(node.settings)
    if full:
        settings = {**{k: [v] for k, v in DEFAULTS.get(path, {}).items()}, **settings}
    items: list[tuple[str, list[str] | Node]] = [*settings.items(), *node.blocks.items()]
    for name, item in sorted(items, key=lambda kv: _order(kv[0])):
        if isinstance(item, Node):
            body = render((*path, name), item, depth + 1, full)
            if body:
                out += [f"{pad}config {name}", *body, f"{pad}end"]
        elif full or DEFAULTS.get(path, {}).get(name) != " ".join(item):
            out.append(f"{pad}set {name} " + " ".join(_value(name, v) for v in item))
    return out


def walk(path: Path, node: Node) -> Iterator[tuple[Path, str, Node]]:
    """Every entry or object below ``node`` as (its block path, its key or "", the node)."""
    if node.entries is not None:
        for key, entry in node.entries.items():
            yield path, key, entry
            for name, sub in entry.blocks.items():
                yield from walk((*path, name), sub)
    else:
        yield path, "", node
        for name, sub in node.blocks.items():
            yield from walk((*path, name), sub)


@dataclass
class Frame:
    path: Path
    node: Node
    key: str | None = None  # set for an entry being edited (its table is the frame below)


class FortiosState(DeviceState):
    """The ended configuration (``config``), the console's paging mode, and a shared editor for loads."""

    platform = "fortios_sdwan"

    def __init__(self, name: str, username: str) -> None:
        super().__init__(name, username)
        serve_group_exchange()
        self.config: dict[str, Node] = {top: new_block((top,)) for top in TOP}
        self.load(SEED.format(name=name))

    def load(self, script: str) -> None:
        """Apply a FortiOS script as if typed (errors raise: a test's setup must be valid)."""
        with self.lock:
            editor = Editor(self)
            for line in script.splitlines():
                if line.strip() and not line.strip().startswith("#"):
                    out = editor.line(line.strip())
                    if "Command fail" in out or "parse error" in out:
                        raise ValueError(f"{self.name}: {line.strip()!r}: {out}")
            if editor.frames:
                raise ValueError(f"{self.name}: script ends inside a config block")

    def show(self, top: str, full: bool = False) -> str:
        with self.lock:
            body = render((top,), self.config[top], 1, full)
            return "\n".join([f"config {top}", *body, "end"]) + "\n"

    def sections(self, tops: tuple[str, ...]) -> str:
        """What ``show <top>`` prints for each of ``tops``, concatenated (how backups are compared)."""
        return "".join(self.show(t) for t in tops)

    def running_config(self) -> str:
        return self.sections(tuple(sorted(TOP)))

    def set_running_config(self, text: str) -> None:
        self.load(text)

    def startup_config(self) -> str:
        return self.running_config()  # cfg-save automatic: every ended block is saved


SEED = """\
config system global
    set hostname "{name}"
end
config system interface
    edit "port1"
        set vdom "root"
        set ip 192.0.2.1 255.255.255.0
    next
    edit "wan1"
        set vdom "root"
        set ip 198.51.100.1 255.255.255.0
    next
    edit "wan2"
        set vdom "root"
        set ip 203.0.113.1 255.255.255.0
    next
    edit "internal"
        set vdom "root"
        set ip 10.1.1.1 255.255.255.0
    next
end
config firewall address
    edit "all"
        set uuid 00000000-0000-4000-8000-000000000001
    next
end
config firewall service custom
    edit "ALL"
        set protocol IP
    next
end
"""


class Editor:
    """One session's position in the config tree and its copy of the top-level block it edits."""

    def __init__(self, state: FortiosState) -> None:
        self.state = state
        self.frames: list[Frame] = []
        self.work: Node | None = None  # the staged copy of the top-level block being edited
        self.top = ""

    # -- helpers ------------------------------------------------------------------------------------
    def lookup(self, path: Path) -> Node | None:
        """A block as this session sees it (its staged block, the ended config elsewhere)."""
        node = self.work if self.work is not None and path[0] == self.top else self.state.config.get(path[0])
        for name in path[1:]:
            if node is None or node.entries is not None:
                return None
            node = node.blocks.get(name)
        return node

    def roots(self) -> Iterator[tuple[Path, str, Node]]:
        for top in TOP:
            node = self.lookup((top,))
            if node is not None:
                yield from walk((top,), node)

    def keys_of(self, table: Path) -> set[str]:
        """Keys of ``table`` (for nested tables such as sdwan members: of the one block that has it)."""
        node = self.lookup(table)
        return set(node.entries) if node is not None and node.entries is not None else set()

    def users(self, table: Path, key: str) -> int:
        count = 0
        for path, entry_key, node in self.roots():
            for attr, values in node.settings.items():
                if REFS.get((path, attr)) == table and key in values:
                    count += 1
            if REFS.get((path, "<key>")) == table and entry_key == key:
                count += 1
        return count

    # -- one line -----------------------------------------------------------------------------------
    def line(self, line: str) -> str:
        words = tokens(line)
        if not words:
            return ""
        verb, args = words[0], words[1:]
        if not self.frames:
            if verb == "config":
                return self.enter_top(" ".join(args), line)
            return PARSE_ERROR.format(verb)
        frame = self.frames[-1]
        handler: dict[str, Callable[[Frame, list[str]], str]] = {
            "config": self.config_sub,
            "edit": self.edit,
            "set": self.set,
            "append": self.set,
            "unset": self.unset,
            "delete": self.delete,
            "move": self.move,
            "next": self.next,
            "end": self.end,
            "abort": self.abort,
        }
        if verb not in handler:
            return PARSE_ERROR.format(verb)
        if verb == "append":
            return self.set(frame, args, append=True)
        return handler[verb](frame, args)

    def enter_top(self, name: str, line: str) -> str:
        if name not in TOP:
            return PARSE_ERROR.format(name.split()[-1] if name else "config")
        self.top = name
        self.work = copy.deepcopy(self.state.config[name])
        self.frames = [Frame((name,), self.work)]
        return ""

    def config_sub(self, frame: Frame, args: list[str]) -> str:
        path = (*frame.path, *args[:1])
        if len(args) != 1 or frame.node.entries is not None or path not in {*TABLES, *OBJECTS}:
            return PARSE_ERROR.format(args[0] if args else "config")
        node = frame.node.blocks.setdefault(args[0], new_block(path))
        self.frames.append(Frame(path, node))
        return ""

    def edit(self, frame: Frame, args: list[str]) -> str:
        if frame.node.entries is None or len(args) != 1:
            return PARSE_ERROR.format("edit")
        key = args[0]
        if TABLES[frame.path] == "id" and not key.isdigit():
            return PARSE_ERROR.format(key)
        target = REFS.get((frame.path, "<key>"))
        if target is not None and key not in self.keys_of(target):
            return NOT_FOUND.format(key)
        entry = frame.node.entries.get(key)
        if entry is None:
            entry = frame.node.entries[key] = Node()
            if frame.path in UUID_TABLES:
                entry.settings["uuid"] = [str(uuid.uuid4())]
        self.frames.append(Frame(frame.path, entry, key))
        return ""

    def set(self, frame: Frame, args: list[str], append: bool = False) -> str:
        if frame.node.entries is not None or not args:
            return PARSE_ERROR.format(args[0] if args else "set")
        attr, values = args[0], args[1:]
        if attr not in ATTRS.get(frame.path, frozenset()):
            return PARSE_ERROR.format(attr)
        if not values:
            return PARSE_ERROR.format(attr)
        bad = self.bad_value(frame.path, attr, values)
        if bad is not None:
            return bad
        if append:
            values = frame.node.settings.get(attr, []) + [
                v for v in values if v not in frame.node.settings.get(attr, [])
            ]
        if DEFAULTS.get(frame.path, {}).get(attr) == " ".join(values):
            frame.node.settings.pop(attr, None)  # show prints no default
        else:
            frame.node.settings[attr] = values
        return ""

    def bad_value(self, path: Path, attr: str, values: list[str]) -> str | None:
        choices = CHOICES.get((path, attr))
        if choices is not None and values[0] not in choices:
            return PARSE_ERROR.format(values[0])
        numeric = attr in NUMBERS or (path == SDWAN_SVC and attr == "protocol")
        if numeric and not all(v.isdigit() for v in values):
            return PARSE_ERROR.format(next(v for v in values if not v.isdigit()))
        if attr in PERCENT and int(values[0]) > 100:
            return PARSE_ERROR.format(values[0])
        if attr.endswith("-tag") and not DSCP_TAG.fullmatch(values[0]):
            return PARSE_ERROR.format(values[0])
        target = REFS.get((path, attr))
        if target is not None:
            known = self.keys_of(target)
            for v in values:
                if v not in known:
                    return NOT_FOUND.format(v)
        return None

    def unset(self, frame: Frame, args: list[str]) -> str:
        if frame.node.entries is not None or len(args) != 1 or args[0] not in ATTRS.get(frame.path, frozenset()):
            return PARSE_ERROR.format(args[0] if args else "unset")
        frame.node.settings.pop(args[0], None)
        return ""

    def delete(self, frame: Frame, args: list[str]) -> str:
        if frame.node.entries is None or len(args) != 1:
            return PARSE_ERROR.format("delete")
        if args[0] not in frame.node.entries:
            return NOT_FOUND.format(args[0])
        used = self.users(frame.path, args[0])
        if used:
            return IN_USE.format(used)
        del frame.node.entries[args[0]]
        self.save(frame)
        return ""

    def move(self, frame: Frame, args: list[str]) -> str:
        entries = frame.node.entries
        if entries is None or frame.key is not None or frame.path not in ORDERED:
            return PARSE_ERROR.format("move")
        if len(args) != 3 or args[1] not in ("before", "after"):
            return PARSE_ERROR.format(args[1] if len(args) > 1 else "move")
        key, where, other = args
        if key not in entries or other not in entries:
            return NOT_FOUND.format(key if key not in entries else other)
        if key == other:
            return ""
        moved = entries.pop(key)
        order = list(entries.items())
        at = [k for k, _ in order].index(other) + (where == "after")
        order.insert(at, (key, moved))
        entries.clear()
        entries.update(order)
        self.save(frame)
        return ""

    def next(self, frame: Frame, args: list[str]) -> str:
        if frame.key is None:
            return PARSE_ERROR.format("next")
        self.frames.pop()
        self.save(self.frames[-1])
        return ""

    def save(self, table: Frame) -> None:
        """An entry ended with ``next`` (a deletion, a move) in a table no open entry encloses takes effect now."""
        if any(f.key is not None for f in self.frames[: self.frames.index(table)]) or table.node.entries is None:
            return  # inside an entry being edited: saved with that entry
        node = self.state.config[table.path[0]]
        for depth, name in enumerate(table.path[1:], start=2):
            node = node.blocks.setdefault(name, new_block(table.path[:depth]))
        # This session's copy of the table is the saved table plus what was just ended (no other entry is open).
        node.entries = copy.deepcopy(table.node.entries)

    def end(self, frame: Frame, args: list[str]) -> str:
        if frame.key is not None:  # "end" inside an entry: FortiOS takes it as next + end
            self.frames.pop()
            self.save(self.frames[-1])
        self.frames.pop()
        if not self.frames and self.work is not None:
            self.state.config[self.top] = self.work
            self.work = None
        return ""

    def abort(self, frame: Frame, args: list[str]) -> str:
        self.discard()
        return ""

    def discard(self) -> None:
        self.frames = []
        self.work = None

    def prompt_word(self) -> str:
        if not self.frames:
            return ""
        frame = self.frames[-1]
        return frame.key if frame.key is not None else frame.path[-1].split()[-1]


class FortiosShell(LabShell):
    """The FortiGate CLI: ``NAME # `` at the top, ``NAME (word) # `` inside config blocks."""

    comment_prefix = "#"

    def __init__(self, **kwargs: Any) -> None:
        self.editor: Editor | None = None
        super().__init__(**kwargs)
        assert isinstance(self.state, FortiosState)
        self.fstate: FortiosState = self.state
        self.editor = Editor(self.fstate)
        self.prompt = self.current_prompt()

    def in_config_mode(self) -> bool:
        return self.editor is not None and bool(self.editor.frames)

    def base_prompt_text(self) -> str:
        return self.state.name

    def current_prompt(self) -> str:
        word = self.editor.prompt_word() if self.editor is not None else ""
        return f"{self.base_prompt_text()} ({word}) # " if word else f"{self.base_prompt_text()} # "

    def reject_error(self, line: str) -> str:
        words = tokens(line)
        return PARSE_ERROR.format(words[1] if len(words) > 1 else words[0])

    def on_disconnect(self) -> None:
        if self.editor is not None:
            self.editor.discard()  # a block that never reached its "end" is lost

    def handle(self, line: str) -> bool:
        assert self.editor is not None
        if not line:
            return False
        if self.editor.frames:
            self.writeline(self.editor.line(line))
            return False
        cmd, filters = split_pipe(line)
        words = tokens(cmd)
        if words == ["exit"]:
            return True
        if words[0] == "config":
            self.writeline(self.editor.line(cmd))
        elif words[0] == "show":
            self.show(words[1:], filters)
        elif words[:2] == ["get", "system"] and words[2:] in (["status"], ["console"]):
            self.output(self.get_system(words[2]), filters)
        else:
            self.writeline(
                UNKNOWN_ACTION if words[0] in ("get", "execute", "diagnose") else PARSE_ERROR.format(words[0])
            )
        return False

    def get_system(self, what: str) -> str:
        if what == "console":
            mode = self.fstate.config["system console"].settings.get("output", ["more"])[0]
            return f"output              : {mode}\nlogin               : enable\n"
        return (
            f"Version: {VERSION}\nVirus-DB: 1.00000(2018-04-09 18:07)\nSerial-Number: FGVMEVLAB0000001\n"
            f"Hostname: {self.state.name}\nOperation Mode: NAT\nCurrent virtual domain: root\n"
            "Max number of virtual domains: 1\nVirtual domain configuration: disable\n"
            "FIPS-CC mode: disable\nCurrent HA mode: standalone\n"
        )

    def show(self, args: list[str], filters: list[tuple[str, str]]) -> None:
        full = args[:1] == ["full-configuration"]
        name = " ".join(args[1:] if full else args)
        if name not in TOP:
            self.writeline(PARSE_ERROR.format(name.split()[-1] if name else "show"))
            return
        self.output(self.fstate.show(name, full), filters)

    def output(self, text: str, filters: list[tuple[str, str]]) -> None:
        for kind, pattern in filters:
            if kind != "grep":
                self.writeline(PARSE_ERROR.format("|"))
                return
            text = "".join(ln + "\n" for ln in text.splitlines() if re.search(pattern, ln))
        mode = self.fstate.config["system console"].settings.get("output", ["more"])[0]
        lines = text.splitlines()
        if mode == "more" and len(lines) > PAGE_LINES:
            self.page(lines)
            return
        self.writeline(text)

    def page(self, lines: list[str]) -> None:
        """``--More--`` after every screen; space or any line shows the next one, ``q`` stops."""
        self.writeline("\n".join(lines[:PAGE_LINES]))
        rest = lines[PAGE_LINES:]
        if not rest:
            return

        def answer(ans: str) -> None:
            if ans.strip().lower() != "q":
                self.page(rest)

        self.ask("--More-- ", answer)
