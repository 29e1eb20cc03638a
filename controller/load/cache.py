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
from pathlib import Path

from controller.errors import Diagnostic
from controller.load.loader import MIN_PARALLEL_BYTES, display_path, policy_files, read_documents, read_text
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
        self.kept: dict[str, str] = {}  # key -> JSON: the entries read this run (and, after write, the new ones)
        self.fresh: dict[str, list[YamlDocument]] = {}  # key -> documents: the files parsed cleanly this run
        self.documents: list[YamlDocument] = []  # every document of the last read
        self.reused = 0  # files taken from the cache this run
        self.parsed = 0  # files parsed this run

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.salt}\0{text}".encode()).hexdigest()

    def _lookup(self, key: str, text: str, name: str) -> list[YamlDocument] | None:
        digest = self.digests.get(key)
        if self.folder is None or digest is None:
            return None
        try:
            raw = (self.folder / f"{key}.json").read_text(encoding="utf-8")
            if hashlib.sha256(raw.encode()).hexdigest() != digest:
                return None
            entries = json.loads(raw)
            positions = FilePositions(text)  # one parse for all its documents' positions
            docs = [YamlDocument(name, int(i), data, LazyPositions(positions, int(i))) for i, data in entries]
        except (OSError, ValueError, TypeError):
            return None  # missing or damaged: parsed again
        self.kept[key] = raw
        return docs

    @staticmethod
    def _json(docs: list[YamlDocument]) -> str | None:
        """The entry of a file, or None when JSON does not hold its values exactly (a date, NaN ...)."""
        entries = [[d.index, d.data] for d in docs]
        try:
            raw = json.dumps(entries)
        except (TypeError, ValueError):
            return None
        return raw if json.loads(raw) == entries else None

    def read_documents(self, root: Path, jobs: int = 1) -> tuple[list[YamlDocument], list[Diagnostic]]:
        """:func:`~controller.load.loader.read_documents`, parsing only files not in the cache."""
        if not root.exists():
            return read_documents(root, jobs)  # its error
        results: list[tuple[list[YamlDocument], list[Diagnostic]] | None] = []
        todo: list[tuple[int, str, str, str]] = []  # (position, key, display name, text)
        for path in policy_files(root):
            text, problems = read_text(path)
            if text is None:
                results.append(([], problems))
                continue
            name = display_path(path)
            key = self.key(text)
            docs = self._lookup(key, text, name)
            results.append(None if docs is None else (docs, []))
            if docs is None:
                todo.append((len(results) - 1, key, name, text))
            else:
                self.reused += 1
        workers = jobs if sum(len(t) for *_, t in todo) >= MIN_PARALLEL_BYTES else 1
        parsed_all = ordered_map(_parse, [(n, t) for *_, n, t in todo], workers)
        for (at, key, _name, _text), parsed in zip(todo, parsed_all, strict=True):
            results[at] = parsed
            if not parsed[1]:
                self.fresh[key] = parsed[0]
        self.parsed = len(todo)
        docs_out: list[YamlDocument] = []
        problems_out: list[Diagnostic] = []
        for result in results:
            assert result is not None
            docs_out.extend(result[0])
            problems_out.extend(result[1])
        self.documents = docs_out
        return docs_out, problems_out

    def index(self) -> dict[str, str]:
        """``{key: SHA-256 of its JSON}`` of the entries :meth:`write` kept."""
        return {key: hashlib.sha256(raw.encode()).hexdigest() for key, raw in sorted(self.kept.items())}

    def write(self, folder: Path, existing: Path | None = None) -> None:
        """Keep this run's files in ``folder``: linked from ``existing`` (the cache read) where there, else written."""
        folder.mkdir(parents=True, exist_ok=True)
        for key, docs in self.fresh.items():
            raw = self._json(docs)
            if raw is not None:
                self.kept[key] = raw
        self.fresh = {}
        for key, raw in sorted(self.kept.items()):
            target = folder / f"{key}.json"
            if target.exists():
                continue
            if existing is not None:
                try:
                    os.link(existing / f"{key}.json", target)
                    continue
                except OSError:
                    pass
            target.write_text(raw, encoding="utf-8")

    def unused(self, folder: Path) -> list[Path]:
        """Entries in ``folder`` that this run did not read or parse."""
        try:
            return [p for p in folder.iterdir() if p.suffix == ".json" and p.stem not in self.kept]
        except OSError:
            return []


def _parse(item: tuple[str, str]) -> tuple[list[YamlDocument], list[Diagnostic]]:
    name, text = item
    return load_documents(text, name)
