"""One ``qoectl apply`` run end to end, without any CLI concerns (the CLI, tests and bench call this).

Order matters for safety: everything that can be checked without touching a
device (selection, rendered files, drivers, the lock) is checked first, and
any problem there stops the run before the first SSH connection.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from controller.apply.audit import RunFolder, new_run_id, who
from controller.apply.engine import ApplyOptions, apply_fleet, targets_for
from controller.apply.lock import default_lock_dir, device_locks
from controller.apply.result import DeviceResult, FleetResult
from controller.apply.sdwan import EXPORT, controller_device, controller_plan
from controller.apply.secrets import redact
from controller.apply.selection import Shard, select, shard
from controller.apply.sources import Rendered, read_rendered
from controller.model import Device, SdwanController
from controller.plan import DevicePlan
from controller.render import render_plan


def render_all(plans: Iterable[DevicePlan]) -> dict[str, tuple[str, Mapping[str, str]]]:
    """Render every plan now (what ``qoectl plan`` would write)."""
    return {p.device: (p.platform, render_plan(p)) for p in plans}


def rendered_from(plans: Iterable[DevicePlan], out: Path | None) -> Rendered:
    return read_rendered(out) if out is not None else render_all(plans)


def selected(devices: Sequence[Device], limit: Sequence[str], part: Shard | None) -> list[Device]:
    return shard(select(devices, limit), part)


def run(
    devices: Sequence[Device],
    rendered: Rendered,
    options: ApplyOptions,
    *,
    limit: Sequence[str] = (),
    part: Shard | None = None,
    run_dir: Path | None = None,
    lock_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[DeviceResult], None] | None = None,
    argv: Sequence[str] = (),
    controllers: Sequence[SdwanController] = (),
) -> FleetResult:
    """Select, lock, apply, and write ``result.json``; raises UsageError/LockedError before any SSH.

    A run with Cisco SD-WAN edges also applies the merged centralized policy to the inventory's controllers
    in CLI mode, after the edges (:mod:`controller.apply.sdwan`), or writes it for SD-WAN Manager; a
    controller named in ``limit`` is applied on its own too.
    """
    named = {c.name for c in controllers}
    chosen = (
        selected([*devices, *(controller_device(c) for c in controllers)], limit, part)
        if limit
        else selected(devices, limit, part)
    )
    targets = targets_for([d for d in chosen if d.name not in named], rendered)
    sdwan = controller_plan(controllers, rendered, chosen)
    controller_files = {d.name: (d.platform, files) for d, files in sdwan.devices}
    targets += [
        dataclasses.replace(t, after=sdwan.edges) for t in targets_for([d for d, _ in sdwan.devices], controller_files)
    ]
    run_id = new_run_id()
    folder = RunFolder(run_dir or Path("qoectl-runs") / run_id, run_id)
    try:
        folder.event(
            "run_start",
            who=who(),
            argv=[redact(a) for a in argv],
            limit=list(limit),
            shard=str(part) if part else None,
            selected=[d.name for d in chosen],
            dry_run=options.dry_run,
            known_hosts=str(options.host_keys.known_hosts),
            accept_new_host_keys=options.host_keys.accept_new,
        )
        if sdwan.export is not None:
            folder.write(EXPORT, sdwan.export)
        if on_start:
            on_start(len(targets))
        if options.dry_run:
            # Read-only: no lock, so a plan can be shown while another apply runs.
            result = apply_fleet(targets, options, folder, environ=environ, on_result=on_result)
        else:
            with device_locks(lock_dir or default_lock_dir(), [t.device for t in targets], str(folder.root)):
                result = apply_fleet(targets, options, folder, environ=environ, on_result=on_result)
        result = dataclasses.replace(result, notes=sdwan.notes)
        folder.write("result.json", json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        return result
    except Exception as exc:
        folder.event("run_aborted", error=redact(str(exc)))
        raise
    finally:
        folder.close()
