"""``qoectl lab up / down / status / load / capacity / degrade``: the lab's life cycle, one state per root.

``up`` writes the state before it creates anything and after every step, and removes what it made
if a step fails; ``down`` stops every process the lab started (by PID and start time), then every
process still inside its namespaces (an apply's rollback watchdog, a session), removes its links
and namespaces and waits until the kernel has let them go, then removes the lab's folder.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controller.lab import sshd, topology
from controller.lab import traffic as tr
from controller.lab.config import SSH_PORT, LabConfig, load_lab
from controller.lab.netns import (
    LabCommandError,
    Proc,
    existing_namespaces,
    kill_namespace_processes,
    namespace_pids,
    run,
    start,
    stop,
)
from controller.lab.state import DEFAULT_ROOT, USER_ENV, LabFiles, LabState, current, locked, new_state, write_state

Progress = Callable[[str], None]
SETTLE_S = 0.5  # generators that die at once (a port in use, a bad address) do so within this


class LabError(RuntimeError):
    """Why a lab command cannot go on, in one line that says what to do."""


def _quiet(_: str) -> None:
    pass


def preflight() -> None:
    """Root and the tools: raises :class:`LabError` saying what is missing."""
    if os.geteuid() != 0:
        raise LabError(
            "qoectl lab needs root: it creates network namespaces, veth links and sshd servers (run with sudo)"
        )
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise LabError(f"qoectl lab needs the '{tool}' command (apt-get install iproute2)")
    missing = sshd.missing_tools()
    if missing:
        raise LabError(f"qoectl lab routers need {missing}")


def _root_addresses() -> list[tuple[str, ipaddress.IPv4Interface]]:
    out = run(["ip", "-o", "-4", "addr", "show"], check=False)
    found = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            found.append((parts[1], ipaddress.IPv4Interface(parts[parts.index("inet") + 1])))
    return found


def _root_links() -> set[str]:
    """Names of this namespace's network interfaces."""
    out = run(["ip", "-o", "link", "show"], check=False)
    return {line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if line.count(":") >= 2}


def _conflicts(cfg: LabConfig) -> list[str]:
    """What on this machine would clash with the lab: its namespaces, links or management addresses."""
    problems = []
    leftovers = sorted(n for n in existing_namespaces() if n.startswith(cfg.prefix))
    if leftovers:
        problems.append(f"namespaces {', '.join(leftovers)} exist")
    links = _root_links()
    addresses = _root_addresses()
    for i, r in enumerate(cfg.routers):
        net = ipaddress.IPv4Network(f"{r.address}/{r.prefixlen}", strict=False)
        for ifname, addr in addresses:
            if addr.network.overlaps(net):
                problems.append(f"{ifname} already has {addr}, inside {r.name}'s management prefix {net}")
        if cfg.root_interface(i) in links:
            problems.append(f"interface {cfg.root_interface(i)} exists")
    return problems


def up(lab_file: Path, root: Path, progress: Progress = _quiet) -> LabState:
    """Build the lab of ``lab_file``; raises :class:`LabError` (nothing left behind) when it cannot."""
    preflight()
    cfg = load_lab(lab_file)
    text = lab_file.read_text(encoding="utf-8")
    with locked(root):
        there = current(root)
        if there is not None:
            raise LabError(
                f"lab '{there.name}' is still there ({len(there.namespaces)} namespaces, state {there.folder}): "
                "`qoectl lab down` removes it"
            )
        clash = _conflicts(cfg)
        if clash:
            raise LabError(
                f"cannot build lab '{cfg.name}': {'; '.join(clash)} (a lab left without its state? "
                f"`qoectl lab down --name {cfg.name}` removes its namespaces)"
            )
        state = new_state(root, cfg, text, lab_file.resolve().parent)
        files = state.files
        for sub in (files.folder, files.folder / "routers", files.folder / "logs", files.folder / "counters"):
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_state(state)
        try:
            state = _build(state, progress)
        except BaseException:
            progress("failed: removing what was created")
            _teardown(state, _quiet)
            raise
        return state


def _build(state: LabState, progress: Progress) -> LabState:
    cfg, files = state.config, state.files
    topology.create(cfg, progress)
    client_pub = sshd.keygen(files.key, comment=f"qoectl-lab-{cfg.name}")
    files.env.write_text(f"{USER_ENV}=root\n", encoding="ascii")
    known: list[str] = []
    for r in cfg.routers:
        progress(f"starting sshd on {r.name} ({r.address}:{SSH_PORT})")
        proc, line = sshd.start_sshd(
            r.name,
            cfg.namespace(r.name),
            r.address,
            SSH_PORT,
            files.router(r.name),
            client_pub,
            files.log(f"sshd-{r.name}"),
        )
        state = state.with_processes((*state.processes, proc))
        write_state(state)
        known.append(line)
    files.known_hosts.write_text("".join(line + "\n" for line in known), encoding="ascii")
    specs = tr.plan(cfg, files, state.capacity, state.bulk_load)
    if specs:
        progress(f"starting {len(cfg.traffic)} traffic generators: {', '.join(t.name for t in cfg.traffic)}")
    state = _start(state, specs)
    state = replace(state, complete=True)
    write_state(state)
    return state


