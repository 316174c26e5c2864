"""A real Evidently 0.7 report on small frames: known drift is detected, no drift is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import build_report, errors, figures, metric_values, sample, save_html

FEATURES = ["rv_20d", "log_moneyness", "prev_iv"]


def scored(n: int, seed: int, shift: float = 0.0, noise: float = 0.01) -> pd.DataFrame:
    """A scored frame: features, iv, iv_pred and underlying; `shift` moves every feature."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "rv_20d": rng.normal(0.2, 0.05, n) + shift,
        "log_moneyness": rng.normal(0.0, 0.1, n) + shift,
        "prev_iv": rng.normal(0.25, 0.05, n) + shift,
        "underlying": rng.choice(["SPY", "_SPX"], n),
    })  # fmt: skip
    frame["iv"] = frame["prev_iv"] + rng.normal(0, 0.01, n)
    frame["iv_pred"] = frame["iv"] + rng.normal(0, noise, n)
    return frame


@pytest.fixture(scope="module")
def reference():
    return scored(3000, seed=1)


def test_known_drift_is_detected(reference, tmp_path):
    snapshot = build_report(scored(3000, seed=2, shift=0.3, noise=0.03), reference, FEATURES)
    found = figures(snapshot, FEATURES)
    assert found["drift_share"] == 1.0 and found["drifted_count"] == 3
    assert found["drifted_columns"] == FEATURES
    assert all(score > 0.1 for score in found["drift_scores"].values())
    assert found["sample_rmse"] == pytest.approx(0.03, rel=0.1)
    assert set(found["sample_mae_by_underlying"]) == {"SPY", "_SPX"}
    html = save_html(snapshot, tmp_path / "drift.html")
    assert html.stat().st_size > 10_000 and "<html" in html.read_text()[:2000].lower()


def test_no_drift_is_not_detected(reference):
    found = figures(build_report(scored(3000, seed=3), reference, FEATURES), FEATURES)
    assert found["drift_share"] == 0.0 and found["drifted_columns"] == []
    assert found["sample_rmse"] == pytest.approx(0.01, rel=0.1)


def test_results_are_read_by_metric_name_not_position(reference):
    snapshot = build_report(scored(500, seed=4), reference, FEATURES[::-1])
    values = metric_values(snapshot)
    assert {"DriftedColumnsCount", "RMSE", "MAE", "ValueDrift[rv_20d]",
            "MeanValue[abs_error__SPY]"} <= set(values)  # fmt: skip
    assert figures(snapshot, FEATURES)["drift_scores"].keys() == set(FEATURES)


def test_errors_and_per_underlying_mae_agree_with_numpy(reference):
    snapshot = build_report(reference, reference, FEATURES)
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
