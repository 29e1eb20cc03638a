"""Samples in columns, and the one place where raw measurement rows are checked.

Every source (files, Prometheus, probes) hands its rows to :func:`from_columns`
as plain Python sequences; this module turns them into numpy columns coded
against the policy (journey and segment numbers) and reports every bad row
with the file and line it came from. Bad rows never reach the evaluation: a
source with problems makes ``qoectl verify`` stop, because a pass computed
from partly unreadable data would be a lie.

Segments are sites from the inventory, or contexts (``remote-users``) for
measurements that have no site. A sample naming a site takes the site's
context; naming both, they must agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from controller.errors import Diagnostic, Location
from controller.measure import metrics as mt
from controller.model import Policy

MAX_FUTURE_S = 300.0  # a timestamp further ahead of this machine's clock is clock skew, not a measurement
EPOCH_2000 = 946_684_800.0
MILLIS_THRESHOLD = 1e11  # seconds since 1970 pass this in the year 5138; larger values are milliseconds
DEFAULT_PROBLEM_LIMIT = 20

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
Where = Callable[[int], Location]


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    """Where users are: a site, or a context for measurements without a site."""

    kind: Literal["site", "context"]
    name: str
    context: str

    @property
    def label(self) -> str:
        return self.name if self.kind == "site" else f"{self.name} (context)"

    def to_json(self) -> dict[str, str | None]:
        return {"site": self.name if self.kind == "site" else None, "context": self.context}


class Vocabulary:
    """Journey and segment numbers of one policy; every source codes its samples with the same numbers."""

    def __init__(self, policy: Policy) -> None:
        self.journeys: tuple[str, ...] = tuple(sorted({j.name for j in policy.journeys}))
        self.journey_code: dict[str, int] = {n: i for i, n in enumerate(self.journeys)}
        sites = sorted({s.name: s.context for s in policy.sites}.items())
        contexts = sorted({c for _, c in sites} | {c for j in policy.journeys for c in j.contexts})
        self.segments: tuple[Segment, ...] = tuple(Segment("site", n, c) for n, c in sites) + tuple(
            Segment("context", c, c) for c in contexts
        )
        self.site_code: dict[str, int] = {s.name: i for i, s in enumerate(self.segments) if s.kind == "site"}
        self.context_code: dict[str, int] = {s.name: i for i, s in enumerate(self.segments) if s.kind == "context"}
        # segment code -> code of its context segment (a context maps to itself)
        self.context_of: I32 = np.array([self.context_code[s.context] for s in self.segments], dtype=np.int32)

    def site_names(self) -> list[str]:
        return list(self.site_code)


@dataclass(frozen=True, eq=False)
class SampleSet:
    """Samples as equal-length numpy columns; ``session`` indexes ``sessions`` (-1: none)."""

    ts: F64
    journey: I32
    segment: I32
    metric: I32
    value: F64
    session: I32
    position: F64  # media position of a stall, NaN otherwise
    sessions: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def empty() -> SampleSet:
        f, i = np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int32)
        return SampleSet(f, i, i, i, f, i, f, ())

    @staticmethod
    def concat(parts: Iterable[SampleSet]) -> SampleSet:
        items = [p for p in parts if len(p)]
        if not items:
            return SampleSet.empty()
        if len(items) == 1:
            return items[0]
        merged: dict[str, int] = {}
        sessions = []
        for p in items:
            table = np.array([merged.setdefault(s, len(merged)) for s in p.sessions] + [-1], dtype=np.int32)
            sessions.append(table[p.session])  # -1 indexes the trailing -1
        return SampleSet(
            np.concatenate([p.ts for p in items]),
            np.concatenate([p.journey for p in items]),
            np.concatenate([p.segment for p in items]),
            np.concatenate([p.metric for p in items]),
            np.concatenate([p.value for p in items]),
            np.concatenate(sessions),
            np.concatenate([p.position for p in items]),
            tuple(merged),
        )

    def select(self, mask: npt.NDArray[Any]) -> SampleSet:
        """The samples at ``mask`` (a boolean mask or an index array)."""
        return SampleSet(
            self.ts[mask],
            self.journey[mask],
            self.segment[mask],
            self.metric[mask],
            self.value[mask],
            self.session[mask],
            self.position[mask],
            self.sessions,
        )


@dataclass
class Problems:
    """Diagnostics of one source, at most ``limit`` shown, the rest counted (a broken file can have millions)."""

    source: str
    limit: int = DEFAULT_PROBLEM_LIMIT
    shown: list[Diagnostic] = field(default_factory=list)
    hidden: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)

    def add(self, where: Location, field_name: str, message: str, hint: str = "") -> None:
        if len(self.shown) < self.limit:
            self.shown.append(Diagnostic(where, field_name, message, hint))
        else:
            self.hidden += 1

    def warn(self, where: Location, field_name: str, message: str, hint: str = "") -> None:
        self.warnings.append(Diagnostic(where, field_name, message, hint, severity="warning"))

    @property
    def count(self) -> int:
        return len(self.shown) + self.hidden

    def diagnostics(self) -> list[Diagnostic]:
        """The problems shown, in file and line order, then the count of the others, then warnings."""
        out = sorted(self.shown, key=Diagnostic.sort_key)
        if self.hidden:
            out.append(
                Diagnostic(
                    Location(self.source),
                    "",
                    f"{self.hidden} more problem(s) in this source not shown",
                    "fix the ones above first; they are usually all alike",
                )
            )
        return out + self.warnings


@dataclass
class RawColumns:
    """Rows of one source as parallel sequences; absent optional columns are ``None``.

    Values may be strings (CSV) or numbers (JSON, Prometheus); ``""`` and
    ``None`` mean "not given".
    """

    n: int
    timestamp: Sequence[Any]
    journey: Sequence[Any]
    metric: Sequence[Any]
    value: Sequence[Any]
    site: Sequence[Any] | None = None
    context: Sequence[Any] | None = None
    session: Sequence[Any] | None = None
    position_s: Sequence[Any] | None = None


def _absent(v: Any) -> bool:
    return v is None or v == "" or v == b""


def _text(v: Any) -> Any:
    """Bytes (the fast CSV path) as text, for messages and ids."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def parse_time(v: Any) -> float:
    """Seconds since the epoch from a number or an ISO 8601 text with a UTC offset; ``ValueError`` otherwise."""
    if isinstance(v, bool):
        raise ValueError("a timestamp is a number of seconds or an ISO 8601 date-time")
    if isinstance(v, int | float):
        return float(v)
    text = str(_text(v)).strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text)  # raises ValueError with its own words
    if stamp.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return stamp.timestamp()


