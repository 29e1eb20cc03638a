"""The fast path for plain CSV measurement files: pyarrow's multi-threaded C reader, all or nothing.

Why it exists: splitting a million rows in Python and converting them field by field takes seconds;
pyarrow parses and converts the same file in C on every core in a fraction of that
(``bench/verify_bench.py`` measures both against merely reading the file).

Why all or nothing: the exact reader (the other paths of :func:`controller.measure.files.read_csv`)
names every bad row with its file, line and the text of the field. This reader does not try to. It
accepts a file only when it can vouch that the exact reader would read the same samples *without a
single problem*, and returns ``None`` otherwise; the caller then runs the exact reader, so every
diagnostic is the exact reader's own. It accepts a file when:

* the bytes are plain: no quote character (the caller sends quoted CSV to the csv module before
  asking), line ends all LF or all CRLF as the header's, no other carriage return. Then one line is
  one record, and data row *i* is line *i + 2*;
* every line has exactly the header's number of fields (pyarrow fails on any other count; a blank
  line becomes a row of nulls, which is refused as an empty number);
* every timestamp and value is a plain number, which pyarrow converts to the same double as the exact
  reader (``tests/test_measure_fastcsv.py`` checks this); an ISO 8601 timestamp, an empty field or
  anything else makes pyarrow fail or leaves a null, and the file goes to the exact reader;
* names are UTF-8, and every row passes the checks of :func:`controller.measure.samples.from_coded`,
  the same check functions :func:`~controller.measure.samples.from_columns` uses.

:func:`read_path` checks the bytes a block at a time. Files up to 64 MiB are parsed as one table (Arrow
parses its blocks in parallel); larger ones are streamed: Arrow parses 1 MiB blocks into batches, and
each batch is checked and written into columns sized for the lines counted, so memory stays near the
samples' own columns (5,000,000 rows: < 500 MiB in all).

pyarrow is optional: without it every file takes the exact reader, only more slowly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.measure import metrics as mt
from controller.measure.samples import F64, I32, CodedColumns, SampleSet, Vocabulary, from_coded

NUMBER_COLUMNS = frozenset({"timestamp", "value", "position_s"})


@functools.cache
def _arrow() -> tuple[Any, Any] | None:
    """``(pyarrow, pyarrow.csv)``, imported on the first CSV read (it takes a tenth of a second); ``None``: absent."""
    try:
        import pyarrow  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.csv  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return pyarrow, pyarrow.csv


def available() -> bool:
    """Whether pyarrow is installed, i.e. whether plain files can take the fast path at all."""
    return _arrow() is not None


SCAN_BYTES = 1 << 20  # bytes checked at a time by scan_plain
CR, LF = 13, 10
BLOCK_BYTES = 1 << 20  # bytes Arrow parses into one batch: Arrow reads ahead several, so this bounds memory
WHOLE_BYTES = 1 << 26  # files up to this size are parsed as one table (in parallel: faster); larger ones streamed


def _options(pacsv: Any, pa: Any, columns: dict[str, int], block_size: int | None = None) -> dict[str, Any]:
    names = sorted(columns, key=columns.__getitem__)
    text = pa.dictionary(pa.int32(), pa.string())
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=True)
    if block_size:
        read_options.block_size = block_size
    return {
        "read_options": read_options,
        "parse_options": pacsv.ParseOptions(
            quote_char=False,
            double_quote=False,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types={n: pa.float64() if n in NUMBER_COLUMNS else text for n in names},
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        ),
    }


def scan_plain(path: Path, crlf: bool, count: bool) -> int | None:
    """The number of lines of a plain file at ``path`` (``count`` or ``crlf``: else 0), read a block at a time.

    ``None`` when the file is not plain: a quote character, or a line end other than the header's (an LF
    file may hold no carriage return; in a CRLF file every carriage return and every line feed is one
    of a CRLF pair). Then one line is one record, and data row *i* is line *i + 2*. The width of every
    line is Arrow's to check (a line with too many or too few fields fails the parse, a blank line
    becomes a row of nulls, which :func:`_numbers` refuses). ``find`` finds a byte at memory speed; only
    a CRLF file, and a file streamed (its columns are sized before it is parsed), are counted. Blocks are
    read into one buffer, used again for each (a new block each time would cost a page fault per 4 KiB:
    about three times as long on a file of 55 MB).
    """
    lines = cr = crlf_pairs = 0
    last = -1  # the last byte read; -1: none yet
    buf = bytearray(SCAN_BYTES)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if buf.find(b'"', 0, n) >= 0:
                return None
            if crlf:
                cr += buf.count(b"\r", 0, n)
                crlf_pairs += buf.count(b"\r\n", 0, n) + (last == CR and buf[0] == LF)
            elif buf.find(b"\r", 0, n) >= 0:
                return None
            if count or crlf:
                lines += buf.count(b"\n", 0, n)
            last = buf[n - 1]
    if last < 0:
        return None
    if crlf and not cr == crlf_pairs == lines:
        return None
    return lines + (0 if last == LF or not (count or crlf) else 1)


def read_path(path: Path, columns: dict[str, int], crlf: bool, vocab: Vocabulary, now: float) -> SampleSet | None:
    """:func:`parse_path` and :func:`convert`: the samples of the file at ``path``, or ``None``."""
    parsed = parse_path(path, columns, crlf)
    return None if parsed is None else convert(parsed, columns, vocab, now)


@dataclass(frozen=True)
class Parsed:
    """Arrow's parse of a plain file: its data rows and its batches (a table's, or a stream still being read)."""

    rows: int
    batches: Iterable[Any]


def parse_path(path: Path, columns: dict[str, int], crlf: bool) -> Parsed | None:
    """The half of :func:`read_path` that needs no vocabulary: the byte checks and Arrow's parse.

    Above :data:`WHOLE_BYTES` the file is streamed: Arrow reads it block by block as :func:`convert` asks.
    Arrow's table reader parses blocks in parallel (about a fifth faster on 2 cores) but holds the whole
    table; the streaming reader holds a few blocks, whatever the size of the file. This half holds no
    policy object, so it can run in a thread while the policy loads (:class:`controller.measure.files.Prefetch`).

    Arrow opens the file itself, so its threads never hold a Python object: a worker that dropped the last
    reference to one after ``read_csv`` returned would take the GIL, and abort the process if the command
    has exited by then (``tests/test_verify_exit.py``).
    """
    arrow = _arrow()
    if arrow is None:
        return None
    whole = path.stat().st_size <= WHOLE_BYTES
    lines = scan_plain(path, crlf, count=not whole)
    if lines is None:
        return None
    pa, pacsv = arrow
    try:
        if whole:
            table = pacsv.read_csv(str(path), **_options(pacsv, pa, columns))
            return Parsed(table.num_rows, table.to_batches()) if table.num_rows > 0 else None
        if lines - 1 <= 0:
            return None
        return Parsed(lines - 1, pacsv.open_csv(str(path), **_options(pacsv, pa, columns, BLOCK_BYTES)))
    except pa.ArrowException:
        return None


def convert(parsed: Parsed, columns: dict[str, int], vocab: Vocabulary, now: float) -> SampleSet | None:
    """The samples of a parse, checked batch by batch; ``None``: a batch the exact reader would fault.

    Memory stays near the samples' own columns, however large the file.
    """
    arrow = _arrow()
    assert arrow is not None, "a parse comes from pyarrow"
    try:
        return _convert(parsed.batches, parsed.rows, columns, vocab, now)
    except arrow[0].ArrowException:  # a streamed block Arrow could not parse
        return None


def _convert(
    batches: Iterable[Any], rows: int, columns: dict[str, int], vocab: Vocabulary, now: float
) -> SampleSet | None:
    """Batches checked one at a time with :func:`from_coded`, written into columns sized for ``rows`` rows."""
    out = SampleSet(
        np.empty(rows, dtype=np.float64),
        np.empty(rows, dtype=np.int32),
        np.empty(rows, dtype=np.int32),
        np.empty(rows, dtype=np.int32),
        np.empty(rows, dtype=np.float64),
        np.empty(rows, dtype=np.int32),
        np.empty(rows, dtype=np.float64),
    )
    seen: dict[str, int] = {}
    done = 0
    for batch in batches:
        n = batch.num_rows
        if not n:
            continue
        if done + n > rows:
            return None
        part = _batch(batch, n, columns, seen, vocab, now)
        if part is None:
            return None
        for name in ("ts", "journey", "segment", "metric", "value", "session", "position"):
            getattr(out, name)[done : done + n] = getattr(part, name)
        done += n
    if done != rows:
        return None
    return SampleSet(out.ts, out.journey, out.segment, out.metric, out.value, out.session, out.position, tuple(seen))


def _batch(
    batch: Any, n: int, columns: dict[str, int], seen: dict[str, int], vocab: Vocabulary, now: float
) -> SampleSet | None:
    ts, value = _numbers(batch.column("timestamp")), _numbers(batch.column("value"))
    if ts is None or value is None:
        return None
    session = _sessions(batch.column("session"), seen) if "session" in columns else np.full(n, -1, dtype=np.int32)
    position = (
        np.asarray(batch.column("position_s").to_numpy(zero_copy_only=False), dtype=np.float64)  # null -> NaN
        if "position_s" in columns
        else np.full(n, np.nan, dtype=np.float64)
    )
    coded = CodedColumns(
        ts=ts,
        value=value,
        journey=_codes(batch.column("journey"), vocab.journey_code),
        metric=_codes(batch.column("metric"), mt.INDEX),
        site=_codes(batch.column("site"), vocab.site_code) if "site" in columns else None,
        context=_codes(batch.column("context"), vocab.context_code) if "context" in columns else None,
        session=session,
        sessions=(),
        position=position,
    )
    return from_coded(coded, vocab, now)


def _numbers(column: Any) -> F64 | None:
    """A float column without nulls (an empty timestamp or value is a problem the exact reader reports)."""
    if column.null_count:
        return None
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _codes(column: Any, table: dict[str, int]) -> I32:
    """Codes of a dictionary-encoded text column, as ``samples._codes`` gives them: -1 unknown, -2 empty.

    Each batch has its own small dictionary, so only the dictionary entries are looked up in Python.
    """
    lookup = np.array([table.get(s, -1) if s else -2 for s in column.dictionary.to_pylist()], dtype=np.int32)
    return lookup[np.asarray(column.indices.to_numpy(zero_copy_only=False), dtype=np.intp)]


def _sessions(column: Any, seen: dict[str, int]) -> I32:
    """Session codes numbered in order of first appearance (as the exact reader numbers them); -1: none.

    ``seen`` carries the numbering from one batch to the next.
    """
    names = column.dictionary.to_pylist()
    indices = np.asarray(column.indices.to_numpy(zero_copy_only=False), dtype=np.intp)
    lookup = np.full(len(names), -1, dtype=np.int32)
    used, first = np.unique(indices, return_index=True)
    for k in used[np.argsort(first)].tolist():
        if names[k]:
            lookup[k] = seen.setdefault(names[k], len(seen))
    return lookup[indices]