def _start(state: LabState, specs: list[tr.ProcSpec]) -> LabState:
    """Start ``specs`` (receivers first), record them, and check that none died at once."""
    started: list[Proc] = []
    try:
        for spec in specs:
            proc = start(spec.name, spec.role, state.config.namespace(spec.node), spec.argv, state.files.log(spec.name))
            started.append(proc)
            state = state.with_processes((*state.processes, proc))
            if spec.role == "receiver":
                write_state(state)
    finally:
        write_state(state)
    if started:
        time.sleep(SETTLE_S)
    dead = [p for p in started if not p.alive()]
    if dead:
        p = dead[0]
        raise LabError(f"{p.name} exited at once: {_last_line(Path(p.log))}")
    return state


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


@dataclass(frozen=True, slots=True)
class DownReport:
    name: str
    stopped: tuple[int, ...]  # PIDs stopped
    namespaces: tuple[str, ...]  # namespaces removed
    left: tuple[str, ...]  # what could not be removed (empty: everything is gone)


def down(root: Path, name: str | None = None, progress: Progress = _quiet) -> DownReport | None:
    """Remove the lab under ``root`` (or, with ``name`` and no state, the namespaces of a lab of that name)."""
    preflight()
    with locked(root):
        state = current(root)
        if state is None:
            if name is None:
                return None
            return _remove_orphans(f"qlab-{name}-", name, progress)
        return _teardown(state, progress)


def _teardown(state: LabState, progress: Progress) -> DownReport:
    procs = [p for p in state.processes if p.alive()]
    progress(f"stopping {len(procs)} processes of lab '{state.name}'")
    stop(procs)
    stopped = [p.pid for p in procs]
    present = existing_namespaces()
    namespaces = [n for n in state.namespaces if n in present]
    left: list[str] = []
    for n in namespaces:
        survivors = kill_namespace_processes(n)
        left += [f"process {pid} in {n}" for pid in survivors]
    progress(f"removing {len(namespaces)} namespaces")
    for link in state.root_links:
        run(["ip", "link", "del", link], check=False)
    for n in namespaces:
        run(["ip", "netns", "del", n], check=False)
    left += _wait_gone(namespaces, state.root_links)
    if not left:
        shutil.rmtree(state.folder, ignore_errors=True)
    else:
        write_state(replace(state, processes=tuple(p for p in state.processes if p.alive()), complete=False))
    return DownReport(state.name, tuple(stopped), tuple(namespaces), tuple(left))


def _remove_orphans(prefix: str, name: str, progress: Progress) -> DownReport | None:
    namespaces = sorted(n for n in existing_namespaces() if n.startswith(prefix))
    if not namespaces:
        return None
    progress(f"removing {len(namespaces)} namespaces of lab '{name}' (no state was left)")
    left: list[str] = []
    stopped: list[int] = []
    for n in namespaces:
        stopped += namespace_pids(n)
        left += [f"process {pid} in {n}" for pid in kill_namespace_processes(n)]
        run(["ip", "netns", "del", n], check=False)
    left += _wait_gone(namespaces, ())
    return DownReport(name, tuple(stopped), tuple(namespaces), tuple(left))


def _wait_gone(namespaces: list[str], links: tuple[str, ...], timeout: float = 10.0) -> list[str]:
    """Namespace cleanup is asynchronous in the kernel: wait until the names and links are really gone."""
    deadline = time.monotonic() + timeout
    while True:
        ns_left = sorted(set(namespaces) & existing_namespaces())
        present = _root_links() if links else set()
        links_left = [link for link in links if link in present]
        if (not ns_left and not links_left) or time.monotonic() > deadline:
            return [f"namespace {n}" for n in ns_left] + [f"interface {link}" for link in links_left]
        time.sleep(0.05)


def status(root: Path) -> LabState | None:
    return current(root)


def set_load(root: Path, bulk: float, progress: Progress = _quiet) -> LabState:
    """Change the bulk_udp overload of the running lab to ``bulk`` x its WAN's capacity."""
    preflight()
    with locked(root):
        state = _running(root)
        state = _restart_bulk(replace(state, bulk_load=bulk), progress)
        write_state(state)
        return state


