"""Linux routers: nftables table ``inet qoectl`` and tc HTB trees, over an SSH root shell (netmiko ``linux``).

How qoectl knows a router's QoS state (the "diff" question)
-----------------------------------------------------------
The running state is what the kernel reports: ``nft list table inet qoectl``
and ``tc -d qdisc/class/filter show`` of every WAN interface in ``tc.batch``
(tc lines sorted, packet counters dropped). The *intended* state is what the
same kernel reports after applying the rendered files in a **throwaway network
namespace on the router itself** (``unshare -n`` with veth stand-ins that copy
each WAN interface's MTU and queue length), which vanishes when the command
ends. Both sides are printed by the same kernel and the same nft/tc, so they
are directly comparable: no fingerprint file to go stale, and any drift (a rule
edited by hand, a qdisc deleted) shows up in the diff. A router already in the
intended state gets nothing sent.

How a change stays atomic
-------------------------
``nft -f`` replaces the table in one kernel transaction; ``tc -batch`` is *not*
transactional (it stops at the first error, leaving a half-built tree). So
before anything is sent qoectl uploads a restore set built from the snapshot
(the saved table, and a tc batch that rebuilds the saved qdiscs/classes) and
starts an on-device **watchdog** (``setsid``) that runs it unless qoectl
confirms within ``confirm_s`` seconds. Whoever acts first claims the change by
``mkdir claim`` (atomic), so the watchdog and qoectl never both restore. On a
rejected line qoectl restores at once; if the session drops, qoectl reconnects
and restores, and if it cannot, the watchdog does. Router state qoectl cannot
rebuild exactly (tc filters, qdisc kinds it does not know) stops the apply
before anything is sent.

Config travels as a gzip'd tar in base64 chunks (short lines, no PTY
surprises), is unpacked into a private ``mktemp -d`` folder and checked with
``sha256sum`` before use. The shell must be root (nft/tc/unshare need it): log in as
root, or as a user with ``credentials.become: sudo`` (``sudo -s`` right after login).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shlex
import tarfile
from collections.abc import Mapping

from controller.apply.connection import Session
from controller.apply.drivers.base import Driver, DriverContext, Snapshot, ensure_newline
from controller.apply.errors import ApplyError
from controller.apply.result import ErrorKind
from controller.model import Device

RC = "__QOECTL_RC="
CHUNK = 384  # base64 characters per upload line: well under netmiko's 511-column terminal
# nft/tc/shell errors: tc and nft print these and carry on unless told to stop.
ERROR_RE = re.compile(
    r"^(Error:|RTNETLINK answers|Command failed|.*: syntax error|.*command not found|"
    r"Could not process rule|We have an error talking to the kernel|Cannot find device)",
    re.MULTILINE,
)
TOOLS = ("nft", "tc", "ip", "unshare", "setsid", "base64", "tar", "gzip", "sha256sum", "mktemp")
DEFAULT_HANDLE = "0:"
RESTORABLE_QDISCS = frozenset({"htb", "pfifo", "bfifo", "fq_codel"})


class Unsupported(Exception):
    """Router tc state that qoectl cannot rebuild exactly, so it must not replace it."""


def state_script(ifaces: tuple[str, ...]) -> str:
    """One shell line printing everything qoectl owns, in sections (used live and in the throwaway netns)."""
    devs = " ".join(shlex.quote(i) for i in ifaces)
    return (
        "echo '### nft table inet qoectl'; nft list table inet qoectl 2>/dev/null || echo '(absent)'; "
        f'for d in {devs}; do echo "### tc qdisc $d"; tc -d qdisc show dev "$d"; '
        'echo "### tc class $d"; tc -d class show dev "$d"; '
        'echo "### tc filter $d"; tc filter show dev "$d"; done'
    )


def _drop_counters(line: str) -> str:
    words = line.split()
    out: list[str] = []
    skip = False
    for w in words:
        if skip:
            skip = False
        elif w in ("refcnt", "direct_packets_stat"):
            skip = True
        else:
            out.append(w)
    return " ".join(out)


def normalize_state(raw: str) -> str:
    """Canonical text of a state dump: tc lines without counters and sorted (tc lists them in hash order)."""
    sections: list[tuple[str, list[str]]] = []
    for line in raw.replace("\r", "").splitlines():
        if line.startswith("### "):
            sections.append((line, []))
        elif sections and line.strip():
            sections[-1][1].append(line.rstrip())
    out: list[str] = []
    for head, lines in sections:
        out.append(head)
        if head.startswith("### tc"):
            out += sorted(_drop_counters(line) for line in lines)
        else:
            out += lines
    return "\n".join(out) + "\n"


def _sections(state: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in state.splitlines():
        if line.startswith("### "):
            current = found.setdefault(line[4:], [])
        elif current is not None:
            current.append(line)
    return found


def _opts(words: list[str], keep: dict[str, str | None]) -> list[str]:
    """Pick ``key value`` pairs (value rewritten by ``keep[key]`` rules) from tc's show output."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in keep and i + 1 < len(words):
            value = words[i + 1]
            rule = keep[w]
            if rule == "strip_p":
                value = value.removesuffix("p")
            elif rule == "hex":
                value = value.removeprefix("0x")
            elif rule == "burst":
                value = value.split("/")[0]
            out += [w, value]
            i += 2
        else:
            i += 1
    return out