def _floats(seq: Sequence[Any], n: int, convert: Callable[[Any], float] = float) -> tuple[F64, list[int]]:
    """Numbers from strings or numbers; indexes that are missing or not numbers come back as ``bad``.

    Sources must not pass booleans (JSON readers turn them into text first). Numbers written as
    numbers are parsed by numpy in one go; only a column with something else is converted one by one.
    """
    try:
        arr = np.asarray(seq, dtype=np.float64)
        if arr.shape == (n,):
            return arr, []
    except (ValueError, TypeError):
        pass
    out = np.empty(n, dtype=np.float64)
    bad: list[int] = []
    for i, v in enumerate(seq):
        try:
            if isinstance(v, bool) or _absent(v):
                raise ValueError
            out[i] = convert(_text(v))
        except (ValueError, TypeError, OverflowError):
            out[i] = math.nan
            bad.append(i)
    return out, bad


def _codes(seq: Sequence[Any] | None, n: int, table: dict[str, int]) -> I32:
    """-1 unknown, -2 not given."""
    if seq is None:
        return np.full(n, -2, dtype=np.int32)
    lookup: dict[Any, int] = dict(table)
    lookup.update({k.encode(): v for k, v in table.items()})
    lookup.update({"": -2, b"": -2, None: -2})
    return np.fromiter(map(lookup.get, seq, repeat(-1)), dtype=np.int32, count=n)


def _close(word: Any, options: Iterable[str]) -> str:
    import difflib

    found = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"did you mean '{found[0]}'? " if found else ""


