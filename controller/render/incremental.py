"""The incremental plan: recompile and re-render only the devices whose inputs changed since the last plan.

A plan that keeps a cache writes ``OUT/.qoectl-cache/`` (named in the manifest):

* ``plan.json``: for every device, the *fingerprint* of everything its output
  depends on, its notes (numbers in a table of notes), and the size, mtime and
  inode of each of its files as written; plus the SHA-256 of the manifest
  written with it and the *salt*;
* ``yaml/``: the policy files parsed by that plan (:mod:`controller.load.cache`).

The next plan into the same folder reuses a device, without compiling or
rendering it, only when its fingerprint is the same, and its files are still
exactly those that plan wrote (the manifest is the one the cache was written
with, and every file has the recorded size, mtime and inode). Everything else
is compiled, rendered and compared as in a full plan, and only the device
folders that change are replaced (:func:`controller.render.tree.patch`).

A device's fingerprint is the SHA-256 of: the salt (qoectl's version; the
name, size and modification time of every file of its code and templates and
of every platform plugin's package; the versions of Python, Jinja2, pydantic
and PyYAML); every policy-wide input
(every document but the journeys, with the inventories' sites and devices
left out: settings, service classes, adjustments, transports, SD-WAN
controllers ...; an edit to any of these recompiles every device); the
device's own YAML; its site's; and each journey that reaches it after scope
resolution, as the compile context groups them, with the journey's budget.
A device whose compile gave any diagnostic is not kept (the run keeps no cache
then), so a reused device has none to report. A missing, damaged or foreign
cache is ignored: the plan is a full one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller import __version__
from controller.compile.compiler import CompileContext
from controller.errors import Diagnostic, errors_only
from controller.load.cache import ParseCache
from controller.load.yamlsrc import YamlDocument
from controller.model import Device, Origin
from controller.render import get_renderer, platforms, tree
from controller.render.base import templates_root
from controller.render.outputs import DeviceChange, FileChange
from controller.render.tree import CACHE_DIR, MANIFEST, Manifest

INDEX = "plan.json"
YAML = "yaml"
KIND = "qoectl-plan-cache"
VERSION = 1
# Without --cache/--no-cache, fleets of at least this many devices keep a cache (smaller ones plan in about a second).
AUTO_DEVICES = 1000

Stat = tuple[int, int, int]  # size, mtime_ns, inode
Rendered = tuple[tuple[str, ...], bool, Mapping[str, Stat] | None]  # see Session.finish


def _tree_digest(h: Any, folder: Path) -> None:
    """Every file under ``folder`` by name, size and modification time (a checkout or an install changes them)."""
    found = []
    for here, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.join(here, n) for n in names]
    for path in sorted(found):
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def code_salt() -> str:
    """What else a device's output depends on: this qoectl, its templates, its platforms, their libraries."""
    h = hashlib.sha256(f"{__version__}\0{sys.version}\0".encode())
    for package in ("jinja2", "pydantic", "PyYAML"):
        h.update(f"{package}={_version(package)}\0".encode())
    here = Path(__file__).resolve().parents[1]  # the controller package
    folders = {here, templates_root().resolve()}
    for name in platforms():
        renderer = get_renderer(name)
        module = sys.modules.get(type(renderer).__module__)
        source = getattr(module, "__file__", None)
        if source:
            folders.add(Path(source).resolve().parent)
    for folder in sorted(folders):
        if folder.is_dir() and not any(folder != f and f in folder.parents for f in folders):
            h.update(f"{folder}\0".encode())
            _tree_digest(h, folder)
    return h.hexdigest()


def _raw(origin: Origin) -> Any:
    """The YAML an object was read from (its document, at its path); for a site or a device, the SHA-256 of
    that YAML (the loader keeps only that: :func:`controller.load.loader.value_digest`)."""
    data: Any = origin.doc.data if origin.doc is not None else None
    for part in origin.path:
        data = data[part]
    return data


def _dump(data: Any) -> bytes:
    """YAML values as bytes to hash: their ``repr`` (the same text parses to the same values in the same order)."""
    return repr(data).encode()


