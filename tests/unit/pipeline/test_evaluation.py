"""Holdout scoring: metrics vs hand-computed values, buckets, bootstrap CIs, baselines, summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.evaluation import (
    baseline_predictions,
    bootstrap_ci,
    bootstrap_counts,
    bsm_from_iv,
    bucket_table,
    group_stats,
    metrics_from_stats,
    regression_metrics,
    summarise,
)
from pipeline.feature_engineer import contract_features
from pipeline.quant.black_scholes import black_price
from tests.factories import MARKET, good_quotes

CFG = OmegaConf.create({"min_mid_for_mape": 0.10, "bootstrap_samples": 200, "confidence": 0.9})


def holdout(days: int = 4, n: int = 12) -> pd.DataFrame:
    """`days` business days of good_quotes features with hand-set state columns."""
    frames = []
    for i, day in enumerate(pd.bdate_range("2026-03-02", periods=days)):
        f = contract_features(
            good_quotes(n=n, day=day.date(), vol=0.2 + 0.01 * i), MARKET, min_vega=0.0
        )
        prev = np.full(n, 0.2 + 0.01 * (i - 1))
        prev[0] = np.nan  # a new contract: falls back to the surface
        frames.append(f.assign(rv_20d=0.15, prev_iv=prev, prev_surface_iv=0.19 + 0.01 * i))
    return pd.concat(frames, ignore_index=True)


def test_regression_metrics_match_hand_computed_values():
    m = regression_metrics(
        actual_iv=[0.20, 0.30, 0.25],
        pred_iv=[0.25, 0.27, 0.25],
        actual_price=[0.05, 2.00, 1.00],
        pred_price=[0.06, 2.20, 0.90],
        bid=[0.04, 1.90, 0.95],
        ask=[0.06, 2.10, 1.05],
        min_mid=0.10,
    )
    assert m["n"] == 3
    assert m["iv_rmse"] == pytest.approx(np.sqrt((0.05**2 + 0.03**2 + 0) / 3))
    assert m["iv_mae"] == pytest.approx(0.08 / 3)
    assert m["iv_bias"] == pytest.approx(0.02 / 3)
    # IV: mean 0.25, SST = 0.0025 + 0.0025 + 0 = 0.005, SSE = 0.0034
    assert m["iv_r2"] == pytest.approx(1 - 0.0034 / 0.005)
    assert m["price_rmse"] == pytest.approx(np.sqrt((0.01**2 + 0.2**2 + 0.1**2) / 3))
    assert m["price_mae"] == pytest.approx(0.31 / 3)
    # MAPE only on mids ≥ 0.10: |0.2|/2 and |0.1|/1
    assert m["price_mape"] == pytest.approx((0.1 + 0.1) / 2)
    price_sst = sum((x - 3.05 / 3) ** 2 for x in (0.05, 2.0, 1.0))
    assert m["price_r2"] == pytest.approx(1 - (0.01**2 + 0.2**2 + 0.1**2) / price_sst)
    assert m["inside_spread_share"] == pytest.approx(1 / 3)  # 0.06 sits on the ask; others outside


def test_mape_is_nan_when_no_mid_reaches_the_floor():
    m = regression_metrics([0.2], [0.2], [0.05], [0.06], [0.04], [0.06], min_mid=0.10)
    assert np.isnan(m["price_mape"]) and np.isnan(m["iv_r2"])  # one row: no variance either


def test_bucket_table_uses_the_documented_edges():
    frame = pd.DataFrame({
        "std_moneyness": [-0.5, -0.49, -0.1, 0.0, 0.1, 0.11, 0.8, 0.0],
        "t_years": [1 / 12, 1 / 12, 0.1, 0.1, 0.5, 0.5, 2.0, 0.1],
        "iv": 0.2, "mid": 1.0, "bid": 0.9, "ask": 1.1,
    })  # fmt: skip
    preds = pd.DataFrame({"iv": [0.21, 0.22, 0.23, 0.20, 0.20, 0.20, 0.25, 0.24], "price": 1.0})
    table = bucket_table(frame, preds).set_index(["moneyness", "maturity"])
    assert table["n"].to_dict() == {
        ("(-inf,-0.5]", "<=1m"): 1, ("(-0.5,-0.1]", "<=1m"): 1, ("(-0.5,-0.1]", "1m-3m"): 1,
        ("(-0.1,0.1]", "1m-3m"): 2, ("(-0.1,0.1]", "3m-1y"): 1, ("(0.1,0.5]", "3m-1y"): 1,
        ("(0.5,inf)", ">1y"): 1,
    }  # fmt: skip
    assert table.loc[("(-0.1,0.1]", "1m-3m"), "iv_rmse"] == pytest.approx(
        np.sqrt((0 + 0.04**2) / 2)
    )
    assert table.loc[("(0.5,inf)", ">1y"), "iv_bias"] == pytest.approx(0.05)


def _noisy_dates(n_dates: int, seed: int = 3) -> pd.DataFrame:
    """Errors with a per-date shock, so the spread between dates drives the CI."""
    rng = np.random.default_rng(seed)
    shock = rng.normal(0, 0.01, n_dates)
    rows = [
        pd.DataFrame({"date": d, "err": shock[d] + rng.normal(0, 0.005, 50)})
        for d in range(n_dates)
    ]
    return pd.concat(rows, ignore_index=True)


def _rmse(f: pd.DataFrame) -> float:
    return float(np.sqrt(np.mean(f["err"] ** 2)))


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_dates():
    few, many = _noisy_dates(5), _noisy_dates(60)
    lo5, hi5 = bootstrap_ci(few, _rmse, "date", n=400, confidence=0.95, seed=1)
    lo60, hi60 = bootstrap_ci(many, _rmse, "date", n=400, confidence=0.95, seed=1)
    assert lo5 <= _rmse(few) <= hi5
    assert lo60 <= _rmse(many) <= hi60
    assert hi60 - lo60 < 0.5 * (hi5 - lo5)


def test_bootstrap_ci_is_seeded_and_handles_dict_metrics():
    f = _noisy_dates(8)
    first = bootstrap_ci(
        f, lambda g: {"rmse": _rmse(g), "n": len(g)}, f["date"].to_numpy(), 50, 0.9, 7
    )
    again = bootstrap_ci(
        f, lambda g: {"rmse": _rmse(g), "n": len(g)}, f["date"].to_numpy(), 50, 0.9, 7
    )
    assert first == again
    assert first["n"] == (400.0, 400.0)  # every resample keeps 8 dates of 50 rows
    assert first["rmse"][0] < first["rmse"][1]


def _direct(a_iv, p_iv, a_px, p_px, bid, ask, min_mid):
    """The figures computed straight from the rows (the definitions, no per-group sums)."""

    def r2(a, p):
        return 1 - np.sum((p - a) ** 2) / np.sum((a - a.mean()) ** 2)

    big = a_px >= min_mid
    return {
        "n": len(a_iv),
        "iv_rmse": np.sqrt(np.mean((p_iv - a_iv) ** 2)),
        "iv_mae": np.mean(np.abs(p_iv - a_iv)),
        "iv_bias": np.mean(p_iv - a_iv),
        "iv_r2": r2(a_iv, p_iv),
        "price_rmse": np.sqrt(np.mean((p_px - a_px) ** 2)),
        "price_mae": np.mean(np.abs(p_px - a_px)),
        "price_mape": np.mean(np.abs(p_px - a_px)[big] / a_px[big]),
        "price_r2": r2(a_px, p_px),
        "inside_spread_share": np.mean((p_px >= bid) & (p_px <= ask)),
    }


def test_a_resample_scored_from_per_date_sums_equals_rescoring_its_rows():
    rng = np.random.default_rng(11)
    n_dates, rows = 7, 300
    date = rng.integers(0, n_dates, rows)
    a_iv = 0.2 + 0.05 * rng.random(rows) + 0.02 * date  # dates differ in level: R² between-dates
    p_iv = a_iv + rng.normal(0, 0.01, rows)
    a_px, p_px = 10 * a_iv * rng.random(rows), 10 * p_iv * rng.random(rows)
    bid, ask = a_px - 0.05, a_px + 0.05
    cols = (a_iv, p_iv, a_px, p_px, bid, ask)
    stats = group_stats(*cols, 0.1, date, n_dates)
    counts = bootstrap_counts(n_dates, 5, seed=2)
    fast = metrics_from_stats(stats, counts)
    for i, weights in enumerate(counts):
        picked = np.concatenate([np.flatnonzero(date == d) for d in range(n_dates)
                                 for _ in range(int(weights[d]))])  # fmt: skip
        slow = _direct(*(c[picked] for c in cols), 0.1)
        for key, value in slow.items():
            assert fast[key][i] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_baselines_use_only_yesterdays_information():
    h = holdout()
    base = baseline_predictions(h)
    np.testing.assert_allclose(base["baseline_hist_vol"]["iv"], 0.15)
    expected_prev = h["prev_iv"].fillna(h["prev_surface_iv"])
    np.testing.assert_allclose(base["baseline_prev_iv"]["iv"], expected_prev)
    assert np.isnan(h["prev_iv"]).sum() == 4  # the fallback was exercised
    np.testing.assert_allclose(
        base["baseline_prev_iv"]["price"],
        black_price(
            h["forward"],
            h["strike"],
            h["t_years"],
            h["discount"],
            expected_prev,
            h["is_call"].astype(bool),
        ),
    )
    # today's target, mid and quotes change: the baselines do not
    moved = h.assign(iv=h["iv"] + 0.1, mid=h["mid"] * 2, bid=h["bid"] * 2, ask=h["ask"] * 2)
    for name, frame in baseline_predictions(moved).items():
        pd.testing.assert_frame_equal(frame, base[name])


def test_summarise_scores_every_predictor_on_the_same_rows():
    h = holdout()
    truth = pd.DataFrame({"iv": h["iv"], "price": bsm_from_iv(h, h["iv"])})
    preds = {"candidate": truth, **baseline_predictions(h)}
    preds["baseline_hist_vol"].loc[3, ["iv", "price"]] = np.nan  # one row it cannot price
    s = summarise(h, preds, CFG, seed=0)
    json.dumps(s, allow_nan=False)  # strict JSON: NaN became null
    assert s["holdout"]["rows"] == len(h) and s["holdout"]["rows_scored"] == len(h) - 1
    assert s["holdout"]["days"] == 4 and s["holdout"]["start"] == "2026-03-02"
    assert s["coverage"]["baseline_hist_vol"] == pytest.approx(1 - 1 / len(h))
    cand = s["metrics"]["candidate"]
    assert cand["n"] == len(h) - 1 and cand["iv_rmse"] == pytest.approx(0, abs=1e-12)
    assert cand["iv_skill_vs_baseline_hist_vol"] == pytest.approx(1.0)
    assert cand["iv_skill_vs_baseline_prev_iv"] == pytest.approx(1.0)
    assert "iv_skill_vs_baseline_prev_iv" not in s["metrics"]["baseline_hist_vol"]
    lo, hi = s["ci"]["baseline_prev_iv"]["iv_rmse"]
    assert lo <= s["metrics"]["baseline_prev_iv"]["iv_rmse"] <= hi
    assert {b["model"] for b in s["buckets"]} == set(preds)
    assert s["quant"]["candidate"]["bounds"]["share"] == 0.0
    assert set(s["quant"]) == {"candidate", "market_mid"}


def test_summarise_rejects_misaligned_predictions():
    h = holdout(days=1)
    with pytest.raises(ValueError, match="candidate"):
        summarise(h, {"candidate": pd.DataFrame({"iv": [0.2], "price": [1.0]})}, CFG)
