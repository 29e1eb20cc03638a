"""Output folders that qoectl owns: the manifest, the ownership rules and the atomic swap.

The rule (as Terraform and careful generators behave): **qoectl owns an output
folder only when it created it**, and within it only the files its manifest
lists. Every folder written by ``qoectl plan --out`` holds
``.qoectl-plan.json`` (format version, qoectl version, and every device with
its platform and the SHA-256 of each file written). Before anything is written:

* a path that is a file, a folder equal to or inside the policy path (or one
  that holds the policy path), and a non-empty folder without a manifest are
  refused with one line, and nothing is touched;
* within an owned folder, only the device files the manifest lists are
  replaced or removed; anything else found there (a note someone saved, a
  folder of their own) is carried into the new tree unchanged (hard links), and
  a rendered file that would land on such a path is refused.

The new tree is built in a staging folder beside the output and swapped in with
one ``renameat2(RENAME_EXCHANGE)`` call, so a plan killed at any point leaves
the output folder as the old tree or the new one, never a mix. Where the kernel
or file system cannot exchange, two renames are used and a run that died
between them is recovered by the next plan (the old tree is put back first).
Leftovers of killed runs (``.NAME.qoectl-*`` folders beside the output, named
after their process ID) are removed by the next plan once that process is gone.

An incremental plan (:mod:`controller.render.incremental`) changes only a few
device folders, so it does not rebuild the tree: :func:`patch` moves the new
device folders in and the old ones out through a ``.NAME.qoectl-patch-PID-*``
folder beside the output, and replaces the manifest last. A run killed before
that last rename is rolled back by the next plan (the old device folders put
back), one killed after it only leaves the patch folder to remove. The plan
cache lives in the output folder's ``.qoectl-cache`` folder, which the manifest
names (``"cache"``) when there is one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller import __version__

MANIFEST = ".qoectl-plan.json"
LEGACY_MANIFEST = "manifest.json"  # written by qoectl before 0.x output ownership; read, never written
MANIFEST_KIND = "qoectl-plan-output"
MANIFEST_VERSION = 1
CACHE_DIR = ".qoectl-cache"  # the plan cache (controller.render.incremental), when the manifest names it
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.qoectl-(?P<what>staging|old|patch)-(?P<pid>\d+)-[A-Za-z0-9_]+$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")


class OutputFolderError(Exception):
    """An output folder qoectl must not write into, or a damaged manifest: one line, exit 1, nothing touched."""


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    platform: str
    files: Mapping[str, str]  # file name -> SHA-256 of its bytes


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one plan wrote into an output folder (and so all that qoectl owns there)."""

    devices: Mapping[str, DeviceEntry]
    cache: bool = False  # the folder holds a plan cache (CACHE_DIR)

    def owned_paths(self) -> frozenset[str]:
        """Relative POSIX paths of the files the manifest lists."""
        return frozenset(f"{d}/{name}" for d, e in self.devices.items() for name in e.files)

    def to_json(self) -> str:
        doc = {
            "kind": MANIFEST_KIND,
            "version": MANIFEST_VERSION,
            "qoectl": __version__,
            **({"cache": CACHE_DIR} if self.cache else {}),
            "devices": {
                d: {"platform": e.platform, "files": dict(sorted(e.files.items()))}
                for d, e in sorted(self.devices.items())
            },
        }
        return pretty_json(doc) + "\n"


