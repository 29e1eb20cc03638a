"""Policy files parsed by an earlier plan, reused when their text is the same (the incremental plan).

Each file's documents are kept as JSON under the SHA-256 of ``salt`` (qoectl's
version and code) and the file's text, so an entry can only ever be the parse
of exactly that text by exactly this qoectl: it is never stale, only unused.
The YAML positions are not kept: they are worked out again from the text,
by the same parser, the first time a diagnostic needs one in that file (most
runs need none). A file that did not parse cleanly, or whose values JSON
cannot hold exactly (a YAML timestamp, say), is not kept and is parsed every
time; an entry that cannot be read is parsed again too. What is read is the
same :class:`~controller.load.loader.LoadedFile` that
:func:`~controller.load.loader.load_files` yields.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

from controller.errors import Diagnostic
from controller.load.loader import (
    MIN_PARALLEL_BYTES,
    LoadedFile,
    display_path,
    load_files,
    loaded,
    policy_files,
    read_text,
)
from controller.load.yamlsrc import FilePositions, LazyPositions, YamlDocument, load_documents
from controller.load.yamlsrc import Path as DataPath
from controller.parallel import ordered_map

Positions = dict[DataPath, tuple[int, int]]
_File = tuple[str, str, str, str | None] | list[Diagnostic]  # (key, name, text, cached JSON), or why unreadable
Parsed = tuple[list[YamlDocument], list[Diagnostic]]


class ParseCache:
    """Parsed files read from ``folder`` (None: none) and the ones parsed now, to be kept by :meth:`write`.

    ``digests`` is the :meth:`index` written with the entries in ``folder``: only those are read.
    """

    def __init__(self, folder: Path | None, salt: str, digests: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.salt = salt
        self.digests = digests or {}  # key -> SHA-256 of its JSON, as written: a damaged entry is not used
        self.kept: dict[str, str] = {}  # key -> SHA-256 of its JSON: the entries read this run (after write, the new)
        # key -> (SHA-256, zlib-compressed JSON): the files parsed cleanly this run (a tenth of their JSON's memory)
        self.fresh: dict[str, tuple[str, bytes]] = {}
        self.documents: list[YamlDocument] = []  # every document of the last read, inventories without sites/devices
        self.keeping = True  # False: nothing will be written (the parsed files are not turned into JSON)
        self.reused = 0  # files taken from the cache this run
        self.parsed = 0  # files parsed this run

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.salt}\0{text}".encode()).hexdigest()

    def _cached(self, key: str) -> str | None:
        """The JSON kept for ``key`` when it is the one the index lists (its SHA-256), else None."""
        digest = self.digests.get(key)
        if self.folder is None or digest is None:
            return None
        try:
            raw = (self.folder / f"{key}.json").read_text(encoding="utf-8")
        except OSError:
            return None  # missing: parsed again
        return raw if hashlib.sha256(raw.encode()).hexdigest() == digest else None

    @staticmethod
    def _documents(raw: str, text: str, name: str) -> list[YamlDocument] | None:
        """The documents of a file from its JSON entry, or None when the entry cannot be read."""
        try:
            entries = json.loads(raw)
            positions = FilePositions(text)  # one parse for all its documents' positions
            return [YamlDocument(name, int(i), data, LazyPositions(positions, int(i))) for i, data in entries]
        except (ValueError, TypeError):
            return None  # damaged: parsed again

    @staticmethod
    def _json(docs: list[YamlDocument]) -> str | None:
        """The entry of a file, or None when JSON does not hold its values exactly (a date, NaN ...)."""
        entries = [[d.index, d.data] for d in docs]
        try:
            raw = json.dumps(entries)
        except (TypeError, ValueError):
            return None
        return raw if json.loads(raw) == entries else None

    def _entry(self, docs: list[YamlDocument]) -> tuple[str, bytes] | None:
        """A file's new entry (SHA-256, zlib-compressed JSON: a tenth of its memory), None when none is kept."""
        raw = self._json(docs) if self.keeping else None
        if raw is None:
            return None
        data = raw.encode()
        return hashlib.sha256(data).hexdigest(), zlib.compress(data, 1)

    def load_files(self, root: Path, jobs: int = 1, digests: bool = True) -> Iterator[LoadedFile]:
        """:func:`~controller.load.loader.load_files`, parsing only files not in the cache.

        A cached file's documents are made from its JSON, checked and converted
        in the workers (``jobs`` processes for a large policy), so that this
        process is not left alone with that work while they would be idle; a file
        parsed now is parsed there, with its new entry's JSON, and checked and
        converted here as it comes, as :func:`~controller.load.loader.load_files` does.
        Each file's text is let go once its documents are out, so that only a few
        files' values are in memory at a time.
        """
        if not root.exists():
            yield from load_files(root, jobs, digests)  # its error
            return
        files: list[_File] = []
        for path in policy_files(root):
            text, problems = read_text(path)
            if text is None:
                files.append(problems)
            else:
                key = self.key(text)
                files.append((key, display_path(path), text, self._cached(key)))
        size = sum(len(f[2]) for f in files if isinstance(f, tuple))
        keys = [f[0] if isinstance(f, tuple) else "" for f in files]
        documents: list[YamlDocument] = []

        def load(entry: _File) -> tuple[LoadedFile | Parsed, tuple[str, bytes] | None, bool]:
            """The file, checked and converted when cached, else as parsed; its new entry (SHA-256,
            zlib-compressed JSON); whether it was cached."""
            if isinstance(entry, list):
                return LoadedFile([], entry), None, False
            _, name, text, raw = entry
            docs = None if raw is None else self._documents(raw, text, name)
            if docs is not None:
                return loaded(docs, [], digests), None, True
            docs, problems = load_documents(text, name)
            return (docs, problems), self._entry(docs) if not problems else None, False

        for at, (file, packed, reused) in enumerate(
            ordered_map(load, files, jobs if size >= MIN_PARALLEL_BYTES else 1)
        ):
            files[at] = []  # its text let go (workers have their own copy)
            if not isinstance(file, LoadedFile):
                file = loaded(*file, digests)
            key = keys[at]
            if reused:
                self.kept[key] = self.digests[key]
                self.reused += 1
            elif key:
                self.parsed += 1
                if packed is not None:
                    self.fresh[key] = packed
            documents += [_policy_wide(doc) for doc, _, _ in file.documents]
            yield file
        self.documents = documents

    def index(self) -> dict[str, str]:
        """``{key: SHA-256 of its JSON}`` of the entries :meth:`write` kept."""
        return dict(sorted(self.kept.items()))

    def write(self, folder: Path, existing: Path | None = None) -> None:
        """Keep this run's files in ``folder``: linked from ``existing`` (the cache read) where there, else written."""
        folder.mkdir(parents=True, exist_ok=True)
        for key, (digest, packed) in sorted(self.fresh.items()):
            target = folder / f"{key}.json"
            if not target.exists():
                target.write_bytes(zlib.decompress(packed))
            self.kept[key] = digest
        fresh, self.fresh = self.fresh, {}
        for key in sorted(self.kept):
            target = folder / f"{key}.json"
            if key in fresh or target.exists():
                continue
            try:
                if existing is None:
                    raise OSError("nothing to link from")
                try:
                    os.link(existing / f"{key}.json", target)
                except OSError:
                    shutil.copyfile(existing / f"{key}.json", target)
            except OSError:
                del self.kept[key]  # not kept: parsed again next time

    def unused(self, folder: Path) -> list[Path]:
        """Entries in ``folder`` that this run did not read or parse."""
        try:
            return [p for p in folder.iterdir() if p.suffix == ".json" and p.stem not in self.kept]
        except OSError:
            return []


def _policy_wide(doc: YamlDocument) -> YamlDocument:
    """``doc``, or an Inventory without its sites and devices (the loader frees their values once converted)."""
    data = doc.data
    if isinstance(data, dict) and data.get("kind") == "Inventory" and isinstance(data.get("spec"), dict):
        spec = {k: v for k, v in data["spec"].items() if k not in ("sites", "devices")}
        return YamlDocument(doc.file, doc.index, {**data, "spec": spec}, doc.positions)
    return doc
