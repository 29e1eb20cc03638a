"""The measures of a group of samples (one window of one segment, or a whole segment), vectorised.

Groups are given as one group index per sample, so the same code serves the
per-window and the whole-range views. Statistics (see docs/qoe-models.md):

* delay, jitter, loss, throughput, start-up, reordering: the mean;
* voice MOS: the E-model (:mod:`controller.qoe.emodel`, the one
  implementation) of the mean delay, jitter and loss; when one of them was not
  measured it is taken as 0 and the MOS is only an upper bound, which can
  prove a failure but never a pass;
* Apdex and error rate from the transactions (``response_time_ms`` and
  ``errors`` samples), else the mean of measured ``apdex`` / ``error_rate_pct``;
* response time: the 95th percentile (nearest rank) of the transactions;
* rebuffering: the mean of measured ``rebuffering_pct``, else stall time over
  playing plus stall time of the sessions (P.1203.3 inputs);
* stall score: the mean P.1203.3 stall score of the sessions;
* DSCP: the marking expected, or a different value seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.measure import metrics as mt
from controller.measure.samples import SampleSet
from controller.qoe import emodel
from controller.qoe import stalls as st

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]
MEAN_METRICS = (
    "one_way_delay_ms",
    "jitter_ms",
    "loss_pct",
    "throughput_kbps",
    "startup_s",
    "reorder_pct",
    "apdex",
    "error_rate_pct",
    "rebuffering_pct",
)
PERCENTILE = 0.95
_MEAN_SLOT = np.full(len(mt.INDEX) + 1, -1, dtype=np.int8)  # metric code -> its row among MEAN_METRICS, or -1
_MEAN_SLOT[[mt.INDEX[name] for name in MEAN_METRICS]] = np.arange(len(MEAN_METRICS))


@dataclass(frozen=True)
class Context:
    codec: str = "g711"
    apdex_t_ms: float | None = None
    errors_frustrated: bool = True
    dscp: float | None = None


@dataclass(frozen=True)
class Sessions:
    """Video sessions (samples sharing a ``session``) scored with the P.1203.3 stalling model."""

    segment: I64
    window: I64
    score: F64
    rebuffering_s: F64
    playing_s: F64
    unusable: int = 0  # sessions with stalls but no (positive) session_duration_s
    after_end: int = 0  # sessions with a stall after the end of their media: inconsistent, left out

    def window_group(self, keys: I64, n_windows: int) -> I64:
        """Each session's index among the (segment, window) group ``keys`` (-1 when its group has no samples)."""
        if not len(self.segment) or not len(keys):
            return np.full(len(self.segment), -1, dtype=np.int64)
        key = self.segment * max(n_windows, 1) + self.window
        pos = np.clip(np.searchsorted(keys, key), 0, len(keys) - 1)
        return np.where(keys[pos] == key, pos, -1).astype(np.int64)


def sessions(data: SampleSet, window_of: I64) -> Sessions:
    """Score every session that has a ``session_duration_s`` (T); the start-up counts as a stall at 0."""
    has = np.flatnonzero(data.session >= 0)
    empty = np.zeros(0, dtype=np.int64)
    if not len(has):
        return Sessions(empty, empty, np.zeros(0), np.zeros(0), np.zeros(0))
    key = data.segment[has].astype(np.int64) * (len(data.sessions) + 1) + data.session[has]
    order = np.argsort(key, kind="stable")
    rows = has[order]
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    duration_code, stall_code, startup_code = mt.INDEX["session_duration_s"], mt.INDEX["stall_s"], mt.INDEX["startup_s"]
    seg_out, win_out, score_out, rebuf_out, play_out = [], [], [], [], []
    unusable = after_end = 0
    for group in np.split(rows, cuts):
        metric = data.metric[group]
        durations = data.value[group][metric == duration_code]
        stall_rows = group[metric == stall_code]
        if not len(durations):
            unusable += int(bool(len(stall_rows)))
            continue
        duration = float(durations.max())
        if duration <= 0:
            unusable += 1
            continue
        events = [
            st.Stall(float(p), float(v)) for p, v in zip(data.position[stall_rows], data.value[stall_rows], strict=True)
        ]
        if st.after_end(duration, events):
            after_end += 1
            continue
        startups = data.value[group][metric == startup_code]
        if len(startups) and not any(e.position_s == 0 for e in events):
            events.append(st.Stall(0.0, float(startups.max())))
        result = st.stall_score(duration, events)
        first = group[np.argmin(data.ts[group])]
        seg_out.append(int(data.segment[first]))
        win_out.append(int(window_of[first]))
        score_out.append(result.stall_score)
        rebuf_out.append(result.rebuffering_s)
        play_out.append(duration)
    return Sessions(
        np.array(seg_out, dtype=np.int64),
        np.array(win_out, dtype=np.int64),
        np.array(score_out, dtype=np.float64),
        np.array(rebuf_out, dtype=np.float64),
        np.array(play_out, dtype=np.float64),
        unusable,
        after_end,
    )


