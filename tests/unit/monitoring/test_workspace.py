"""The local Evidently workspace: one snapshot per day (a re-run replaces it), the dashboard."""

from __future__ import annotations

import datetime as dt

from monitoring.workspace import add_day, dashboard_panels, day_count
from tests.unit.monitoring.test_drift import FEATURES, report, scored

PROJECT = "tests monitoring"


def _snapshot(day: dt.date, seed: int):
    return report(scored(400, seed), scored(400, 0), FEATURES,
                  timestamp=dt.datetime.combine(day, dt.time(16)),
                  metadata={"date": str(day)})  # fmt: skip


def test_one_snapshot_per_day_and_a_dashboard_with_per_underlying_panels(tmp_path):
    days = [dt.date(2026, 3, 30), dt.date(2026, 3, 31)]
    for i, day in enumerate(days):
        add_day(tmp_path, PROJECT, _snapshot(day, i + 1), day, FEATURES, ["SPY", "_SPX"])
    add_day(tmp_path, PROJECT, _snapshot(days[1], 9), days[1], FEATURES, ["SPY", "_SPX", "QQQ"])
    assert day_count(tmp_path, PROJECT) == {"2026-03-30": 1, "2026-03-31": 1}
    panels = dashboard_panels(tmp_path, PROJECT)
    assert panels["Drift"] == ["Share of drifted features (last day)", "Share of drifted features",
                               "Drift score per feature"]  # fmt: skip
    assert panels["Performance"] == ["IV RMSE", "IV MAE"]
    assert panels["Per underlying"] == ["IV MAE: SPY", "IV MAE: _SPX", "IV MAE: QQQ"]