def policy_digest(documents: Iterable[YamlDocument], salt: str) -> str:
    """Every policy-wide input: each document but the journeys; the inventories without their sites and devices."""
    h = hashlib.sha256(f"{salt}\0".encode())
    for doc in documents:
        data = doc.data
        if isinstance(data, dict) and data.get("kind") == "Journey":
            continue
        if isinstance(data, dict) and data.get("kind") == "Inventory" and isinstance(data.get("spec"), dict):
            spec = {k: v for k, v in data["spec"].items() if k not in ("sites", "devices")}
            data = {**data, "spec": spec}
        h.update(_dump(data) + b"\0")
    return h.hexdigest()


def fingerprints(context: CompileContext, devices: Iterable[Device], policy_wide: str) -> dict[str, str]:
    """``{device: fingerprint}`` (see the module's doc)."""
    groups: dict[int, bytes] = {}
    sites: dict[str, bytes] = {}
    out: dict[str, str] = {}
    for device in devices:
        group = context.group(device)
        part = groups.get(id(group))
        if part is None:
            h = hashlib.sha256()
            for facts in group.journeys:
                j = facts.journey
                h.update(_dump(_raw(j.origin)) + repr(context.budgets.get(j.name)).encode() + b"\0")
            part = groups[id(group)] = h.digest()
        site = sites.get(device.site)
        if site is None:
            found = context.policy.site(device.site)
            site = sites[device.site] = _dump(_raw(found.origin) if found is not None else None)
        h = hashlib.sha256(policy_wide.encode())
        h.update(part)
        h.update(site + b"\0")
        h.update(_dump(_raw(device.origin)))
        out[device.name] = h.hexdigest()
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One device as the cached plan left it."""

    fingerprint: str
    notes: tuple[str, ...]
    files: Mapping[str, Stat]


@dataclass
class PlanCache:
    salt: str
    manifest: str  # SHA-256 of the manifest written with it
    devices: dict[str, Any]  # device -> its entry as read (checked when used: see Session.select)
    notes: list[str]  # the notes the entries number
    yaml: dict[str, str]  # the parse cache's index
    manifest_text: str = ""  # the manifest it was written with, as it is in the folder


def _stat(path: str | Path) -> Stat | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def file_stats(folder: Path, names: Iterable[str]) -> dict[str, Stat] | None:
    """``{name: stat}`` of files just written into ``folder`` (None when one is missing), taken where they were
    written, in the worker that rendered them, instead of by the plan's own process when it keeps the cache."""
    stats = {name: _stat(folder / name) for name in names}
    return None if any(st is None for st in stats.values()) else {f: st for f, st in stats.items() if st is not None}


def read_cache(folder: Path, manifest: Manifest | None, salt: str) -> PlanCache | None:
    """The cache of ``folder`` when it is this qoectl's and was written with the manifest there now; else None."""
    if manifest is None or not manifest.cache:
        return None
    try:
        text = (folder / CACHE_DIR / INDEX).read_text(encoding="utf-8")
        doc = json.loads(text)
        if doc.get("kind") != KIND or doc.get("version") != VERSION or doc.get("salt") != salt:
            return None
        manifest_bytes = (folder / MANIFEST).read_bytes()
        written = hashlib.sha256(manifest_bytes).hexdigest()
        if doc.get("manifest") != written:
            return None
        notes = [str(n) for n in doc["notes"]]
        devices = doc["devices"]
        yaml = {str(k): str(v) for k, v in doc["yaml"].items()}
        if not isinstance(devices, dict):
            return None
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return PlanCache(salt, written, devices, notes, yaml, manifest_bytes.decode("utf-8"))


