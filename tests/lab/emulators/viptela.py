"""Cisco Catalyst SD-WAN CLIs: a cEdge in ``config-transaction`` and a vSmart controller, both ConfD-based.

Both keep the running config as a tree (the ``ios_like`` :class:`Node`) and edit it only through a
transaction, as ConfD does:

* ``config-transaction`` (cEdge, IOS-XE in controller mode) or ``config`` / ``conf terminal`` (vSmart)
  starts a private candidate copied from the running config; lines edit the candidate only.
* ``commit`` checks the candidate's references (a qos-map's schedulers, a scheduler's class, an access
  list's data-prefix lists and classes, an interface's qos-map and access list, an app-route policy's
  vpn-list and sla-classes, apply-policy's site-lists and policies) and either makes it the running config
  (``Commit complete.``) or refuses it whole (``Aborted: illegal reference ...``), staying in config mode.
* ``abort`` discards the candidate and leaves config mode; ``end`` (or ``exit`` at the top) with
  uncommitted changes asks ``Uncommitted changes found, commit them? [yes/no/CANCEL]``.
* A dropped session discards its candidate: nothing reaches the running config without a commit.

Errors: the cEdge prints IOS-XE's ``% Invalid input detected at '^' marker.``; the vSmart prints ConfD's
``syntax error: unknown command`` under a ``-----^`` marker. ``show sdwan system status`` (cEdge) and
``show system status`` (vSmart) say ``vManaged: true`` when SD-WAN Manager owns the configuration
(:attr:`ViptelaState.vmanaged`); such a device refuses CLI commits (``Aborted: the device is managed by
vManage``), as a device in vManage mode does not take local configuration.
"""

from __future__ import annotations

import re
from typing import Any

from .base import DeviceState
from .ios_like import (
    Grammar,
    IosLikeShell,
    IosLikeState,
    Node,
    S,
    Stmt,
    expand_words,
    free,
    merge_config,
    parse_config,
    render_config,
    split_pipe,
)

NAME = r"(?P<n>[A-Za-z0-9_.-]{1,128})"
NUMS = r"\d+(?:-\d+)?(?: \d+(?:-\d+)?)*"
PREFIX = r"\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}"
COLORS = r"[a-z0-9-]+(?: [a-z0-9-]+)*"

MATCH = [
    S(rf"source-data-prefix-list {NAME}", key="source-data-prefix-list"),
    S(rf"destination-data-prefix-list {NAME}", key="destination-data-prefix-list"),
    S(r"protocol \d{1,3}(?: \d{1,3})*", key="protocol"),
    S(rf"source-port {NUMS}", key="source-port"),
    S(rf"destination-port {NUMS}", key="destination-port"),
    S(r"dscp (?:[0-9]|[1-5][0-9]|6[0-3])(?: (?:[0-9]|[1-5][0-9]|6[0-3]))*", key="dscp"),
    S(rf"source-ip {PREFIX}", key="source-ip"),
    S(rf"destination-ip {PREFIX}", key="destination-ip"),
    S(rf"app-list {NAME}", key="app-list"),
]