def _qdisc_cmd(dev: str, words: list[str]) -> str:
    """``qdisc replace`` for one ``tc -d qdisc show`` line (words after 'qdisc')."""
    kind, handle = words[0], words[1]
    if kind not in RESTORABLE_QDISCS:
        raise Unsupported(f"qdisc {kind} {handle} on {dev}")
    where = "root" if words[2] == "root" else f"parent {words[3]}"
    rest = words[3:] if words[2] == "root" else words[4:]
    if kind == "htb":
        opts = _opts(rest, {"r2q": None, "default": "hex", "direct_qlen": None})
    elif kind == "pfifo":
        opts = _opts(rest, {"limit": "strip_p"})
    elif kind == "bfifo":
        opts = _opts(rest, {"limit": None})
    else:  # fq_codel: its show output is its own option syntax, but for units and flags
        opts = _opts(
            rest,
            {
                "limit": "strip_p",
                "flows": None,
                "quantum": None,
                "target": None,
                "interval": None,
                "memory_limit": None,
                "drop_batch": None,
            },
        )
        opts += ["ecn"] if "ecn" in rest else ["noecn"]
    return " ".join(["qdisc", "replace", "dev", dev, where, "handle", handle, kind, *opts])


def tc_restore_batch(state: str, ifaces: tuple[str, ...]) -> str:
    """A ``tc -batch`` that rebuilds the qdiscs and classes of ``ifaces`` as recorded in ``state``.

    Raises :class:`Unsupported` for anything it cannot rebuild exactly.
    """
    sections = _sections(state)
    lines: list[str] = []
    for dev in ifaces:
        # ingress/clsact hang off ffff:fff1 and are left alone by the root replacement: not ours to rebuild.
        qdiscs = [
            line.split()[1:]
            for line in sections.get(f"tc qdisc {dev}", [])
            if line.startswith("qdisc ") and "ffff:fff1" not in line.split()
        ]
        classes = [line.split()[1:] for line in sections.get(f"tc class {dev}", []) if line.startswith("class ")]
        filters = [line for line in sections.get(f"tc filter {dev}", []) if line.strip()]
        odd = [line for line in sections.get(f"tc qdisc {dev}", []) if not line.startswith("qdisc ")]
        if odd:
            raise Unsupported(f"cannot read the qdiscs of {dev}: {odd[0]}")
        if filters:
            raise Unsupported(f"tc filters on {dev}")
        root = next((q for q in qdiscs if len(q) > 2 and q[2] == "root"), None)
        # Start from a clean slate whatever the device has by then, the way tc.batch does: two throw-away
        # roots of different kinds (the second always replaces), handles left to the kernel.
        lines.append(f"qdisc replace dev {dev} root pfifo limit 1000")
        lines.append(f"qdisc replace dev {dev} root bfifo limit 1514000")
        if root is None or root[1] == DEFAULT_HANDLE:
            if any(q[1] != DEFAULT_HANDLE for q in qdiscs):
                raise Unsupported(f"non-default child qdiscs under the default root qdisc of {dev}")
            lines.append(f"qdisc del dev {dev} root")  # the kernel re-attaches its default
            continue
        lines.append(_qdisc_cmd(dev, root))
        for c in sorted(classes, key=lambda w: (-_level(w), w[1])):
            if c[0] != "htb":
                raise Unsupported(f"class {c[0]} {c[1]} on {dev}")
            parent = root[1] if c[2] == "root" else c[3]
            opts = _opts(
                c[2:],
                {"prio": None, "quantum": None, "rate": None, "ceil": None, "burst": "burst", "cburst": "burst"},
            )
            lines.append(" ".join(["class", "replace", "dev", dev, "parent", parent, "classid", c[1], "htb", *opts]))
        for q in qdiscs:
            if q is not root:
                lines.append(_qdisc_cmd(dev, q))
    return "\n".join(lines) + "\n"


