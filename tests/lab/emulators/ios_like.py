"""Cisco IOS-XE and Arista EOS: a hierarchical running config edited line by line.

The running config is a tree of :class:`Node` (a line and its indented children). In config
mode each line is checked against a per-context grammar (:data:`IOSXE` / :data:`EOS`): a
context is the block the CLI is in (``config``, ``cmap``, ``pmap``, ``pmap-c``, ``if`` ...).
As on the real CLI, a line that is not valid in the current block is tried in the enclosing
blocks, so a flat paste of an indented config lands where its indentation says.

A statement with a *key* replaces the sibling with the same key (``bandwidth remaining
percent 10`` replaces ``bandwidth remaining percent 5`` in the same class); a statement that
*opens* a context enters the existing block with that key or creates it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import DeviceState, LabShell, split_pipe

DSCP = r"(?:ef|default|le|cs[0-7]|af[1-4][1-3]|[0-9]|[1-5][0-9]|6[0-3])"
DSCPS = rf"{DSCP}(?: {DSCP})*"


@dataclass
class Node:
    text: str
    children: list[Node] = field(default_factory=list)
    block: bool = False

    def clone(self) -> Node:
        return Node(self.text, [c.clone() for c in self.children], self.block)


@dataclass(frozen=True)
class Stmt:
    regex: re.Pattern[str]
    opens: str | None = None
    key: str | None = None
    first: str | None = None

    def keyof(self, m: re.Match[str]) -> str | None:
        if self.key is None:
            return None
        return self.key.format(**m.groupdict(default=""))


def S(pattern: str, opens: str | None = None, key: str | None = None) -> Stmt:
    first = re.match(r"[a-z][a-z0-9-]*", pattern)
    return Stmt(re.compile(pattern), opens, key, first.group() if first else None)


def free(words: str) -> list[Stmt]:
    """Statements accepted with any arguments (not QoS-relevant, kept loose); blank-separated."""
    return [S(rf"{re.escape(w)}(?: .+)?") for w in words.split()]


# ---------------------------------------------------------------------------------------------
# grammars
# ---------------------------------------------------------------------------------------------

IOSXE: dict[str, list[Stmt]] = {
    "config": [
        S(r"hostname (?P<v>\S+)", key="hostname"),
        S(r"version \S+", key="version"),
        S(
            r"no (?P<w>ip http server|ip http secure-server|ip domain lookup|ip domain-lookup"
            r"|service pad|logging console)"
        ),
        S(r"class-map(?: type \S+)?(?: match-(?:any|all))? (?P<n>\S+)", opens="cmap", key="class-map {n}"),
        S(r"policy-map(?: type \S+)? (?P<n>\S+)", opens="pmap", key="policy-map {n}"),
        S(r"interface (?P<n>\S+)", opens="if", key="interface {n}"),
        S(r"ip access-list extended (?P<n>\S+)", opens="ext-nacl", key="ip access-list {n}"),
        S(r"ip access-list standard (?P<n>\S+)", opens="std-nacl", key="ip access-list {n}"),
        S(r"ip access-list (?:resequence|logging|persistent|role-based|log-update) .+"),
        S(r"ipv6 access-list (?P<n>\S+)", opens="ipv6-acl", key="ipv6 access-list {n}"),
        S(r"access-list \d+ (?:permit|deny|remark) .+"),
        S(r"ip (?!access-list\b)\S+(?: .+)?"),
        S(r"ipv6 (?!access-list\b)\S+(?: .+)?"),
        S(r"file prompt (?:quiet|noisy)", key="file prompt"),
        S(r"archive", opens="archive", key="archive"),
        S(r"line (?:con|console|vty|aux) .+", opens="line"),
        S(r"router \S+(?: .+)?", opens="router"),
        S(r"vrf definition \S+", opens="vrf"),
        S(r"control-plane(?: host)?", opens="cp"),
        S(r"redundancy", opens="red"),
        S(r"key chain \S+", opens="other"),
        S(r"table-map \S+", opens="other"),
        S(r"vlan \d+(?:[,-]\d+)*", opens="other"),
        *free(
            "service boot boot-start-marker boot-end-marker logging ntp snmp-server username enable aaa "
            "clock spanning-tree vtp license platform memory cdp lldp crypto diagnostic multilink login "
            "errdisable system alias mac monitor call-home subscriber track mpls qos power process security "
            "transceiver udld netconf-yang restconf telemetry event banner exception parser privilege "
            "scheduler ethernet hw-module archive-log"
        ),
    ],
    "cmap": [
        S(rf"match (?:not )?(?:ip )?dscp {DSCPS}"),
        S(r"match (?:not )?(?:ip )?precedence [0-7](?: [0-7])*"),
        S(r"match (?:not )?access-group (?:name )?\S+"),
        S(
            r"match (?:not )?(?:any|protocol \S+(?: .+)?|cos \d(?: \d)*|qos-group \d+|class-map \S+"
            r"|input-interface \S+|discard-class \d|mpls experimental topmost \d(?: \d)*|packet length .+|vlan .+)"
        ),
        S(r"description .+", key="description"),
    ],
    "pmap": [
        S(r"class (?P<n>\S+)(?: insert-before \S+)?", opens="pmap-c", key="class {n}"),
        S(r"description .+", key="description"),
    ],
    "pmap-c": [
        S(r"priority(?: level [12])?(?: (?:percent )?\d+(?: \d+)?)?", key="priority"),
        S(r"police .*(?:conform|exceed|violate)-action .*", key="police"),
        S(r"police (?:cir |rate )?(?:\d+|percent \d+)(?: .+)?", opens="police", key="police"),
        S(r"bandwidth (?:remaining (?:percent |ratio )?|percent )?\d+(?: .+)?", key="bandwidth"),
        S(r"fair-queue(?: .+)?", key="fair-queue"),
        S(
            r"random-detect(?: (?:dscp-based|precedence-based|discard-class-based|ecn|cos-based))?",
            key="random-detect",
        ),
        S(r"random-detect (?:dscp|precedence|exponential-weighting-constant|discard-class|cos) .+"),
        S(r"queue-limit \d+(?: (?:packets|bytes|ms|us))?", key="queue-limit"),
        S(r"queue-limit dscp .+"),
        S(r"shape (?:average|peak) (?:\d+|percent \d+)(?: .+)?", key="shape"),
        S(rf"set (?P<f>(?:ip )?dscp) {DSCP}", key="set {f}"),
        S(
            r"set (?P<f>(?:ip )?precedence|cos|qos-group|discard-class|mpls experimental (?:imposition|topmost)) \d+",
            key="set {f}",
        ),
        S(r"service-policy \S+", key="service-policy"),
    ],
    "police": [S(r"(?P<w>conform|exceed|violate)-action .+", key="{w}-action")],
    "if": [
        S(r"no ip address", key="ip address"),
        S(r"no (?P<w>cdp enable|keepalive|mop enabled|mop sysid|ip redirects|ip unreachables|ip proxy-arp)", key="{w}"),
        S(r"service-policy (?P<d>input|output) \S+", key="service-policy {d}"),
        S(r"description .+", key="description"),
        S(r"ip address \S+ \S+ secondary"),
        S(r"ip address (?:\S+ \S+|dhcp)", key="ip address"),
        S(r"ip (?!address\b)\S+(?: .+)?"),
        S(r"ipv6 .+"),
        S(r"shutdown", key="shutdown"),
        S(r"mtu \d+", key="mtu"),
        S(r"bandwidth \d+", key="bandwidth"),
        S(r"load-interval \d+", key="load-interval"),
        S(r"speed .+", key="speed"),
        S(r"duplex .+", key="duplex"),
        S(r"negotiation auto", key="negotiation"),
        S(r"hold-queue \d+ (?P<d>in|out)", key="hold-queue {d}"),
        S(r"tx-ring-limit \d+", key="tx-ring-limit"),
        S(r"encapsulation .+", key="encapsulation"),
        S(r"vrf forwarding \S+", key="vrf"),
        *free(
            "switchport channel-group cdp lldp media-type logging keepalive carrier-delay standby vrrp "
            "tunnel pppoe dialer ppp crypto zone-member arp mac-address spanning-tree storm-control power "
            "snmp priority-queue mls"
        ),
    ],
    "ext-nacl": [
        S(
            r"(?:(?P<seq>\d+) )?(?:permit|deny) (?:ip|tcp|udp|icmp|gre|esp|ahp|eigrp|ospf|pim|igmp|sctp|ipinip"
            r"|\d+|object-group \S+) .+",
            key="seq {seq}",
        ),
        S(r"(?:\d+ )?remark .+"),
    ],
    "std-nacl": [S(r"(?:(?P<seq>\d+) )?(?:permit|deny) \S+(?: .+)?", key="seq {seq}"), S(r"(?:\d+ )?remark .+")],
    "ipv6-acl": [
        S(r"(?:sequence (?P<seq>\d+) )?(?:permit|deny) \S+ .+", key="seq {seq}"),
        S(r"(?:sequence \d+ )?remark .+"),
    ],
    "archive": free("path maximum write-memory time-period log rollback"),
}

EOS: dict[str, list[Stmt]] = {
    "config": [
        S(r"hostname (?P<v>\S+)", key="hostname"),
        S(
            r"class-map(?: type (?:qos|pbr|control-plane))?(?: match-(?:any|all))? (?P<n>\S+)",
            opens="cmap",
            key="class-map {n}",
        ),
        S(
            r"policy-map(?: type (?:qos|pbr|control-plane|quality-of-service))? (?P<n>\S+)",
            opens="pmap",
            key="policy-map {n}",
        ),
        S(r"interface (?P<n>\S+)", opens="if", key="interface {n}"),
        S(r"ip access-list(?: standard)? (?P<n>\S+)", opens="acl", key="ip access-list {n}"),
        S(r"ipv6 access-list(?: standard)? (?P<n>\S+)", opens="ipv6-acl", key="ipv6 access-list {n}"),
        S(rf"qos map dscp {DSCPS} to traffic-class \d"),
        S(r"qos map traffic-class \d(?: \d)* to (?:dscp \d+|cos \d|tx-queue \d)"),
        S(r"qos map cos \d(?: \d)* to traffic-class \d"),
        S(r"qos map exp .+"),
        S(r"qos rewrite (?:dscp|cos)"),
        S(r"qos random-detect .+"),
        S(r"qos profile (?P<n>\S+)", opens="other", key="qos profile {n}"),
        S(r"router \S+(?: .+)?", opens="other"),
        S(r"vlan \d+(?:[,-]\d+)*", opens="other"),
        S(r"vrf instance \S+", opens="other"),
        S(r"management \S+", opens="other"),
        S(r"daemon \S+", opens="other"),
        S(r"ip (?!access-list\b)\S+(?: .+)?"),
        S(r"ipv6 (?!access-list\b)\S+(?: .+)?"),
        *free(
            "service spanning-tree aaa username logging ntp snmp-server transceiver platform hardware lldp "
            "errdisable banner alias dns clock boot event-handler mac monitor load-interval queue-monitor "
            "priority-flow-control sflow tacacs-server radius-server system agent enable"
        ),
    ],
    "cmap": [
        S(r"match (?:ip|ipv6) access-group \S+"),
        S(rf"match dscp {DSCPS}"),
        S(r"match (?:vlan|cos|mpls) .+"),
        S(r"description .+", key="description"),
    ],
    "pmap": [
        S(r"class (?P<n>\S+)", opens="pmap-c", key="class {n}"),
        S(r"description .+", key="description"),
    ],
    "pmap-c": [
        S(rf"set (?P<f>dscp) {DSCP}", key="set {f}"),
        S(r"set (?P<f>traffic-class|cos|drop-precedence) \d+", key="set {f}"),
        S(
            r"police (?:cir )?\d+(?: (?:bps|kbps|mbps|gbps))?(?: bc \d+(?: (?:bytes|kbytes|mbytes))?)?(?: .+)?",
            key="police",
        ),
    ],
    "if": [
        S(r"service-policy(?: type qos)? (?P<d>input|output) \S+", key="service-policy {d}"),
        S(r"qos trust (?:dscp|cos|disabled)", key="qos trust"),
        S(r"no qos trust", key="qos trust"),
        S(r"qos (?P<f>cos|dscp) \d+", key="qos {f}"),
        S(r"tx-queue (?P<n>\d)", opens="txq", key="tx-queue {n}"),
        S(r"shape rate \d+(?: .+)?", key="shape"),
        S(r"description .+", key="description"),
        S(r"ip address \S+ secondary"),
        S(r"ip address \S+", key="ip address"),
        S(r"ip (?!address\b)\S+(?: .+)?"),
        S(r"ipv6 .+"),
        S(r"shutdown", key="shutdown"),
        S(r"mtu \d+", key="mtu"),
        S(r"speed .+", key="speed"),
        S(r"load-interval \d+", key="load-interval"),
        *free(
            "switchport channel-group lldp logging mac-address spanning-tree storm-control "
            "priority-flow-control vrf encapsulation flowcontrol error-correction link-debounce sflow bfd "
            "pim isis mpls dcbx snmp"
        ),
    ],
    "txq": [
        S(r"priority strict", key="priority"),
        S(r"no priority", key="priority"),
        S(r"bandwidth (?P<g>guaranteed )?percent \d+", key="bandwidth {g}"),
        S(r"bandwidth guaranteed \d+(?: .+)?", key="bandwidth guaranteed "),
        S(r"shape rate \d+(?: .+)?", key="shape"),
        S(r"random-detect .+"),
    ],
    "acl": [
        S(r"(?:(?P<seq>\d+) )?(?:permit|deny) \S+ .+", key="seq {seq}"),
        S(r"(?:(?P<seq>\d+) )?remark .+", key="seq {seq}"),
        S(r"statistics per-entry"),
    ],
    "ipv6-acl": [
        S(r"(?:(?P<seq>\d+) )?(?:permit|deny) \S+ .+", key="seq {seq}"),
        S(r"(?:(?P<seq>\d+) )?remark .+", key="seq {seq}"),
    ],
}

#: blocks whose content is not modelled: any line is accepted unless it is a global statement
GENERIC_CONTEXTS = frozenset({"line", "router", "vrf", "cp", "red", "other"})
ACL_CONTEXTS = frozenset({"ext-nacl", "std-nacl", "acl", "ipv6-acl"})

IOSXE_MODES = {
    "config": "config",
    "cmap": "config-cmap",
    "pmap": "config-pmap",
    "pmap-c": "config-pmap-c",
    "police": "config-pmap-c-police",
    "if": "config-if",
    "ext-nacl": "config-ext-nacl",
    "std-nacl": "config-std-nacl",
    "ipv6-acl": "config-ipv6-acl",
    "archive": "config-archive",
    "line": "config-line",
    "router": "config-router",
    "vrf": "config-vrf",
    "cp": "config-cp",
    "red": "config-red",
    "other": "config-xx",
}

IOS_INTERFACES = (
    "GigabitEthernet", "TenGigabitEthernet", "FastEthernet", "Ethernet", "Loopback", "Port-channel", "Tunnel",
    "Vlan", "Serial", "Dialer", "BDI", "TwentyFiveGigE", "FortyGigabitEthernet", "HundredGigE", "Cellular",
    "Virtual-Template",
)  # fmt: skip
EOS_INTERFACES = ("Ethernet", "Management", "Port-Channel", "Loopback", "Vlan", "Vxlan", "Tunnel")
EOS_SHORT = {"Ethernet": "Et", "Management": "Ma", "Port-Channel": "Po", "Loopback": "Lo", "Vlan": "Vl", "Vxlan": "Vx"}

EXEC_WORDS: dict[str, Any] = {
    "configure": {"terminal": {}, "replace": {}, "session": {}},
    "show": {
        "running-config": {"all": {}, "interface": {}, "policy-map": {}, "class-map": {}},
        "startup-config": {},
        "archive": {},
        "version": {},
        "clock": {},
        "session-config": {"named": {}, "diffs": {}},
        "configuration": {"sessions": {}},
        "interfaces": {"description": {}, "status": {}},
        "inventory": {},
        "ip": {"interface": {"brief": {}}, "access-lists": {}, "route": {}},
    },
    "write": {"memory": {}, "terminal": {}, "erase": {}},
    "copy": {"running-config": {"startup-config": {}}, "startup-config": {"running-config": {}}},
    "terminal": {"length": {}, "width": {}, "monitor": {}},
    "enable": {},
    "disable": {},
    "exit": {},
    "logout": {},
    "quit": {},
    "dir": {},
    "more": {},
    "delete": {},
}

FLASH_RE = re.compile(r"(?P<fs>flash|bootflash|harddisk):/?(?P<name>\S+)")


def expand_words(words: list[str], tree: dict[str, Any]) -> list[str]:
    """Expand unambiguous abbreviations (``sh run`` -> ``show running-config``)."""
    out = list(words)
    node: dict[str, Any] | None = tree
    for i, word in enumerate(out):
        if not node:
            break
        if word in node:
            chosen = word
        else:
            candidates = [k for k in node if k.startswith(word)]
            if len(candidates) != 1:
                break
            chosen = candidates[0]
        out[i] = chosen
        node = node[chosen]
    return out


def expand_interface(name: str, full_names: tuple[str, ...]) -> str:
    m = re.fullmatch(r"([A-Za-z][A-Za-z-]*)\s*(\d[\w/.:]*)", name)
    if not m:
        return name
    prefix, number = m.groups()
    for full in full_names:
        if full.lower() == prefix.lower():
            return full + number
    candidates = [f for f in full_names if f.lower().startswith(prefix.lower())]
    return candidates[0] + number if len(candidates) == 1 else name


@dataclass
class Grammar:
    platform: str
    contexts: dict[str, list[Stmt]]
    indent: int
    interfaces: tuple[str, ...]

    def match(self, ctx: str, text: str) -> tuple[Stmt, re.Match[str]] | None:
        for stmt in self.contexts.get(ctx, []):
            m = stmt.regex.fullmatch(text)
            if m:
                return stmt, m
        return None

    def knows_word(self, ctx: str, word: str) -> bool:
        return any(stmt.first == word for stmt in self.contexts.get(ctx, []))

    def first_words(self, ctx: str) -> set[str]:
        return {stmt.first for stmt in self.contexts.get(ctx, []) if stmt.first}

    def keyof(self, ctx: str, text: str) -> str | None:
        found = self.match(ctx, text)
        return found[0].keyof(found[1]) if found else None

    def opens(self, ctx: str, text: str) -> str | None:
        found = self.match(ctx, text)
        return found[0].opens if found else None


GRAMMARS = {
    "cisco_iosxe": Grammar("cisco_iosxe", IOSXE, 1, IOS_INTERFACES),
    "arista_eos": Grammar("arista_eos", EOS, 3, EOS_INTERFACES),
}


def parse_config(text: str, grammar: Grammar) -> list[Node]:
    """Indented config text -> tree. Skips ``!`` lines, ``end`` and ``show`` headers."""
    root: list[Node] = []
    stack: list[tuple[int, Node]] = []
    for raw in text.replace("\t", " ").splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if (
            not stripped
            or stripped.startswith("!")
            or stripped == "end"
            or stripped.startswith(("Building configuration", "Current configuration"))
        ):
            continue
        indent = len(line) - len(line.lstrip(" "))
        node = Node(" ".join(stripped.split()))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1].children if stack else root).append(node)
        stack.append((indent, node))
    for node in root:
        node.block = bool(node.children) or grammar.opens("config", node.text) is not None
    return root


def render_config(nodes: list[Node], indent: int) -> str:
    out = ["!"]

    def emit(node: Node, level: int) -> None:
        out.append(" " * (indent * level) + node.text)
        for child in node.children:
            emit(child, level + 1)

    for node in nodes:
        is_block = node.block or bool(node.children)
        if is_block and out[-1] != "!":
            out.append("!")
        emit(node, 0)
        if is_block:
            out.append("!")
    if out[-1] != "!":
        out.append("!")
    out.append("end")
    return "\n".join(out) + "\n"


def merge_config(dst: list[Node], src: list[Node]) -> None:
    for node in src:
        same = next((d for d in dst if d.text == node.text), None)
        if same is None:
            dst.append(node.clone())
        else:
            same.block = same.block or node.block
            merge_config(same.children, node.children)


def filter_output(text: str, filters: list[tuple[str, str]]) -> str | None:
    """IOS/EOS output modifiers: include, exclude, begin, section. None if one is unknown."""
    lines = text.splitlines()
    for name, arg in filters:
        try:
            rx = re.compile(arg.strip())
        except re.error:
            return None
        if "include".startswith(name) and name:
            lines = [line for line in lines if rx.search(line)]
        elif "exclude".startswith(name) and name:
            lines = [line for line in lines if not rx.search(line)]
        elif "begin".startswith(name) and name:
            start = next((i for i, line in enumerate(lines) if rx.search(line)), len(lines))
            lines = lines[start:]
        elif "section".startswith(name) and name:
            out: list[str] = []
            i = 0
            while i < len(lines):
                j = i + 1
                while j < len(lines) and lines[j].startswith(" "):
                    j += 1
                section = lines[i:j]
                if not lines[i].startswith("!") and any(rx.search(line) for line in section):
                    out += section
                i = j
            lines = out
        else:
            return None
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------------------------
# device state
# ---------------------------------------------------------------------------------------------

DEFAULT_IOSXE = """\
version 17.9
service timestamps debug datetime msec
service timestamps log datetime msec
hostname {name}
!
interface GigabitEthernet0/0/0
 negotiation auto