SDWAN: dict[str, list[Stmt]] = {
    "config": [
        S(r"system", opens="system", key="system"),
        S(r"vpn (?P<n>\d+)", opens="vpn", key="vpn {n}"),
        S(r"policy", opens="policy", key="policy"),
        S(r"apply-policy", opens="apply", key="apply-policy"),
        S(r"sdwan", opens="other", key="sdwan"),
        S(r"hostname (?P<v>\S+)", key="hostname"),
        *free("banner logging ntp snmp aaa omp security bfd"),
    ],
    "system": [
        S(r"host-name \S+", key="host-name"),
        S(r"system-ip \S+", key="system-ip"),
        S(r"site-id \d+", key="site-id"),
        S(r"organization-name .+", key="organization-name"),
        S(r"vbond \S+(?: port \d+)?", key="vbond"),
        *free("admin-tech-on-failure clock-timezone location gps-location"),
    ],
    "policy": [
        S(r"lists", opens="lists", key="lists"),
        S(r"class-map", opens="classmap", key="class-map"),
        S(rf"access-list {NAME}", opens="acl", key="access-list {n}"),
        S(rf"qos-scheduler {NAME}", opens="qsched", key="qos-scheduler {n}"),
        S(rf"qos-map {NAME}", opens="qmap", key="qos-map {n}"),
        S(rf"sla-class {NAME}", opens="sla", key="sla-class {n}"),
        S(rf"app-route-policy {NAME}", opens="aar", key="app-route-policy {n}"),
        S(rf"rewrite-rule {NAME}", opens="other", key="rewrite-rule {n}"),
        S(rf"data-policy {NAME}", opens="other", key="data-policy {n}"),
        S(rf"control-policy {NAME}", opens="other", key="control-policy {n}"),
    ],
    "lists": [
        S(rf"data-prefix-list {NAME}", opens="dpl", key="data-prefix-list {n}"),
        S(rf"site-list {NAME}", opens="sitel", key="site-list {n}"),
        S(rf"vpn-list {NAME}", opens="vpnl", key="vpn-list {n}"),
        S(rf"(?:app-list|prefix-list|tloc-list|color-list) {NAME}", opens="other"),
    ],
    "dpl": [S(rf"ip-prefix {PREFIX}")],
    "sitel": [S(r"site-id \d+(?:-\d+)?")],
    "vpnl": [S(r"vpn \d+(?:-\d+)?")],
    "classmap": [S(rf"class {NAME} queue [0-7]", key="class {n}")],
    "acl": [
        S(r"sequence (?P<s>\d+)", opens="aclseq", key="sequence {s}"),
        S(r"default-action (?:accept|drop)", key="default-action"),
    ],
    "aclseq": [
        S(r"match", opens="aclmatch", key="match"),
        S(r"action (?:accept|drop)", opens="aclaction", key="action"),
    ],
    "aclmatch": MATCH,
    "aclaction": [
        S(r"set dscp (?:[0-9]|[1-5][0-9]|6[0-3])", key="set dscp"),
        S(rf"class {NAME}", key="class"),
        S(rf"count {NAME}", key="count"),
    ],
    "qsched": [
        S(rf"class {NAME}", key="class"),
        S(r"bandwidth-percent (?:[1-9][0-9]?|100)", key="bandwidth-percent"),
        S(r"buffer-percent (?:[1-9][0-9]?|100)", key="buffer-percent"),
        S(r"scheduling (?:llq|wrr)", key="scheduling"),
        S(r"drops (?:tail-drop|red-drop)", key="drops"),
    ],
    "qmap": [S(rf"qos-scheduler {NAME}")],
    "sla": [
        S(r"latency (?:[1-9][0-9]{0,2}|1000)", key="latency"),
        S(r"jitter (?:[1-9][0-9]{0,2}|1000)", key="jitter"),
        S(r"loss (?:[0-9]|[1-9][0-9]|100)", key="loss"),
        S(rf"app-probe-class {NAME}", key="app-probe-class"),
    ],
    "aar": [S(rf"vpn-list {NAME}", opens="aarvpn", key="vpn-list {n}")],
    "aarvpn": [
        S(r"sequence (?P<s>\d+)", opens="aarseq", key="sequence {s}"),
        S(rf"default-action sla-class {NAME}", key="default-action"),
    ],
    "aarseq": [
        S(r"match", opens="aarmatch", key="match"),
        S(r"action", opens="aaraction", key="action"),
    ],
    "aarmatch": MATCH,
    "aaraction": [
        S(rf"sla-class {NAME}(?: strict)?(?: preferred-color {COLORS})?", key="sla-class"),
        S(rf"backup-sla-preferred-color {COLORS}", key="backup-sla-preferred-color"),
        S(rf"count {NAME}", key="count"),
    ],
    "apply": [S(rf"site-list {NAME}", opens="applysite", key="site-list {n}")],
    "applysite": [
        S(rf"app-route-policy {NAME}", key="app-route-policy"),
        S(rf"data-policy {NAME}(?: (?:all|from-service|from-tunnel))?", key="data-policy"),
        S(rf"control-policy {NAME} (?:in|out)", key="control-policy"),
    ],
    "vpn": [
        *free("name"),
        S(r"interface (?P<n>\S+)", opens="vif", key="interface {n}"),
        *free("ip dns host router omp"),
    ],
    "vif": [
        S(rf"qos-map {NAME}", key="qos-map"),
        S(r"shaping-rate \d+", key="shaping-rate"),
        S(rf"access-list {NAME} (?P<d>in|out)", key="access-list {d}"),
        S(r"tunnel-interface", opens="other", key="tunnel-interface"),
        S(r"ip address \S+", key="ip address"),
        S(r"(?:no )?shutdown", key="shutdown"),
        *free("description mtu nat tcp-mss-adjust"),
    ],
}

