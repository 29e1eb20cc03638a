"""Error budgets and burn-rate alerts of many segments at once equal the one-segment definitions exactly."""

from __future__ import annotations

import numpy as np
import pytest

from controller.evaluate import slo


def matrices() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = [np.zeros((0, 5), dtype=np.int8), np.zeros((4, 0), dtype=np.int8)]
    for windows in (1, 2, 12, 73, 1000):
        shares = (0.1, 0.8, 0.05, 0.05)
        status = rng.choice([slo.EMPTY, slo.GOOD, slo.BAD, slo.UNKNOWN], p=shares, size=(30, windows))
        status[:5] = slo.GOOD  # alike rows: their budgets and alerts are shared, and must still be right
        status[5:8, -3:] = slo.BAD
        out.append(status.astype(np.int8))
    return out


@pytest.mark.parametrize("objective_pct", [99.0, 90.0, 99.99, 100.0, 0.0])
@pytest.mark.parametrize("window_s", [60.0, 300.0, 7200.0])
def test_rows_at_once_equal_one_row_at_a_time(objective_pct: float, window_s: float) -> None:
    period_s = 30 * 86400.0
    for status in matrices():
        budgets = slo.error_budgets(status, window_s, objective_pct, period_s)
        assert budgets == [slo.error_budget(row, window_s, objective_pct, period_s) for row in status]
        alerts = slo.burn_alerts_rows(status, window_s, objective_pct, period_s)
        assert alerts == [slo.burn_alerts(row, window_s, objective_pct, period_s) for row in status]
        assert len(budgets) == len(alerts) == status.shape[0]