def set_capacity(root: Path, wan: str, kbps: int, progress: Progress = _quiet) -> LabState:
    """Change the real capacity of WAN ``wan`` while the lab runs (bulk_udp follows it)."""
    preflight()
    with locked(root):
        state = _running(root)
        names = [w.name for w in state.config.wans]
        if wan not in names:
            raise LabError(f"lab '{state.name}' has no WAN '{wan}' (WANs: {', '.join(names)})")
        progress(f"setting the capacity of {wan} to {kbps} kbit/s")
        topology.set_capacity(state.config, state.config.wan(wan), kbps)
        state = replace(state, capacity_kbps={**state.capacity_kbps, wan: kbps})
        write_state(state)
        state = _restart_bulk(state, progress)
        write_state(state)
        return state


def degrade(root: Path, transport: str, kbps: int, towards: str | None = None, progress: Progress = _quiet) -> LabState:
    """Cross traffic of ``kbps`` kbit/s (0: none) through the ISP of ``transport`` (a WAN's name or transport).

    A UDP sender inside the ISP's namespace sends to the sink address of the link towards ``towards`` (default:
    the last router of the WAN's links, the hub side): through the ISP's own bottleneck towards that router,
    which drops it. The queueing delay and loss it causes on that path are real, and no router can shape them
    away. The sender is a lab process (by PID in the state): a new rate replaces it, ``lab down`` stops it.
    """
    preflight()
    with locked(root):
        state = _running(root)
        cfg = state.config
        wan = cfg.wan_by_transport(transport)
        if wan is None:
            names = ", ".join(f"{w.name} ({w.transport_name})" if w.transport else w.name for w in cfg.wans)
            raise LabError(f"lab '{state.name}' has no WAN or transport '{transport}' (WANs: {names})")
        link = wan.links[-1] if towards is None else wan.link_of(towards)
        if link is None:
            on = ", ".join(x.router for x in wan.links)
            raise LabError(f"router '{towards}' is not on WAN {wan.name} (its routers: {on})")
        name = f"degrade-{wan.name}"
        old = [p for p in state.processes if p.name == name]
        stop(old)
        state = state.with_processes(tuple(p for p in state.processes if p not in old))
        degraded = {k: v for k, v in state.degraded.items() if k != wan.name}
        if kbps <= 0:
            progress(f"cross traffic on {wan.name}: stopped")
            state = replace(state, degraded=degraded)
            write_state(state)
            return state
        progress(f"cross traffic on {wan.name}: {kbps} kbit/s from the ISP towards {link.router} ({link.sink})")
        fifo = topology.buffer_bytes(state.capacity(wan.name), wan.buffer_ms)
        sndbuf = str(4 * fifo + (1 << 20))  # more than the ISP's FIFO holds: it overflows there, not in the socket
        args = ("udp", "--dst", link.sink, "--port", "9", "--kbps", str(kbps), "--size", "1400", "--sndbuf", sndbuf)
        argv: tuple[str, ...] = (*tr.GEN, *args)
        spec = tr.ProcSpec(name, "generator", wan.node, argv, name)
        state = _start(replace(state, degraded={**degraded, wan.name: kbps}), [spec])
        write_state(state)
        return state


def _running(root: Path) -> LabState:
    state = current(root)
    if state is None:
        raise LabError(f"no lab is up (state folder {root}): start one with `qoectl lab up LABFILE`")
    if not state.complete:
        raise LabError(f"lab '{state.name}' did not come up completely: `qoectl lab down` removes it")
    return state


def _restart_bulk(state: LabState, progress: Progress) -> LabState:
    old = [
        p for p in state.processes if p.name in {f"{t.name}.send" for t in state.config.traffic if t.kind == "bulk_udp"}
    ]
    specs = tr.bulk_senders(state.config, state.files, state.capacity, state.bulk_load)
    progress(
        "bulk overload: "
        + (
            ", ".join(
                f"{s.generator} at {tr.bulk_kbps(state.bulk_load, _wan_capacity(state, s.generator))} kbit/s"
                for s in specs
            )
            or "stopped"
        )
    )
    stop(old)
    state = state.with_processes(tuple(p for p in state.processes if p not in old))
    return _start(state, specs)


def _wan_capacity(state: LabState, generator: str) -> int:
    t = state.config.generator(generator)
    return state.capacity(state.config.path_wan(t.source, t.destination).name)