SDWAN_MODES = {
    "policy": "policy",
    "lists": "lists",
    "dpl": "data-prefix-list",
    "sitel": "site-list",
    "vpnl": "vpn-list",
    "classmap": "class-map",
    "acl": "access-list",
    "aclseq": "sequence",
    "aclmatch": "match",
    "aclaction": "action",
    "qsched": "qos-scheduler",
    "qmap": "qos-map",
    "sla": "sla-class",
    "aar": "app-route-policy",
    "aarvpn": "vpn-list",
    "aarseq": "sequence",
    "aarmatch": "match",
    "aaraction": "action",
    "apply": "apply-policy",
    "applysite": "site-list",
    "vpn": "vpn",
    "vif": "interface",
    "system": "system",
    "other": "xx",
}

GRAMMAR = Grammar("cisco_sdwan", SDWAN, 1, ())

DEFAULT_CEDGE = """\
system
 host-name {name}
 system-ip 10.255.0.3
 site-id 1003
 organization-name qoectl-lab
 vbond 192.0.2.10
!
vpn 0
 interface ge0/0
  ip address 192.0.2.2/30
  tunnel-interface
   color mpls
  !
  no shutdown
 !
 interface ge0/1
  ip address 198.51.100.2/30
  tunnel-interface
   color biz-internet
  !
  no shutdown
 !
 interface ge0/2
  ip address 203.0.113.2/30
  tunnel-interface
   color lte
  !
  no shutdown
 !
!
vpn 10
 name corporate
 interface ge0/3
  ip address 10.10.0.1/24
  no shutdown
 !
!
"""

DEFAULT_VSMART = """\
system
 host-name {name}
 system-ip 10.255.0.1
 site-id 100
 organization-name qoectl-lab
 vbond 192.0.2.10
!
vpn 0
 interface eth1
  ip address 192.0.2.1/24
  tunnel-interface
  !
  no shutdown
 !
!
"""

OP_WORDS: dict[str, Any] = {
    "config-transaction": {},
    "config": {"terminal": {}},
    "show": {"running-config": {}, "sdwan": {"running-config": {}, "system": {"status": {}}}, "system": {}},
    "terminal": {"length": {}, "width": {}},
    "paginate": {"false": {}},
    "exit": {},
    "logout": {},
}


def _names(nodes: list[Node], path: tuple[str, ...]) -> list[Node]:
    """The nodes at ``path`` (each element a line's first word(s)) under ``nodes``."""
    found = nodes
    for head in path:
        found = [c for n in found if n.text == head or n.text.startswith(head + " ") for c in n.children]
    return found


def _defined(tree: list[Node], path: tuple[str, ...], kind: str) -> set[str]:
    return {n.text.split()[1] for n in _names(tree, path) if n.text.startswith(kind + " ")}


def reference_errors(tree: list[Node]) -> list[str]:
    """What ConfD's commit validation refuses: a reference to an object the candidate does not define."""
    lists = ("policy", "lists")
    defined = {
        "data-prefix-list": _defined(tree, lists, "data-prefix-list"),
        "site-list": _defined(tree, lists, "site-list"),
        "vpn-list": _defined(tree, lists, "vpn-list"),
        "qos-scheduler": _defined(tree, ("policy",), "qos-scheduler"),
        "qos-map": _defined(tree, ("policy",), "qos-map"),
        "access-list": _defined(tree, ("policy",), "access-list"),
        "sla-class": _defined(tree, ("policy",), "sla-class"),
        "app-route-policy": _defined(tree, ("policy",), "app-route-policy"),
        "class": {n.text.split()[1] for n in _names(tree, ("policy", "class-map"))},
    }
    problems: list[str] = []

    def walk(nodes: list[Node], path: list[str], ctx: str) -> None:
        for n in nodes:
            words = n.text.split()
            ref: tuple[str, str] | None = None
            if ctx in ("qsched", "aclaction") and words[0] == "class":
                ref = ("class", words[1])
            elif ctx == "qmap" and words[0] == "qos-scheduler":
                ref = ("qos-scheduler", words[1])
            elif words[0] in ("source-data-prefix-list", "destination-data-prefix-list"):
                ref = ("data-prefix-list", words[1])
            elif ctx == "vif" and words[0] in ("qos-map", "access-list"):
                ref = (words[0], words[1])
            elif ctx == "aaraction" and words[0] == "sla-class":
                ref = ("sla-class", words[1])
            elif ctx == "aar" and words[0] == "vpn-list":
                ref = ("vpn-list", words[1])
            elif ctx == "apply" and words[0] == "site-list":
                ref = ("site-list", words[1])
            elif ctx == "applysite" and words[0] == "app-route-policy":
                ref = ("app-route-policy", words[1])
            if ref is not None and ref[1] not in defined[ref[0]]:
                problems.append(f"Aborted: illegal reference '{' '.join([*path, n.text])}'")
            opens = GRAMMAR.opens(ctx, n.text)
            if n.children and opens is not None:
                walk(n.children, [*path, n.text], opens)

    walk(tree, [], "config")
    return problems


