"""Write rendered device configs into a staging folder and diff them against a baseline.

Layout: ``OUT/<device>/<file>`` plus ``OUT/.qoectl-plan.json``, the manifest
that names each device's platform and files with their SHA-256, so later stages
(apply) and CI artifacts know exactly what was produced. Which folders qoectl
may write, and how a new tree replaces the old one, is :mod:`controller.render.tree`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from controller.render import tree
from controller.render.tree import DeviceEntry, Manifest, sha256

Status = Literal["new", "changed", "unchanged", "removed"]


@dataclass(frozen=True, slots=True)
class DiffRef:
    """Where a diff's text was spooled: ``length`` bytes at ``offset`` of the file ``path``."""

    path: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class FileChange:
    name: str
    status: Status
    diff: str  # "" when there is none or when it was spooled (``spooled``)
    added: int
    removed: int
    spooled: DiffRef | None = None

    def diff_text(self) -> str:
        """The unified diff, read back from the spool when it was written there."""
        if self.spooled is None:
            return self.diff
        with open(self.spooled.path, "rb") as spool:
            spool.seek(self.spooled.offset)
            return spool.read(self.spooled.length).decode("utf-8")


class DiffSpool:
    """Diff text written to files in ``folder`` as it is made (one file per process), read back when printed.

    A plan of thousands of changed devices would otherwise hold every diff in
    memory, and send it from the worker that made it to the main process.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: tuple[int, BinaryIO] | None = None  # (pid, file): a forked worker opens its own

    def write(self, text: str) -> DiffRef:
        pid = os.getpid()
        if self._file is None or self._file[0] != pid:
            self._file = (pid, open(self.folder / f"{pid}.diff", "ab"))  # noqa: SIM115 - open while the run lasts
        data = text.encode("utf-8")
        spool = self._file[1]
        offset = spool.tell()
        spool.write(data)
        spool.flush()
        return DiffRef(str(self.folder / f"{pid}.diff"), offset, len(data))


@dataclass(frozen=True, slots=True)
class DeviceChange:
    device: str
    platform: str
    status: Status
    files: tuple[FileChange, ...]

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)


def line_counts(old: str, new: str) -> tuple[int, int]:
    """``(added, removed)``: the ``+`` and ``-`` lines of the unified diff from ``old`` to ``new``, without building it.

    An unchanged file costs one string comparison and a file with nothing on
    one side a line count; only a file that changes is matched line by line,
    with the same :class:`difflib.SequenceMatcher` that :func:`difflib.unified_diff`
    uses, so the numbers are the diff's.
    """
    if old == new:
        return 0, 0
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if not before or not after:
        return len(after), len(before)
    added = removed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
        if tag != "equal":
            added += j2 - j1
            removed += i2 - i1
    return added, removed


def unified(name: str, device: str, old: str, new: str) -> tuple[str, int, int]:
    """The unified diff of one file as ``qoectl plan`` prints it ("" when unchanged), and its ``+``/``-`` lines."""
    if old == new:  # what difflib would say, without matching every line of an unchanged file
        return "", 0, 0
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{device}/{name}",
            tofile=f"b/{device}/{name}",
        )
    )
    body = lines[2:]  # after the ---/+++ header: hunk headers (@@), context ( ), added (+), removed (-)
    return "".join(lines), sum(1 for line in body if line[0] == "+"), sum(1 for line in body if line[0] == "-")


def compare(
    baseline: Mapping[str, Mapping[str, str]],
    rendered: Mapping[str, tuple[str, Mapping[str, str]]],
    diff: bool = True,
) -> list[DeviceChange]:
    """Per-device changes from ``baseline`` to ``rendered`` ({device: (platform, files)})."""
    changes: list[DeviceChange] = []
    for device in sorted(set(baseline) | set(rendered)):
        platform, new = rendered.get(device, ("", {}))
        old = baseline.get(device)
        changes.append(compare_device(device, platform, old, new if device in rendered else None, diff))
    return changes


def compare_device(
    device: str,
    platform: str,
    old: Mapping[str, str] | None,
    new: Mapping[str, str] | None,
    diff: bool = True,
    spool: DiffSpool | None = None,
) -> DeviceChange:
    """One device's change; ``old`` is None when the baseline lacks the device, ``new`` when it is not rendered.

    With ``diff`` False the files' ``diff`` is "" (the line counts are still
    exact): a plan computes the text only when it prints it or puts it in JSON.
    With a ``spool`` the text is written there and the change only refers to it.
    """
    before = old if old is not None else {}
    after = new if new is not None else {}
    files = []
    for name in sorted(set(before) | set(after)):
        text_before, text_after = before.get(name, ""), after.get(name, "")
        text, added, removed = (
            unified(name, device, text_before, text_after) if diff else ("", *line_counts(text_before, text_after))
        )
        if name not in before:
            status: Status = "new"
        elif name not in after:
            status = "removed"
        else:
            status = "changed" if text_before != text_after else "unchanged"
        if spool is not None and text:
            files.append(FileChange(name, status, "", added, removed, spool.write(text)))
        else:
            files.append(FileChange(name, status, text, added, removed))
    if old is None:
        dev_status: Status = "new"
    elif new is None:
        dev_status = "removed"
    else:
        dev_status = "changed" if any(f.status != "unchanged" for f in files) else "unchanged"
    return DeviceChange(device, platform, dev_status, tuple(files))


def write_device(
    staging: Path, device: str, files: Mapping[str, str], reuse: tuple[Path, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """Write one device's files into the staging folder; return ``{file: SHA-256}`` for the manifest.

    ``reuse`` is the device's folder in the tree being replaced and its files as
    :func:`~controller.render.tree.read_owned_device` read them: a file whose text is the same there is
    hard-linked instead of written again (writing is most of the time of a
    large plan that changes little); where linking fails, it is written.
    """
    ddir = staging / device
    ddir.mkdir()
    entry = {}
    for name, text in sorted(files.items()):
        target = ddir / name
        if reuse is None or reuse[1].get(name) != text or not _linked(reuse[0] / name, target):
            target.write_text(text, encoding="utf-8")
        entry[name] = sha256(text)
    return entry


def _linked(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


Rendered = Mapping[str, tuple[str, Mapping[str, str]]]  # device -> (platform, {file: text})


def write_tree(root: Path, rendered: Rendered, policy_path: Path | None = None) -> None:
    """Replace the qoectl-owned folder ``root`` with exactly ``rendered`` (see :mod:`controller.render.tree`)."""
    _swap_in(root, rendered, policy_path, keep_other_devices=False)


def update_tree(root: Path, rendered: Rendered, policy_path: Path | None = None) -> list[Path]:
    """Replace only the given devices in the qoectl-owned folder ``root``; return the paths written.

    Every other device and file stays. Same ownership rules and atomic swap as :func:`write_tree`.
    """
    _swap_in(root, rendered, policy_path, keep_other_devices=True)
    return [root / d / name for d, (_p, files) in sorted(rendered.items()) for name in sorted(files)]


def _swap_in(root: Path, rendered: Rendered, policy_path: Path | None, keep_other_devices: bool) -> None:
    previous = tree.claim(root, policy_path)
    old = previous.devices if previous is not None else {}
    kept = {d: e for d, e in old.items() if d not in rendered} if keep_other_devices else {}
    replacing = Manifest({d: e for d, e in old.items() if d not in kept})
    staging = tree.begin(root)
    try:
        written = {d: DeviceEntry(p, write_device(staging, d, files)) for d, (p, files) in rendered.items()}
        tree.finish(root, staging, Manifest({**kept, **written}), previous, replacing)
    finally:
        tree.discard(staging)