def pretty_json(value: object, indent: str = "") -> str:
    """``json.dumps(value, indent=2, sort_keys=True)`` for objects of strings, integers and booleans, about
    seven times faster (the standard library formats indented JSON in Python; a 10,000-device manifest took
    a third of a second)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        items = [f"{inner}{_string(str(k))}: {pretty_json(value[k], inner)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, str):
        return _string(value)
    return json.dumps(value)


_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for strings (ensure_ascii)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_devices(raw: object, where: Path) -> dict[str, DeviceEntry]:
    if not isinstance(raw, dict):
        raise OutputFolderError(f"{where}: 'devices' must be an object of devices (damaged manifest)")
    devices: dict[str, DeviceEntry] = {}
    for device, entry in raw.items():
        if not isinstance(device, str) or not _SAFE_NAME.match(device):
            raise OutputFolderError(f"{where}: device name {device!r} is not a plain folder name (damaged manifest)")
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            raise OutputFolderError(f"{where}: device '{device}' has no 'files' (damaged manifest)")
        files: dict[str, str] = {}
        for name, digest in entry["files"].items():
            if not isinstance(name, str) or not _SAFE_NAME.match(name) or not isinstance(digest, str):
                raise OutputFolderError(f"{where}: device '{device}': bad file entry {name!r} (damaged manifest)")
            files[name] = digest
        devices[device] = DeviceEntry(str(entry.get("platform", "")), files)
    return devices


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of ``folder``, or None when it has none (then qoectl does not own it).

    A ``manifest.json`` written by an earlier qoectl (an object of devices, each
    with ``platform`` and ``files``) counts as a manifest too, so upgrading
    does not orphan an output folder.
    """
    path = folder / MANIFEST
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise OutputFolderError(f"{path}: not valid JSON ({exc}); plan into a new folder") from None
        if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
            raise OutputFolderError(f"{path}: not a qoectl plan manifest (kind: {MANIFEST_KIND} expected)")
        if doc.get("version") != MANIFEST_VERSION:
            raise OutputFolderError(
                f"{path}: manifest version {doc.get('version')!r} is not {MANIFEST_VERSION}; "
                "this qoectl cannot read it (plan into a new folder)"
            )
        return Manifest(_parse_devices(doc.get("devices"), path), doc.get("cache") == CACHE_DIR)
    legacy = folder / LEGACY_MANIFEST
    if legacy.is_file():
        try:
            doc = json.loads(legacy.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        if isinstance(doc, dict) and all(isinstance(e, dict) and {"platform", "files"} <= set(e) for e in doc.values()):
            try:
                return Manifest(_parse_devices(doc, legacy))
            except OutputFolderError:
                return None
    return None


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def claim(out_dir: Path, policy_path: Path | None) -> Manifest | None:
    """Check that qoectl may write ``out_dir``; return its manifest (None: new or empty folder).

    Raises :class:`OutputFolderError` (nothing touched) for a file, a folder
    that overlaps the policy path, or a non-empty folder without a manifest.
    Recovers a swap that a killed plan left half done, and removes leftovers of
    killed plans, before looking.
    """
    shown = str(out_dir)
    root = out_dir.resolve()
    if policy_path is not None:
        policies = policy_path.resolve()
        if _within(root, policies):
            where = "is the policy path" if root == policies else f"is inside the policy path {policy_path}"
            raise OutputFolderError(
                f"--out {shown}: {where}; qoectl never writes into the policy repository "
                "(use a folder outside it, e.g. --out out)"
            )
        if _within(policies, root):
            raise OutputFolderError(
                f"--out {shown}: holds the policy path {policy_path}; qoectl would own and replace it "
                "(use a folder of its own, e.g. --out out)"
            )
    if root.exists() and not root.is_dir():
        raise OutputFolderError(f"--out {shown}: is a file, not a folder (give a folder for qoectl's output)")
    _recover(root)
    if not root.exists():
        return None
    manifest = read_manifest(root)
    if manifest is None and any(True for _ in root.iterdir()):
        raise OutputFolderError(
            f"--out {shown}: folder is not empty and has no {MANIFEST}, so qoectl did not create it and will "
            "not replace its files (use a new or empty folder)"
        )
    return manifest


def read_owned_device(folder: Path, device: str, manifest: Manifest | None) -> dict[str, str] | None:
    """``{file: text}`` of the files the manifest lists for ``device`` (None: not in the manifest)."""
    entry = manifest.devices.get(device) if manifest is not None else None
    if entry is None:
        return None
    files: dict[str, str] = {}
    for name in sorted(entry.files):
        path = folder / device / name
        if path.is_file():  # a listed file someone deleted reads as absent, and is written again
            files[name] = path.read_bytes().decode("utf-8", errors="replace")
    return files


# -- staging and swap ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(root: Path) -> list[tuple[Path, str, int]]:
    if not root.parent.is_dir():
        return []
    found = []
    for p in root.parent.iterdir():
        m = _LEFTOVER.match(p.name)
        if m and m["name"] == root.name and p.is_dir() and not p.is_symlink():
            found.append((p, m["what"], int(m["pid"])))
    return found


def _recover(root: Path) -> None:
    """Undo what killed plans left beside ``root``: put back an old tree whose swap was cut in half, drop the rest."""
    for path, what, pid in _leftovers(root):
        if _alive(pid):
            continue
        if what == "old" and not root.exists() and read_manifest(path) is not None:
            os.replace(path, root)  # the run died between its two renames: the old tree is the last whole one
        elif what == "patch":
            _roll_back(root, path)
        else:
            shutil.rmtree(path, ignore_errors=True)


def begin(root: Path) -> Path:
    """A new, empty staging folder beside ``root`` (same file system, so the swap is a rename)."""
    root = root.resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{root.name}.qoectl-staging-{os.getpid()}-", dir=root.parent))


def discard(staging: Path) -> None:
    """Remove a staging folder that was not swapped in (nothing happens when it was)."""
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)