def _natural(text: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(w), "") if w.isdigit() else (1 << 30, w) for w in text.split())


def _ordered(nodes: list[Node], ctx: str) -> list[Node]:
    """A copy of ``nodes`` in ConfD's order: by statement (grammar order), then by key (numbers numerically)."""
    stmts = SDWAN.get(ctx, [])

    def rank(n: Node) -> tuple[int, tuple[tuple[int, str], ...]]:
        for i, stmt in enumerate(stmts):
            if stmt.regex.fullmatch(n.text):
                return i, _natural(n.text)
        return len(stmts), ()

    out = []
    for n in nodes if ctx not in SDWAN or ctx == "other" else sorted(nodes, key=rank):
        sub = GRAMMAR.opens(ctx, n.text) or "other"
        out.append(Node(n.text, _ordered(n.children, sub), n.block))
    return out


class ViptelaState(IosLikeState):
    """Running tree, commit history and the vManage flag of a cEdge (``cisco_sdwan``) or vSmart."""

    def __init__(self, name: str, username: str, platform: str) -> None:
        DeviceState.__init__(self, name, username)
        self.platform = platform
        self.grammar = GRAMMAR
        default = DEFAULT_VSMART if platform == "cisco_sdwan_controller" else DEFAULT_CEDGE
        self.running = parse_config(default.format(name=name), self.grammar)
        self.startup = [n.clone() for n in self.running]
        self.flash = {}
        self.flash_times = {}
        self.sessions = {}
        self.session_counter = 0
        self.commits = 0
        self.vmanaged = False

    def render(self, nodes: list[Node]) -> str:
        """ConfD prints list entries in key order, not in the order they were entered."""
        return render_config(_ordered(nodes, "config"), self.grammar.indent)

    def hostname(self) -> str:
        for node in _names(self.running, ("system",)):
            if node.text.startswith("host-name "):
                return node.text.split()[1]
        return self.name

    def set_running_config(self, text: str) -> None:
        merged: list[Node] = []
        merge_config(merged, parse_config(text, self.grammar))  # a block given twice is one block, as in ConfD
        with self.lock:
            self.running = merged
            self.startup = [n.clone() for n in self.running]

    def startup_config(self) -> str:
        # ConfD has no separate startup config: a commit is persistent.
        return self.running_config()


