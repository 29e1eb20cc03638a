"""Read rendered device configs back: is a class really strict priority in the text a device receives?

The compiled plan says which class is strict; these probes check that the
*rendered* config says so too, in each platform's own words, on every WAN
queuing policy. One probe per platform, registered by platform name. A
platform without a probe is reported as such (never silently passed), and a
renderer author adds one with :func:`register_strict_priority_probe`.

A probe returns the problems it found (empty: the text expresses strict
priority for the class on every WAN interface the plan queues).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from controller.plan import DevicePlan, QosClass

Probe = Callable[[Mapping[str, str], DevicePlan, QosClass], list[str]]

PREFIX = "QOECTL"
_PROBES: dict[str, Probe] = {}


def register_strict_priority_probe(platform: str) -> Callable[[Probe], Probe]:
    """Decorator: ``probe(files, plan, cls)`` checks platform ``platform``'s rendered text."""

    def add(probe: Probe) -> Probe:
        _PROBES[platform] = probe
        return probe

    return add


def strict_priority_probe(platform: str) -> Probe | None:
    return _PROBES.get(platform)


def probed_platforms() -> list[str]:
    return sorted(_PROBES)


def queued_wan(plan: DevicePlan) -> int:
    """How many WAN interfaces the plan queues (each needs its own strict queue)."""
    return sum(1 for i in plan.wan_interfaces if i.link_kbps)


def blocks(text: str) -> list[list[str]]:
    """Top-level blocks of an indented config: a line at column 0 and the indented lines under it."""
    out: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[:1] not in (" ", "\t") or not out:
            out.append([line])
        else:
            out[-1].append(line)
    return out


def sub_blocks(lines: list[str], indent: int) -> list[list[str]]:
    """Blocks inside a block whose head lines are indented by exactly ``indent`` spaces."""
    out: list[list[str]] = []
    for line in lines[1:]:
        depth = len(line) - len(line.lstrip(" "))
        if depth == indent:
            out.append([line])
        elif depth > indent and out:
            out[-1].append(line)
    return out


def _need(found: int, wanted: int, what: str) -> list[str]:
    if found < max(wanted, 1):
        return [f"{what} on {found} of {max(wanted, 1)} WAN queuing policies"]
    return []