def _level(words: list[str]) -> int:
    if "level" in words:
        try:
            return int(words[words.index("level") + 1])
        except (ValueError, IndexError):
            return 0
    return 0


def nft_restore(state: str) -> str:
    """An ``nft -f`` file that puts table ``inet qoectl`` back as recorded (or removes it)."""
    body = _sections(state).get("nft table inet qoectl", [])
    head = "table inet qoectl\ndelete table inet qoectl\n"
    if not body or body[0].strip() == "(absent)":
        return head
    return head + "\n".join(body) + "\n"


def _intended_script(ifaces: tuple[str, ...]) -> str:
    setup = []
    for i, dev in enumerate(ifaces):
        q = shlex.quote(dev)
        setup.append(
            f"mtu=$(cat /sys/class/net/{q}/mtu); txq=$(cat /sys/class/net/{q}/tx_queue_len); "
            f'setup="$setup ip link add {q} mtu $mtu txqueuelen $txq type veth peer name qoectlp{i} && '
            f'ip link set {q} up &&"'
        )
    return "\n".join(
        [
            "#!/bin/sh",
            "# qoectl: the state the rendered files produce, built in a throwaway network namespace",
            "# (unshare -n) that disappears when this script ends. The live router is not touched.",
            'D=$(cd "$(dirname "$0")" && pwd)',
            'setup=""',
            *setup,
            'exec unshare -n sh -c "$setup nft -f $D/nftables.nft && tc -batch $D/tc.batch && sh $D/state.sh"',
            "",
        ]
    )


RESTORE_SH = """#!/bin/sh
# qoectl: put back the QoS state saved before the change (table inet qoectl and the WAN qdiscs).
D=$(cd "$(dirname "$0")" && pwd)
rc=0
nft -f "$D/restore.nft" || rc=1
tc -force -batch "$D/restore.tc" || rc=1
exit $rc
"""

WATCHDOG_SH = """#!/bin/sh
# qoectl: restore the saved state unless qoectl confirms (mkdir claim) within $1 seconds.
D=$(cd "$(dirname "$0")" && pwd)
i=0
while [ "$i" -lt "$1" ]; do
    [ -d "$D/claim" ] && exit 0
    sleep 1
    i=$((i + 1))
done
if mkdir "$D/claim" 2>/dev/null; then
    sh "$D/restore.sh" > "$D/watchdog.log" 2>&1
    touch "$D/rolled-back"
fi
"""


