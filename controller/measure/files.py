"""Measurement files: CSV, JSON (an array of objects, or JSON Lines) and OpenMetrics text.

Every format carries the same fields, named the same way:

``timestamp`` (seconds since the epoch, or ISO 8601 with an offset),
``journey`` (or ``flow``), ``site`` and/or ``context``, ``metric``, ``value``,
and for video stalls ``session`` and ``position_s``.

In OpenMetrics the metric is the family name with a ``qoectl_`` prefix
(``qoectl_one_way_delay_ms``), the other fields are labels, and the
timestamp (seconds) is required; families without the prefix are skipped
with a warning, so a file dumped from an exporter can be read as it is.

Problems are reported with the file and line of the row.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice, repeat
from pathlib import Path
from typing import Any

import numpy as np

from controller.errors import Diagnostic, Location
from controller.measure import fastcsv
from controller.measure import metrics as mt
from controller.measure.prefetch import Prefetch
from controller.measure.samples import Problems, RawColumns, SampleSet, Vocabulary, from_columns

FIELDS = ("timestamp", "journey", "site", "context", "metric", "value", "session", "position_s")
ALIASES = {"flow": "journey", "ts": "timestamp", "time": "timestamp"}
REQUIRED = ("timestamp", "journey", "metric", "value")
CHUNK_ROWS = 131_072  # rows converted at a time: bounds memory for files of millions of rows


def display(path: Path) -> str:
    from controller.load.loader import display_path

    return display_path(path)


@dataclass(frozen=True)
class FileSource:
    """One measurement file; the format follows the extension (.csv, .json, .jsonl/.ndjson, .om/.prom/.txt)."""

    path: Path
    prefetched: Prefetch | None = None  # a CSV file's parse, started in a thread (controller.measure.prefetch)

    @property
    def name(self) -> str:
        return display(self.path)

    def read(self, vocab: Vocabulary, now: float) -> tuple[SampleSet, list[Diagnostic]]:
        reader = reader_for(self.path)
        problems = Problems(self.name)
        if reader is None:
            problems.add(
                Location(self.name),
                "",
                f"unknown measurement file type '{self.path.suffix}'",
                "use .csv, .json, .jsonl or OpenMetrics text (.om, .prom, .txt)",
            )
            return SampleSet.empty(), problems.diagnostics()
        try:
            if self.prefetched is not None and reader is read_csv:
                samples = read_csv(self.path, vocab, now, problems, prefetched=self.prefetched)
            else:
                samples = reader(self.path, vocab, now, problems)
        except FileNotFoundError:
            problems.add(Location(self.name), "", "no such file", "check the path given to --measurements")
            return SampleSet.empty(), problems.diagnostics()
        except (OSError, UnicodeDecodeError) as exc:
            problems.add(Location(self.name), "", f"cannot read the file: {exc}", "save it as UTF-8 text")
            return SampleSet.empty(), problems.diagnostics()
        if len(samples) == 0 and not problems.count:
            problems.add(Location(self.name), "", "the file holds no samples", "give at least one measurement row")
        return samples, problems.diagnostics()


Reader = Callable[[Path, Vocabulary, float, Problems], SampleSet]


def reader_for(path: Path) -> Reader | None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv
    if suffix == ".json":
        return read_json
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl
    if suffix in (".om", ".prom", ".txt", ".openmetrics"):
        return read_openmetrics
    return None


# --------------------------------------------------------------------------- CSV


def _header(row: list[str], file: str, problems: Problems) -> dict[str, int] | None:
    import difflib

    columns: dict[str, int] = {}
    for i, raw in enumerate(row):
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'? " if close else "") + "columns: " + ", ".join(FIELDS)
            if len(row) == 1 and (";" in raw or "\t" in raw):
                hint = "separate columns with commas"
            problems.add(Location(file, 1, 1), raw, f"unknown column '{raw}'", hint)
            return None
        if name in columns:
            problems.add(Location(file, 1, 1), raw, f"column '{name}' appears twice", "keep one")
            return None
        columns[name] = i
    missing = [c for c in REQUIRED if c not in columns]
    if "site" not in columns and "context" not in columns:
        missing.append("site (or context)")
    if missing:
        problems.add(
            Location(file, 1, 1),
            "",
            "missing column(s): " + ", ".join(missing),
            "the header needs timestamp, journey, site or context, metric, value",
        )
        return None
    return columns


class _CsvLines:
    """Line number of each data row: row + 2 while every record is one line, else from a second pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.multiline = False
        self._starts: list[int] | None = None

    def line(self, row: int) -> int:
        if not self.multiline:
            return row + 2
        if self._starts is None:
            starts: list[int] = []
            with self.path.open(newline="", encoding="utf-8", errors="replace") as fh:
                reader = csv.reader(fh)
                next(reader, None)
                last = reader.line_num
                for _ in reader:
                    starts.append(last + 1)
                    last = reader.line_num
            self._starts = starts
        return self._starts[row] if row < len(self._starts) else row + 2