class ViptelaShell(IosLikeShell):
    """cEdge (``config-transaction``, IOS-XE errors) or vSmart (``config``, ConfD errors) CLI."""

    state: ViptelaState

    @property
    def eos(self) -> bool:
        return False

    @property
    def vsmart(self) -> bool:
        return self.state.platform == "cisco_sdwan_controller"

    def mode_name(self) -> str:
        return "config-" + SDWAN_MODES[self.stack[-1].ctx] if self.stack else "config"

    def invalid(self, line: str, word_index: int = 0) -> str:
        if not self.vsmart:
            return super().invalid(line, word_index)
        spans = [m.start() for m in re.finditer(r"\S+", line)]
        pos = spans[min(word_index, len(spans) - 1)] if spans else 0
        return "-" * (len(self.prompt) + pos) + "^\nsyntax error: unknown command"

    def incomplete(self) -> str:
        return "syntax error: incomplete command" if self.vsmart else super().incomplete()

    def on_disconnect(self) -> None:
        if self.session is not None:
            self.state.sessions.pop(self.session, None)  # the private candidate dies with the session

    # -- exec -----------------------------------------------------------------------------------
    def exec_line(self, line: str) -> bool:
        if not line:
            return False
        cmd, filters = split_pipe(line)
        words = expand_words(cmd.split(), OP_WORDS)
        if words and words[0] in ("exit", "logout"):
            return True
        if words == ["config-transaction"] and not self.vsmart:
            self.start_transaction()
        elif (
            words[:1]
            and "configure".startswith(words[0])
            and len(words[0]) >= 4
            and words[1:] in ([], ["t"], ["terminal"])
        ):
            if self.vsmart:
                self.writeline("Entering configuration mode terminal")
                self.start_transaction()
            else:
                # IOS-XE's own configuration mode: the SD-WAN configuration is only in config-transaction
                self.writeline("Enter configuration commands, one per line.  End with CNTL/Z.")
                self.enter_config(None)
        elif (
            words[:2] == ["terminal", "length"] or words[:2] == ["terminal", "width"] or words == ["paginate", "false"]
        ):
            pass
        elif words in (["show", "sdwan", "running-config"], ["show", "running-config"]):
            if words[1] == "running-config" and not self.vsmart:
                # IOS-XE's own config; the SD-WAN part is only in 'show sdwan running-config'
                host = self.state.hostname()
                self.writeline(
                    f"Building configuration...\n\nCurrent configuration : 120 bytes\n!\nhostname {host}\n!\nend"
                )
            else:
                self.writeline(self.state.render(self.state.running))
        elif words in (["show", "sdwan", "system", "status"], ["show", "system", "status"]):
            self.writeline(self.system_status())
        else:
            return super().exec_line(line)
        del filters
        return False

    def system_status(self) -> str:
        personality = "vsmart" if self.vsmart else "vedge"
        return (
            "Viptela (tm) vEdge Operating System Software\nCopyright (c) 2013-2024 by Viptela, Inc.\n"
            "Controller Compatibility: 20.12\n\n"
            f"Personality:             {personality}\n"
            f"Model name:              {'vsmart' if self.vsmart else 'C8000V'}\n"
            f"vManaged:                {'true' if self.state.vmanaged else 'false'}\n"
            f"Commit pending:          false\n"
        )

    def start_transaction(self) -> None:
        self.state.session_counter += 1
        name = f"tx{self.session_id}-{self.state.session_counter}"
        self.state.sessions[name] = [n.clone() for n in self.state.running]
        self.enter_config(name)

    # -- config ---------------------------------------------------------------------------------
    def changed(self) -> bool:
        tree = self.state.sessions.get(self.session or "")
        return tree is not None and self.state.render(tree) != self.state.render(self.state.running)

    def finish(self, commit: bool) -> bool:
        """Commit (True when it went through) or discard the candidate; leaves config mode when discarded."""
        tree = self.state.sessions.get(self.session or "")
        if not commit or tree is None:
            self.state.sessions.pop(self.session or "", None)
            self.leave_config()
            return False
        if self.state.vmanaged:
            self.writeline("Aborted: the device is managed by vManage; configure it in vManage")
            return False
        problems = reference_errors(tree)
        if problems:
            self.writeline("\n".join(problems))
            return False
        if self.changed():
            self.state.running = [n.clone() for n in tree]
            self.state.startup = [n.clone() for n in tree]
            self.state.commits += 1
            self.writeline("Commit complete.")
        else:
            self.writeline("% No modifications to commit.")
        return True

    def leave(self) -> None:
        if not self.changed():
            self.finish(False)
            return

        def answer(ans: str) -> None:
            low = ans.strip().lower()
            if low in ("yes", "y"):
                if self.finish(True):
                    self.finish(False)
            elif low in ("no", "n"):
                self.finish(False)

        self.ask("Uncommitted changes found, commit them? [yes/no/CANCEL] ", answer)

    def config_line(self, line: str) -> None:
        self.revalidate_stack()
        words = line.split()
        if self.session is None:  # cEdge 'configure terminal': no SD-WAN configuration here
            if words in (["end"], ["exit"]):
                self.leave_config()
            elif words and not line.startswith("!"):
                self.writeline(self.invalid(line, 0))
            return
        if words == ["commit"] or words == ["commit", "and-quit"]:
            if self.finish(True) and words[1:]:
                self.finish(False)
        elif words[:1] == ["commit"]:
            self.writeline(self.invalid(line, 1))
        elif words == ["abort"]:
            self.finish(False)
        elif words == ["end"] or (words == ["exit"] and not self.stack):
            self.leave()
        elif words[:1] == ["show"] or words[:1] == ["do"]:
            self.exec_line(" ".join(words[1:]) if words[0] == "do" else line)
        else:
            super().config_line(line)


class CedgeShell(ViptelaShell):
    """Registered as the FakeNOS shell plugin of cisco_sdwan (cEdge) devices."""


class VsmartShell(ViptelaShell):
    """Registered as the FakeNOS shell plugin of cisco_sdwan_controller (vSmart) devices."""