!
interface GigabitEthernet0/0/1
 negotiation auto
!
interface GigabitEthernet0/0/2
 negotiation auto
!
line vty 0 4
 login local
 transport input ssh
!
end
"""

DEFAULT_EOS = """\
hostname {name}
!
spanning-tree mode mstp
!
interface Ethernet1
!
interface Ethernet2
!
interface Ethernet3
!
interface Management1
!
end
"""


class IosLikeState(DeviceState):
    """Running/startup trees, flash files (IOS-XE archives) and pending EOS config sessions."""

    def __init__(self, name: str, username: str, platform: str) -> None:
        super().__init__(name, username)
        self.platform = platform
        self.grammar = GRAMMARS[platform]
        default = DEFAULT_IOSXE if platform == "cisco_iosxe" else DEFAULT_EOS
        self.running: list[Node] = parse_config(default.format(name=name), self.grammar)
        self.startup: list[Node] = [n.clone() for n in self.running]
        self.flash: dict[str, str] = {}
        self.flash_times: dict[str, float] = {}
        self.sessions: dict[str, list[Node]] = {}
        self.session_counter = 0

    def render(self, nodes: list[Node]) -> str:
        return render_config(nodes, self.grammar.indent)

    def hostname(self) -> str:
        for node in self.running:
            m = re.fullmatch(r"hostname (\S+)", node.text)
            if m:
                return m.group(1)
        return self.name

    def running_config(self) -> str:
        with self.lock:
            return self.render(self.running)

    def set_running_config(self, text: str) -> None:
        with self.lock:
            self.running = parse_config(text, self.grammar)

    def startup_config(self) -> str:
        with self.lock:
            return self.render(self.startup)

    def save_file(self, name: str, text: str) -> None:
        with self.lock:
            self.flash[name] = text
            self.flash_times[name] = time.time()


@dataclass
class Frame:
    ctx: str
    node: Node


class IosLikeShell(LabShell):
    """CLI of an IOS-XE or EOS device (privileged exec after login, as a level-15 user)."""

    state: IosLikeState

    def __init__(self, **kwargs: Any) -> None:
        self.mode = "exec"
        self.priv = True
        self.stack: list[Frame] = []
        self.session: str | None = None
        super().__init__(**kwargs)

    @property
    def eos(self) -> bool:
        return self.state.platform == "arista_eos"

    @property
    def grammar(self) -> Grammar:
        return self.state.grammar

    # -- prompts --------------------------------------------------------------------------------
    def in_config_mode(self) -> bool:
        return self.mode == "config"

    def current_prompt(self) -> str:
        host = self.state.hostname()
        if self.mode == "exec":
            return host + ("#" if self.priv else ">")
        return f"{host}({self.mode_name()})#"

    def mode_name(self) -> str:
        if not self.eos:
            return IOSXE_MODES[self.stack[-1].ctx] if self.stack else "config"
        name = self._eos_mode()
        if self.session is not None:
            return f"config-s-{self.session}" + name[len("config") :]
        return name

    def _eos_mode(self) -> str:
        if not self.stack:
            return "config"
        frame = self.stack[-1]
        last = frame.node.text.split()[-1]
        if frame.ctx == "if":
            return f"config-if-{self._short_if(last)}"
        if frame.ctx == "txq":
            return f"config-if-{self._short_if(self.stack[-2].node.text.split()[-1])}-txq-{last}"
        if frame.ctx in ("cmap", "pmap"):
            qos = "-qos" if re.search(r" type (?:qos|quality-of-service) ", frame.node.text) else ""
            return f"config-{frame.ctx}{qos}-{last}"
        if frame.ctx == "pmap-c":
            parent = self.stack[-2].node.text
            qos = "-qos" if re.search(r" type (?:qos|quality-of-service) ", parent) else ""
            return f"config-pmap-c{qos}-{parent.split()[-1]}-{last}"
        if frame.ctx in ("acl", "ipv6-acl"):
            return f"config-{frame.ctx}-{last}"
        return "config-" + frame.node.text.split()[0]

    @staticmethod
    def _short_if(name: str) -> str:
        m = re.fullmatch(r"([A-Za-z-]+)(.*)", name)
        if not m:
            return name
        return EOS_SHORT.get(m.group(1), m.group(1)[:2]) + m.group(2)

    # -- errors ---------------------------------------------------------------------------------
    def invalid(self, line: str, word_index: int = 0) -> str:
        words = line.split()
        word_index = min(word_index, max(len(words) - 1, 0))
        if self.eos:
            token = words[word_index] if words else ""
            return f"% Invalid input (at token {word_index}: '{token}')"
        pos = 0
        for i, m in enumerate(re.finditer(r"\S+", line)):
            if i == word_index:
                pos = m.start()
                break
        return " " * (len(self.prompt) + pos) + "^\n% Invalid input detected at '^' marker.\n"

    def incomplete(self) -> str:
        return "% Incomplete command" if self.eos else "% Incomplete command.\n"

    def reject_error(self, line: str) -> str:
        return self.invalid(line, 0)

    def base_prompt_text(self) -> str:
        return self.state.hostname()

    # -- dispatch -------------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        if self.mode == "config":
            self.config_line(line)
            return False
        return self.exec_line(line)

    # -- exec mode ------------------------------------------------------------------------------
    def exec_line(self, line: str) -> bool:
        if not line:
            return False
        cmd, filters = split_pipe(line)
        words = expand_words(cmd.split(), EXEC_WORDS)
        if not words:
            self.writeline(self.invalid(line))
            return False
        verb = words[0]
        if verb in ("exit", "logout", "quit"):
            return True
        if verb == "enable":
            self.priv = True
        elif verb == "disable":
            self.priv = False
        elif verb == "terminal":
            self.terminal(words)
        elif verb == "configure" and self.priv:
            self.configure(words, line)
        elif verb == "show":
            self.show(words, filters, line)
        elif verb == "write" and self.priv:
            self.write_cmd(words, filters)
        elif verb == "copy" and self.priv:
            self.copy(words[1:], line)
        elif verb == "dir":
            self.writeline(self.dir_listing(words[1] if len(words) > 1 else "flash:"))
        elif verb == "more" and len(words) == 2:
            self.more(words[1])
        elif verb == "delete" and self.priv:
            self.delete(words[1:], line)
        elif verb == "no" and self.eos and words[1:3] == ["configure", "session"] and len(words) == 4:
            self.state.sessions.pop(words[3], None)
        elif not self.stock_command(" ".join(words)):
            self.writeline(self.invalid(line, 0 if verb not in EXEC_WORDS else len(words) - 1))
        return False

    def terminal(self, words: list[str]) -> None:
        if len(words) >= 2 and words[1] == "width" and len(words) == 3 and words[2].isdigit():
            if self.eos:
                self.writeline(f"Width set to {words[2]} columns.")
        elif len(words) == 3 and words[1] == "length" and words[2].isdigit():
            if self.eos:
                self.writeline("Pagination disabled." if words[2] == "0" else f"Pagination set to {words[2]} lines.")
        elif len(words) >= 2 and words[1] in ("monitor", "no"):
            pass
        else:
            self.writeline(self.invalid(" ".join(words), len(words) - 1))

    def configure(self, words: list[str], line: str) -> None:
        if len(words) == 1 or words[1:] == ["terminal"]:
            if not self.eos:
                self.writeline("Enter configuration commands, one per line.  End with CNTL/Z.")
            self.enter_config(None)
        elif words[1] == "replace" and len(words) >= 3:
            self.configure_replace(words[2], force="force" in words[3:])
        elif words[1] == "session" and self.eos and len(words) <= 3:
            if len(words) == 3:
                name = words[2]
            else:
                self.state.session_counter += 1
                name = f"session{self.state.session_counter}"
            if name not in self.state.sessions:
                self.state.sessions[name] = [n.clone() for n in self.state.running]
            self.enter_config(name)
        else:
            self.writeline(self.invalid(line, len(words) - 1))

    def enter_config(self, session: str | None) -> None:
        self.mode = "config"
        self.stack = []
        self.session = session

    def leave_config(self) -> None:
        self.mode = "exec"
        self.stack = []
        self.session = None

    def show(self, words: list[str], filters: list[tuple[str, str]], line: str) -> None:
        what = words[1] if len(words) > 1 else ""
        text: str | None
        if what == "running-config":
            text = self.show_running(words[2:])
        elif what == "startup-config" and len(words) == 2:
            body = self.state.render(self.state.startup)
            text = body if self.eos else f"Using {len(body)} out of 33554432 bytes\n{body}"
        elif what == "archive" and len(words) == 2 and not self.eos:
            text = self.show_archive()
        elif what == "session-config" and self.eos:
            name = words[3] if len(words) >= 4 and words[2] == "named" else self.session
            tree = self.state.sessions.get(name or "")
            if tree is None:
                self.writeline("% No configuration session active")
                return
            text = self.state.render(tree)
        elif what == "configuration" and words[2:] == ["sessions"] and self.eos:
            rows = [f"  {name:<12} {'pending':<13}" for name in self.state.sessions]
            text = (
                "Maximum number of completed sessions: 1\nMaximum number of pending sessions: 5\n\n"
                "  Name         State\n  ------------ -------------\n" + "\n".join(rows) + "\n"
            )
        else:
            # canned output of the stock FakeNOS plugin (output modifiers are not applied to it)
            if not self.stock_command(" ".join(words)):
                self.writeline(self.invalid(line, len(words) - 1))
            return
        if text is None:
            self.writeline(self.invalid(line, len(words) - 1))
            return
        if filters:
            filtered = filter_output(text, filters)
            if filtered is None:
                self.writeline(self.invalid(line, len(line.split()) - 1))
                return
            text = filtered
        self.writeline(text)

    def show_running(self, args: list[str]) -> str | None:
        nodes = self.state.running
        if args and args[0] == "all":
            args = args[1:]
        if args:
            selector = " ".join(args)
            if args[0] == "interface" and len(args) == 2:
                selector = "interface " + expand_interface(args[1], self.grammar.interfaces)
            sel_words = selector.split()
            nodes = [
                n
                for n in nodes
                if n.text == selector
                or n.text.startswith(selector + " ")
                or (len(sel_words) >= 2 and n.text.split()[0] == sel_words[0] and n.text.split()[-1] == sel_words[-1])
                or (len(sel_words) == 1 and n.text.split()[0] == sel_words[0])
            ]
        body = self.state.render(nodes)
        if self.eos:
            return f"! Command: show running-config\n! device: {self.state.hostname()} (vEOS-lab, EOS-4.31.2F)\n{body}"
        return f"Building configuration...\n\nCurrent configuration : {len(body)} bytes\n{body}"

    def show_archive(self) -> str:
        names = list(self.state.flash)
        lines = [
            "The maximum archive configurations allowed is 10.",
            f"There are currently {len(names)} archive configurations saved.",
            f"The next archive file will be named flash:archive-{len(names) + 1}",
            " Archive #  Name",
        ]
        for i, name in enumerate(names, 1):
            lines.append(f"   {i:<8} flash:{name}" + (" <- Most Recent" if i == len(names) else ""))
        return "\n".join(lines) + "\n"

    def dir_listing(self, path: str) -> str:
        fs = path.split(":")[0] if ":" in path else "flash"
        if fs not in ("flash", "bootflash", "harddisk"):
            return f"%Error opening {path} (No such file or directory)"
        rows = []
        for i, (name, text) in enumerate(self.state.flash.items(), 11):
            stamp = time.strftime("%b %d %Y %H:%M:%S +00:00", time.gmtime(self.state.flash_times[name]))
            rows.append(f"{i:>6}  -rw-     {len(text):>10}  {stamp}  {name}")
        return f"Directory of {fs}:/\n\n" + "\n".join(rows) + "\n\n7897796608 bytes total (6479970304 bytes free)"

    def more(self, path: str) -> None:
        m = FLASH_RE.fullmatch(path)
        if m is None or m.group("name") not in self.state.flash:
            self.writeline(f"%Error opening {path} (No such file or directory)")
            return
        self.writeline(self.state.flash[m.group("name")])

    def delete(self, args: list[str], line: str) -> None:
        force = "/force" in args
        paths = [a for a in args if not a.startswith("/")]
        m = FLASH_RE.fullmatch(paths[0]) if len(paths) == 1 else None
        if m is None:
            self.writeline(self.invalid(line, len(line.split()) - 1))
            return
        name = m.group("name")

        def remove() -> None:
            if self.state.flash.pop(name, None) is None:
                self.writeline(f"%Error deleting {m.group('fs')}:/{name} (No such file or directory)")
            self.state.flash_times.pop(name, None)

        if force or self.eos:
            remove()
            return

        def confirm_name(answer: str) -> None:
            self.ask(f"Delete {m.group('fs')}:/{name}? [confirm]", lambda ans: remove() if ans in ("", "y") else None)

        self.ask(f"Delete filename [{name}]? ", confirm_name)

    # -- saving, archives ---------------------------------------------------------------------------
    def file_prompt_quiet(self) -> bool:
        return any(n.text == "file prompt quiet" for n in self.state.running)

    def destination(self, default: str, then: Callable[[str], None]) -> None:
        """IOS asks for the destination file name unless ``file prompt quiet`` is configured."""
        if self.eos or self.file_prompt_quiet():
            then(default)
        else:
            self.ask(f"Destination filename [{default}]? ", lambda ans: then(ans or default))

    def save_startup(self) -> None:
        self.state.startup = [n.clone() for n in self.state.running]
        self.writeline("Copy completed successfully." if self.eos else "Building configuration...\n[OK]")

    def write_cmd(self, words: list[str], filters: list[tuple[str, str]]) -> None:
        if words[1:] in ([], ["memory"]):
            self.save_startup()
        elif words[1:] == ["terminal"]:
            self.show(["show", "running-config"], filters, "write terminal")
        elif words[1:] == ["erase"]:
            self.state.startup = []
            self.writeline("[OK]")
        else:
            self.writeline(self.invalid(" ".join(words), len(words) - 1))

    def copied(self, nbytes: int) -> None:
        if self.eos:
            self.writeline("Copy completed successfully.")
        else:
            self.writeline(f"{nbytes} bytes copied in 0.041 secs ({nbytes * 24} bytes/sec)")

    def copy(self, args: list[str], line: str) -> None:
        if len(args) != 2:
            self.writeline(self.invalid(line, len(line.split()) - 1))
            return
        src, dst = args
        src_file = FLASH_RE.fullmatch(src)
        dst_file = FLASH_RE.fullmatch(dst)
        if src == "running-config" and dst == "startup-config":
            self.destination("startup-config", lambda _name: self.save_startup())
        elif src == "running-config" and dst_file is not None:
            text = self.state.render(self.state.running)

            def save(name: str) -> None:
                self.state.save_file(name, text)
                self.copied(len(text))

            self.destination(dst_file.group("name"), save)
        elif src_file is not None and dst in ("running-config", "startup-config"):
            name = src_file.group("name")
            if name not in self.state.flash:
                self.writeline(f"%Error opening {src} (No such file or directory)")
                return
            text = self.state.flash[name]

            def load(_dest: str) -> None:
                tree = parse_config(text, self.grammar)
                if dst == "running-config":
                    merge_config(self.state.running, tree)
                else:
                    self.state.startup = tree
                self.copied(len(text))

            self.destination(dst, load)
        elif src == "startup-config" and dst == "running-config":

            def merge(_dest: str) -> None:
                merge_config(self.state.running, [n.clone() for n in self.state.startup])
                self.copied(len(self.state.render(self.state.startup)))

            self.destination("running-config", merge)
        else:
            self.writeline(self.invalid(line, len(line.split()) - 1))

    def configure_replace(self, path: str, force: bool) -> None:
        m = FLASH_RE.fullmatch(path)
        if m is None or m.group("name") not in self.state.flash:
            self.writeline(f"%Error opening {path} (No such file or directory)")
            return
        text = self.state.flash[m.group("name")]

        def replace() -> None:
            self.state.running = parse_config(text, self.grammar)
            if not self.eos:
                self.writeline("Total number of passes: 1\nRollback Done\n")

        if force or self.eos:
            replace()
            return
        question = (
            "This will apply all necessary additions and deletions\n"
            "to replace the current running configuration with the\n"
            "contents of the specified configuration file, which is\n"
            "assumed to be a complete configuration, not a partial\n"
            "configuration. Enter Y if you are sure you want to proceed. ? [no]: "
        )
        self.ask(question, lambda ans: replace() if ans.lower() in ("y", "yes") else None)

    # -- config mode -----------------------------------------------------------------------------
    def tree(self) -> list[Node]:
        if self.session is None:
            return self.state.running
        if self.session not in self.state.sessions:  # aborted or committed elsewhere
            self.state.sessions[self.session] = [n.clone() for n in self.state.running]
        return self.state.sessions[self.session]

    def revalidate_stack(self) -> None:
        """Blocks can vanish under us (configure replace, another session's commit)."""
        children = self.tree()
        for frame in self.stack:
            if not any(c is frame.node for c in children):
                self.stack = []
                return
            children = frame.node.children

    def ctx_at(self, depth: int) -> str:
        return self.stack[depth - 1].ctx if depth else "config"

    def siblings_at(self, depth: int) -> list[Node]:
        return self.stack[depth - 1].node.children if depth else self.tree()

    def config_line(self, line: str) -> None:
        self.revalidate_stack()
        if not line or line.startswith("!"):
            return
        words = line.split()
        if words == ["end"]:
            self.leave_config()
            return
        if words == ["exit"]:
            if self.stack:
                self.stack.pop()
            else:
                self.leave_config()
            return
        if words[0] == "do" and len(words) > 1:
            if words[1].startswith("conf"):
                self.writeline(self.invalid(line, 1))
            else:
                self.exec_line(" ".join(words[1:]))
            return
        if self.eos and self.session is not None and words in (["commit"], ["abort"]):
            tree = self.state.sessions.pop(self.session, None)
            if words == ["commit"] and tree is not None:
                self.state.running = tree
            self.leave_config()
            return
        if self.eos and words[0] == "show":
            self.exec_line(line)
            return
        if words[0] in ("no", "default") and len(words) > 1:
            rest = self.normalize(" ".join(words[1:]))
            # some negations are stored as lines (EOS "no priority", IOS "no ip address")
            if words[0] == "no" and self.resolve("no " + rest, negate=False) is not None:
                self.statement("no " + rest, line)
            else:
                self.negate(rest, line)
            return
        self.statement(self.normalize(line), line)

    def normalize(self, text: str) -> str:
        """Collapse blanks, expand an abbreviated first word and interface names."""
        words = text.split()
        known: set[str] = set()
        for depth in range(len(self.stack), -1, -1):
            known |= self.grammar.first_words(self.ctx_at(depth))
        if words and words[0] not in known:
            candidates = [w for w in known if w.startswith(words[0])]
            if len(candidates) == 1:
                words[0] = candidates[0]
        if len(words) >= 2 and words[0] == "interface":
            words = ["interface", expand_interface(" ".join(words[1:]), self.grammar.interfaces)]
        return " ".join(words)

    def resolve(self, text: str, negate: bool) -> int | None:
        """Depth of the innermost enclosing block that accepts ``text``; None if none does."""
        first = text.split()[0]
        for depth in range(len(self.stack), -1, -1):
            ctx = self.ctx_at(depth)
            if ctx in GENERIC_CONTEXTS:
                words = text.split()
                if negate:
                    global_ok = self.grammar.knows_word("config", first)
                else:
                    global_ok = self.grammar.match("config", text) is not None or (
                        first == "no" and len(words) > 1 and self.grammar.knows_word("config", words[1])
                    )
                if global_ok:
                    continue
                return depth
            ok = self.grammar.knows_word(ctx, first) if negate else self.grammar.match(ctx, text)
            if ok:
                return depth
        return None

    def find(self, ctx: str, siblings: list[Node], key: str | None, text: str) -> Node | None:
        for node in siblings:
            if node.text == text:
                return node
        if key is not None:
            for node in siblings:
                if self.grammar.keyof(ctx, node.text) == key:
                    return node
        return None

    def statement(self, text: str, line: str) -> None:
        depth = self.resolve(text, negate=False)
        if depth is None:
            known = any(
                self.grammar.knows_word(self.ctx_at(d), text.split()[0]) for d in range(len(self.stack), -1, -1)
            )
            if known and len(text.split()) == 1:
                self.writeline(self.incomplete())
            else:
                self.writeline(self.invalid(line, len(line.split()) - 1 if known else 0))
            return
        del self.stack[depth:]
        ctx = self.ctx_at(depth)
        siblings = self.siblings_at(depth)
        found = self.grammar.match(ctx, text)
        if found is None:  # a line inside a block whose content is not modelled
            if not any(n.text == text for n in siblings):
                siblings.append(Node(text))
            return
        stmt, m = found
        if ctx in ACL_CONTEXTS and stmt.key == "seq {seq}" and not m.group("seq"):
            seqs = [int(k[4:]) for n in siblings if (k := self.grammar.keyof(ctx, n.text) or "")[4:].isdigit()]
            seq = max(seqs, default=0) + 10
            text = f"sequence {seq} {text}" if (ctx == "ipv6-acl" and not self.eos) else f"{seq} {text}"
            refound = self.grammar.match(ctx, text)
            assert refound is not None
            stmt, m = refound
        key = stmt.keyof(m)
        existing = self.find(ctx, siblings, key, text)
        if existing is None:
            existing = Node(text, block=stmt.opens is not None)
            siblings.insert(self.new_position(ctx, siblings, existing), existing)
        else:
            existing.text = text
        if stmt.opens is not None:
            existing.block = True
            self.stack.append(Frame(stmt.opens, existing))

    def new_position(self, ctx: str, siblings: list[Node], node: Node) -> int:
        """Where a new line goes: the end, except that a policy-map's class-default stays last (IOS-XE and EOS),
        and IOS-XE's ``class X insert-before Y`` puts X before Y."""
        if ctx != "pmap" or not node.text.startswith("class ") or node.text == "class class-default":
            return len(siblings)
        words = node.text.split()
        if len(words) == 4 and words[2] == "insert-before":
            node.text = f"class {words[1]}"
            target = f"class {words[3]}"
        else:
            target = "class class-default"
        return next((i for i, n in enumerate(siblings) if n.text == target), len(siblings))

    def negate(self, text: str, line: str) -> None:
        depth = self.resolve(text, negate=True)
        if depth is None:
            self.writeline(self.invalid(line, 1))
            return
        del self.stack[depth:]
        ctx = self.ctx_at(depth)
        siblings = self.siblings_at(depth)
        targets = [n for n in siblings if n.text == text]
        if not targets:
            key = self.grammar.keyof(ctx, text)
            if key is not None:
                targets = [n for n in siblings if self.grammar.keyof(ctx, n.text) == key]
        if not targets:
            targets = [n for n in siblings if n.text.startswith(text + " ")]
        for node in targets:
            siblings.remove(node)


class IosXeShell(IosLikeShell):
    """Registered as the FakeNOS shell plugin of cisco_iosxe devices."""


class EosShell(IosLikeShell):
    """Registered as the FakeNOS shell plugin of arista_eos devices."""
