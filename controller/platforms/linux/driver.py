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
(the saved table, and a tc batch that rebuilds the saved qdiscs/classes),
*proves* the tc part in a throwaway namespace (it must print the saved tc state
again, line for line), and starts an on-device **watchdog** (``setsid``) that
runs it unless qoectl confirms within ``confirm_s`` seconds. Whoever acts first
claims the change by ``mkdir claim`` (atomic; ``claim/owner`` says who), so the
watchdog and qoectl never both restore. Each push step first leaves a marker
(``touched.nft``, ``touched.tc``) on the router, and a restore only puts back
the parts with a marker: a session lost before ``nft -f`` ran changes nothing.
On a rejected line qoectl restores at once; if the session drops, qoectl
reconnects and restores, and if it cannot, the watchdog does (and removes its
work folder). Router state qoectl cannot rebuild exactly (tc filters, qdisc
kinds it does not know, a restore set that does not reproduce the saved state)
stops the apply before anything is sent.

Why the restore set does not simply replay ``burst``/``cburst`` as tc printed
them: the kernel keeps an HTB burst as a transmit *time* (ticks), and tc turns
the bytes it is given into whole microseconds and the ticks it prints back into
whole microseconds and bytes, truncating each time, so ``burst 1599b`` given
back prints ``1598b``. :func:`burst_bytes` redoes tc's arithmetic (with the
router's ``/proc/net/psched``) and picks the byte count that prints the saved
value again.

Config travels as a gzip'd tar in base64 chunks (short lines, no PTY
surprises), is unpacked into a private ``mktemp -d`` folder and checked with
``sha256sum`` before use. The shell must be root (nft/tc/unshare need it): log in as
root, or as a user with ``credentials.become: sudo`` (``sudo -s`` right after login).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import re
import shlex
import tarfile
import time
from collections.abc import Mapping
from itertools import pairwise

from controller import linux_routing as owned
from controller.apply.connection import Session
from controller.apply.drivers.base import Driver, DriverContext, Snapshot, ensure_newline
from controller.apply.errors import ApplyError
from controller.apply.result import ErrorKind
from controller.model import Device
from controller.platforms.linux import routing

RC = "__QOECTL_RC="
CHUNK = 384  # base64 characters per upload line: well under netmiko's 511-column terminal
# nft/tc/shell errors: tc and nft print these and carry on unless told to stop.
ERROR_RE = re.compile(
    r"^(Error:|RTNETLINK answers|Command failed|.*: syntax error|.*command not found|"
    r"Could not process rule|We have an error talking to the kernel|Cannot find device)",
    re.MULTILINE,
)
TOOLS = ("nft", "tc", "ip", "unshare", "setsid", "base64", "tar", "gzip", "sha256sum", "mktemp", "awk")
ROUTING_FILES = {"4": "routing.batch", "6": "routing6.batch"}  # SD-WAN edges only (ip -4/-6 -batch)
DEFAULT_HANDLE = "0:"
RESTORABLE_QDISCS = frozenset({"htb", "pfifo", "bfifo", "fq_codel"})


TIME_UNITS_PER_SEC = 1_000_000  # tc's time unit: microseconds
# tc's tick_in_usec on today's kernels (/proc/net/psched "000003e8 00000040 000f4240 3b9aca00": 1000/64).
DEFAULT_TICK_IN_USEC = 15.625
BURST_SEARCH = 2048  # bytes either side of a printed burst searched for one that prints the same again


class Unsupported(Exception):
    """Router tc state that qoectl cannot rebuild exactly, so it must not replace it."""


def tick_in_usec(psched: str) -> float:
    """tc's ``tick_in_usec`` (``tc_core_init``) from the text of the router's ``/proc/net/psched``."""
    try:
        t2us, us2t, clock_res = (int(w, 16) for w in psched.split()[:3])
    except ValueError:
        return DEFAULT_TICK_IN_USEC
    if us2t == 0:
        return DEFAULT_TICK_IN_USEC
    if clock_res == 1_000_000_000:  # tc's compatibility hack: the advertised multiplier of 1000 really is 1
        t2us = us2t
    clock_factor = clock_res / TIME_UNITS_PER_SEC
    return t2us / us2t * clock_factor


def _xmittime(rate: int, size: int, tick: float) -> int:
    """tc's ``tc_calc_xmittime``: bytes at ``rate`` bytes/s -> ticks (whole microseconds first, truncated)."""
    usec = int(TIME_UNITS_PER_SEC * (size / rate))
    return int(usec * tick)


