"""Linux: nftables marking + classify chains and the tc HTB tree, read back from text.

Chain: ``... dscp set X comment "journey NAME"`` -> the ``qoe_classify`` rule
whose DSCP set contains X -> ``meta priority set MAJOR:MINOR`` -> the HTB class
with that classid on each WAN device (``prio 0`` is the strict tier, its
``rate`` the guarantee) -> share = rate / root-class rate. A DSCP no classify
rule names goes to the HTB ``default`` class.
"""

from __future__ import annotations

import re

from tests.parsers import DeviceTreatment, ParseError, dscp_value, journey_key, treatment

MARK = re.compile(r'\b(?:ip|ip6) dscp set (\S+) comment "journey ([^"]+)"')
CLASSIFY = re.compile(r"\b(?:ip|ip6) dscp (\{[^}]*\}|\S+) meta priority set ([0-9a-f]+:[0-9a-f]+)")
HTB_QDISC = re.compile(r"^qdisc \S+ dev (\S+) root handle ([0-9a-f]+): htb default ([0-9a-f]+)")
HTB_CLASS = re.compile(r"^class \S+ dev (\S+) parent ([0-9a-f]+:[0-9a-f]*) classid ([0-9a-f]+:[0-9a-f]+) htb (.*)$")
RATE = re.compile(r"\b(rate|ceil) (\d+)kbit\b")
PRIO = re.compile(r"\bprio (\d+)\b")


def _dscps(token: str) -> list[int]:
    return [dscp_value(t) for t in token.strip("{} ").split(",") if t.strip()]


def _classid(major: str, minor: str) -> str:
    return f"{int(major, 16):x}:{int(minor, 16):x}"


def parse(files: dict[str, str]) -> DeviceTreatment:
    nft, tc = files["nftables.nft"], files["tc.batch"]
    marks: dict[str, set[int]] = {}
    for m in MARK.finditer(nft):
        marks.setdefault(journey_key(m.group(2)), set()).add(dscp_value(m.group(1)))
    classid_of: dict[int, str] = {}
    for m in CLASSIFY.finditer(nft):
        major, minor = m.group(2).split(":")
        for d in _dscps(m.group(1)):
            if classid_of.setdefault(d, _classid(major, minor)) != _classid(major, minor):
                raise ParseError(f"DSCP {d} is classified into two classes")
    # Per WAN device: default classid, root rate, and (rate, prio) of each leaf class.
    default: dict[str, str] = {}
    classes: dict[str, dict[str, tuple[int, int]]] = {}
    root_rate: dict[str, int] = {}
    for line in tc.splitlines():
        if q := HTB_QDISC.match(line):
            default[q.group(1)] = _classid(q.group(2), q.group(3))
        elif c := HTB_CLASS.match(line):
            dev, parent, cid, rest = c.groups()
            rates = dict((k, int(v)) for k, v in RATE.findall(rest))
            if parent.endswith(":"):
                root_rate[dev] = rates["rate"]
                continue
            prio = PRIO.search(rest)
            major, minor = cid.split(":")
            classes.setdefault(dev, {})[_classid(major, minor)] = (rates["rate"], int(prio.group(1)) if prio else 0)
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        if len(dscps) != 1:
            raise ParseError(f"journey {journey} is marked with several DSCPs: {sorted(dscps)}")
        dscp = dscps.pop()
        per_if: dict[str, tuple[bool, float | None]] = {}
        for dev, leaves in classes.items():
            cid = classid_of.get(dscp, default.get(dev, ""))
            if cid not in leaves:
                raise ParseError(f"{dev}: journey {journey} (DSCP {dscp}) goes to class {cid}, which is not defined")
            rate, prio = leaves[cid]
            per_if[dev] = (prio == 0, 100.0 * rate / root_rate[dev])
        out[journey] = treatment(journey, dscp, per_if)
    return out
