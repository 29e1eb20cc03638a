"""The policy-routing part of a Linux SD-WAN edge, for the linux apply driver: read, diff, restore.

qoectl owns the ``ip rule`` priorities and the routing tables of :mod:`controller.linux_routing`
and nothing else: the state it reads lists only rules in its priority range and routes in its
tables (IPv4 and IPv6), so a rule or table of anyone else is never diffed, changed or restored.

* **Read**: four sections of the state dump (``### ip rule 4`` ...), in the kernel's words.
  ``linkdown``/``dead`` are dropped from routes: they say whether the WAN link is up right now,
  not what is configured.
* **Push**: the minimal difference, one ``ip -4/-6 -batch`` per family: routes that go, routes
  that come, rules that come, then rules that go (a journey's new rule is in place before its
  old one leaves; rules have unique priorities, so the two never race for a packet).
* **Restore** (by qoectl or the on-router watchdog): every rule in the range and every route in
  the tables is removed, then the saved ones are added again from the kernel's own listing, so
  whatever part of a push ran, the result is the saved state; with nothing saved, nothing of
  qoectl's is left.
"""

from __future__ import annotations

from itertools import pairwise

from controller import linux_routing as owned
from controller.configtext.meaning import ParseError
from controller.platforms.linux.parser import routing_lines

FAMILIES = ("4", "6")
FLAGS = frozenset({"linkdown", "dead"})  # link state, not configuration

_RULES = f"awk -F: '$1>={owned.RULE_FIRST}&&$1<={owned.RULE_LAST}'"
# Routes in tables TABLE_FIRST..TABLE_LAST (29101-29199: "291" then 01-99).
_ROUTES = "awk '/ table 291(0[1-9]|[1-9][0-9])( |$)/'"  # awk, not grep: no match is no error
assert (owned.TABLE_FIRST, owned.TABLE_LAST) == (29101, 29199), "_ROUTES spells this range out"


def state_parts() -> list[str]:
    """Shell printing qoectl's rules and routes, a section per family and kind; one short line per family
    (each is sent as one command line, and a terminal wraps long ones)."""
    return [
        f"echo '### ip rule {f}'; ip -{f} rule show 2>/dev/null | {_RULES}; "
        f"echo '### ip route {f}'; ip -{f} route show table all 2>/dev/null | {_ROUTES}"
        for f in FAMILIES
    ]


def normalize_route(line: str) -> str:
    return " ".join(w for w in line.split() if w not in FLAGS)


def section(state: str, kind: str, family: str) -> list[str]:
    """The lines of one section (``kind`` rule or route) of a normalized state."""
    out: list[str] = []
    inside = False
    for line in state.splitlines():
        if line.startswith("### "):
            inside = line == f"### ip {kind} {family}"
        elif inside:
            out.append(line)
    return out


def view(state: str) -> list[str]:
    """Everything a routing restore must reproduce, with its section heads."""
    return [
        line
        for f in FAMILIES
        for kind in ("rule", "route")
        for line in (f"### ip {kind} {f}", *section(state, kind, f))
    ]


def devices(state: str) -> tuple[str, ...]:
    """The interfaces the routes of ``state`` go through (a restore check needs stand-ins for them)."""
    found: list[str] = []
    for f in FAMILIES:
        for line in section(state, "route", f):
            words = line.split()
            found += [b for a, b in pairwise(words) if a == "dev"]
    return tuple(dict.fromkeys(found))


def _rule_cmd(verb: str, line: str) -> str:
    prio, _, rest = line.partition(":")
    return f"rule {verb} pref {prio.strip()} {rest.strip()}"


def push_batches(before: str, want: str) -> dict[str, str]:
    """family -> the ``ip -batch`` text that turns ``before``'s rules and routes into ``want``'s (only changes)."""
    out: dict[str, str] = {}
    for f in FAMILIES:
        old_rules, new_rules = section(before, "rule", f), section(want, "rule", f)
        old_routes, new_routes = section(before, "route", f), section(want, "route", f)
        lines = [f"route del {r}" for r in old_routes if r not in new_routes]
        lines += [f"route add {r}" for r in new_routes if r not in old_routes]
        lines += [_rule_cmd("add", r) for r in new_rules if r not in old_rules]
        lines += [_rule_cmd("del", r) for r in old_rules if r not in new_rules]
        if lines:
            out[f] = "\n".join(lines) + "\n"
    return out


def restore_batches(saved: str) -> dict[str, str]:
    """family -> the ``ip -batch`` text that adds the saved rules and routes to emptied ranges."""
    return {
        f: "".join(
            [f"route add {r}\n" for r in section(saved, "route", f)]
            + [_rule_cmd("add", r) + "\n" for r in section(saved, "rule", f)]
        )
        for f in FAMILIES
    }


def restore_script() -> str:
    """``restore-ip.sh``: empty qoectl's ranges, then add back ``restore4.ip`` / ``restore6.ip`` (the saved state)."""
    clear = []
    for f in FAMILIES:
        clear += [
            f"ip -{f} rule show 2>/dev/null | {_RULES} | "
            f'awk -F: \'{{print "rule del pref " $1+0}}\' > "$D/clear{f}.ip"',
            f"ip -{f} route show table all 2>/dev/null | {_ROUTES} | "
            'awk \'{for(i=1;i<NF;i++) if($i=="table") print "route flush table " $(i+1)}\' | sort -u >> '
            f'"$D/clear{f}.ip"',
            f'if [ -s "$D/clear{f}.ip" ]; then ip -{f} -batch "$D/clear{f}.ip" || rc=1; fi',
            f'if [ -s "$D/restore{f}.ip" ]; then ip -{f} -batch "$D/restore{f}.ip" || rc=1; fi',
        ]
    return "\n".join(
        [
            "#!/bin/sh",
            f"# qoectl: put back its ip rules ({owned.RULE_FIRST}-{owned.RULE_LAST}) and routing tables "
            f"({owned.TABLE_FIRST}-{owned.TABLE_LAST}) as saved: empty them, add the saved ones.",
            'D=$(cd "$(dirname "$0")" && pwd)',
            "rc=0",
            *clear,
            "exit $rc",
            "",
        ]
    )


def outside(text: str) -> str | None:
    """The first line of a rendered routing file that is not a route in qoectl's tables or a rule in its range
    (testing only its mark bits), or None: such a file is refused before anything is sent. Lines are read by the
    Linux parser (:func:`controller.platforms.linux.parser.routing_lines`)."""
    for line in text.splitlines():
        try:
            commands = routing_lines(line)
        except ParseError:
            return line
        for cmd in commands:
            if cmd.table is not None and not owned.TABLE_FIRST <= cmd.table <= owned.TABLE_LAST:
                return line
            if cmd.priority is not None and (
                not owned.RULE_FIRST <= cmd.priority <= owned.RULE_LAST or cmd.mask & ~owned.MARK_MASK
            ):
                return line
    return None
