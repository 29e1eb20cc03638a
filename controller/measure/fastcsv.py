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


SCAN_BYTES = 1 << 24  # bytes counted at a time by scan_plain
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
    becomes a row of nulls, which :func:`_numbers` refuses). ``in`` finds a byte at memory speed; only
    a CRLF file, and a file streamed (its columns are sized before it is parsed), are counted.
    """
    lines = cr = crlf_pairs = 0
    last = b""
    with path.open("rb") as fh:
        while block := fh.read(SCAN_BYTES):
            if b'"' in block:
                return None
            if crlf:
                cr += block.count(b"\r")
                crlf_pairs += block.count(b"\r\n") + (last == b"\r" and block[:1] == b"\n")
            elif b"\r" in block:
                return None
            if count or crlf:
                lines += block.count(b"\n")
            last = block[-1:]
    if not last:
        return None
    if crlf and not cr == crlf_pairs == lines:
        return None
    return lines + (0 if last == b"\n" or not (count or crlf) else 1)


def read_path(path: Path, columns: dict[str, int], crlf: bool, vocab: Vocabulary, now: float) -> SampleSet | None:
    """:func:`read` of the file at ``path``; above :data:`WHOLE_BYTES` streamed: Arrow reads it block by block.

    Arrow's table reader parses blocks in parallel (about a fifth faster on 2 cores) but holds the whole
    table; the streaming reader holds a few blocks, whatever the size of the file.

    Arrow opens the file itself, so its threads never hold a Python object: a worker that dropped the last
    reference to one after ``read_csv`` returned would take the GIL, and abort the process if the command
    has exited by then (``tests/test_verify_exit.py``).
    Memory stays near the samples' own columns, however large the file.
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
            rows, batches = table.num_rows, table.to_batches()
        else:
            rows, batches = lines - 1, pacsv.open_csv(str(path), **_options(pacsv, pa, columns, BLOCK_BYTES))
        return _convert(batches, rows, columns, vocab, now) if rows > 0 else None
    except pa.ArrowException:
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