def _reusable(raw: Any, fingerprint: str, files: Iterable[str], here: str, notes: list[str]) -> Entry | None:
    """The cached entry of a device when it has ``fingerprint`` and its ``files`` are as it recorded them."""
    try:
        if raw["fingerprint"] != fingerprint or set(raw["files"]) != set(files):
            return None
        recorded = {f: tuple(s) for f, s in raw["files"].items()}
        if not all(_stat(here + f) == st for f, st in recorded.items()):
            return None
        numbers = raw["notes"]
        if not all(type(n) is int and 0 <= n < len(notes) for n in numbers):
            return None
        return Entry(fingerprint, tuple(notes[n] for n in numbers), recorded)
    except (TypeError, KeyError, IndexError, AttributeError, ValueError):
        return None  # a damaged entry: compiled again


@dataclass
class Session:
    """One ``qoectl plan`` with its cache: what it read, which devices it reuses, and what it keeps.

    ``keep``: True (``--cache``), False (``--no-cache``: neither read nor written), None (fleets of at
    least :data:`AUTO_DEVICES` devices). ``replacing``: the plan compares with the folder it writes
    (no other ``--baseline``); otherwise nothing is reused.
    """

    out_dir: Path
    manifest: Manifest | None
    keep: bool | None
    replacing: bool
    salt: str = ""
    cache: PlanCache | None = None
    parse: ParseCache = field(init=False)
    fingerprints: dict[str, str] = field(default_factory=dict)
    reused: dict[str, Entry] = field(default_factory=dict)
    writes: bool = False
    policy_wide: int = 0  # diagnostics the policy-wide checks found

    def __post_init__(self) -> None:
        if self.keep is not False:
            self.salt = code_salt()
            if self.replacing:
                self.cache = read_cache(self.out_dir, self.manifest, self.salt)
        yaml = self.out_dir / CACHE_DIR / YAML if self.cache is not None else None
        self.parse = ParseCache(yaml, self.salt, self.cache.yaml if self.cache is not None else None)
        self.parse.keeping = self.keep is not False

    def select(
        self, context: CompileContext, devices: tuple[Device, ...], diagnostics: tuple[Diagnostic, ...]
    ) -> tuple[Device, ...]:
        """The devices to compile and render (all when ``diagnostics``, the policy-wide ones, hold an error)."""
        self.policy_wide = len(diagnostics)
        self.writes = not errors_only(diagnostics) and (
            self.keep is True or (self.keep is None and len(devices) >= AUTO_DEVICES)
        )
        if not self.writes:
            return devices
        self.fingerprints = fingerprints(context, devices, policy_digest(self.parse.documents, self.salt))
        if self.cache is not None and self.manifest is not None:
            notes, cached = self.cache.notes, self.cache.devices
            for name, fp in self.fingerprints.items():
                raw, listed = cached.get(name), self.manifest.devices.get(name)
                if raw is not None and listed is not None:
                    entry = _reusable(raw, fp, listed.files, f"{self.out_dir}/{name}/", notes)
                    if entry is not None:
                        self.reused[name] = entry
            self.cache.devices = {}  # read: the reused devices' entries are in self.reused (a large fleet's index)
        return tuple(d for d in devices if d.name not in self.reused)

    def keeps(self, diagnostics: int) -> bool:
        """Whether this plan writes a cache, given how many diagnostics the run found (any device's: no cache)."""
        return self.writes and diagnostics == self.policy_wide

    def reused_devices(self) -> list[tuple[str, str, tuple[str, ...], DeviceChange, dict[str, str]]]:
        """``(device, platform, notes, change, file hashes)`` of each reused device: unchanged, as the output has it."""
        assert self.manifest is not None or not self.reused
        out = []
        for name, entry in sorted(self.reused.items()):
            listed = self.manifest.devices[name] if self.manifest is not None else None
            assert listed is not None
            files = tuple(FileChange(f, "unchanged", "", 0, 0) for f in sorted(listed.files))
            change = DeviceChange(name, listed.platform, "unchanged", files)  # what compare_device says for it
            out.append((name, listed.platform, entry.notes, change, dict(listed.files)))
        return out

    def finish(
        self,
        staging: Path,
        manifest: Manifest,
        previous: Manifest | None,
        rendered: Mapping[str, Rendered],
    ) -> None:
        """Put the plan in place: the cache (when ``manifest.cache``) into ``staging``, then ``staging`` into the
        output, as a patch of the devices that change when devices were reused, else whole.

        ``rendered``: device -> (notes, whether its files change, :func:`file_stats` in the staging folder or
        None) of the devices compiled now.
        """
        patching = bool(self.reused) and previous is not None
        removed = sorted(set(previous.devices if previous is not None else ()) - set(manifest.devices))
        touched = sorted(d for d, (_, changes, _) in rendered.items() if changes) if patching else sorted(rendered)
        text = self._manifest_text(manifest, previous)
        if manifest.cache:
            self._write(staging, manifest, text, rendered, touched)
        if patching:
            assert previous is not None
            tree.patch(self.out_dir, staging, manifest, previous, touched + removed, text)
            for stale in self.parse.unused(self.out_dir / CACHE_DIR / YAML) if manifest.cache else ():
                stale.unlink(missing_ok=True)  # files no longer in the policy, or since edited
        else:
            tree.finish(self.out_dir, staging, manifest, previous, text=text)

    def _manifest_text(self, manifest: Manifest, previous: Manifest | None) -> str:
        """``manifest.to_json()``; when it lists what the folder's manifest does, that file's text as read.

        The cache was read only if that file is the one it was written with (its SHA-256), by this
        qoectl (the salt), so the file is ``to_json()`` of the manifest it parses to, ``previous``.
        """
        cache = self.cache
        if cache is not None and cache.manifest_text and previous is self.manifest and manifest == previous:
            return cache.manifest_text
        return manifest.to_json()

    def _write(
        self,
        staging: Path,
        manifest: Manifest,
        text: str,
        rendered: Mapping[str, Rendered],
        in_staging: Iterable[str],
    ) -> None:
        landing = set(in_staging)
        folder = staging / CACHE_DIR
        self.parse.write(folder / YAML, self.out_dir / CACHE_DIR / YAML if self.cache is not None else None)
        # Each note once (a fleet's devices share a few), those of the cache read first and in its order,
        # so that a reused device's entry is written back as it was read.
        old = self.cache.notes if self.cache is not None else []
        as_read = self.cache is not None and len(set(old)) == len(old)
        note_index: dict[str, int] = {n: i for i, n in enumerate(old)} if as_read else {}

        def entries() -> Iterator[tuple[str, dict[str, Any]]]:
            for name, listed in sorted(manifest.devices.items()):
                reused = self.reused.get(name)
                if reused is not None:  # written as read (the same numbers for its notes when as_read)
                    files, notes = dict(reused.files), reused.notes
                else:
                    notes, _, written = rendered[name]
                    if name in landing and written is not None:  # taken in staging, where they still are
                        files = dict(written)
                    else:
                        where = (staging if name in landing else self.out_dir) / name
                        stats = file_stats(where, listed.files)
                        if stats is None:
                            continue  # not kept: compiled again next time
                        files = stats
                yield (
                    name,
                    {
                        "fingerprint": self.fingerprints[name],
                        "notes": [note_index.setdefault(n, len(note_index)) for n in notes],
                        "files": {f: list(st) for f, st in sorted(files.items())},
                    },
                )

        with (folder / INDEX).open("w", encoding="utf-8") as index:
            # json.dumps(doc, sort_keys=True, separators=(",", ":")) of the whole index, "devices" (its first
            # key) written a few thousand devices at a time instead of held whole.
            index.write('{"devices":{')
            batches = iter(entries())
            comma = ""
            while batch := dict(itertools.islice(batches, 4096)):
                index.write(comma + json.dumps(batch, sort_keys=True, separators=(",", ":"))[1:-1])
                comma = ","
            rest = {
                "kind": KIND,
                "version": VERSION,
                "qoectl": __version__,
                "salt": self.salt,
                "manifest": hashlib.sha256(text.encode()).hexdigest(),
                "yaml": self.parse.index(),
                "notes": list(note_index),
            }
            index.write("}," + json.dumps(rest, sort_keys=True, separators=(",", ":"))[1:])