@dataclass
class Measures:
    n: int
    values: dict[str, F64] = field(default_factory=dict)
    counts: dict[str, I64] = field(default_factory=dict)
    bounds: dict[str, BOOL] = field(default_factory=dict)
    samples_total: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _nan: F64 | None = None
    _zero: I64 | None = None
    _no: BOOL | None = None

    def value(self, name: str) -> F64:
        """The measure per group, NaN where it was not measured (shared, read-only arrays)."""
        found = self.values.get(name)
        return found if found is not None else self._none()

    def samples(self, name: str) -> I64:
        found = self.counts.get(name)
        return found if found is not None else self._zeros()

    def bounded(self, name: str) -> BOOL:
        found = self.bounds.get(name)
        return found if found is not None else self._false()

    def _none(self) -> F64:
        if self._nan is None:
            self._nan = np.full(self.n, math.nan)
            self._nan.flags.writeable = False
        return self._nan

    def _zeros(self) -> I64:
        if self._zero is None:
            self._zero = np.zeros(self.n, dtype=np.int64)
            self._zero.flags.writeable = False
        return self._zero

    def _false(self) -> BOOL:
        if self._no is None:
            self._no = np.zeros(self.n, dtype=bool)
            self._no.flags.writeable = False
        return self._no


class Lists:
    """The measures of a :class:`Measures` as Python lists, each converted once when first read.

    The engine reads a handful of measures of every segment, thousands of segments a run; reading one
    numpy element costs about as much as converting a whole column of a hundred segments to a list.
    """

    def __init__(self, measures: Measures) -> None:
        self._measures = measures
        self._values: dict[str, list[float]] = {}
        self._bounded: dict[str, list[bool]] = {}
        self._samples: dict[str, list[int]] = {}
        self.samples_total: list[int] = measures.samples_total.tolist()

    def value(self, name: str) -> list[float]:
        """The measure per group, NaN where it was not measured."""
        found = self._values.get(name)
        if found is None:
            found = self._values[name] = self._measures.value(name).tolist()
        return found

    def bounded(self, name: str) -> list[bool]:
        found = self._bounded.get(name)
        if found is None:
            found = self._bounded[name] = self._measures.bounded(name).tolist()
        return found

    def samples(self, name: str) -> list[int]:
        found = self._samples.get(name)
        if found is None:
            found = self._samples[name] = self._measures.samples(name).tolist()
        return found


def _ratio(num: npt.NDArray[Any], den: npt.NDArray[Any]) -> F64:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), math.nan)