def _bundle(files: Mapping[str, str]) -> bytes:
    """A deterministic tar.gz of ``files`` (fixed mtime/owner, sorted)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT, compresslevel=9) as tar:
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _first_error(text: str) -> str:
    m = ERROR_RE.search(text)
    if m:
        return text[m.start() :].splitlines()[0].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class LinuxDriver(Driver):
    platform = "linux"
    device_type = "linux"

    def __init__(self, device: Device, files: Mapping[str, str], ctx: DriverContext) -> None:
        super().__init__(device, files, ctx)
        missing = [n for n in ("nftables.nft", "tc.batch") if n not in self.files]
        if missing:
            raise ApplyError("precondition", f"{device.name}: rendered files missing: {', '.join(missing)}")
        self.ifaces = tuple(dict.fromkeys(re.findall(r"\bdev\s+(\S+)", self.files["tc.batch"])))
        self.workdir: str | None = None
        self._restore_uploaded = False

    # -- shell plumbing -------------------------------------------------------------------------
    def _sh(self, s: Session, script: str, *, timeout: float | None = None) -> tuple[int, str]:
        out = s.send(f"{{ {script} ; }} 2>&1; printf '\\n{RC}%d\\n' $?", timeout=timeout)
        marks = list(re.finditer(rf"{RC}(\d+)", out))
        if not marks:
            raise ApplyError("session_lost", f"{s.where}: no exit status from the router shell")
        last = marks[-1]
        return int(last.group(1)), out[: last.start()].strip("\r\n")

    def _must(self, s: Session, script: str, what: str, kind: ErrorKind = "rejected") -> str:
        rc, out = self._sh(s, script)
        if rc != 0 or ERROR_RE.search(out):
            raise ApplyError(kind, f"{s.where}: {what} failed: {_first_error(out)}")
        return out

    def _dir(self, s: Session) -> str:
        if self.workdir is None:
            rc, out = self._sh(s, "umask 077; mktemp -d /tmp/qoectl.XXXXXXXX")
            path = out.strip().splitlines()[-1].strip() if out.strip() else ""
            made_by_mktemp = r"/tmp/qoectl\.[A-Za-z0-9]+"  # noqa: S108 - a folder on the router, not here
            if rc != 0 or not re.fullmatch(made_by_mktemp, path):
                raise ApplyError("precondition", f"{s.where}: cannot create a work folder: {_first_error(out)}")
            self.workdir = path
        return self.workdir

    def _upload(self, s: Session, files: Mapping[str, str]) -> None:
        d = self._dir(s)
        payload = base64.b64encode(_bundle(files)).decode()
        for i in range(0, len(payload), CHUNK):
            op = ">" if i == 0 else ">>"
            self._must(s, f"printf '%s' '{payload[i : i + CHUNK]}' {op} {d}/bundle.b64", "upload", "session_lost")
        names = " ".join(shlex.quote(n) for n in sorted(files))
        out = self._must(s, f"cd {d} && base64 -d bundle.b64 | tar xzf - && sha256sum {names}; cd /", "unpack")
        got: dict[str, str] = {}
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 2 and re.fullmatch(r"[0-9a-f]{64}", words[0]):
                got[words[1]] = words[0]
        for name, text in files.items():
            if got.get(name) != hashlib.sha256(text.encode()).hexdigest():
                raise ApplyError("precondition", f"{s.where}: upload of {name} arrived damaged")

    # -- the driver interface -------------------------------------------------------------------
    def snapshot(self, s: Session) -> Snapshot:
        _, raw = self._sh(s, state_script(self.ifaces))
        if "Cannot find device" in raw:
            missing = [i for i in self.ifaces if f'Cannot find device "{i}"' in raw]
            raise ApplyError("precondition", f"{s.where}: WAN interface(s) not on the router: {', '.join(missing)}")
        _, ruleset = self._sh(s, "nft list ruleset")
        state = normalize_state(raw)
        return Snapshot(backup={"qoectl-state.txt": state, "ruleset.nft": ensure_newline(ruleset)}, state=state)

    def _preflight(self, s: Session) -> None:
        checks = " ".join(TOOLS)
        _, out = self._sh(s, f"id -u; for t in {checks}; do command -v $t >/dev/null || echo missing-tool $t; done")
        lines = out.split()
        if not lines or lines[0] != "0":
            raise ApplyError(
                "precondition",
                f"{s.where}: the SSH login must be root (nft, tc and unshare need it), or set credentials.become: sudo",
            )
        tools = [lines[i + 1] for i, w in enumerate(lines[:-1]) if w == "missing-tool"]
        if tools:
            raise ApplyError("precondition", f"{s.where}: missing on the router: {', '.join(tools)}")

    def intended(self, s: Session, before: Snapshot) -> str:
        self._preflight(s)
        self._upload(
            s,
            {
                "nftables.nft": self.files["nftables.nft"],
                "tc.batch": self.files["tc.batch"],
                "state.sh": "#!/bin/sh\n" + state_script(self.ifaces) + "\n",
                "intended.sh": _intended_script(self.ifaces),
            },
        )
        rc, raw = self._sh(s, f"sh {self.workdir}/intended.sh")
        if rc != 0 or "### nft table inet qoectl" not in raw:
            raise ApplyError(
                "precondition",
                f"{s.where}: the rendered config does not load on this router: {_first_error(raw)}",
            )
        return normalize_state(raw)

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        try:
            restore_tc = tc_restore_batch(before.state, self.ifaces)
        except Unsupported as exc:
            raise ApplyError(
                "precondition",
                f"{s.where}: cannot guarantee a rollback, so nothing was sent: the router has {exc}",
            ) from None
        d = self._dir(s)
        self._upload(
            s,
            {
                "restore.nft": nft_restore(before.state),
                "restore.tc": restore_tc,
                "restore.sh": RESTORE_SH,
                "watchdog.sh": WATCHDOG_SH,
            },
        )
        self._restore_uploaded = True
        sent: list[str] = []
        self._must(s, f"setsid -f sh {d}/watchdog.sh {int(self.ctx.confirm_s)} </dev/null >/dev/null 2>&1", "watchdog")
        sent.append(f"watchdog: restore the backup unless confirmed within {self.ctx.confirm_s}s")
        steps = (
            (f"nft -f {d}/nftables.nft", "nft -f nftables.nft"),
            (f"tc -batch {d}/tc.batch", "tc -batch tc.batch"),
        )
        for cmd, what in steps:
            sent.append(what)
            try:
                self._must(s, cmd, what)
            except ApplyError as exc:
                raise ApplyError(exc.kind, exc.message, sent=tuple(sent)) from None
        return tuple(sent)

    def confirm(self, s: Session, before: Snapshot) -> None:
        rc, _ = self._sh(s, f"mkdir {self.workdir}/claim")
        if rc != 0:
            raise ApplyError(
                "verify",
                f"{s.where}: the on-router watchdog restored the backup before qoectl could confirm "
                "(raise --confirm-timeout)",
            )

    def rollback(self, s: Session, before: Snapshot) -> str:
        d = self._dir(s)
        if not self._restore_uploaded:
            self._upload(
                s,
                {
                    "restore.nft": nft_restore(before.state),
                    "restore.tc": tc_restore_batch(before.state, self.ifaces),
                    "restore.sh": RESTORE_SH,
                },
            )
            self._restore_uploaded = True
        rc, out = self._sh(s, f"mkdir {d}/claim 2>/dev/null && echo claimed")
        if "claimed" in out.split():
            rc, out = self._sh(s, f"sh {d}/restore.sh")
            if rc != 0:
                raise ApplyError("rollback", f"{s.where}: restore reported an error: {_first_error(out)}")
            return "restored the saved nftables table and tc qdiscs/classes (nft -f, tc -batch)"
        # The watchdog claimed it first: wait (bounded) for it to finish.
        rc, out = self._sh(
            s,
            f"i=0; while [ ! -e {d}/rolled-back ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i+1)); done; "
            f"test -e {d}/rolled-back",
            timeout=max(self.ctx.timeouts.command, 40),
        )
        if rc != 0:
            raise ApplyError("rollback", f"{s.where}: the on-router watchdog did not finish restoring")
        return "the on-router watchdog restored the saved nftables table and tc qdiscs/classes"

    def fallback_note(self) -> str:
        if self._restore_uploaded:
            return f"the on-router watchdog restores the backup {self.ctx.confirm_s}s after the push"
        return ""

    def cleanup(self, s: Session) -> None:
        if self.workdir is not None:
            # Keep the folder while a watchdog may still need it (change neither confirmed nor restored).
            w = self.workdir
            self._sh(s, f"if [ -d {w}/claim ] || [ ! -e {w}/watchdog.sh ]; then rm -rf {w}; fi")


DRIVER = LinuxDriver