def read_csv(
    path: Path,
    vocab: Vocabulary,
    now: float,
    problems: Problems,
    *,
    fast: bool = True,
    prefetched: Prefetch | None = None,
) -> SampleSet:
    """Read one CSV file by the quickest path that gives exactly the samples and problems of the csv module.

    Quoted CSV goes to the csv module. Plain CSV that is clean throughout goes to pyarrow
    (:mod:`controller.measure.fastcsv`, when installed and ``fast``); any other plain CSV is split in bulk
    here, which names each problem with its line. Both fast paths give up rather than guess.
    ``prefetched``: pyarrow's parse of this file, started earlier (:mod:`controller.measure.prefetch`).
    """
    if fast:
        samples = _read_csv_fast(path, vocab, now, prefetched)
        if samples is not None:
            return samples
        samples = read_csv_split(path, vocab, now, problems)
        if samples is not None:
            return samples
    return read_csv_module(path, vocab, now, problems)


def read_csv_split(path: Path, vocab: Vocabulary, now: float, problems: Problems) -> SampleSet | None:
    """Plain CSV (no quote character) split in bulk, with the samples and problems of :func:`read_csv_module`.

    ``None`` (nothing reported): the file is empty or quoted, or holds a carriage return that does not
    end a line (the csv module ends a record there); ask :func:`read_csv_module`. Line ends may mix LF
    and CRLF, as the csv module allows.
    """
    data = path.read_bytes()
    if not data or b'"' in data:
        return None
    crlf = b"\r" in data
    if crlf and data.count(b"\r") != data.count(b"\r\n"):
        return None
    file = display(path)
    end = data.find(b"\n")
    head = data if end < 0 else data[:end]
    # Not decoded as a whole: names are ASCII by the policy language, so a byte that is not UTF-8 can only
    # be in a field that then fails its check (unknown name, not a number) and is reported with its line.
    header_text = (head[:-1] if head.endswith(b"\r") else head).decode("utf-8", "replace")
    header = header_text.split(",") if header_text else []  # a blank line is no field, as the csv module reads it
    columns = _header(header, file, problems)
    if columns is None:
        return SampleSet.empty()
    lines = data.split(b"\n")
    del data  # the lines are a copy: keep one of them in memory, not both
    return _read_split_lines(lines, file, crlf, len(header), columns, vocab, now, problems)


def _read_csv_fast(path: Path, vocab: Vocabulary, now: float, prefetched: Prefetch | None = None) -> SampleSet | None:
    """The samples by pyarrow (:mod:`controller.measure.fastcsv`); ``None``: take the other paths.

    ``prefetched``: the file's parse, started earlier in a thread, else parsed here.
    """
    parsed = prefetched.result() if prefetched is not None else parse_fast(path)
    return None if parsed is None else fastcsv.convert(parsed[1], parsed[0], vocab, now)