def measures(data: SampleSet, group_of: I64, n: int, ctx: Context, sess: Sessions, session_group: I64) -> Measures:
    out = Measures(n)
    out.samples_total = np.bincount(group_of, minlength=n).astype(np.int64)
    metric = data.metric
    value = data.value

    # Every mean metric in one pass: a bin per (metric, group); each bin sums its samples in their order,
    # as a bincount over that metric's samples alone would.
    slot = _MEAN_SLOT[metric]
    keep = slot >= 0
    key = slot[keep].astype(np.int64) * n + group_of[keep]
    width = len(MEAN_METRICS) * n
    counts = np.bincount(key, minlength=width).reshape(len(MEAN_METRICS), n)
    sums = np.bincount(key, weights=value[keep], minlength=width).reshape(len(MEAN_METRICS), n)
    for i, name in enumerate(MEAN_METRICS):
        c = counts[i].astype(np.int64)
        if c.any():
            out.values[name] = _ratio(sums[i], c.astype(np.float64))
            out.counts[name] = c

    _transactions(out, data, group_of, n, ctx)
    _video(out, n, sess, session_group)
    _users(out, data, group_of, n)
    if ctx.dscp is not None:
        _dscp(out, data, group_of, n, ctx.dscp)
    _mos(out, n, ctx.codec)
    return out


def _transactions(out: Measures, data: SampleSet, group_of: I64, n: int, ctx: Context) -> None:
    metric, value = data.metric, data.value
    rt_sel = metric == mt.INDEX["response_time_ms"]
    err_sel = metric == mt.INDEX["errors"]
    if not rt_sel.any() and not err_sel.any():
        return
    groups = group_of[rt_sel]
    rt = value[rt_sel]
    errors = np.bincount(group_of[err_sel], weights=value[err_sel], minlength=n)
    n_rt = np.bincount(groups, minlength=n).astype(np.float64)
    if ctx.apdex_t_ms is not None:
        t = ctx.apdex_t_ms
        satisfied = np.bincount(groups, weights=(rt <= t).astype(np.float64), minlength=n)
        tolerating = np.bincount(groups, weights=((rt > t) & (rt <= 4 * t)).astype(np.float64), minlength=n)
        denominator = n_rt + (errors if ctx.errors_frustrated else 0.0)
        computed = _ratio(satisfied + tolerating / 2.0, denominator)
        direct = out.value("apdex")
        out.values["apdex"] = np.where(np.isnan(computed), direct, computed)
        out.counts["apdex"] = np.where(denominator > 0, denominator, out.samples("apdex")).astype(np.int64)
    rate = _ratio(100.0 * errors, n_rt + errors)
    out.values["error_rate_pct"] = np.where(np.isnan(rate), out.value("error_rate_pct"), rate)
    out.counts["error_rate_pct"] = np.where(n_rt + errors > 0, n_rt + errors, out.samples("error_rate_pct")).astype(
        np.int64
    )
    if rt_sel.any():
        # Sorted by group, values ascending within a group: values first, then a stable sort by group
        # (what np.lexsort((rt, groups)) gives, in about two thirds of its time; tied values are equal).
        # Group numbers that fit 16 bits are sorted as such: numpy's stable sort of them is a radix sort (the
        # same order as any stable sort, about ten times faster than sorting 64-bit numbers).
        by_value = np.argsort(rt)
        by_group = groups[by_value]
        order = by_value[np.argsort(by_group.astype(np.int16) if n <= 1 << 15 else by_group, kind="stable")]
        g_sorted, v_sorted = groups[order], rt[order]
        ids = np.arange(n)
        starts = np.searchsorted(g_sorted, ids, side="left")
        ends = np.searchsorted(g_sorted, ids, side="right")
        sizes = ends - starts
        rank = starts + np.ceil(PERCENTILE * sizes).astype(np.int64) - 1
        picked = v_sorted[np.clip(rank, 0, len(v_sorted) - 1)]
        out.values["response_time_ms"] = np.where(sizes > 0, picked, math.nan)
        out.counts["response_time_ms"] = sizes.astype(np.int64)