def carry_over(root: Path, staging: Path, previous: Manifest | None, replacing: Manifest | None = None) -> None:
    """Hard-link into ``staging`` everything in ``root`` but the files being replaced.

    ``previous`` is ``root``'s manifest (None: a new or empty folder, nothing to
    keep); ``replacing`` the part of it the new tree replaces (default: all of
    it). Files the manifest does not list are not qoectl's: a rendered file
    that would land on one raises :class:`OutputFolderError`.
    """
    if previous is None or not root.is_dir():
        return  # a new or empty folder: nothing of anyone else's to keep
    owned = (replacing if replacing is not None else previous).owned_paths() | {MANIFEST, LEGACY_MANIFEST}
    _carry(root, root, staging, owned, previous.cache)


def _carry(root: Path, start: Path, staging: Path, owned: frozenset[str] | set[str], cache: bool) -> None:
    """Hard-link what is under ``start`` (in ``root``) and not ``owned`` into the same place in ``staging``."""
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        for name in sorted(dirnames):
            src = here / name
            if src.is_symlink():  # os.walk does not descend into links: keep the link itself
                filenames.append(name)
                dirnames.remove(name)
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            if rel in owned or (cache and rel.startswith(CACHE_DIR + "/")):
                continue
            src, dst = here / name, staging / rel_dir / name
            if dst.exists() or dst.is_symlink():
                raise OutputFolderError(
                    f"{root / rel}: was not written by qoectl, and the plan would replace it; move it out of the "
                    "output folder and plan again"
                )
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)


def _libc_renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    func = _libc_renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def finish(
    root: Path,
    staging: Path,
    manifest: Manifest,
    previous: Manifest | None,
    replacing: Manifest | None = None,
    text: str | None = None,
) -> None:
    """Write the manifest into ``staging``, keep what is not replaced (:func:`carry_over`), swap it in for ``root``.

    ``text``: ``manifest.to_json()``, when the caller has it.
    """
    root = root.resolve()
    carry_over(root, staging, previous, replacing)
    (staging / MANIFEST).write_text(manifest.to_json() if text is None else text, encoding="utf-8")
    if not root.exists():
        os.replace(staging, root)
    elif exchange(staging, root):
        shutil.rmtree(staging)  # now the old tree
    else:
        old = staging.with_name(staging.name.replace(".qoectl-staging-", ".qoectl-old-", 1))
        os.replace(root, old)
        os.replace(staging, root)
        shutil.rmtree(old)


