"""The apply engine: per device read -> diff -> back up -> push -> verify -> confirm, or roll back.

Why the engine and not the drivers own the sequence: the guarantees the
issue asks for ("nothing half-done", "nothing sent when already right", "the
result says what state the device was left in") must hold the same way on
every platform. Drivers only know their platform's commands.

Per device:

1. connect (host key verified) and snapshot the running state; save the backup
2. compute the intended state; no difference -> ``unchanged``, nothing sent;
   ``--dry-run`` -> ``would_change`` with the diff, nothing sent
3. push; read back; the read-back must equal the intended state; confirm
4. any failure in 3 -> roll back (reconnecting if the session was lost), read
   back again, and report ``rolled_back`` only if the device equals its backup

Fleet: devices run on a thread pool (``workers`` SSH sessions at once).
``canary`` devices go first and all must succeed before the rest start.
``on_failure="stop"`` lets sessions in flight finish but starts no new device;
those are reported ``skipped``. One device's failure never touches another.
A dry run has no canaries and never stops early: it reports every device (its
diff, or why it could not be read), whatever ``on_failure`` says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from controller.apply.audit import RunFolder
from controller.apply.connection import HostKeyPolicy, Session, Timeouts, classify, connect
from controller.apply.credentials import SshCredentials, resolve
from controller.apply.drivers import Driver, DriverContext, Snapshot, driver_for, unsupported
from controller.apply.drivers.base import unified
from controller.apply.errors import ApplyError, UsageError
from controller.apply.result import DeviceResult, ErrorKind, FleetResult, LeftIn, Status
from controller.apply.secrets import redact
from controller.model import Device

OnFailure = Literal["stop", "continue"]
RECONNECT_DELAY_MAX_S = 5.0  # pause between reconnects to roll back grows by reconnect_delay_s, up to this


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    host_keys: HostKeyPolicy
    dry_run: bool = False
    workers: int = 4
    canary: int = 0
    on_failure: OnFailure = "stop"
    timeouts: Timeouts = field(default_factory=Timeouts)
    confirm_s: int = 120
    reconnect_attempts: int = 3
    reconnect_delay_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Target:
    device: Device
    files: Mapping[str, str]
    driver: type[Driver]
    # Devices that must have succeeded first (a Cisco SD-WAN controller waits for its edges): run after all
    # others, skipped if any of them did not end changed/unchanged/would_change.
    after: tuple[str, ...] = ()


def targets_for(devices: Sequence[Device], rendered: Mapping[str, tuple[str, Mapping[str, str]]]) -> list[Target]:
    """Pair each selected device with its rendered files and driver; every problem reported at once."""
    problems: list[str] = []
    out: list[Target] = []
    for d in devices:
        driver = driver_for(d.platform)
        entry = rendered.get(d.name)
        if driver is None:
            why = unsupported(d.platform)
            reason = f": {why}" if why else ""
            problems.append(
                f"{d.name}: no apply driver for platform '{d.platform}'{reason} (use --limit to leave it out)"
            )
        elif entry is None:
            problems.append(f"{d.name}: no rendered config (re-run qoectl plan, or drop --out)")
        elif entry[0] and entry[0] != d.platform:
            problems.append(f"{d.name}: rendered for '{entry[0]}' but the inventory says '{d.platform}'")
        else:
            out.append(Target(d, dict(entry[1]), driver))
    if problems:
        raise UsageError("\n".join(problems))
    return out


@dataclass
class _Fleet:
    """Shared state of one fleet run: the stop flag and why."""

    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def halt(self, reason: str) -> None:
        with self.lock:
            if not self.stop.is_set():
                self.reason = reason
                self.stop.set()


def apply_fleet(
    targets: Sequence[Target],
    opts: ApplyOptions,
    run: RunFolder,
    *,
    environ: Mapping[str, str] | None = None,
    on_result: Callable[[DeviceResult], None] | None = None,
) -> FleetResult:
    """Apply every target; returns one result per target (``skipped`` for those never started)."""
    ordered = sorted(targets, key=lambda t: t.device.name)
    fleet = _Fleet()
    later = [t for t in ordered if t.after]
    first = [t for t in ordered if not t.after]
    canary = [] if opts.dry_run else first[: opts.canary]
    rest = first[len(canary) :]
    results: list[DeviceResult] = []
    run.event(
        "plan",
        devices=[t.device.name for t in ordered],
        canary=[t.device.name for t in canary],
        dry_run=opts.dry_run,
        workers=opts.workers,
        on_failure=opts.on_failure,
    )

    def one(t: Target, is_canary: bool) -> DeviceResult:
        if fleet.stop.is_set():
            r = _skipped(t, fleet.reason, is_canary)
            _record(run, r)
        else:
            r = apply_device(t, opts, run, environ=environ, canary=is_canary)
            # A dry run sends nothing, so one device's failure puts no other at risk: it reports every device.
            if not r.ok and not opts.dry_run and (is_canary or opts.on_failure == "stop"):
                label = "canary" if is_canary else "device"
                fleet.halt(f"{label} {r.device} {r.status.replace('_', ' ')}")
        if on_result:
            on_result(r)
        return r

    def waiting(t: Target) -> DeviceResult:
        done = {r.device: r for r in results}
        failed = [n for n in t.after if n in done and not done[n].ok]
        if failed:
            r = _skipped(t, f"{', '.join(failed)} did not succeed", False)
            _record(run, r)
            if on_result:
                on_result(r)
            return r
        return one(t, False)

    for batch, is_canary in ((canary, True), (rest, False)):
        if not batch:
            continue
        if fleet.stop.is_set():
            for t in batch:
                results.append(one(t, is_canary))
            continue
        with ThreadPoolExecutor(max_workers=max(1, min(opts.workers, len(batch)))) as pool:
            results += list(pool.map(lambda t, c=is_canary: one(t, c), batch))
    results += [waiting(t) for t in later]
    stopped = f"stopped: {fleet.reason}" if fleet.stop.is_set() else ""
    fleet_result = FleetResult.of(
        results, run_dir=str(run.root), run_id=run.run_id, dry_run=opts.dry_run, stopped=stopped
    )
    run.event("run_end", ok=fleet_result.ok, counts=fleet_result.counts, stopped=stopped)
    return fleet_result


def _record(run: RunFolder, r: DeviceResult) -> None:
    data = r.to_json()
    data.pop("device")
    run.event("device_result", r.device, **data)


def _skipped(t: Target, reason: str, canary: bool) -> DeviceResult:
    return DeviceResult(
        device=t.device.name,
        platform=t.device.platform,
        host=f"{t.device.host}:{t.device.port}",
        status="skipped",
        left_in="original",
        error=f"not started ({reason})",
        error_kind="not_started",
        canary=canary,
    )


class _Device:
    """One device's run; a class only to keep the steps small and share their context."""

    def __init__(
        self, t: Target, opts: ApplyOptions, run: RunFolder, environ: Mapping[str, str] | None, canary: bool
    ) -> None:
        self.t = t
        self.d = t.device
        self.opts = opts
        self.run = run
        self.environ = environ
        self.canary = canary
        self.where = f"{self.d.name} ({self.d.host}:{self.d.port})"
        self.start = time.monotonic()
        self.creds: SshCredentials | None = None
        self.backup = ""

    def result(
        self,
        status: Status,
        left_in: LeftIn,
        *,
        diff: str = "",
        commands: Sequence[str] = (),
        error: str = "",
        kind: ErrorKind | None = None,
        rollback: str = "",
    ) -> DeviceResult:
        r = DeviceResult(
            device=self.d.name,
            platform=self.d.platform,
            host=f"{self.d.host}:{self.d.port}",
            status=status,
            left_in=left_in,
            diff=redact(diff),
            commands=tuple(redact(c) for c in commands),
            error=redact(error),
            error_kind=kind,
            rollback=redact(rollback),
            backup=self.backup,
            duration_s=time.monotonic() - self.start,
            canary=self.canary,
        )
        _record(self.run, r)
        return r

    def connect(self) -> Session:
        assert self.creds is not None
        s = connect(
            device_type=self.t.driver.device_type,
            host=self.d.host,
            port=self.d.port,
            credentials=self.creds,
            host_keys=self.opts.host_keys,
            timeouts=self.opts.timeouts,
            where=self.where,
        )
        self.run.event("connected", self.d.name)
        return s

    def execute(self) -> DeviceResult:
        self.run.event("device_start", self.d.name, platform=self.d.platform, host=self.d.host, port=self.d.port)
        ctx = DriverContext(run_id=self.run.run_id, timeouts=self.opts.timeouts, confirm_s=self.opts.confirm_s)
        try:
            self.creds = resolve(self.d, self.environ)
            driver = self.t.driver(self.d, self.t.files, ctx)
        except ApplyError as exc:
            return self.result("failed", "original", error=exc.message, kind=exc.kind)
        session: Session | None = None
        try:
            session = self.connect()
            before = driver.snapshot(session)
            self.backup = str(self.run.write_files(f"backups/{self.d.name}", before.backup))
            want = driver.intended(session, before)
            diff = unified(self.d.name, before.state, want)
            self.run.event("diff", self.d.name, changed=bool(diff))
            if not diff:
                return self.result("unchanged", "intended")
            self.run.write(f"diffs/{self.d.name}.diff", diff)
            if self.opts.dry_run:
                return self.result("would_change", "original", diff=diff)
            self.run.write_files(f"intended/{self.d.name}", self.t.files)
            session, r = self.change(driver, session, before, want, diff)
            return r
        except Exception as exc:  # before anything was sent: the device is untouched
            err = classify(exc, self.where)
            return self.result("failed", "original", error=err.message, kind=err.kind)
        finally:
            if session is not None:
                try:
                    if session.alive():
                        driver.cleanup(session)
                except Exception:  # noqa: S110 - temp files on the device must not change the result
                    pass
                session.close()

    def change(
        self, driver: Driver, session: Session, before: Snapshot, want: str, diff: str
    ) -> tuple[Session | None, DeviceResult]:
        sent: tuple[str, ...] = ()
        try:
            sent = driver.push(session, before)
            self.run.event("pushed", self.d.name, commands=list(sent))
            after = driver.snapshot(session)
            if after.state != want:
                self.run.write(f"diffs/{self.d.name}.verify.diff", unified(self.d.name, want, after.state))
                raise ApplyError(
                    "verify",
                    f"{self.where}: read-back differs from the intended state (diffs/{self.d.name}.verify.diff)",
                    sent=sent,
                )
            driver.confirm(session, before)
            self.run.event("confirmed", self.d.name)
            return session, self.result("changed", "intended", diff=diff, commands=sent)
        except Exception as exc:
            err = classify(exc, self.where)
            sent = err.sent or sent
            self.run.event("push_failed", self.d.name, kind=err.kind, error=err.message, sent=list(sent))
            if err.kind == "precondition" and not sent:
                return session, self.result("failed", "original", diff=diff, error=err.message, kind=err.kind)
            current, status, left, how = self.roll_back(driver, session, before)
            return current, self.result(
                status, left, diff=diff, commands=sent, error=err.message, kind=err.kind, rollback=how
            )

    def roll_back(
        self, driver: Driver, session: Session | None, before: Snapshot
    ) -> tuple[Session | None, Status, LeftIn, str]:
        """Return the device to ``before``; reconnect if needed. Rolled back only if verified.

        While the device may still restore itself (a watchdog started by the push), reconnecting goes on
        until that deadline has passed, so that its restore is verified too, not just hoped for.
        """
        last = ""
        s = session
        deadline = driver.fallback_deadline()
        attempt = 0
        while attempt < self.opts.reconnect_attempts or (deadline is not None and time.monotonic() < deadline):
            attempt += 1
            if s is None or not s.alive():
                if s is not None:
                    s.close()
                    s = None
                try:
                    s = self.connect()
                except ApplyError as exc:
                    last = exc.message
                    time.sleep(min(self.opts.reconnect_delay_s * attempt, RECONNECT_DELAY_MAX_S))
                    continue
            try:
                how = driver.rollback(s, before)
                after = driver.snapshot(s)
            except Exception as exc:
                err = classify(exc, self.where)
                last = err.message
                if err.kind in ("session_lost", "timeout"):
                    s.close()
                    s = None
                    continue
                break
            self.run.event("rolled_back", self.d.name, how=how, verified=driver.same(before, after))
            if driver.same(before, after):
                return s, "rolled_back", "original", how
            self.run.write(f"diffs/{self.d.name}.rollback.diff", unified(self.d.name, before.state, after.state))
            return s, "failed", "unknown", f"{how}, but the device still differs from its backup"
        note = driver.fallback_note()
        how = f"rollback failed: {last}" + (f"; {note}" if note else "")
        self.run.event("rollback_failed", self.d.name, error=how)
        return s, "failed", "unknown", how


def apply_device(
    t: Target,
    opts: ApplyOptions,
    run: RunFolder,
    *,
    environ: Mapping[str, str] | None = None,
    canary: bool = False,
) -> DeviceResult:
    """Apply one device and return its result; never raises for a device problem."""
    return _Device(t, opts, run, environ, canary).execute()


def run_folder(path: Path | None, run_id: str) -> RunFolder:
    return RunFolder(path or Path("qoectl-runs") / run_id, run_id)