def _video(out: Measures, n: int, sess: Sessions, session_group: I64) -> None:
    ok = session_group >= 0
    if not ok.any():
        return
    g = session_group[ok]
    c = np.bincount(g, minlength=n).astype(np.float64)
    out.values["stall_score"] = _ratio(np.bincount(g, weights=sess.score[ok], minlength=n), c)
    out.counts["stall_score"] = c.astype(np.int64)
    out.counts["sessions"] = c.astype(np.int64)
    rebuf = np.bincount(g, weights=sess.rebuffering_s[ok], minlength=n)
    play = np.bincount(g, weights=sess.playing_s[ok], minlength=n)
    derived = _ratio(100.0 * rebuf, play + rebuf)
    direct = out.value("rebuffering_pct")
    out.values["rebuffering_pct"] = np.where(np.isnan(direct), derived, direct)
    out.counts["rebuffering_pct"] = np.where(np.isnan(direct), c, out.samples("rebuffering_pct")).astype(np.int64)


def _users(out: Measures, data: SampleSet, group_of: I64, n: int) -> None:
    sel = data.metric == mt.INDEX["users"]
    if sel.any():
        peak = np.full(n, math.nan)
        np.fmax.at(peak, group_of[sel], data.value[sel])
        out.values["users_max"] = peak
    if "sessions" not in out.counts:
        has = data.session >= 0
        if has.any():
            pairs = np.unique(group_of[has] * (len(data.sessions) + 1) + data.session[has])
            out.counts["sessions"] = np.bincount(pairs // (len(data.sessions) + 1), minlength=n).astype(np.int64)


def _dscp(out: Measures, data: SampleSet, group_of: I64, n: int, expected: float) -> None:
    sel = np.flatnonzero(data.metric == mt.INDEX["dscp"])
    if not len(sel):
        return
    groups = group_of[sel]
    seen = np.full(n, math.nan)
    seen[groups] = expected
    wrong = sel[data.value[sel] != expected]
    if len(wrong):
        first_groups, first = np.unique(group_of[wrong], return_index=True)
        seen[first_groups] = data.value[wrong][first]
    out.values["dscp"] = seen
    out.counts["dscp"] = np.bincount(groups, minlength=n).astype(np.int64)


def _mos(out: Measures, n: int, codec: str) -> None:
    delay, jitter, loss = out.value("one_way_delay_ms"), out.value("jitter_ms"), out.value("loss_pct")
    present = ~np.isnan(delay) | ~np.isnan(jitter) | ~np.isnan(loss)
    if not present.any():
        return
    bound = np.isnan(delay) | np.isnan(jitter) | np.isnan(loss)
    mos = mos_of(np.nan_to_num(delay), np.nan_to_num(jitter), np.nan_to_num(loss), codec)
    out.values["mos"] = np.where(present, mos, math.nan)
    out.bounds["mos"] = bound & present
    counts = [out.samples(k) for k in ("one_way_delay_ms", "jitter_ms", "loss_pct")]
    out.counts["mos"] = np.minimum.reduce(counts) if not bound.all() else np.maximum.reduce(counts)


def mos_of(delay_ms: F64, jitter_ms: F64, loss_pct: F64, codec_name: str) -> F64:
    """``emodel.voice_quality(d, j, l, codec_name).mos`` of each element, for whole arrays at once.

    The same operations in the same order as :mod:`controller.qoe.emodel` (``BurstR = 1``), so each value
    is the scalar one to the last bit: ``tests/test_measures_mos.py`` holds the two equal on generated
    inputs. The inputs are means of measured values, which the readers keep non-negative.
    """
    c = emodel.codec(codec_name)
    d = delay_ms + 2.0 * jitter_ms + emodel.FIXED_DELAY_MS
    id_value = np.where(d > emodel.D_KNEE, 0.024 * d + 0.11 * (d - emodel.D_KNEE), 0.024 * d)
    with np.errstate(invalid="ignore", divide="ignore"):
        ie_eff = np.where(loss_pct <= 0, c.ie, c.ie + (95.0 - c.ie) * loss_pct / (loss_pct / 1.0 + c.bpl))
    r = emodel.R0 - id_value - ie_eff
    curve = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    return np.where(r < 0, 1.0, np.where(r > 100, 4.5, curve))
