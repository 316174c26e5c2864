"""A real Evidently 0.7 report on small frames: known drift is detected, no drift is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    UNDERLYING_DAY_FEATURES,
    build_report,
    errors,
    evidently_frame,
    figures,
    metric_values,
    sample,
    save_html,
)
from tests.conftest import compose_config

FEATURES = ["rv_20d", "log_moneyness", "prev_iv"]  # rv_20d: one value per underlying and day
UNDERLYINGS = ["SPY", "_SPX", "QQQ", "IWM"]
# the monitor's drift limit as shipped (configs/monitor/default.yaml), not restated here
DRIFT_SHARE = float(compose_config([]).monitor.drift_share)


def report(current: pd.DataFrame, reference: pd.DataFrame, features=FEATURES, **kwargs):
    """build_report with the shipped drift limit."""
    return build_report(current, reference, features, drift_share=DRIFT_SHARE, **kwargs)


def scored(
    n: int, seed: int, shift: float = 0.0, noise: float = 0.01, days: int = 1
) -> pd.DataFrame:
    """A scored frame of `days` quote dates: features, iv, iv_pred, underlying and quote_date;
    rv_20d holds one value per underlying-day (its level per underlying plus a daily wobble);
    `shift` moves every feature."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2026-03-02", periods=days)
    frame = pd.DataFrame({
        "underlying": rng.choice(UNDERLYINGS, n),
        "quote_date": dates[rng.integers(0, days, n)],
        "log_moneyness": rng.normal(0.0, 0.1, n) + shift,
        "prev_iv": rng.normal(0.25, 0.05, n) + shift,
    })  # fmt: skip
    level = dict(zip(UNDERLYINGS, [0.12, 0.15, 0.2, 0.25], strict=True))
    wobble = {(u, d): rng.normal(0.0, 0.01) for u in UNDERLYINGS for d in dates}
    frame["rv_20d"] = [level[u] + wobble[u, d] + shift
                       for u, d in zip(frame["underlying"], frame["quote_date"], strict=True)]  # fmt: skip
    frame["iv"] = frame["prev_iv"] + rng.normal(0, 0.01, n)
    frame["iv_pred"] = frame["iv"] + rng.normal(0, noise, n)
    return frame


@pytest.fixture(scope="module")
def reference():
    return scored(3000, seed=1, days=10)


def test_known_drift_is_detected(reference, tmp_path):
    snapshot = report(scored(3000, seed=2, shift=0.3, noise=0.03), reference, FEATURES)
    found = figures(snapshot, FEATURES)
    assert found["drift_share"] == 1.0 and found["drifted_count"] == 3
    assert found["drifted_columns"] == FEATURES
    scores = found["drift_scores"]  # Wasserstein distance per contract; KS p-value per day
    assert scores["log_moneyness"] > 0.1 and scores["prev_iv"] > 0.1 and scores["rv_20d"] < 0.05
    assert found["sample_rmse"] == pytest.approx(0.03, rel=0.1)
    assert set(found["sample_mae_by_underlying"]) == set(UNDERLYINGS)
    html = save_html(snapshot, tmp_path / "drift.html")
    assert html.stat().st_size > 10_000 and "<html" in html.read_text()[:2000].lower()


def test_no_drift_is_not_detected(reference):
    found = figures(report(scored(3000, seed=3), reference, FEATURES), FEATURES)
    assert found["drift_share"] == 0.0 and found["drifted_columns"] == []
    assert found["sample_rmse"] == pytest.approx(0.01, rel=0.1)


def test_a_daily_wobble_of_underlying_day_features_is_not_drift(reference):
    """One day's rv_20d (4 values) repeated over 3,000 rows: tested row by row, the wobble of 4
    numbers reads as a shifted distribution; tested per underlying-day, it is not drift. A
    market-wide level change of the same features is."""
    current = scored(3000, seed=6)
    current["rv_20d"] += 0.02  # two wobbles: still inside the reference's spread per underlying
    ours = figures(report(current, reference, FEATURES), FEATURES)
    assert "rv_20d" not in ours["drifted_columns"]
    # the same column under a name tested row by row: drifted
    rows = ["log_moneyness", "prev_iv", "rv_20d_rows"]
    copy = {"rv_20d": "rv_20d_rows"}
    per_row = report(current.rename(columns=copy), reference.rename(columns=copy), rows)
    assert "rv_20d_rows" in figures(per_row, rows)["drifted_columns"]
    shocked = scored(3000, seed=6)
    shocked["rv_20d"] *= 2.0  # a volatility regime shock: every underlying's level doubles
    assert "rv_20d" in figures(report(shocked, reference, FEATURES), FEATURES)["drifted_columns"]


def test_underlying_day_features_keep_one_row_per_underlying_day(reference):
    assert "rv_20d" in UNDERLYING_DAY_FEATURES and "log_moneyness" not in UNDERLYING_DAY_FEATURES
    frame = evidently_frame(reference, FEATURES, UNDERLYINGS)
    kept = frame["rv_20d"].notna()
    assert kept.sum() == reference[["underlying", "quote_date"]].drop_duplicates().shape[0] == 40
    assert frame["log_moneyness"].notna().all() and len(frame) == len(reference)


def test_results_are_read_by_metric_name_not_position(reference):
    snapshot = report(scored(500, seed=4), reference, FEATURES[::-1])
    values = metric_values(snapshot)
    assert {"DriftedColumnsCount", "RMSE", "MAE", "ValueDrift[rv_20d]",
            "MeanValue[abs_error__SPY]"} <= set(values)  # fmt: skip
    assert figures(snapshot, FEATURES)["drift_scores"].keys() == set(FEATURES)


def test_errors_and_per_underlying_mae_agree_with_numpy(reference):
    snapshot = report(reference, reference, FEATURES)
    spy = reference[reference["underlying"] == "SPY"]
    expected = errors(spy["iv"], spy["iv_pred"])["mae"]
    assert figures(snapshot, FEATURES)["sample_mae_by_underlying"]["SPY"] == pytest.approx(expected)


def test_errors_skip_non_finite_rows():
    assert errors([0.2, 0.3, np.nan], [0.25, 0.3, 0.1]) == pytest.approx(
        {"n": 2, "rmse": np.sqrt(0.05**2 / 2), "mae": 0.025}
    )
    assert errors([np.nan], [0.1])["n"] == 0


def test_sample_is_seeded_and_bounded():
    frame = scored(1000, seed=5)
    assert sample(frame, 100, seed=7).equals(sample(frame, 100, seed=7))
    assert len(sample(frame, 100, seed=7)) == 100
    assert len(sample(frame, 5000, seed=7)) == 1000
