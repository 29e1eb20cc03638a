"""Error budgets and multi-window burn-rate alerts (Google SRE Workbook, "Alerting on SLOs").

The objective is a share of evaluation windows in target, e.g. 99 % of
5-minute windows over 30 days. A window is *good* when every primary check
passed in it, *bad* when one failed, *unknown* when it had data but not
enough to decide, and *empty* without data. Empty and unknown windows are
never counted as good: compliance is given as a range, from "all of them were
bad" to "all of them were good", and the objective is met only when even the
low end reaches it.

Burn rate over a look-back = (bad / decided windows in it) / (1 - objective):
1x spends the budget exactly over the period. Alerts fire when both a long
and a short look-back burn at least the threshold. Each alert may spend a
share of the period's budget in its long look-back (the workbook's table: 2 %
in 1 h, short 5 min, page; 5 % in 6 h, short 30 min, page; 10 % in 3 d, short
6 h, ticket), so its threshold follows from the period, as Sloth computes it:
``factor = period x share / long look-back``: 14.4x, 6x and 1x for 30 days,
13.44x, 5.6x and 0.93x for 28 days, 3.36x, 1.4x and 0.23x for 7 days.
Look-backs shorter than one window use the last window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

EMPTY, GOOD, BAD, UNKNOWN = 0, 1, 2, 3
# (severity, long look-back s, short look-back s, share of the period's error budget the long one may spend)
ALERTS: tuple[tuple[str, float, float, float], ...] = (
    ("page", 3600.0, 300.0, 0.02),
    ("page", 6 * 3600.0, 1800.0, 0.05),
    ("ticket", 3 * 86400.0, 6 * 3600.0, 0.10),
)

Status = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class ErrorBudget:
    objective_pct: float
    window_s: float
    period_s: float
    windows: int
    good: int
    bad: int
    unknown: int
    empty: int
    compliance_pct: float | None  # good / decided windows
    compliance_low_pct: float  # unknown and empty counted as bad
    compliance_high_pct: float  # unknown and empty counted as good
    budget_consumed_pct: float | None  # bad windows / bad windows the period allows
    met: bool | None  # None: cannot tell (too many windows without a verdict)

    def to_json(self) -> dict[str, object]:
        return {
            "objective_pct": self.objective_pct,
            "window_s": self.window_s,
            "period_s": self.period_s,
            "windows": self.windows,
            "good": self.good,
            "bad": self.bad,
            "unknown": self.unknown,
            "empty": self.empty,
            "compliance_pct": _r(self.compliance_pct),
            "compliance_low_pct": _r(self.compliance_low_pct),
            "compliance_high_pct": _r(self.compliance_high_pct),
            "budget_consumed_pct": _r(self.budget_consumed_pct),
            "met": self.met,
        }


def burn_factor(period_s: float, budget_share: float, long_s: float) -> float:
    """The burn rate that spends ``budget_share`` of the period's error budget in ``long_s`` (SRE workbook, Sloth).

    Burning at 1x spends the whole budget in ``period_s``; spending ``budget_share`` of it in ``long_s``
    takes ``period_s x budget_share / long_s`` times that speed: 30 d x 2 % / 1 h = 14.4.
    """
    return period_s * budget_share / long_s


@dataclass(frozen=True, slots=True)
class BurnAlert:
    severity: str
    long_s: float
    short_s: float
    threshold: float  # burn_factor(period, budget_share, long_s)
    budget_share: float  # of the period's error budget, spent in long_s when burning at the threshold
    long_burn: float | None  # None: no decided window in the look-back
    short_burn: float | None
    covered_s: float  # how much of the long look-back the data covers
    firing: bool | None

    @property
    def factor(self) -> str:
        """The threshold as people read it: 14.4x, 3.36x, 0.93x."""
        return f"{round(self.threshold, 2):g}x"

    @property
    def name(self) -> str:
        return f"{self.factor} over {_span(self.long_s)} and {_span(self.short_s)}"

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "name": self.name,
            "long_window_s": self.long_s,
            "short_window_s": self.short_s,
            "threshold": _r(self.threshold),
            "budget_share_pct": _r(100.0 * self.budget_share),
            "long_burn": _r(self.long_burn),
            "short_burn": _r(self.short_burn),
            "covered_s": self.covered_s,
            "firing": self.firing,
        }


def _r(x: float | None) -> float | None:
    """Rounded for reports; an unbounded burn (objective 100 %) is reported as null."""
    return None if x is None or not math.isfinite(x) else round(x, 4)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def error_budget(status: Status, window_s: float, objective_pct: float, period_s: float) -> ErrorBudget:
    """``status``: one code per window of the evaluated range (EMPTY, GOOD, BAD, UNKNOWN), oldest first."""
    counts = np.bincount(status.astype(np.int64), minlength=4)
    empty, good, bad, unknown = (int(counts[k]) for k in (EMPTY, GOOD, BAD, UNKNOWN))
    return _budget(empty, good, bad, unknown, int(status.shape[0]), window_s, objective_pct, period_s)


def _budget(
    empty: int, good: int, bad: int, unknown: int, windows: int, window_s: float, objective_pct: float, period_s: float
) -> ErrorBudget:
    """The budget from the window counts; one definition for :func:`error_budget` and :func:`error_budgets`."""
    decided = good + bad
    low = 100.0 * good / windows if windows else 0.0
    high = 100.0 * (good + unknown + empty) / windows if windows else 100.0
    allowed = (1.0 - objective_pct / 100.0) * period_s / window_s
    consumed = (100.0 * bad / allowed if allowed > 0 else (0.0 if bad == 0 else None)) if windows else None
    met: bool | None
    if low >= objective_pct - 1e-9:
        met = True
    elif high < objective_pct - 1e-9:
        met = False
    else:
        met = None
    return ErrorBudget(
        objective_pct=objective_pct,
        window_s=window_s,
        period_s=period_s,
        windows=windows,
        good=good,
        bad=bad,
        unknown=unknown,
        empty=empty,
        compliance_pct=100.0 * good / decided if decided else None,
        compliance_low_pct=low,
        compliance_high_pct=high,
        budget_consumed_pct=consumed,
        met=met,
    )


def burn_rate(status: Status, lookback_s: float, window_s: float, objective_pct: float) -> float | None:
    n = max(1, math.ceil(lookback_s / window_s - 1e-9))
    tail = status[-n:]
    good = int(np.count_nonzero(tail == GOOD))
    bad = int(np.count_nonzero(tail == BAD))
    if good + bad == 0:
        return None
    budget = 1.0 - objective_pct / 100.0
    if budget <= 0:
        return math.inf if bad else 0.0
    return (bad / (good + bad)) / budget


def burn_alerts(status: Status, window_s: float, objective_pct: float, period_s: float) -> tuple[BurnAlert, ...]:
    """The multi-window alerts of one row of windows; thresholds from ``period_s`` (:func:`burn_factor`)."""
    out = []
    for severity, long_s, short_s, share in ALERTS:
        threshold = burn_factor(period_s, share, long_s)
        long_burn = burn_rate(status, long_s, window_s, objective_pct)
        short_burn = burn_rate(status, short_s, window_s, objective_pct)
        firing = None if long_burn is None or short_burn is None else (long_burn >= threshold <= short_burn)
        covered = min(long_s, status.shape[0] * window_s)
        out.append(BurnAlert(severity, long_s, short_s, threshold, share, long_burn, short_burn, covered, firing))
    return tuple(out)


def _row_counts(status: Status, codes: tuple[int, ...]) -> list[list[int]]:
    """Per row of a (rows x windows) matrix, how many windows have each of ``codes``, in one numpy pass each."""
    if not status.shape[1]:
        return [[0] * len(codes) for _ in range(status.shape[0])]
    counts: list[list[int]] = np.stack([np.count_nonzero(status == c, axis=1) for c in codes], axis=1).tolist()
    return counts


def error_budgets(status: Status, window_s: float, objective_pct: float, period_s: float) -> list[ErrorBudget]:
    """:func:`error_budget` for every row of a (segments x windows) matrix, counted in one pass.

    Rows with the same counts have the same (frozen) budget, so it is made once and shared: a large
    evaluation has thousands of segments but few distinct counts.
    """
    windows = int(status.shape[1])
    made: dict[tuple[int, ...], ErrorBudget] = {}
    out = []
    for empty, good, bad, unknown in _row_counts(status, (EMPTY, GOOD, BAD, UNKNOWN)):
        key = (empty, good, bad, unknown)
        budget = made.get(key)
        if budget is None:
            budget = made[key] = _budget(empty, good, bad, unknown, windows, window_s, objective_pct, period_s)
        out.append(budget)
    return out


def _burn(good: int, bad: int, budget: float) -> float | None:
    """Burn rate from the decided windows of a look-back, as :func:`burn_rate` computes it."""
    if good + bad == 0:
        return None
    if budget <= 0:
        return math.inf if bad else 0.0
    return (bad / (good + bad)) / budget


def burn_alerts_rows(
    status: Status, window_s: float, objective_pct: float, period_s: float
) -> list[tuple[BurnAlert, ...]]:
    """:func:`burn_alerts` for every row of a (segments x windows) matrix, counted with numpy over the rows.

    Rows whose look-backs hold the same counts get the same (frozen) alerts, made once and shared.
    """
    windows = status.shape[1]
    budget = 1.0 - objective_pct / 100.0
    spans = sorted({s for _, long_s, short_s, _ in ALERTS for s in (long_s, short_s)})
    columns: list[list[int]] = []  # per look-back: good counts, then bad counts, one entry per row
    for span in spans:
        n = max(1, math.ceil(span / window_s - 1e-9))
        tail = status[:, -n:] if windows else status
        good, bad = np.count_nonzero(tail == GOOD, axis=1), np.count_nonzero(tail == BAD, axis=1)
        columns += [good.tolist(), bad.tolist()]
    at = {span: 2 * i for i, span in enumerate(spans)}
    made: dict[tuple[int, ...], tuple[BurnAlert, ...]] = {}
    out = []
    for key in zip(*columns, strict=True) if columns and status.shape[0] else ():
        alerts = made.get(key)
        if alerts is None:
            made_alerts = []
            for severity, long_s, short_s, share in ALERTS:
                threshold = burn_factor(period_s, share, long_s)
                lb = _burn(key[at[long_s]], key[at[long_s] + 1], budget)
                sb = _burn(key[at[short_s]], key[at[short_s] + 1], budget)
                firing = None if lb is None or sb is None else (lb >= threshold <= sb)
                covered = min(long_s, windows * window_s)
                made_alerts.append(BurnAlert(severity, long_s, short_s, threshold, share, lb, sb, covered, firing))
            alerts = made[key] = tuple(made_alerts)
        out.append(alerts)
    return out