@register_strict_priority_probe("cisco_iosxe")
def _iosxe(files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """MQC: ``class QOECTL-<CLASS>`` under each output queuing policy-map carries ``priority level N``."""
    text = "\n".join(files.values())
    found = 0
    problems: list[str] = []
    for block in blocks(text):
        if not block[0].startswith(f"policy-map {PREFIX}-Q-"):
            continue
        for sub in sub_blocks(block, 1):
            if sub[0].strip() == f"class {PREFIX}-{cls.ident}":
                if any(re.match(r"\s+priority level \d+$", line) for line in sub):
                    found += 1
                else:
                    problems.append(f"{block[0].strip()}: class {PREFIX}-{cls.ident} has no 'priority level'")
    return problems + _need(found, queued_wan(plan), f"'priority level' for class {PREFIX}-{cls.ident}")


@register_strict_priority_probe("linux")
def _linux(files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """nftables maps the class's DSCPs to an HTB classid; that class is ``prio 0`` on every WAN tree."""
    nft = files.get("nftables.nft", "")
    tc = files.get("tc.batch", "")
    ids = set(re.findall(rf'meta priority set (\S+) comment "class {re.escape(cls.name)}"', nft))
    if len(ids) != 1:
        return [f"nftables.nft does not map class {cls.name} to exactly one HTB class (found {sorted(ids)})"]
    cid = ids.pop()
    lines = [line for line in tc.splitlines() if f" classid {cid} htb " in line]
    strict = [line for line in lines if re.search(r"\bprio 0\b", line)]
    problems = [f"tc.batch: HTB class {cid} is not prio 0: {line}" for line in lines if line not in strict]
    return problems + _need(len(strict), queued_wan(plan), f"HTB class {cid} with prio 0")


@register_strict_priority_probe("juniper_junos")
def _junos(files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """Each scheduler-map sends the forwarding class to a scheduler set ``priority strict-high``."""
    text = "\n".join(files.values())
    fc = f"{PREFIX}-{cls.ident}"
    schedulers = re.findall(rf"scheduler-maps \S+ forwarding-class {re.escape(fc)} scheduler (\S+)$", text, re.M)
    problems = [
        f"scheduler {s} of forwarding class {fc} is not 'priority strict-high'"
        for s in schedulers
        if not re.search(rf"^set class-of-service schedulers {re.escape(s)} priority strict-high$", text, re.M)
    ]
    return problems + _need(len(schedulers) - len(problems), queued_wan(plan), f"a strict-high scheduler for {fc}")


@register_strict_priority_probe("arista_eos")
def _eos(files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """The class's DSCP maps to a traffic class, that to a tx-queue, and every such tx-queue is ``priority strict``."""
    text = "\n".join(files.values())
    tc = next(
        (
            m.group(2)
            for m in re.finditer(r"^qos map dscp ([\d ]+) to traffic-class (\d+)$", text, re.M)
            if str(cls.dscp) in m.group(1).split()
        ),
        None,
    )
    if tc is None:
        return [f"no 'qos map dscp ... to traffic-class' for DSCP {cls.dscp} (class {cls.name})"]
    queue = re.search(rf"^qos map traffic-class {tc} to tx-queue (\d+)$", text, re.M)
    if queue is None:
        return [f"traffic-class {tc} (class {cls.name}) is not mapped to a tx-queue"]
    lines = text.splitlines()
    found, problems = 0, []
    for i, line in enumerate(lines):
        if line.strip() != f"tx-queue {queue.group(1)}":
            continue
        depth = len(line) - len(line.lstrip())
        body = []
        for nxt in lines[i + 1 :]:
            if not nxt.strip() or len(nxt) - len(nxt.lstrip()) <= depth:
                break
            body.append(nxt.strip())
        if "priority strict" in body and "no priority" not in body:
            found += 1
        else:
            problems.append(f"tx-queue {queue.group(1)} (class {cls.name}) is not 'priority strict'")
    return problems + _need(found, queued_wan(plan), f"tx-queue {queue.group(1)} with 'priority strict'")


@register_strict_priority_probe("fortios_sdwan")
def _fortios(files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """The traffic-class id named QOECTL-<CLASS> gets ``set priority top`` in every queuing shaping profile."""
    text = "\n".join(files.values())
    ids = re.findall(rf'edit (\d+)\n\s+set class-name "{PREFIX}-{re.escape(cls.ident)}"', text)
    if len(ids) != 1:
        return [f"traffic-class {PREFIX}-{cls.ident} is not defined exactly once (found {len(ids)})"]
    entries = re.findall(rf"set class-id {ids[0]}\n\s+set priority (\S+)", text)
    problems = [f"class-id {ids[0]} ({cls.name}) has priority {p}, not top" for p in entries if p != "top"]
    return problems + _need(entries.count("top"), queued_wan(plan), f"class-id {ids[0]} with 'set priority top'")


@register_strict_priority_probe("cisco_sdwan")
def _vmanage(files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """Every qos-scheduler of class QOECTL-<CLASS> in the localized policy schedules ``llq``."""
    text = files.get("localized-policy.cfg", "")
    found, problems = 0, []
    for block in re.split(r"\n(?= qos-scheduler )", text):
        lines = [line.strip() for line in block.splitlines()]
        if not lines or not lines[0].startswith("qos-scheduler ") or f"class {PREFIX}-{cls.ident}" not in lines:
            continue
        if "scheduling llq" in lines:
            found += 1
        else:
            problems.append(f"{lines[0]} (class {cls.name}) is not 'scheduling llq'")
    return problems + _need(found, queued_wan(plan), f"a qos-scheduler with 'scheduling llq' for {cls.name}")


# --------------------------------------------------------------------------- SD-WAN SLA latency

SlaProbe = Callable[[Mapping[str, str], DevicePlan, str], float | None]
_SLA_PROBES: dict[str, SlaProbe] = {}


def register_sla_latency_probe(platform: str) -> Callable[[SlaProbe], SlaProbe]:
    """Decorator: ``probe(files, plan, sla_name)`` returns the latency threshold the text states, in ms, as
    the platform measures it (round trip on both SD-WAN platforms), or None when the text states none."""

    def add(probe: SlaProbe) -> SlaProbe:
        _SLA_PROBES[platform] = probe
        return probe

    return add


def sla_latency_probe(platform: str) -> SlaProbe | None:
    return _SLA_PROBES.get(platform)


@register_sla_latency_probe("cisco_sdwan")
def _cisco_sdwan_sla(files: Mapping[str, str], plan: DevicePlan, sla: str) -> float | None:
    from controller.render.cisco_sdwan import sla_name

    ident = next(s.ident for s in plan.sla_classes if s.name == sla)
    text = files.get("centralized-policy.cfg", "")
    block = re.search(rf"^\s*sla-class {re.escape(sla_name(ident))}\n((?:\s+\S.*\n)*)", text, re.MULTILINE)
    if block is None:
        return None
    latency = re.search(r"^\s+latency (\d+)\s*$", block.group(1), re.MULTILINE)
    return float(latency.group(1)) if latency else None


@register_sla_latency_probe("fortios_sdwan")
def _fortios_sla(files: Mapping[str, str], plan: DevicePlan, sla: str) -> float | None:
    from controller.render.fortios_sdwan import RENDERER as fortios

    names = [c["t"].name for c in fortios.context(plan)["checks"] if c["t"].sla.name == sla]
    text = files.get("fortios.conf", "")
    for name in names:
        block = re.search(rf'^\s+edit "{re.escape(name)}"\n(.*?)^\s+next$', text, re.MULTILINE | re.DOTALL)
        latency = re.search(r"set latency-threshold (\d+)", block.group(1)) if block else None
        if latency:
            return float(latency.group(1))
    return None