def _listing(options: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(options[:limit])
    return shown + (f", ... ({len(options)} in all)" if len(options) > limit else "")


def from_columns(cols: RawColumns, vocab: Vocabulary, where: Where, now: float, problems: Problems) -> SampleSet:
    """Check and code the rows; rows with problems are reported to ``problems`` and left out."""
    n = cols.n
    if n == 0:
        return SampleSet.empty()
    bad = np.zeros(n, dtype=bool)

    ts, bad_ts = _floats(cols.timestamp, n, parse_time)
    if bad_ts:
        for i in bad_ts:
            raw = cols.timestamp[i]
            problems.add(
                where(i),
                "timestamp",
                "timestamp is missing" if _absent(raw) else f"{_text(raw)!r} is not a timestamp",
                "give seconds since 1970-01-01 UTC, or ISO 8601 with an offset, e.g. 2025-05-01T10:00:00Z",
            )
        bad[bad_ts] = True

    value, bad_value = _floats(cols.value, n)
    for i in bad_value:
        raw = cols.value[i]
        problems.add(
            where(i),
            "value",
            "value is missing" if _absent(raw) else f"{_text(raw)!r} is not a number",
            "give the measured value as a plain number in the metric's unit",
        )
    bad[bad_value] = True

    journey = _codes(cols.journey, n, vocab.journey_code)
    for i in np.flatnonzero(journey < 0).tolist():
        raw = cols.journey[i]
        if journey[i] == -2:
            problems.add(where(int(i)), "journey", "journey is missing", "name the journey the sample measures")
        else:
            problems.add(
                where(int(i)),
                "journey",
                f"unknown journey {_text(raw)!r}",
                _close(_text(raw), vocab.journeys) + "journeys: " + _listing(vocab.journeys),
            )
    bad |= journey < 0

    metric = _codes(cols.metric, n, mt.INDEX)
    for i in np.flatnonzero(metric < 0).tolist():
        raw = cols.metric[i]
        if metric[i] == -2:
            problems.add(where(int(i)), "metric", "metric is missing", "metrics: " + ", ".join(mt.NAMES))
        else:
            problems.add(
                where(int(i)),
                "metric",
                f"unknown metric {_text(raw)!r}",
                _close(_text(raw), mt.NAMES) + "metrics: " + ", ".join(mt.NAMES),
            )
    bad |= metric < 0

    segment, bad_segment = _segments(cols, n, vocab, where, problems)
    bad = bad | bad_segment

    session_codes = np.full(n, -1, dtype=np.int32)
    sessions: dict[str, int] = {}
    if cols.session is not None:
        for i, v in enumerate(cols.session):
            if _absent(v):
                continue
            if not isinstance(v, str | bytes | int) or isinstance(v, bool):
                problems.add(where(i), "session", f"{v!r} is not a session id", "use a text id per playback session")
                bad[i] = True
                continue
            session_codes[i] = sessions.setdefault(str(_text(v)), len(sessions))

    position = np.full(n, math.nan, dtype=np.float64)
    if cols.position_s is not None:
        given = [i for i, v in enumerate(cols.position_s) if not _absent(v)]
        if given:
            pos, bad_pos = _floats([cols.position_s[i] for i in given], len(given))
            position[given] = pos
            for k in bad_pos:
                i = given[k]
                shown = _text(cols.position_s[i])
                problems.add(where(i), "position_s", f"{shown!r} is not a number", "seconds of media")
                bad[i] = True

    keep = ~(bad | _check_values(ts, metric, value, position, session_codes, bad, now, where, problems))
    return SampleSet(
        ts[keep],
        journey[keep],
        segment[keep],
        metric[keep],
        value[keep],
        session_codes[keep],
        position[keep],
        tuple(sessions),
    )


@dataclass(frozen=True)
class SegmentFlags:
    """Which rows name no usable segment, one mask per kind of problem (reported in this order)."""

    unknown_site: npt.NDArray[np.bool_]
    unknown_context: npt.NDArray[np.bool_]
    no_segment: npt.NDArray[np.bool_]
    mismatch: npt.NDArray[np.bool_]

    def any_row(self) -> npt.NDArray[np.bool_]:
        return self.unknown_site | self.unknown_context | self.no_segment | self.mismatch


def segment_codes(site: I32, context: I32, vocab: Vocabulary) -> tuple[I32, SegmentFlags]:
    """Segment per row from site and context codes (-1 unknown, -2 not given), and the rows that have none.

    Pure and shared by :func:`from_columns` and :func:`from_coded`, so both readers judge rows alike.
    """
    segment = np.where(site >= 0, site, context).astype(np.int32)
    both = (site >= 0) & (context >= 0)
    flags = SegmentFlags(
        unknown_site=site == -1,
        unknown_context=(site == -2) & (context == -1),
        no_segment=(site == -2) & (context == -2),
        mismatch=both & (vocab.context_of[np.maximum(site, 0)] != context),
    )
    return segment, flags


@dataclass(frozen=True)
class CodedColumns:
    """Rows a fast reader has already converted: numbers as floats, names as codes (-1 unknown, -2 not given).

    ``site`` / ``context`` are ``None`` when the source has no such column; ``session`` indexes
    ``sessions`` (-1: none) and ``position`` is NaN where no position was given.
    """

    ts: F64
    value: F64
    journey: I32
    metric: I32
    site: I32 | None
    context: I32 | None
    session: I32
    sessions: tuple[str, ...]
    position: F64


def from_coded(cols: CodedColumns, vocab: Vocabulary, now: float) -> SampleSet | None:
    """The samples when every row passes the checks of :func:`from_columns`; ``None`` as soon as one would not.

    A fast reader cannot say *why* a row is bad (it no longer has the text), so it never reports: ``None``
    sends the caller to the exact reader, which reports each problem with its file and line. Using the
    same check functions as :func:`from_columns` keeps "clean" meaning the same on both paths.
    """
    n = int(cols.ts.shape[0])
    if n == 0:
        return None
    absent = np.full(n, -2, dtype=np.int32)
    site = cols.site if cols.site is not None else absent
    context = cols.context if cols.context is not None else absent
    segment, flags = segment_codes(site, context, vocab)
    if bool((cols.journey < 0).any() or (cols.metric < 0).any() or (segment < 0).any() or flags.any_row().any()):
        return None
    known = np.ones(n, dtype=bool)
    if bool(value_flags(cols.ts, cols.metric, cols.value, cols.position, cols.session, known, now).any_row().any()):
        return None
    return SampleSet(
        cols.ts, cols.journey, segment, cols.metric, cols.value, cols.session, cols.position, cols.sessions
    )


def _segments(cols: RawColumns, n: int, vocab: Vocabulary, where: Where, problems: Problems) -> tuple[I32, Any]:
    """Segment codes and the mask of rows without a usable one, each such row reported."""
    site = _codes(cols.site, n, vocab.site_code)
    context = _codes(cols.context, n, vocab.context_code)
    segment, flags = segment_codes(site, context, vocab)
    sites = vocab.site_names()
    contexts = sorted(vocab.context_code)
    for i in np.flatnonzero(flags.unknown_site).tolist():
        raw = cols.site[i] if cols.site is not None else None
        problems.add(
            where(int(i)),
            "site",
            f"unknown site {_text(raw)!r}",
            _close(_text(raw), sites) + "sites in the inventory: " + _listing(sites),
        )
    for i in np.flatnonzero(flags.unknown_context).tolist():
        raw = cols.context[i] if cols.context is not None else None
        problems.add(
            where(int(i)),
            "context",
            f"unknown context {_text(raw)!r}",
            _close(_text(raw), contexts) + "contexts: " + _listing(contexts),
        )
    for i in np.flatnonzero(flags.no_segment).tolist():
        problems.add(where(int(i)), "site", "the sample has no site and no context", "add a site (or a context) column")
    for i in np.flatnonzero(flags.mismatch).tolist():
        seg = vocab.segments[site[i]]
        problems.add(
            where(int(i)),
            "context",
            f"site {seg.name} is in context {seg.context}, not {_text(cols.context[i]) if cols.context else ''!r}",
            "leave the context out or fix it",
        )
    return segment, (segment < 0) | flags.any_row()


@dataclass(frozen=True)
class ValueFlags:
    """Rows whose values are implausible, one mask per kind of problem."""

    wrong_time: npt.NDArray[np.bool_]
    wrong_value: npt.NDArray[np.bool_]
    wrong_stall: npt.NDArray[np.bool_]
    wrong_position: npt.NDArray[np.bool_]

    def any_row(self) -> npt.NDArray[np.bool_]:
        return self.wrong_value | self.wrong_time | self.wrong_stall | self.wrong_position


_LOW = np.array([x.low for x in mt.METRICS])
_HIGH = np.array([x.high for x in mt.METRICS])
_INTEGER = np.array([x.integer for x in mt.METRICS])


def value_flags(
    ts: F64, metric: I32, value: F64, position: F64, session: I32, known: npt.NDArray[np.bool_], now: float
) -> ValueFlags:
    """Range, clock and stall checks of the ``known`` rows (rows already found bad are not judged again).

    Pure and shared by :func:`from_columns` and :func:`from_coded`.
    """
    m = np.maximum(metric, 0)
    low, high, integer = _LOW[m], _HIGH[m], _INTEGER[m]
    with np.errstate(invalid="ignore"):
        wrong_value = known & (~np.isfinite(value) | (value < low) | (value > high))
        if integer.any():  # whole-number metrics (dscp): the remainder only where one is measured
            wrong_value[integer] |= known[integer] & (value[integer] % 1 != 0)
        wrong_time = known & (~np.isfinite(ts) | (ts < EPOCH_2000) | (ts > now + MAX_FUTURE_S))
        wrong_position = known & ~np.isnan(position) & (~np.isfinite(position) | (position < 0))
    stall = mt.INDEX["stall_s"]
    wrong_stall = known & (metric == stall) & (np.isnan(position) | (session < 0))
    return ValueFlags(wrong_time, wrong_value, wrong_stall, wrong_position)


def _check_values(
    ts: F64,
    metric: I32,
    value: F64,
    position: F64,
    session: I32,
    bad: Any,
    now: float,
    where: Where,
    problems: Problems,
) -> Any:
    """Report the implausible values among the rows not yet ``bad``; the rows reported, as a mask."""
    flags = value_flags(ts, metric, value, position, session, ~bad, now)
    wrong_time, wrong_value, wrong_stall, wrong_position = (
        flags.wrong_time,
        flags.wrong_value,
        flags.wrong_stall,
        flags.wrong_position,
    )
    every = flags.any_row()
    for i in np.flatnonzero(every):
        k = int(i)
        name = mt.METRICS[metric[k]].name
        if wrong_time[k]:
            _time_problem(float(ts[k]), now, where(k), problems)
        if wrong_value[k]:
            _value_problem(name, float(value[k]), where(k), problems)
        if wrong_stall[k]:
            problems.add(
                where(k),
                "session" if session[k] < 0 else "position_s",
                "a stall_s sample needs a session and a position_s (media position of the stall)",
                "add the session id and the position in seconds of media; 0 for the initial loading",
            )
        if wrong_position[k]:
            problems.add(where(k), "position_s", f"position_s {position[k]} must not be negative", "seconds of media")
    return every


def _time_problem(t: float, now: float, loc: Location, problems: Problems) -> None:
    if not math.isfinite(t):
        problems.add(loc, "timestamp", "timestamp is not a finite number", "seconds since 1970-01-01 UTC")
    elif t > MILLIS_THRESHOLD:
        problems.add(loc, "timestamp", f"timestamp {t:.0f} looks like milliseconds", "give seconds since the epoch")
    elif t > now + MAX_FUTURE_S:
        problems.add(
            loc,
            "timestamp",
            f"timestamp is {t - now:.0f} s in the future: clock skew between the measuring host and this one",
            "synchronise the measuring host's clock (NTP/PTP) and give UTC seconds since the epoch",
        )
    else:
        problems.add(loc, "timestamp", f"timestamp {t:.0f} is before the year 2000", "seconds since 1970-01-01 UTC")


def _value_problem(name: str, v: float, loc: Location, problems: Problems) -> None:
    info = mt.BY_NAME[name]
    if not math.isfinite(v):
        problems.add(loc, "value", f"{name} {v} is not a finite number", f"give {name} in {info.unit or 'its unit'}")
    elif name == "one_way_delay_ms" and v < 0:
        problems.add(
            loc,
            "value",
            f"negative one-way delay {v:g} ms: the sender's and receiver's clocks disagree (clock skew)",
            "synchronise both clocks (PTP, or NTP to the same server) before measuring one-way delay",
        )
    elif v < info.low:
        problems.add(loc, "value", f"{name} {v:g} must not be below {info.low:g}", f"{info.description} ({info.unit})")
    elif v > info.high:
        problems.add(loc, "value", f"{name} {v:g} is above {info.high:g}", f"{info.description} ({info.unit})")
    else:
        problems.add(loc, "value", f"{name} must be a whole number (got {v:g})", info.description)
