"""Policy files parsed by an earlier plan, reused when their text is the same (the incremental plan).

Each file's documents are kept as JSON under the SHA-256 of ``salt`` (qoectl's
version and code) and the file's text, so an entry can only ever be the parse
of exactly that text by exactly this qoectl: it is never stale, only unused.
The YAML positions are not kept: they are worked out again from the text,
by the same parser, the first time a diagnostic needs one in that file (most
runs need none). A file that did not parse cleanly, or whose values JSON
cannot hold exactly (a YAML timestamp, say), is not kept and is parsed every
time; an entry that cannot be read is parsed again too. What is read is the
same :class:`~controller.load.yamlsrc.YamlDocument` list that
:func:`~controller.load.loader.read_documents` returns.
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
from controller.load.loader import MIN_PARALLEL_BYTES, display_path, policy_files, read_files, read_text
from controller.load.yamlsrc import FilePositions, LazyPositions, YamlDocument, load_documents
from controller.load.yamlsrc import Path as DataPath
from controller.parallel import ordered_map

Positions = dict[DataPath, tuple[int, int]]


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

    def read_files(self, root: Path, jobs: int = 1) -> Iterator[tuple[list[YamlDocument], list[Diagnostic]]]:
        """:func:`~controller.load.loader.read_files`, parsing only files not in the cache.

        A cached file's documents are made from its JSON when its turn comes, and
        each file's text is let go once its documents are out, so that only a few
        files' values are in memory at a time.
        """
        if not root.exists():
            yield from read_files(root, jobs)  # its error
            return
        files: list[tuple[str, str, str, str | None] | list[Diagnostic] | None] = []  # (key, name, text, JSON)
        for path in policy_files(root):
            text, problems = read_text(path)
            if text is None:
                files.append(problems)
            else:
                key = self.key(text)
                files.append((key, display_path(path), text, self._cached(key)))
        todo = [(f[1], f[2]) for f in files if isinstance(f, tuple) and f[3] is None]
        workers = jobs if sum(len(t) for _, t in todo) >= MIN_PARALLEL_BYTES else 1
        parsed_all = iter(ordered_map(_parse, todo, workers))
        documents: list[YamlDocument] = []
        taken = 0  # files of todo parsed so far
        for at in range(len(files)):
            entry, files[at] = files[at], None
            assert entry is not None
            if isinstance(entry, list):
                yield [], entry
                continue
            key, name, text, raw = entry
            docs = None if raw is None else self._documents(raw, text, name)
            if raw is not None and docs is not None:
                self.kept[key] = self.digests[key]
                self.reused += 1
                result: tuple[list[YamlDocument], list[Diagnostic]] = (docs, [])
            else:
                if raw is None:
                    result, todo[taken] = next(parsed_all), ("", "")
                    taken += 1
                else:
                    result = _parse((name, text))
                self.parsed += 1
                fresh = self._json(result[0]) if self.keeping and not result[1] else None
                if fresh is not None:
                    data = fresh.encode()
                    self.fresh[key] = (hashlib.sha256(data).hexdigest(), zlib.compress(data, 1))
            documents += [_policy_wide(d) for d in result[0]]
            yield result
        self.documents = documents

    def read_documents(self, root: Path, jobs: int = 1) -> tuple[list[YamlDocument], list[Diagnostic]]:
        """:func:`~controller.load.loader.read_documents`, parsing only files not in the cache (:meth:`read_files`)."""
        docs: list[YamlDocument] = []
        problems: list[Diagnostic] = []
        for file_docs, file_problems in self.read_files(root, jobs):
            docs += file_docs
            problems += file_problems
        return docs, problems

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


def _parse(item: tuple[str, str]) -> tuple[list[YamlDocument], list[Diagnostic]]:
    name, text = item
    return load_documents(text, name)