def _xmitsize(rate: int, ticks: int, tick: float) -> int:
    """tc's ``tc_calc_xmitsize``: ticks -> whole microseconds -> bytes at ``rate`` (each step truncated)."""
    usec = int(ticks / tick)
    return int(float(rate) * usec / TIME_UNITS_PER_SEC)


def sprint_size(size: int) -> str:
    """tc's ``sprint_size``: how ``tc`` prints a byte count (``1599b``, ``2Kb`` within 16 bytes, ``1Mb``)."""
    kilo, mega = 1024, 1024 * 1024
    if size >= mega and abs(mega * round(size / mega) - size) < 1024:
        return f"{round(size / mega):g}Mb"
    if size >= kilo and abs(kilo * round(size / kilo) - size) < 16:
        return f"{round(size / kilo):g}Kb"
    return f"{size}b"


def _size_bytes(text: str) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(b|Kb|Mb|Gb)?", text)
    if not m:
        return None
    scale = {"b": 1, None: 1, "Kb": 1024, "Mb": 1024**2, "Gb": 1024**3}[m.group(2)]
    return int(float(m.group(1)) * scale)


def rate_bytes(text: str) -> int | None:
    """Bytes per second for a rate as ``tc`` prints it (``1800Kbit`` -> 225000), the way ``tc`` parses it."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)bit", text)
    if not m:
        return None
    bits = float(m.group(1)) * 1000 ** "_KMGT".index(m.group(2) or "_")
    return int(bits / 8)


def burst_bytes(printed: str, rate: int, tick: float) -> int:
    """The ``burst`` (bytes) to give ``tc`` so that, at ``rate`` bytes/s, it prints ``printed`` again.

    tc converts the bytes to kernel ticks and the ticks back to bytes, truncating at each step, so the
    printed value itself usually comes back smaller. Candidates: byte counts near the printed one (tc
    prints ``2Kb`` for 2033..2063 bytes, ``1Mb`` within 1023), and at high rates, where one microsecond
    spans many bytes, the first byte counts of nearby microseconds. Raises :class:`Unsupported` when
    none prints the same (a burst set by another tool, in ticks tc cannot express in bytes).
    """
    nominal = _size_bytes(printed)
    if nominal is None or rate <= 0:
        raise Unsupported(f"a burst tc printed as {printed}")
    per_usec = rate / TIME_UNITS_PER_SEC
    candidates = set(range(max(1, nominal - BURST_SEARCH), nominal + BURST_SEARCH + 1))
    first_usec = int(nominal / per_usec)
    for usec in range(max(0, first_usec - 16), first_usec + 17):
        size = math.ceil(usec * per_usec)
        candidates.update(c for c in (size - 1, size, size + 1) if c > 0)
    for size in sorted(candidates, key=lambda c: (abs(c - nominal), c)):
        ticks = _xmittime(rate, size, tick)
        if ticks < 2**32 and sprint_size(_xmitsize(rate, ticks, tick)) == printed:
            return size
    raise Unsupported(f"a burst of {printed} at {rate * 8}bit/s that tc cannot set again exactly")


def state_parts(ifaces: tuple[str, ...]) -> list[str]:
    """Shell lines printing everything qoectl owns, in sections: the nft table and tc of ``ifaces``, then its ip
    rules and routes per family. Sent one by one on the live router (a terminal wraps a long line)."""
    devs = " ".join(shlex.quote(i) for i in ifaces)
    return [
        "echo '### nft table inet qoectl'; nft list table inet qoectl 2>/dev/null || echo '(absent)'; "
        f'for d in {devs}; do echo "### tc qdisc $d"; tc -d qdisc show dev "$d"; '
        'echo "### tc class $d"; tc -d class show dev "$d"; '
        'echo "### tc filter $d"; tc filter show dev "$d"; done',
        *routing.state_parts(),
    ]


def state_script(ifaces: tuple[str, ...]) -> str:
    """All of :func:`state_parts` in one shell line (the throwaway namespace's state.sh, tests)."""
    return "; ".join(state_parts(ifaces))


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
        elif head.startswith("### ip route"):
            out += sorted(routing.normalize_route(line) for line in lines)
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


def _class_cmd(dev: str, parent: str, words: list[str], tick: float) -> str:
    """``class replace`` for one ``tc -d class show`` HTB line (words after 'class'), printing the same again."""
    classid = words[1]
    seen: dict[str, str] = {}
    for key, value in pairwise(words):
        seen.setdefault(key, value)  # the first mpu is the rate's; HTB sets one mpu for rate and ceil
    if "rate" not in seen:
        raise Unsupported(f"class {classid} on {dev} without a rate")
    ceil = seen.get("ceil", seen["rate"])
    opts = [word for key in ("prio", "quantum") if key in seen for word in (key, seen[key])]
    opts += ["rate", seen["rate"], "ceil", ceil]
    for key, rate_text in (("burst", seen["rate"]), ("cburst", ceil)):
        if key in seen:
            rate = rate_bytes(rate_text)
            if rate is None:
                raise Unsupported(f"class {classid} on {dev} with a rate tc printed as {rate_text}")
            try:
                opts += [key, str(burst_bytes(seen[key].split("/")[0], rate, tick))]
            except Unsupported as exc:
                raise Unsupported(f"class {classid} on {dev} with {exc}") from None
    if seen.get("overhead", "0") not in ("0", "0b"):
        opts += ["overhead", seen["overhead"].removesuffix("b")]
    mpu = _size_bytes(seen.get("mpu", "0b"))
    if mpu is None:
        raise Unsupported(f"class {classid} on {dev} with mpu {seen['mpu']}")
    if mpu:
        opts += ["mpu", str(mpu)]
    if seen.get("linklayer", "ethernet") != "ethernet":
        opts += ["linklayer", seen["linklayer"]]
    return " ".join(["class", "replace", "dev", dev, "parent", parent, "classid", classid, "htb", *opts])


def tc_restore_batch(state: str, ifaces: tuple[str, ...], tick: float = DEFAULT_TICK_IN_USEC) -> str:
    """A ``tc -batch`` that rebuilds the qdiscs and classes of ``ifaces`` as recorded in ``state``.

    ``tick`` is the router's :func:`tick_in_usec` (HTB bursts are kept as times, see :func:`burst_bytes`).
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
            lines.append(_class_cmd(dev, parent, c, tick))
        for q in qdiscs:
            if q is not root:
                lines.append(_qdisc_cmd(dev, q))
    return "\n".join(lines) + "\n"


def _part(state: str, prefix: str) -> list[tuple[str, list[str]]]:
    """The sections of a normalized state whose head starts with ``prefix`` (``nft``, ``tc ``), in order."""
    return [(head, lines) for head, lines in _sections(state).items() if head.startswith(prefix)]


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


def _throwaway_script(ifaces: tuple[str, ...], purpose: str, run: str) -> str:
    """A script that runs ``run`` in a throwaway network namespace with stand-ins for ``ifaces``.

    ``unshare -n`` gives a namespace that disappears when the script ends; each WAN interface gets a
    veth stand-in with its MTU and queue length. ``$D`` in ``run`` is the script's folder.
    """
    setup = ['setup="ip link set lo up &&"']  # as on the router: an onlink route needs lo up
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
            f"# qoectl: {purpose}, built in a throwaway network namespace",
            "# (unshare -n) that disappears when this script ends. The live router is not touched.",
            'D=$(cd "$(dirname "$0")" && pwd)',
            *setup,
            f'exec unshare -n sh -c "$setup {run}"',
            "",
        ]
    )


def _intended_script(ifaces: tuple[str, ...], families: tuple[str, ...]) -> str:
    ip = "".join(f" && ip -{f} -batch $D/{ROUTING_FILES[f]}" for f in families)
    return _throwaway_script(
        ifaces,
        "the state the rendered files produce",
        f"nft -f $D/nftables.nft && tc -batch $D/tc.batch{ip} && sh $D/state.sh",
    )


def _restore_check_script(ifaces: tuple[str, ...]) -> str:
    return _throwaway_script(
        ifaces,
        "the tc, ip rule and route state the restore set rebuilds",
        "tc -force -batch $D/restore.tc; sh $D/restore-ip.sh; sh $D/state.sh",
    )


def tc_view(state: str) -> list[str]:
    """The tc part of a normalized state a restore must reproduce: qdisc and class lines per interface.

    Left out: qdiscs with handle ``0:`` (the kernel's default root and its children, which depend on the
    device, not on qoectl: a restore puts them back by deleting the root) and ingress/clsact qdiscs
    (``ffff:fff1``, never touched).
    """
    out: list[str] = []
    for head, lines in _sections(state).items():
        if head.startswith("tc class "):
            out += [head, *lines]
        elif head.startswith("tc qdisc "):
            keep = [line for line in lines if len(line.split()) > 2 and line.split()[2] != DEFAULT_HANDLE]
            out += [head, *(line for line in keep if "ffff:fff1" not in line.split())]
    return out


# Markers: each push step first writes its marker on the router (in the same shell line), so a restore
# (by qoectl or by the watchdog) only puts back the parts the push may have changed.
TOUCHED_NFT = "touched.nft"
TOUCHED_TC = "touched.tc"
TOUCHED_IP = "touched.ip"

RESTORE_SH = f"""#!/bin/sh
# qoectl: put back what the change touched (its ip rules and tables, table inet qoectl, the WAN qdiscs), as
# saved before it. {TOUCHED_IP} / {TOUCHED_NFT} / {TOUCHED_TC} are written right before ip -batch / nft -f /
# tc -batch run: no marker, nothing to undo.
D=$(cd "$(dirname "$0")" && pwd)
rc=0
if [ -e "$D/{TOUCHED_IP}" ]; then sh "$D/restore-ip.sh" && echo "qoectl-restored ip" || rc=1; fi
if [ -e "$D/{TOUCHED_NFT}" ]; then nft -f "$D/restore.nft" && echo "qoectl-restored nft" || rc=1; fi
if [ -e "$D/{TOUCHED_TC}" ]; then tc -force -batch "$D/restore.tc" && echo "qoectl-restored tc" || rc=1; fi
exit $rc
"""

WATCHDOG_SH = """#!/bin/sh
# qoectl: restore what the change touched unless qoectl confirms (mkdir claim) within $1 seconds.
# Ends within a second once the change is confirmed (claim made) or its folder is removed; after a
# restore it removes its folder, which is how qoectl, reconnecting later, knows the restore is done.
D=$(cd "$(dirname "$0")" && pwd)
i=0
while [ "$i" -lt "$1" ]; do
    if [ -d "$D/claim" ] || [ ! -d "$D" ]; then exit 0; fi
    sleep 1
    i=$((i + 1))
done
if mkdir "$D/claim" 2>/dev/null; then
    echo watchdog > "$D/claim/owner"
    sh "$D/restore.sh" > /dev/null 2>&1
    cd / && rm -rf "$D"
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
        # WAN interfaces: those tc.batch shapes and those the routing files route over.
        routed = [self.files[n] for n in ROUTING_FILES.values() if n in self.files]
        devs = [d for text in (self.files["tc.batch"], *routed) for d in re.findall(r"\bdev\s+(\S+)", text)]
        self.ifaces = tuple(dict.fromkeys(devs))
        self.families = tuple(f for f, n in ROUTING_FILES.items() if n in self.files)
        for f in self.families:
            bad = routing.outside(self.files[ROUTING_FILES[f]])
            if bad is not None:
                raise ApplyError(
                    "precondition",
                    f"{device.name}: {ROUTING_FILES[f]} goes beyond what qoectl owns (rule priorities "
                    f"{owned.RULE_FIRST}-{owned.RULE_LAST}, tables {owned.TABLE_FIRST}-{owned.TABLE_LAST}, "
                    f"mark bits {owned.MARK_MASK:#x}): {bad!r}",
                )
        self.workdir: str | None = None
        self._want: str | None = None  # the intended state (read by intended(), diffed by push())
        self._restore_uploaded = False
        self._psched: str | None = None  # the router's /proc/net/psched (read by the preflight)
        self._watchdog_at: float | None = None  # time.monotonic() when the watchdog was started

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
        raw = "\n".join(self._sh(s, part)[1] for part in state_parts(self.ifaces))
        if "Cannot find device" in raw:
            missing = [i for i in self.ifaces if f'Cannot find device "{i}"' in raw]
            raise ApplyError("precondition", f"{s.where}: WAN interface(s) not on the router: {', '.join(missing)}")
        _, ruleset = self._sh(s, "nft list ruleset")
        state = normalize_state(raw)
        return Snapshot(backup={"qoectl-state.txt": state, "ruleset.nft": ensure_newline(ruleset)}, state=state)

    def _preflight(self, s: Session) -> None:
        checks = " ".join(TOOLS)
        _, out = self._sh(
            s,
            f"id -u; for t in {checks}; do command -v $t >/dev/null || echo missing-tool $t; done; "
            "echo psched $(cat /proc/net/psched 2>/dev/null)",
        )
        lines = out.split()
        if not lines or lines[0] != "0":
            raise ApplyError(
                "precondition",
                f"{s.where}: the SSH login must be root (nft, tc and unshare need it), or set credentials.become: sudo",
            )
        tools = [lines[i + 1] for i, w in enumerate(lines[:-1]) if w == "missing-tool"]
        if tools:
            raise ApplyError("precondition", f"{s.where}: missing on the router: {', '.join(tools)}")
        m = re.search(r"^psched (.*)$", out, re.MULTILINE)
        self._psched = m.group(1) if m else ""

    def intended(self, s: Session, before: Snapshot) -> str:
        self._preflight(s)
        self._upload(
            s,
            {
                "nftables.nft": self.files["nftables.nft"],
                "tc.batch": self.files["tc.batch"],
                **{ROUTING_FILES[f]: self.files[ROUTING_FILES[f]] for f in self.families},
                "state.sh": "#!/bin/sh\n" + state_script(self.ifaces) + "\n",
                "intended.sh": _intended_script(self.ifaces, self.families),
            },
        )
        rc, raw = self._sh(s, f"sh {self.workdir}/intended.sh")
        if rc != 0 or "### nft table inet qoectl" not in raw:
            raise ApplyError(
                "precondition",
                f"{s.where}: the rendered config does not load on this router: {_first_error(raw)}",
            )
        self._want = normalize_state(raw)
        return self._want

    def _no_rollback(self, s: Session, why: str) -> ApplyError:
        return ApplyError("precondition", f"{s.where}: cannot guarantee a rollback, so nothing was sent: {why}")

    def push(self, s: Session, before: Snapshot) -> tuple[str, ...]:
        want = self._want
        if want is None:  # the engine always asks intended() first; without it there is nothing to diff against
            raise ApplyError("precondition", f"{s.where}: the intended state was not read, so nothing was sent")
        if self._psched is None:
            self._preflight(s)
        try:
            restore_tc = tc_restore_batch(before.state, self.ifaces, tick_in_usec(self._psched or ""))
        except Unsupported as exc:
            raise self._no_rollback(s, f"the router has {exc}") from None
        d = self._dir(s)
        self._upload(
            s,
            {
                "restore.nft": nft_restore(before.state),
                "restore.tc": restore_tc,
                "restore-ip.sh": routing.restore_script(),
                **{f"restore{f}.ip": text for f, text in routing.restore_batches(before.state).items()},
                "restore.sh": RESTORE_SH,
                "watchdog.sh": WATCHDOG_SH,
                "state.sh": "#!/bin/sh\n" + state_script(self.ifaces) + "\n",
                # Stand-ins for the WAN interfaces and for any other the saved routes go through.
                "restore-check.sh": _restore_check_script(
                    tuple(dict.fromkeys((*self.ifaces, *routing.devices(before.state))))
                ),
            },
        )
        self._restore_uploaded = True
        # Prove the rollback before changing anything: in a throwaway namespace the restore set must
        # print the saved tc state, ip rules and routes again, line for line.
        _, raw = self._sh(s, f"sh {d}/restore-check.sh")
        if "### tc" not in raw:
            raise self._no_rollback(s, f"checking the restore set failed: {_first_error(raw)}")
        rebuilt_state = normalize_state(raw)
        for what, view in (("tc state", tc_view), ("ip rules and routes", routing.view)):
            rebuilt, saved = view(rebuilt_state), view(before.state)
            if rebuilt != saved:
                first = next((b for a, b in zip(rebuilt, saved, strict=False) if a != b), "(a missing line)")
                raise self._no_rollback(s, f"the saved {what} does not rebuild exactly (at: {first})")
        sent: list[str] = []
        self._watchdog_at = time.monotonic()
        self._must(s, f"setsid -f sh {d}/watchdog.sh {int(self.ctx.confirm_s)} </dev/null >/dev/null 2>&1", "watchdog")
        sent.append(f"watchdog: restore what the push touched unless confirmed within {self.ctx.confirm_s}s")
        # Only the parts that differ, routing first: a journey's new rules exist before nftables gives its
        # packets a new mark. A part left alone keeps its state (rule handles, HTB counters and queues): moving
        # a journey to another transport changes its ip rules and nothing else.
        ip_batches = routing.push_batches(before.state, want)
        if ip_batches:
            self._upload(s, {f"push{f}.ip": text for f, text in ip_batches.items()})
        run_ip = " && ".join(f"ip -{f} -batch {d}/push{f}.ip" for f in ip_batches)
        steps: list[tuple[str, str]] = []
        if run_ip:
            steps.append((f"touch {d}/{TOUCHED_IP} && {run_ip}", "ip -batch: the rules and routes that differ"))
        if _part(before.state, "nft") != _part(want, "nft"):
            steps.append((f"touch {d}/{TOUCHED_NFT} && nft -f {d}/nftables.nft", "nft -f nftables.nft"))
        if _part(before.state, "tc ") != _part(want, "tc "):
            steps.append((f"touch {d}/{TOUCHED_TC} && tc -batch {d}/tc.batch", "tc -batch tc.batch"))
        for cmd, what in steps:
            sent.append(what)
            try:
                self._must(s, cmd, what)
            except ApplyError as exc:
                raise ApplyError(exc.kind, exc.message, sent=tuple(sent)) from None
        return tuple(sent)

    def confirm(self, s: Session, before: Snapshot) -> None:
        w = self.workdir
        rc, _ = self._sh(s, f"mkdir {w}/claim && echo qoectl > {w}/claim/owner")
        if rc != 0:
            raise ApplyError(
                "verify",
                f"{s.where}: the on-router watchdog restored the backup before qoectl could confirm "
                "(raise --confirm-timeout)",
            )

    def rollback(self, s: Session, before: Snapshot) -> str:
        if self.workdir is None or not self._restore_uploaded:
            # The push stops before nft/tc until the restore set is on the router: nothing was changed.
            return "nothing to restore: the push had not changed the router"
        d = self.workdir
        where = (
            f"if [ ! -d {d} ]; then echo qoectl-claim gone; "
            f"else echo qoectl-claim held-by-$(cat {d}/claim/owner 2>/dev/null); fi"
        )
        _, out = self._sh(
            s,
            f"if [ -d {d} ] && mkdir {d}/claim 2>/dev/null; then echo qoectl > {d}/claim/owner; fi; {where}",
        )
        state = re.findall(r"qoectl-claim (\S+)", out)
        if state[-1:] not in (["held-by-qoectl"], ["gone"]):
            # The watchdog claimed it first: wait (bounded) until it has restored and removed its folder.
            _, out = self._sh(
                s,
                f'i=0; while [ -d {d} ] && [ "$(cat {d}/claim/owner 2>/dev/null)" != qoectl ] && [ $i -lt 60 ]; '
                f"do sleep 0.5; i=$((i+1)); done; {where}",
                timeout=max(self.ctx.timeouts.command, 40),
            )
            state = re.findall(r"qoectl-claim (\S+)", out)
        if state[-1:] == ["gone"]:
            return "the on-router watchdog restored what the push had touched"
        if state[-1:] != ["held-by-qoectl"]:
            raise ApplyError("rollback", f"{s.where}: the on-router watchdog did not finish restoring")
        rc, out = self._sh(s, f"sh {d}/restore.sh")
        if rc != 0:
            raise ApplyError("rollback", f"{s.where}: restore reported an error: {_first_error(out)}")
        parts = set(re.findall(r"qoectl-restored (ip|nft|tc)", out))
        done = [
            text
            for part, text in (
                ("ip", "the saved ip rules and routes (qoectl's ranges)"),
                ("nft", "the saved nftables table (nft -f)"),
                ("tc", "the saved tc qdiscs/classes (tc -batch)"),
            )
            if part in parts
        ]
        if not done:
            return "nothing to restore: the push had not changed the router"
        return "restored " + " and ".join(done)

    def fallback_note(self) -> str:
        if self._watchdog_at is not None:
            return f"the on-router watchdog restores what the push touched {self.ctx.confirm_s}s after the push"
        return ""

    def fallback_deadline(self) -> float | None:
        if self._watchdog_at is None:
            return None
        # The watchdog counts confirm_s one-second sleeps, then restores (well under a second): allow slack.
        return self._watchdog_at + self.ctx.confirm_s * 1.1 + 10

    def cleanup(self, s: Session) -> None:
        if self.workdir is None:
            return
        w = self.workdir
        if self._watchdog_at is None:  # no watchdog was started: nothing on the router needs the folder
            self._sh(s, f"rm -rf {w}")
            return
        # Keep the folder while the watchdog may still need it (change neither confirmed nor restored by
        # qoectl); a watchdog that restored removed it itself.
        self._sh(s, f'if [ "$(cat {w}/claim/owner 2>/dev/null)" = qoectl ]; then rm -rf {w}; fi')


DRIVER = LinuxDriver