def status_json(state: LabState) -> dict[str, Any]:
    """What ``qoectl lab status --json`` prints: enough to measure the lab with any other tool."""
    cfg, files = state.config, state.files
    links: list[dict[str, Any]] = []
    routers: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(cfg.routers):
        routers[r.name] = {
            "namespace": cfg.namespace(r.name),
            "addresses": [f"{r.address}/{r.prefixlen}"],
            "interfaces": {"mgmt0": f"{r.address}/{r.prefixlen}"},
            "management": {"host": r.address, "port": SSH_PORT},
        }
        links.append(
            _link(
                "management",
                (r.name, "mgmt0", r.address, r.prefixlen),
                ("", cfg.root_interface(i), r.peer, r.prefixlen),
            )
        )
    hosts: dict[str, dict[str, Any]] = {}
    for h in cfg.hosts:
        hosts[h.name] = {
            "namespace": cfg.namespace(h.name),
            "addresses": [f"{h.address}/{h.prefixlen}"],
            "router": h.router,
            "site": h.site,
            "gateway": h.router_address,
        }
        routers[h.router]["addresses"].append(f"{h.router_address}/{h.prefixlen}")
        routers[h.router]["interfaces"][h.router_interface] = f"{h.router_address}/{h.prefixlen}"
        links.append(
            _link(
                "lan",
                (h.name, "eth0", h.address, h.prefixlen),
                (h.router, h.router_interface, h.router_address, h.prefixlen),
            )
        )
    wans: dict[str, dict[str, Any]] = {}
    for w in cfg.wans:
        wans[w.name] = {
            "namespace": cfg.namespace(w.node),
            "addresses": [f"{link.isp_address}/{link.prefixlen}" for link in w.links],
            "capacity_kbps": state.capacity(w.name),
            "buffer_ms": w.buffer_ms,
            "bottleneck": {link.isp_interface: link.router for link in w.links},
            "transport": w.transport_name,
            "sinks": {link.router: link.sink for link in w.links},
        }
        for link in w.links:
            routers[link.router]["addresses"].append(f"{link.router_address}/{link.prefixlen}")
            routers[link.router]["interfaces"][link.interface] = f"{link.router_address}/{link.prefixlen}"
            if cfg.wan_of(link.router).name == w.name:
                routers[link.router]["wan"] = {"name": w.name, "interface": link.interface}
            routers[link.router].setdefault("transports", {})[w.transport_name] = {
                "wan": w.name,
                "interface": link.interface,
                "address": link.router_address,
                "gateway": link.isp_address,
            }
            links.append(
                _link(
                    "wan",
                    (link.router, link.interface, link.router_address, link.prefixlen),
                    (w.node, link.isp_interface, link.isp_address, link.prefixlen),
                    wan=w.name,
                )
            )
    return {
        "name": state.name,
        "lab_file": state.lab_file,
        "policy": cfg.policy,
        "state_dir": str(state.folder),
        "complete": state.complete,
        "created": state.created,
        "namespaces": list(state.namespaces),
        "hosts": hosts,
        "routers": routers,
        "wans": wans,
        "links": links,
        "load": {"bulk": state.bulk_load},
        "degraded": dict(state.degraded),
        "processes": [
            {"name": p.name, "role": p.role, "namespace": p.namespace, "pid": p.pid, "running": p.alive()}
            for p in state.processes
        ],
        "apply": {
            "known_hosts": str(files.known_hosts),
            "key_file": str(files.key),
            "env": {USER_ENV: "root"},
            "command": _apply_hint(state),
        },
    }


def _policy_names(policy: Path, key: Path) -> bool:
    """Whether a YAML file of ``policy`` names ``key`` (its inventory then reaches this lab as it is)."""
    try:
        files = [p for p in policy.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
        return any(str(key) in p.read_text(encoding="utf-8", errors="replace") for p in files)
    except OSError:
        return False


def _apply_hint(state: LabState) -> str:
    """How to apply the lab's policy to it: as it is, or (a lab kept elsewhere) through ``qoectl lab policy``."""
    policy, files = state.config.policy, state.files
    apply = f"{USER_ENV}=root qoectl apply {{}} --known-hosts {files.known_hosts}"
    if _policy_names(Path(policy), files.key):
        return apply.format(policy)
    root = state.folder.parent
    lab = "qoectl lab" + (f" --state-dir {root}" if root != DEFAULT_ROOT else "")
    return f"{lab} policy --out DIR && " + apply.format("DIR")


def _link(
    kind: str, a: tuple[str, str, str, int], b: tuple[str, str, str, int], wan: str | None = None
) -> dict[str, Any]:
    def end(e: tuple[str, str, str, int]) -> dict[str, Any]:
        return {"node": e[0] or None, "interface": e[1], "address": f"{e[2]}/{e[3]}"}

    out: dict[str, Any] = {"kind": kind, "a": end(a), "b": end(b)}
    if wan is not None:
        out["wan"] = wan
    return out


__all__ = [
    "DownReport",
    "LabCommandError",
    "LabError",
    "LabFiles",
    "degrade",
    "down",
    "preflight",
    "set_capacity",
    "set_load",
    "status",
    "status_json",
    "up",
]