def parse_fast(path: Path) -> tuple[dict[str, int], fastcsv.Parsed] | None:
    """The columns and pyarrow's parse of a plain CSV file, or ``None``: the other paths read it.

    Only a file whose header is good is tried (a header problem is reported by the path that would
    read the file otherwise), and the fast path declines any file with a quote or a problem.
    """
    with path.open("rb") as fh:
        first = fh.readline()
    head = first[:-1] if first.endswith(b"\n") else first
    crlf = head.endswith(b"\r")
    try:
        header = (head[:-1] if crlf else head).decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    # A problem with the header is the exact reader's to report: this one's are dropped (and the file's
    # display name, which would import the policy loader, is not needed).
    columns = _header(header, str(path), Problems(str(path)))
    if columns is None:
        return None
    parsed = fastcsv.parse_path(path, columns, crlf)
    return None if parsed is None else (columns, parsed)


def _read_split_lines(
    lines: list[bytes],
    file: str,
    crlf: bool,
    width: int,
    columns: dict[str, int],
    vocab: Vocabulary,
    now: float,
    problems: Problems,
) -> SampleSet:
    """Plain CSV split in bulk, chunk by chunk; a chunk with a row of the wrong width is split row by row."""
    if lines[-1] == b"":
        lines = lines[:-1]
    parts: list[SampleSet] = []
    for first in range(1, len(lines), CHUNK_ROWS):
        block = lines[first : first + CHUNK_ROWS]

        def where(i: int, first: int = first) -> Location:
            return Location(file, first + i + 1, 1)

        commas = np.fromiter(map(bytes.count, block, repeat(b",")), dtype=np.int64, count=len(block))
        if bool((commas == width - 1).all()):
            flat = b",".join(block).split(b",")
            transposed = [flat[i::width] for i in range(width)]
            if crlf:  # Windows line ends: the last field of a row may carry the '\r'
                transposed[-1] = [v[:-1] if v.endswith(b"\r") else v for v in transposed[-1]]
            parts.append(_from_transposed(transposed, columns, vocab, where, now, problems))
            continue
        kept, index = [], []
        for i, line in enumerate(block):
            fields = line.rstrip(b"\r").decode("utf-8", "replace").split(",")
            if len(fields) == width:
                kept.append(fields)
                index.append(i)
            elif line not in (b"", b"\r"):  # empty lines are skipped, as the csv module does
                problems.add(where(i), "", f"{len(fields)} fields where the header has {width}", "one value per column")

        def where_kept(k: int, index: list[int] = index, where: Callable[[int], Location] = where) -> Location:
            return where(index[k])

        parts.append(_convert(kept, columns, vocab, where_kept, now, problems))
    return SampleSet.concat(parts)


def read_csv_module(path: Path, vocab: Vocabulary, now: float, problems: Problems) -> SampleSet:
    """The exact reader (quoted fields, records over several lines): Python's csv module.

    The other readers of :func:`read_csv` are faster ways to exactly its samples and problems
    (``tests/test_measure_csv_readers.py``).
    """
    file = display(path)
    lines = _CsvLines(path)
    parts: list[SampleSet] = []
    # A byte that is not UTF-8 becomes U+FFFD: the field it is in fails its check (unknown name, not a
    # number) and is reported with its line, rather than the whole file refused.
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None:
                problems.add(Location(file), "", "the file is empty", "start with a header line: " + ",".join(FIELDS))
                return SampleSet.empty()
            columns = _header(header, file, problems)
            if columns is None:
                return SampleSet.empty()
            width = len(header)
            done = 0
            while True:
                rows = list(islice(reader, CHUNK_ROWS))
                if not rows:
                    break
                if reader.line_num != done + len(rows) + 1:
                    lines.multiline = True
                base = done

                def where(i: int, base: int = base) -> Location:
                    return Location(file, lines.line(base + i), 1)

                if any(len(r) != width for r in rows):
                    kept = []
                    for i, r in enumerate(rows):
                        if len(r) == width:
                            kept.append(r)
                        elif r:  # blank lines are skipped silently by convention
                            problems.add(
                                where(i), "", f"{len(r)} fields where the header has {width}", "one value per column"
                            )
                    # keep line numbers right: convert the good rows one by one
                    index = [i for i, r in enumerate(rows) if len(r) == width]

                    def where_kept(
                        k: int, index: list[int] = index, where: Callable[[int], Location] = where
                    ) -> Location:
                        return where(index[k])

                    parts.append(_convert(kept, columns, vocab, where_kept, now, problems))
                else:
                    parts.append(_convert(rows, columns, vocab, where, now, problems))
                done += len(rows)
        except csv.Error as exc:
            problems.add(Location(file, reader.line_num, 1), "", f"CSV syntax error: {exc}", "check the quoting")
    return SampleSet.concat(parts)


