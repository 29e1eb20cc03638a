"""Juniper Junos: the committed config and the candidate are lists of ``set`` lines.

``configure`` edits the shared candidate (uncommitted changes survive the session, as with a
plain ``configure`` on a real box; ``configure exclusive`` discards them on exit). ``commit``
checks references (schedulers, scheduler maps, forwarding classes, policers, filters) and
fails with ``error: configuration check-out failed`` like the real commit check.
``commit confirmed N`` rolls back after ``N * seconds_per_minute`` seconds unless another
``commit`` (or ``commit check``) confirms it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import DeviceState, LabShell, split_pipe
from .ios_like import expand_words

TOKEN_RE = re.compile(r'"[^"]*"|\S+')

TOP = frozenset(
    {
        "system", "interfaces", "class-of-service", "firewall", "policy-options", "protocols", "routing-options",
        "routing-instances", "snmp", "security", "services", "forwarding-options", "chassis", "vlans", "groups",
        "apply-groups", "version", "event-options", "access", "applications", "poe", "switch-options",
        "bridge-domains", "logical-systems", "multi-chassis", "ethernet-switching-options",
    }
)  # fmt: skip

IFNAME_RE = re.compile(
    r"(?:ge|xe|et|fe|mge|ae|lo|irb|vlan|em|fxp|me|vme|reth|st|gr|ip|lt|so|ps|vtep|fti)(?:-?\d[\w/.:]*)?"
)

FROM = frozenset(
    {
        "dscp", "source-address", "destination-address", "address", "protocol", "destination-port", "source-port",
        "port", "traffic-class", "forwarding-class", "loss-priority", "next-header", "source-prefix-list",
        "destination-prefix-list", "prefix-list", "precedence", "icmp-type", "tcp-flags", "interface",
        "packet-length", "payload-protocol", "dscp-except", "destination-port-except", "source-port-except",
    }
)  # fmt: skip
THEN = frozenset(
    {
        "accept", "discard", "reject", "policer", "count", "forwarding-class", "loss-priority", "dscp",
        "traffic-class", "next", "log", "syslog", "three-color-policer", "sample", "routing-instance",
    }
)  # fmt: skip
FILTER = frozenset({"term", "interface-specific", "apply-groups"})
CODE_POINT_TYPES = frozenset({"dscp", "dscp-ipv6", "ieee-802.1", "inet-precedence", "exp", "ieee-802.1ad"})

SCHEMA: dict[tuple[str, ...], frozenset[str]] = {
    ("class-of-service",): frozenset(
        {
            "classifiers",
            "code-point-aliases",
            "drop-profiles",
            "forwarding-classes",
            "forwarding-policy",
            "host-outbound-traffic",
            "interfaces",
            "rewrite-rules",
            "scheduler-maps",
            "schedulers",
            "traffic-control-profiles",
            "fabric",
            "multi-destination",
            "system-defaults",
            "copy-plp-all",
            "tri-color",
            "apply-groups",
        }
    ),
    ("class-of-service", "schedulers", "*"): frozenset(
        {
            "transmit-rate",
            "buffer-size",
            "priority",
            "drop-profile-map",
            "excess-rate",
            "excess-priority",
            "shaping-rate",
            "adjust-minimum",
            "adjust-percent",
            "explicit-congestion-notification",
        }
    ),
    ("class-of-service", "schedulers", "*", "priority"): frozenset(
        {"low", "medium-low", "medium-high", "high", "strict-high"}
    ),
    ("class-of-service", "scheduler-maps", "*"): frozenset({"forwarding-class"}),
    ("class-of-service", "scheduler-maps", "*", "forwarding-class", "*"): frozenset({"scheduler"}),
    ("class-of-service", "classifiers"): CODE_POINT_TYPES,
    ("class-of-service", "classifiers", "*", "*"): frozenset({"forwarding-class", "import"}),
    ("class-of-service", "classifiers", "*", "*", "forwarding-class", "*"): frozenset({"loss-priority"}),
    ("class-of-service", "classifiers", "*", "*", "forwarding-class", "*", "loss-priority", "*"): frozenset(
        {"code-points"}
    ),
    ("class-of-service", "rewrite-rules"): CODE_POINT_TYPES,
    ("class-of-service", "rewrite-rules", "*", "*"): frozenset({"forwarding-class", "import"}),
    ("class-of-service", "rewrite-rules", "*", "*", "forwarding-class", "*"): frozenset({"loss-priority"}),
    ("class-of-service", "rewrite-rules", "*", "*", "forwarding-class", "*", "loss-priority", "*"): frozenset(
        {"code-point"}
    ),
    ("class-of-service", "forwarding-classes"): frozenset({"class", "queue"}),
    ("class-of-service", "forwarding-classes", "class", "*"): frozenset(
        {"queue-num", "priority", "policing-priority", "no-loss"}
    ),
    ("class-of-service", "interfaces", "*"): frozenset(
        {
            "scheduler-map",
            "shaping-rate",
            "unit",
            "output-traffic-control-profile",
            "classifiers",
            "rewrite-rules",
            "input-scheduler-map",
            "input-shaping-rate",
            "output-traffic-control-profile-remaining",
        }
    ),
    ("class-of-service", "interfaces", "*", "unit", "*"): frozenset(
        {
            "classifiers",
            "rewrite-rules",
            "scheduler-map",
            "shaping-rate",
            "output-traffic-control-profile",
            "forwarding-class",
        }
    ),
    ("class-of-service", "traffic-control-profiles", "*"): frozenset(
        {"scheduler-map", "shaping-rate", "guaranteed-rate", "excess-rate", "delay-buffer-rate", "overhead-accounting"}
    ),
    ("class-of-service", "drop-profiles", "*"): frozenset({"fill-level", "interpolate"}),
    ("firewall",): frozenset(
        {
            "family",
            "filter",
            "policer",
            "three-color-policer",
            "hierarchical-policer",
            "load-balance-group",
            "interface-set",
        }
    ),
    ("firewall", "family"): frozenset({"inet", "inet6", "any", "mpls", "ethernet-switching", "bridge", "vpls", "ccc"}),
    ("firewall", "family", "*"): frozenset({"filter", "service-filter", "simple-filter", "fast-update-filter"}),
    ("firewall", "family", "*", "filter", "*"): FILTER,
    ("firewall", "family", "*", "filter", "*", "term", "*"): frozenset({"from", "then"}),
    ("firewall", "family", "*", "filter", "*", "term", "*", "from"): FROM,
    ("firewall", "family", "*", "filter", "*", "term", "*", "then"): THEN,
    ("firewall", "filter", "*"): FILTER,
    ("firewall", "filter", "*", "term", "*"): frozenset({"from", "then"}),
    ("firewall", "filter", "*", "term", "*", "from"): FROM,
    ("firewall", "filter", "*", "term", "*", "then"): THEN,
    ("firewall", "policer", "*"): frozenset(
        {
            "if-exceeding",
            "then",
            "filter-specific",
            "logical-interface-policer",
            "logical-bandwidth-policer",
            "physical-interface-policer",
            "shared-bandwidth-policer",
        }
    ),
    ("firewall", "policer", "*", "if-exceeding"): frozenset(
        {"bandwidth-limit", "bandwidth-percent", "burst-size-limit"}
    ),
    ("firewall", "policer", "*", "then"): frozenset({"discard", "forwarding-class", "loss-priority", "out-of-profile"}),
    ("interfaces", "*"): frozenset(
        {
            "unit",
            "description",
            "vlan-tagging",
            "flexible-vlan-tagging",
            "mtu",
            "gigether-options",
            "ether-options",
            "disable",
            "encapsulation",
            "speed",
            "per-unit-scheduler",
            "hierarchical-scheduler",
            "native-vlan-id",
            "apply-groups",
            "link-mode",
            "aggregated-ether-options",
            "traceoptions",
        }
    ),
    ("interfaces", "*", "unit", "*"): frozenset(
        {"family", "description", "vlan-id", "disable", "encapsulation", "vlan-tags", "apply-groups"}
    ),
    ("interfaces", "*", "unit", "*", "family"): frozenset(
        {"inet", "inet6", "mpls", "ethernet-switching", "iso", "bridge", "vpls", "ccc"}
    ),
    ("interfaces", "*", "unit", "*", "family", "*", "filter"): frozenset(
        {"input", "output", "input-list", "output-list"}
    ),
}

#: leaves holding one value: a new value replaces the old one
SINGLE_VALUED = frozenset(
    {
        "transmit-rate", "buffer-size", "priority", "shaping-rate", "description", "excess-rate", "host-name",
        "scheduler-map", "mtu", "bandwidth-limit", "burst-size-limit", "queue-num", "guaranteed-rate",
        "output-traffic-control-profile",
    }
)  # fmt: skip

DEFAULT_FORWARDING_CLASSES = frozenset({"best-effort", "expedited-forwarding", "assured-forwarding", "network-control"})

DEFAULT_JUNOS = """\
set version 23.2R1.14
set system host-name {name}
set system login user {user} class super-user
set system services ssh
set interfaces ge-0/0/0 unit 0 family inet
set interfaces ge-0/0/1 unit 0 family inet
set interfaces ge-0/0/2 unit 0 family inet
"""

OP_WORDS: dict[str, Any] = {
    "configure": {"exclusive": {}, "private": {}},
    "show": {"configuration": {}, "system": {"commit": {}}, "version": {}, "interfaces": {}},
    "set": {"cli": {"screen-length": {}, "screen-width": {}, "complete-on-space": {}}},
    "exit": {},
    "quit": {},
}


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def parse_set_lines(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = tokens(stripped)
        if words[0] != "set":
            raise ValueError(f"not a Junos set line: {raw!r}")
        line = " ".join(words)
        if line not in lines:
            lines.append(line)
    return lines


def validate_path(cfg: list[str]) -> int | None:
    """Index of the first token the grammar rejects (``cfg`` excludes the verb), or None."""
    if not cfg or cfg[0] not in TOP:
        return 0
    if (
        cfg[0] == "interfaces"
        and len(cfg) > 1
        and cfg[1] not in ("interface-range", "traceoptions", "apply-groups")
        and not IFNAME_RE.fullmatch(cfg[1])
    ):
        return 1
    if (
        cfg[0] == "class-of-service"
        and len(cfg) > 2
        and cfg[1] in ("classifiers", "rewrite-rules")
        and cfg[2] not in CODE_POINT_TYPES
    ):
        return 2
    for i in range(1, len(cfg)):
        for pattern, allowed in SCHEMA.items():
            matches = len(pattern) == i and all(p in ("*", t) for p, t in zip(pattern, cfg, strict=False))
            if matches and cfg[i] not in allowed:
                return i
    return None


def reference_errors(lines: list[str]) -> list[str]:
    """Commit-check of references; the real box refuses to commit these."""
    cfgs = [tokens(line)[1:] for line in lines]
    schedulers = {c[2] for c in cfgs if c[:2] == ["class-of-service", "schedulers"] and len(c) > 2}
    maps = {c[2] for c in cfgs if c[:2] == ["class-of-service", "scheduler-maps"] and len(c) > 2}
    classes = set(DEFAULT_FORWARDING_CLASSES)
    for c in cfgs:
        if c[:3] == ["class-of-service", "forwarding-classes", "class"] and len(c) > 3:
            classes.add(c[3])
        if c[:3] == ["class-of-service", "forwarding-classes", "queue"] and len(c) > 4:
            classes.add(c[4])
    policers = {c[2] for c in cfgs if c[:2] == ["firewall", "policer"] and len(c) > 2}
    classifiers = {f"{c[2]} {c[3]}" for c in cfgs if c[:2] == ["class-of-service", "classifiers"] and len(c) > 3}
    rewrites = {f"{c[2]} {c[3]}" for c in cfgs if c[:2] == ["class-of-service", "rewrite-rules"] and len(c) > 3}
    filters = {c[c.index("filter") + 1] for c in cfgs if c[:1] == ["firewall"] and "filter" in c[:4] and len(c) > 4}
    problems: list[str] = []

    def refs(cfg: list[str], word: str) -> list[tuple[int, str]]:
        return [(i, cfg[i + 1]) for i, t in enumerate(cfg[:-1]) if t == word]

    for c in cfgs:
        checks: list[tuple[int, str, str, set[str]]] = []
        if c[:2] == ["class-of-service", "scheduler-maps"]:
            checks += [(i, "scheduler", v, schedulers) for i, v in refs(c, "scheduler")]
        if c[:1] == ["class-of-service"] and c[1:2] != ["forwarding-classes"]:
            checks += [(i, "forwarding-class", v, classes) for i, v in refs(c, "forwarding-class")]
            if c[1:2] in (["interfaces"], ["traffic-control-profiles"]):
                checks += [(i, "scheduler-map", v, maps) for i, v in refs(c, "scheduler-map")]
            if c[1:2] == ["interfaces"]:
                for word, defined in (("classifiers", classifiers), ("rewrite-rules", rewrites)):
                    if word in c and len(c) > c.index(word) + 2:
                        at = c.index(word)
                        checks.append((at, word, f"{c[at + 1]} {c[at + 2]}", defined))
        if c[:1] == ["firewall"] and "then" in c:
            checks += [(i, "policer", v, policers) for i, v in refs(c, "policer") if i > c.index("then")]
        if c[:1] == ["interfaces"] and "filter" in c:
            at = c.index("filter")
            if len(c) > at + 2 and c[at + 1] in ("input", "output"):
                checks.append((at + 1, "filter", c[at + 2], filters))
        for i, what, value, defined in checks:
            if value not in defined:
                where = " ".join(c[:i])
                problems.append(f"[edit {where}]\n  '{what} {value}'\n    Referenced {what} '{value}' is not defined")
    return problems


@dataclass(frozen=True)
class Commit:
    """One entry of the commit history (``show system commit``), oldest first in ``commits``."""

    seq: int
    user: str
    timestamp: float
    config: str
    kind: str  # "initial" | "commit" | "commit confirmed" | "rollback" | "set_running_config"
    comment: str = ""
    confirmed_minutes: int | None = None


class JunosState(DeviceState):
    platform = "juniper_junos"
    #: length of a "minute" for ``commit confirmed N``; tests shrink it per device
    seconds_per_minute: ClassVar[float] = 60.0

    def __init__(self, name: str, username: str) -> None:
        super().__init__(name, username)
        self.spm: float = type(self).seconds_per_minute
        self.committed: list[str] = parse_set_lines(DEFAULT_JUNOS.format(name=name, user=username))
        self.candidate: list[str] = list(self.committed)
        self.commits: list[Commit] = [Commit(0, "root", time.time(), self._text(self.committed), "initial")]
        self.confirm_deadline: float | None = None
        self._pending_seq: int | None = None
        self._rollback_target: list[str] | None = None
        self._timers: list[threading.Timer] = []

    @staticmethod
    def _text(lines: list[str]) -> str:
        return "".join(line + "\n" for line in lines)

    def hostname(self) -> str:
        for line in self.committed:
            words = tokens(line)
            if words[1:3] == ["system", "host-name"] and len(words) == 4:
                return words[3].strip('"')
        return self.name

    def running_config(self) -> str:
        with self.lock:
            return self._text(self.committed)

    def candidate_config(self) -> str:
        with self.lock:
            return self._text(self.candidate)

    def startup_config(self) -> str:
        return self.running_config()

    def set_running_config(self, text: str) -> None:
        lines = parse_set_lines(text)
        with self.lock:
            self._cancel_confirm()
            self.committed = lines
            self.candidate = list(lines)
            self._record("lab", "set_running_config")

    def _record(self, user: str, kind: str, comment: str = "", minutes: int | None = None) -> int:
        seq = self.commits[-1].seq + 1
        self.commits.append(Commit(seq, user, time.time(), self._text(self.committed), kind, comment, minutes))
        self.notify()
        return seq

    def commit(self, user: str, comment: str, confirmed_minutes: int | None) -> None:
        with self.lock:
            previous = self.committed
            pending = self._pending_seq is not None
            self._cancel_confirm()
            self.committed = list(self.candidate)
            kind = "commit" if confirmed_minutes is None else "commit confirmed"
            seq = self._record(user, kind, comment, confirmed_minutes)
            if confirmed_minutes is not None:
                # a chain of unconfirmed commits rolls back to the last confirmed config
                target = self._rollback_target if pending and self._rollback_target is not None else previous
                delay = confirmed_minutes * self.spm
                self._rollback_target = target
                self._pending_seq = seq
                self.confirm_deadline = time.monotonic() + delay
                timer = threading.Timer(delay, self._expire, args=(seq,))
                timer.name = f"lab-junos-confirm-{self.name}"
                timer.daemon = True
                self._timers.append(timer)
                timer.start()

    def confirm(self) -> None:
        with self.lock:
            self._cancel_confirm()

    def _cancel_confirm(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._pending_seq = None
        self._rollback_target = None
        self.confirm_deadline = None

    def _expire(self, seq: int) -> None:
        with self.lock:
            if self._pending_seq != seq or self._rollback_target is None:
                return
            self.committed = list(self._rollback_target)
            self.candidate = list(self._rollback_target)
            self._pending_seq = None
            self._rollback_target = None
            self.confirm_deadline = None
            self._record("root", "rollback", "commit confirmed was not confirmed; automatic rollback complete")

    def rollback_lines(self, n: int) -> list[str] | None:
        with self.lock:
            if n < 0 or n >= len(self.commits) or n > 49:
                return None
            return parse_set_lines(self.commits[-1 - n].config)

    def wait_for_commits(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.commits) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def close(self) -> None:
        with self.lock:
            self._cancel_confirm()
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.join(timeout=5)


class JunosShell(LabShell):
    """CLI of a Junos device (operational mode ``user@host> ``, configuration mode ``[edit]``)."""

    state: JunosState
    comment_prefix = "#"

    def __init__(self, **kwargs: Any) -> None:
        self.mode = "op"
        self.path: list[str] = []
        self.exclusive = False
        kwargs.setdefault("intro", "--- JUNOS 23.2R1.14 built 2023-06-22 08:59:19 UTC\n")
        super().__init__(**kwargs)

    # -- prompts --------------------------------------------------------------------------------
    def in_config_mode(self) -> bool:
        return self.mode == "config"

    def base_prompt_text(self) -> str:
        return f"{self.state.username}@{self.state.hostname()}"

    def current_prompt(self) -> str:
        if self.mode == "op":
            return f"{self.base_prompt_text()}> "
        banner = ""
        if self.state.confirm_deadline is not None:
            left = max(self.state.confirm_deadline - time.monotonic(), 0.0)
            minutes = max(1, math.ceil(left / self.state.spm)) if self.state.spm > 0 else 1
            banner = f"# commit confirmed will be rolled back in {minutes} minutes\n"
        where = "[edit" + (" " + " ".join(self.path) if self.path else "") + "]"
        return f"\n{banner}{where}\n{self.base_prompt_text()}# "

    def caret(self, line: str, index: int, message: str) -> str:
        spans = [m.start() for m in TOKEN_RE.finditer(line)]
        pos = spans[index] if 0 <= index < len(spans) else 0
        prompt_line = self.prompt.split("\n")[-1]
        return " " * (len(prompt_line) + pos) + "^\n" + message

    def reject_error(self, line: str) -> str:
        return self.caret(line, 0, "syntax error.")

    def on_disconnect(self) -> None:
        if self.mode == "config" and self.exclusive:
            self.state.candidate = list(self.state.committed)

    # -- dispatch -------------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        if self.mode == "config":
            return self.config_line(line)
        return self.op_line(line)

    def op_line(self, line: str) -> bool:
        if not line:
            return False
        cmd, filters = split_pipe(line)
        words = expand_words(tokens(cmd), OP_WORDS)
        if not words:
            return False
        if words in (["exit"], ["quit"], ["logout"]):
            return True
        if words[:2] == ["set", "cli"] and len(words) >= 3:
            self.set_cli(words[2:], line)
        elif words[0] == "configure" and len(words) <= 2 and words[1:] in ([], ["exclusive"], ["private"]):
            out = "Entering configuration mode"
            if self.state.candidate != self.state.committed:
                out += "\nThe configuration has been changed but not committed"
            self.writeline(out)
            self.mode = "config"
            self.path = []
            self.exclusive = words[1:] != []
        elif words[:2] == ["show", "configuration"]:
            self.show_lines(self.state.committed, words[2:], filters, line)
        elif words[:3] == ["show", "system", "commit"]:
            self.show_commits()
        elif not self.stock_command(" ".join(words)):
            self.writeline(self.caret(line, 0, "unknown command."))
        return False

    def set_cli(self, args: list[str], line: str) -> None:
        if args[0] == "screen-length" and len(args) == 2 and args[1].isdigit():
            self.writeline(f"Screen length set to {args[1]}")
        elif args[0] == "screen-width" and len(args) == 2 and args[1].isdigit():
            self.writeline(f"Screen width set to {args[1]}")
        elif args == ["complete-on-space", "off"]:
            self.writeline("Disabling complete-on-space")
        elif args == ["complete-on-space", "on"]:
            self.writeline("Enabling complete-on-space")
        elif args[0] not in ("timestamp", "terminal", "idle-timeout", "prompt", "directory"):
            self.writeline(self.caret(line, 2, "syntax error."))

    def show_lines(self, lines: list[str], args: list[str], filters: list[tuple[str, str]], line: str) -> None:
        selected = [ln for ln in lines if tokens(ln)[1 : 1 + len(args)] == args]
        text = "".join(ln + "\n" for ln in selected)
        for name, arg in filters:
            if name == "display" and arg.strip() == "set":
                continue
            if name == "no-more":
                continue
            if name in ("match", "except"):
                rx = re.compile(arg.strip().strip('"'))
                keep = name == "match"
                text = "".join(ln + "\n" for ln in text.splitlines() if bool(rx.search(ln)) == keep)
            elif name == "count":
                text = f"Count: {len(text.splitlines())} lines\n"
            else:
                self.writeline(self.caret(line, 0, "syntax error."))
                return
        self.writeline(text)

    def show_commits(self) -> None:
        rows = []
        for n, commit in enumerate(reversed(self.state.commits)):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(commit.timestamp))
            extra = ""
            if commit.kind == "commit confirmed":
                extra = f" commit confirmed, rollback in {commit.confirmed_minutes}mins"
            if commit.comment:
                extra += f"\n    {commit.comment}"
            rows.append(f"{n:<3} {stamp} by {commit.user} via cli{extra}")
        self.writeline("\n".join(rows))

    # -- configuration mode -------------------------------------------------------------------
    def config_line(self, line: str) -> bool:
        if not line or line.startswith("#"):
            return False
        cmd, filters = split_pipe(line)
        words = tokens(cmd)
        verb = words[0]
        if verb in ("set", "delete"):
            self.set_or_delete(verb, words[1:], line)
        elif verb == "edit":
            cfg = self.path + words[1:]
            bad = validate_path(cfg) if words[1:] else 0
            if bad is not None:
                self.writeline(self.caret(line, max(bad - len(self.path) + 1, 0), "syntax error."))
            else:
                self.path = cfg
        elif words == ["up"]:
            if self.path:
                self.path.pop()
            else:
                self.writeline("warning: Already at the top of configuration")
        elif words == ["top"]:
            self.path = []
        elif words in (["exit"], ["quit"]) and self.path:
            self.path.pop()
        elif words in (["exit"], ["quit"], ["exit", "configuration-mode"]):
            self.exit_config()
        elif verb == "commit":
            self.commit(words[1:], line)
        elif verb == "rollback" and len(words) <= 2:
            n = int(words[1]) if len(words) == 2 and words[1].isdigit() else 0 if len(words) == 1 else -1
            lines = self.state.rollback_lines(n)
            if lines is None:
                self.writeline(f"error: rollback {words[1] if len(words) == 2 else ''} is not available")
            else:
                self.state.candidate = lines
                self.writeline("load complete")
        elif verb == "show":
            self.config_show(words[1:], filters, line)
        elif verb == "run" and len(words) > 1:
            self.op_line(line[len("run") :].strip())
        else:
            self.writeline(self.caret(line, 0, "unknown command."))
        return False

    def set_or_delete(self, verb: str, rest: list[str], line: str) -> None:
        cfg = self.path + rest
        bad = validate_path(cfg)
        if bad is not None:
            self.writeline(self.caret(line, max(bad - len(self.path) + 1, 0), "syntax error."))
            return
        if verb == "delete":
            before = len(self.state.candidate)
            self.state.candidate = [ln for ln in self.state.candidate if tokens(ln)[1 : 1 + len(cfg)] != cfg]
            if len(self.state.candidate) == before:
                self.writeline("warning: statement not found")
            return
        new = "set " + " ".join(cfg)
        if new in self.state.candidate:
            return
        leaf = max((i for i, t in enumerate(cfg[:-1]) if t in SINGLE_VALUED), default=None)
        if leaf is not None:
            prefix = cfg[: leaf + 1]
            for i, old in enumerate(self.state.candidate):
                old_cfg = tokens(old)[1:]
                if old_cfg[: leaf + 1] == prefix and len(old_cfg) > leaf + 1:
                    self.state.candidate[i] = new
                    return
        self.state.candidate.append(new)

    def commit(self, opts: list[str], line: str) -> None:
        check = opts == ["check"]
        confirmed: int | None = None
        comment = ""
        and_quit = False
        i = 0
        while i < len(opts) and not check:
            opt = opts[i]
            if opt == "confirmed":
                confirmed = 10
                if i + 1 < len(opts) and opts[i + 1].isdigit():
                    confirmed = int(opts[i + 1])
                    i += 1
            elif opt == "comment" and i + 1 < len(opts):
                comment = opts[i + 1].strip('"')
                i += 1
            elif opt == "and-quit":
                and_quit = True
            else:
                self.writeline(self.caret(line, i + 1, "syntax error."))
                return
            i += 1
        problems = reference_errors(self.state.candidate)
        if problems:
            self.writeline("\n".join(problems) + "\nerror: configuration check-out failed")
            return
        if check:
            self.state.confirm()  # commit check also confirms a pending commit confirmed
            self.writeline("configuration check succeeds")
            return
        out = []
        if confirmed is not None:
            out.append(f"commit confirmed will be automatically rolled back in {confirmed} minutes unless confirmed")
        self.state.commit(self.state.username, comment, confirmed)
        out.append("commit complete")
        if and_quit:
            out.append("Exiting configuration mode")
            self.mode = "op"
            self.path = []
        self.writeline("\n".join(out))

    def exit_config(self) -> None:
        def leave() -> None:
            if self.exclusive:
                self.state.candidate = list(self.state.committed)
            self.mode = "op"
            self.path = []
            self.writeline("Exiting configuration mode\n")

        if self.state.candidate == self.state.committed:
            leave()
            return
        self.writeline("The configuration has been changed but not committed")

        def answer(ans: str) -> None:
            if ans.lower() in ("", "y", "yes"):
                leave()

        self.ask("Exit with uncommitted changes? [yes,no] (yes) ", answer)

    def config_show(self, args: list[str], filters: list[tuple[str, str]], line: str) -> None:
        names = [name for name, _ in filters]
        if names[:1] == ["compare"]:
            committed, candidate = self.state.committed, self.state.candidate
            removed = [ln for ln in committed if ln not in candidate]
            added = [ln for ln in candidate if ln not in committed]
            if removed or added:
                diff = [f"- {ln}" for ln in removed] + [f"+ {ln}" for ln in added]
                self.writeline("[edit]\n" + "\n".join(diff))
            return
        if args and validate_path(self.path + args) is not None:
            self.writeline(self.caret(line, 1, "syntax error."))
            return
        self.show_lines(self.state.candidate, self.path + args, filters, line)