# -- in-place patches (the incremental plan) ---------------------------------------------------

_OLD = ".old"  # inside a patch folder: what the patch moved out of the output (device names never start with '.')


def patch(
    root: Path, staging: Path, manifest: Manifest, previous: Manifest, touched: list[str], text: str | None = None
) -> None:
    """Replace only the device folders ``touched`` in ``root`` by ``staging``'s (absent there: removed), then the
    manifest and the plan cache (``staging/CACHE_DIR``, when there).

    What ``root`` holds in those folders that ``previous`` does not list is kept (hard-linked into the new
    folder; a rendered file on such a path raises :class:`OutputFolderError`, nothing touched). The
    other devices' folders are not touched at all. A run killed half way is rolled back by the next
    :func:`claim` (see :func:`_roll_back`). ``text``: ``manifest.to_json()``, when the caller has it.
    """
    root = root.resolve()
    gone = DeviceEntry("", {})
    owned = {f"{d}/{name}" for d in touched for name in previous.devices.get(d, gone).files}
    for device in touched:
        if (root / device).is_dir() and not (root / device).is_symlink():
            _carry(root, root / device, staging, owned, False)
    (staging / MANIFEST).write_text(manifest.to_json() if text is None else text, encoding="utf-8")
    moving = staging.with_name(staging.name.replace(".qoectl-staging-", ".qoectl-patch-", 1))
    os.replace(staging, moving)  # from here on, a killed run is rolled back by the next plan
    old = moving / _OLD
    old.mkdir()
    for device in touched:
        if (root / device).exists() or (root / device).is_symlink():
            os.rename(root / device, old / device)
        if (moving / device).exists():
            os.rename(moving / device, root / device)
    cache = root / CACHE_DIR
    if (moving / CACHE_DIR).is_dir():
        _move_cache(moving / CACHE_DIR, cache, old)
    elif cache.is_dir():
        os.rename(cache, old / CACHE_DIR)
    os.replace(moving / MANIFEST, root / MANIFEST)  # the commit point
    shutil.rmtree(moving)


def _move_cache(new: Path, cache: Path, old: Path) -> None:
    """The new cache's entries into ``cache`` (entries are named by their content: new names only), its index last."""
    cache.mkdir(exist_ok=True)
    for dirpath, _dirs, filenames in os.walk(new):
        here = Path(dirpath)
        target = cache / here.relative_to(new)
        target.mkdir(exist_ok=True)
        for name in filenames:
            if here == new:
                continue  # the index files: below
            if not (target / name).exists():
                os.rename(here / name, target / name)
    for index in sorted(p for p in new.iterdir() if p.is_file()):
        if (cache / index.name).exists():
            os.rename(cache / index.name, old / f"{CACHE_DIR}-{index.name}")
        os.rename(index, cache / index.name)


def _roll_back(root: Path, moving: Path) -> None:
    """Undo what a killed :func:`patch` did to ``root`` unless it reached its commit point, then drop ``moving``."""
    if (moving / MANIFEST).is_file() and root.is_dir():
        before = read_manifest(root)
        after = read_manifest(moving)
        old = moving / _OLD
        moved_out = {p.name for p in old.iterdir()} if old.is_dir() else set()
        added = set(after.devices if after else ()) - set(before.devices if before else ())
        for device in sorted(added - moved_out):
            if not (moving / device).exists() and (root / device).is_dir():
                shutil.rmtree(root / device)  # moved in by the killed run, and there was nothing before
        for name in sorted(moved_out):
            if name.startswith(CACHE_DIR):
                continue
            target = root / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # the new folder the killed run moved in
            os.rename(old / name, target)
        for index in (root / CACHE_DIR).glob("*.json") if (root / CACHE_DIR).is_dir() else ():
            index.unlink()  # the cache may describe the new tree: the next plan is a full one
    shutil.rmtree(moving, ignore_errors=True)