def _convert(
    rows: list[list[str]],
    columns: dict[str, int],
    vocab: Vocabulary,
    where: Callable[[int], Location],
    now: float,
    problems: Problems,
) -> SampleSet:
    if not rows:
        return SampleSet.empty()
    return _from_transposed(list(zip(*rows, strict=True)), columns, vocab, where, now, problems)


def _from_transposed(
    transposed: Sequence[Sequence[Any]],
    columns: dict[str, int],
    vocab: Vocabulary,
    where: Callable[[int], Location],
    now: float,
    problems: Problems,
) -> SampleSet:
    def col(name: str) -> Sequence[Any] | None:
        return transposed[columns[name]] if name in columns else None

    raw = RawColumns(
        n=len(transposed[0]),
        timestamp=transposed[columns["timestamp"]],
        journey=transposed[columns["journey"]],
        metric=transposed[columns["metric"]],
        value=transposed[columns["value"]],
        site=col("site"),
        context=col("context"),
        session=col("session"),
        position_s=col("position_s"),
    )
    return from_columns(raw, vocab, where, now, problems)


# --------------------------------------------------------------------------- JSON


def _json_array_items(text: str, file: str, problems: Problems) -> list[tuple[int, Any]]:
    """The elements of a top-level JSON array with the line each starts on."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()  # type: ignore[union-attr]
    if pos >= len(text) or text[pos] != "[":
        problems.add(
            Location(file, text.count("\n", 0, pos) + 1, 1),
            "",
            "a .json measurement file must be an array of sample objects",
            'write [{"timestamp": ..., "journey": ..., "site": ..., "metric": ..., "value": ...}, ...] '
            "or use .jsonl with one object per line",
        )
        return []
    items: list[tuple[int, Any]] = []
    line, counted = 1, 0
    pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
    if pos < len(text) and text[pos] == "]":
        return items
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problems.add(Location(file, exc.lineno, exc.colno), "", f"JSON syntax error: {exc.msg}", "fix the JSON")
            return items
        items.append((line, item))
        pos = ws.match(text, end).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] == ",":
            pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
            continue
        if pos < len(text) and text[pos] == "]":
            rest = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
            if rest != len(text):
                problems.add(Location(file, text.count("\n", 0, rest) + 1, 1), "", "text after the array", "remove it")
            return items
        problems.add(
            Location(file, text.count("\n", 0, pos) + 1, 1), "", "expected ',' or ']' in the array", "fix the JSON"
        )
        return items


def _objects_to_samples(
    items: list[tuple[int, Any]], file: str, vocab: Vocabulary, now: float, problems: Problems
) -> SampleSet:
    import difflib

    lines: list[int] = []
    columns: dict[str, list[Any]] = {f: [] for f in FIELDS}
    for line, item in items:
        if not isinstance(item, dict):
            problems.add(Location(file, line, 1), "", "a sample must be a JSON object", "write {...} per sample")
            continue
        unknown = [k for k in item if ALIASES.get(k, k) not in FIELDS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], FIELDS, n=1, cutoff=0.6)
            problems.add(
                Location(file, line, 1),
                unknown[0],
                f"unknown field '{unknown[0]}'",
                (f"did you mean '{close[0]}'? " if close else "") + "fields: " + ", ".join(FIELDS),
            )
            continue
        row = {str(ALIASES.get(k, k)): v for k, v in item.items()}
        nested: list[str] = [k for k, v in row.items() if isinstance(v, dict | list)]
        if nested:
            problems.add(Location(file, line, 1), nested[0], "must be a plain value", "use a number or a text")
            continue
        lines.append(line)
        for f in FIELDS:
            v = row.get(f)
            columns[f].append(str(v).lower() if isinstance(v, bool) else v)
    raw = RawColumns(
        n=len(lines),
        timestamp=columns["timestamp"],
        journey=columns["journey"],
        metric=columns["metric"],
        value=columns["value"],
        site=columns["site"],
        context=columns["context"],
        session=columns["session"],
        position_s=columns["position_s"],
    )
    return from_columns(raw, vocab, lambda i: Location(file, lines[i], 1), now, problems)


def read_json(path: Path, vocab: Vocabulary, now: float, problems: Problems) -> SampleSet:
    file = display(path)
    items = _json_array_items(path.read_text(encoding="utf-8"), file, problems)
    return _objects_to_samples(items, file, vocab, now, problems)


def read_jsonl(path: Path, vocab: Vocabulary, now: float, problems: Problems) -> SampleSet:
    file = display(path)
    items: list[tuple[int, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                items.append((number, json.loads(text)))
            except json.JSONDecodeError as exc:
                problems.add(
                    Location(file, number, exc.colno), "", f"JSON syntax error: {exc.msg}", "one object a line"
                )
    return _objects_to_samples(items, file, vocab, now, problems)


# --------------------------------------------------------------------------- OpenMetrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(\S+))?(?:[ \t]+#.*)?[ \t]*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_labels(text: str) -> dict[str, str]:
    """``a="x",b="y\\"z"`` -> {"a": "x", "b": 'y"z'}; ``ValueError`` when it is not label syntax."""
    labels: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None:
            raise ValueError(f"cannot read labels at {text[pos : pos + 20]!r}")
        labels[m.group(1)] = re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e.group(0)], m.group(2))
        pos = m.end()
    return labels


def read_openmetrics(path: Path, vocab: Vocabulary, now: float, problems: Problems) -> SampleSet:
    file = display(path)
    lines: list[int] = []
    columns: dict[str, list[Any]] = {f: [] for f in FIELDS}
    skipped: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            line = text.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                if line.strip() == "# EOF":
                    break
                continue
            m = _SAMPLE.match(line)
            if m is None:
                problems.add(
                    Location(file, number, 1), "", "not an OpenMetrics sample line", 'name{label="v",...} value ts'
                )
                continue
            family, label_text, value, stamp = (str(g) if g is not None else None for g in m.groups())
            assert family is not None and value is not None  # the pattern requires both
            if not family.startswith(mt.OPENMETRICS_PREFIX):
                skipped[family] = skipped.get(family, 0) + 1
                continue
            try:
                labels = parse_labels(label_text or "")
            except ValueError as exc:
                problems.add(Location(file, number, len(family) + 2), "", str(exc), 'write labels as name="value"')
                continue
            if stamp is None:
                problems.add(
                    Location(file, number, 1),
                    "timestamp",
                    "sample without a timestamp",
                    "add the time in seconds after the value: name{...} 42 1714557600",
                )
                continue
            lines.append(number)
            row = {ALIASES.get(k, k): v for k, v in labels.items()}
            row.update(timestamp=stamp, value=value, metric=family[len(mt.OPENMETRICS_PREFIX) :])
            for f in FIELDS:
                columns[f].append(row.get(f))
    for family, count in sorted(skipped.items()):
        problems.warn(
            Location(file),
            family,
            f"skipped {count} sample(s) of '{family}': not a qoectl_* family",
            "name measurement families qoectl_<metric>, e.g. qoectl_one_way_delay_ms",
        )
    raw = RawColumns(
        n=len(lines),
        timestamp=columns["timestamp"],
        journey=columns["journey"],
        metric=columns["metric"],
        value=columns["value"],
        site=columns["site"],
        context=columns["context"],
        session=columns["session"],
        position_s=columns["position_s"],
    )
    return from_columns(raw, vocab, lambda i: Location(file, lines[i], 1), now, problems)
