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
from pipeline.features import contract_features
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


def test_a_new_contracts_previous_iv_is_yesterdays_smile_then_surface():
    h = holdout()
    smile = np.full(len(h), 0.25)
    smile[0] = np.nan  # no smile fitted at the first day's new contract: the surface
    h["prev_smile_iv"] = smile
    iv = baseline_predictions(h)["baseline_prev_iv"]["iv"].to_numpy()
    new = h["prev_iv"].isna().to_numpy()
    assert new.sum() == 4
    assert iv[0] == pytest.approx(h.loc[0, "prev_surface_iv"])  # no smile there
    np.testing.assert_allclose(iv[new][1:], 0.25)  # the smile re-read at the contract
    np.testing.assert_allclose(iv[~new], h["prev_iv"][~new])  # a known contract: its own IV


def test_summarise_scores_every_predictor_on_the_same_rows():
    h = holdout()
    truth = pd.DataFrame({"iv": h["iv"], "price": bsm_from_iv(h, h["iv"])})
    preds = {"candidate": truth, **baseline_predictions(h)}
    preds["baseline_hist_vol"].loc[3, ["iv", "price"]] = np.nan  # one row it cannot price
    s = summarise(h, preds, CFG, seed=0)
    json.dumps(s, allow_nan=False)  # strict JSON: NaN became null
    informative = (h["moneyness_class"] != "ITM").to_numpy()
    assert informative[3] and not informative.all()  # row 3 is one the headline scores
    n_scored = int(informative.sum()) - 1
    assert s["holdout"]["rows"] == len(h) and s["holdout"]["rows_finite"] == len(h) - 1
    assert s["holdout"]["rows_scored"] == n_scored  # informative finite rows
    assert s["holdout"]["days"] == 4 and s["holdout"]["start"] == "2026-03-02"
    assert s["coverage"]["baseline_hist_vol"] == pytest.approx(1 - 1 / len(h))
    assert {m["n"] for m in s["metrics"].values()} == {n_scored}
    assert {m["n"] for m in s["scopes"]["all"].values()} == {len(h) - 1}
    cand = s["metrics"]["candidate"]
    assert cand["n"] == n_scored and cand["iv_rmse"] == pytest.approx(0, abs=1e-12)
    assert cand["iv_skill_vs_baseline_hist_vol"] == pytest.approx(1.0)
    assert cand["iv_skill_vs_baseline_prev_iv"] == pytest.approx(1.0)
    assert "iv_skill_vs_baseline_prev_iv" not in s["metrics"]["baseline_hist_vol"]
    lo, hi = s["ci"]["baseline_prev_iv"]["iv_rmse"]
    assert lo <= s["metrics"]["baseline_prev_iv"]["iv_rmse"] <= hi
    assert s["config"]["bootstrap_unit"] == "date"  # no min_bootstrap_days configured
    assert {b["model"] for b in s["buckets"]} == set(preds)
    assert sum(b["n"] for b in s["buckets"] if b["model"] == "candidate") == n_scored
    assert s["quant"]["candidate"]["bounds"]["share"] == 0.0
    assert set(s["quant"]) == {"candidate", "market_mid"}


def _predictor(h: pd.DataFrame, iv) -> pd.DataFrame:
    iv = np.asarray(iv, float)
    return pd.DataFrame({"iv": iv, "price": bsm_from_iv(h, iv)})


def _rmse_of(errors) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def test_the_headline_is_on_otm_and_atm_quotes_and_itm_is_reported_under_scopes():
    h = holdout()
    cls = h["moneyness_class"].to_numpy()
    itm = cls == "ITM"
    assert set(cls) == {"OTM", "ATM", "ITM"}
    # the candidate is exact on informative quotes and 5 vol points off on ITM ones
    preds = {"candidate": _predictor(h, h["iv"] + np.where(itm, 0.05, 0.0)),
             **baseline_predictions(h)}  # fmt: skip
    s = summarise(h, preds, CFG, seed=0)
    n_informative = int((~itm).sum())
    assert s["holdout"]["rows_scored"] == n_informative
    assert s["holdout"]["rows_finite"] == len(h)
    cand = s["metrics"]["candidate"]
    assert cand["n"] == n_informative and cand["iv_rmse"] == pytest.approx(0, abs=1e-12)
    assert s["ci"]["candidate"]["iv_rmse"] == pytest.approx([0, 0], abs=1e-12)
    prev = preds["baseline_prev_iv"]["iv"].to_numpy() - h["iv"].to_numpy()
    assert s["metrics"]["baseline_prev_iv"]["iv_rmse"] == pytest.approx(_rmse_of(prev[~itm]))

    scopes = s["scopes"]
    assert set(scopes) >= {"all", "OTM+ATM", "OTM", "ATM", "ITM"}
    for scope, rows in (("all", np.ones(len(h), bool)), ("OTM+ATM", ~itm), ("OTM", cls == "OTM"),
                        ("ATM", cls == "ATM"), ("ITM", itm)):  # fmt: skip
        assert set(scopes[scope]) == set(preds)
        for model in preds:
            assert scopes[scope][model]["n"] == rows.sum(), (scope, model)
        assert scopes[scope]["candidate"]["iv_rmse"] == pytest.approx(
            _rmse_of(np.where(itm, 0.05, 0.0)[rows]), abs=1e-12
        )
        assert scopes[scope]["baseline_prev_iv"]["iv_rmse"] == pytest.approx(_rmse_of(prev[rows]))
    assert scopes["ITM"]["candidate"]["iv_rmse"] == pytest.approx(0.05)
    # the OTM+ATM scope is the headline; each scope has the skills vs the baselines
    for key in ("n", "iv_rmse", "iv_mae", "price_rmse", "iv_skill_vs_baseline_prev_iv"):
        assert scopes["OTM+ATM"]["candidate"][key] == pytest.approx(cand[key], abs=1e-12)
    assert scopes["ITM"]["candidate"]["iv_skill_vs_baseline_prev_iv"] == pytest.approx(
        1 - 0.05 / _rmse_of(prev[itm])
    )


def test_the_moneyness_class_comes_from_the_geometry_when_the_table_has_none():
    """ATM: |std_moneyness| <= 0.1 (inclusive); OTM: a call above or a put below that band."""
    h = holdout(days=1).drop(columns="moneyness_class")
    assert list(h["is_call"].astype(bool)) == [True, False] * 6
    h["std_moneyness"] = [-0.1, 0.1, 0.1001, 0.1001, -0.1001, -0.1001,
                          0.5, -0.5, -0.5, 0.5, 0.0, 0.0]  # fmt: skip
    itm = np.isin(np.arange(12), [3, 4, 8, 9])  # a put above, a call below the band
    atm = np.isin(np.arange(12), [0, 1, 10, 11])
    preds = {"candidate": _predictor(h, h["iv"] + np.where(itm, 0.05, 0.0)),
             **baseline_predictions(h)}  # fmt: skip
    s = summarise(h, preds, CFG)
    assert s["holdout"]["rows_scored"] == 8
    assert s["metrics"]["candidate"]["iv_rmse"] == pytest.approx(0, abs=1e-12)
    counts = {c: s["scopes"][c]["candidate"]["n"] for c in ("OTM", "ATM", "ITM")}
    assert counts == {"OTM": 4, "ATM": atm.sum(), "ITM": itm.sum()}
    assert s["scopes"]["ITM"]["candidate"]["iv_rmse"] == pytest.approx(0.05)
    # a moneyness_class column, when there is one, is what decides
    relabelled = summarise(h.assign(moneyness_class=np.where(atm, "ATM", "ITM")), preds, CFG)
    assert relabelled["holdout"]["rows_scored"] == 4
    assert set(relabelled["scopes"]) >= {"ATM", "ITM"} and "OTM" not in relabelled["scopes"]


def test_spread_scopes_bucket_every_scored_row_by_its_spread_in_vol():
    h = holdout(days=1)
    spread = np.array([0.001, 0.005, 0.0051, 0.01, 0.015, 0.02,
                       0.03, 0.05, 0.2, np.nan, 0.004, 0.0075])  # fmt: skip
    h["spread_iv"] = spread
    # each row is off by its own spread: a bucket's RMSE says which rows it holds
    preds = {"candidate": _predictor(h, h["iv"] + np.nan_to_num(spread)),
             **baseline_predictions(h)}  # fmt: skip
    scopes = summarise(h, preds, CFG)["scopes"]
    expected = {  # right-closed, in vol points: (0, 0.5], (0.5, 1], (1, 2], (2, 5], (5, inf)
        "spread <=0.5": [0.001, 0.005, 0.004],
        "spread 0.5-1": [0.0051, 0.01, 0.0075],
        "spread 1-2": [0.015, 0.02],
        "spread 2-5": [0.03, 0.05],
        "spread >5": [0.2],
    }
    assert sorted(k for k in scopes if k.startswith("spread")) == sorted(expected)
    for scope, rows in expected.items():
        cand = scopes[scope]["candidate"]
        assert cand["n"] == len(rows), scope  # ITM quotes included: every scored row
        assert cand["iv_rmse"] == pytest.approx(_rmse_of(rows), rel=1e-9), scope
        assert "iv_skill_vs_baseline_prev_iv" in cand
    assert sum(scopes[k]["candidate"]["n"] for k in expected) == 11  # NaN spread: no bucket
    # empty buckets are left out, and no spread_iv column gives no spread scope
    tight = summarise(h.assign(spread_iv=0.001), preds, CFG)["scopes"]
    assert [k for k in tight if k.startswith("spread")] == ["spread <=0.5"]
    bare = summarise(h.drop(columns="spread_iv"), preds, CFG)["scopes"]
    assert not [k for k in bare if k.startswith("spread")]


def test_each_day_has_its_iv_rmse_and_its_ratio_to_the_previous_day_iv_baseline():
    h = holdout()
    day_index = pd.factorize(h["quote_date"])[0]
    informative = (h["moneyness_class"] != "ITM").to_numpy()
    # the candidate is (i + 1) vol points off on day i
    preds = {"candidate": _predictor(h, h["iv"] + 0.01 * (day_index + 1)),
             **baseline_predictions(h)}  # fmt: skip
    s = summarise(h.iloc[::-1].reset_index(drop=True),  # days listed in date order whatever
                  {k: v.iloc[::-1].reset_index(drop=True) for k, v in preds.items()}, CFG)  # fmt: skip
    days = s["days"]
    assert [d["date"] for d in days] == ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
    prev_err = preds["baseline_prev_iv"]["iv"].to_numpy() - h["iv"].to_numpy()
    for i, d in enumerate(days):
        rows = informative & (day_index == i)
        assert d["n"] == rows.sum()
        assert d["candidate.iv_rmse"] == pytest.approx(0.01 * (i + 1))
        assert d["baseline_prev_iv.iv_rmse"] == pytest.approx(_rmse_of(prev_err[rows]))
        assert d["candidate.ratio_to_prev_iv"] == pytest.approx(
            0.01 * (i + 1) / _rmse_of(prev_err[rows])
        )
        assert "baseline_hist_vol.iv_rmse" in d and "candidate.inside_spread_share" in d
        assert not [k for k in d if k.startswith("baseline") and k.endswith("ratio_to_prev_iv")]
    # without the previous-day-IV baseline there is nothing to take a ratio to
    alone = summarise(h, {"candidate": preds["candidate"]}, CFG)["days"]
    assert len(alone) == 4 and not [k for d in alone for k in d if "ratio" in k]


def _two_underlyings(days: int) -> pd.DataFrame:
    h = holdout(days=days)
    return pd.concat([h, h.assign(underlying="QQQ")], ignore_index=True)


@pytest.mark.parametrize(
    ("min_days", "unit"),
    [(None, "date"), (3, "date"), (4, "date"), (5, "date x underlying")],
)
def test_a_holdout_shorter_than_min_bootstrap_days_resamples_date_x_underlying(min_days, unit):
    h = _two_underlyings(days=4)
    cfg = CFG if min_days is None else OmegaConf.merge(CFG, {"min_bootstrap_days": min_days})
    s = summarise(h, baseline_predictions(h), cfg)
    assert s["config"]["bootstrap_unit"] == unit


def test_date_x_underlying_groups_are_what_a_short_holdout_resamples():
    """One day, two underlyings: over dates every resample is that day (a point), over
    (date, underlying) groups the CI spans one underlying's error to the other's."""
    h = _two_underlyings(days=1)
    qqq = (h["underlying"] == "QQQ").to_numpy()
    preds = {"candidate": _predictor(h, h["iv"] + np.where(qqq, 0.03, 0.01)),
             **baseline_predictions(h)}  # fmt: skip
    by_date = summarise(h, preds, OmegaConf.merge(CFG, {"min_bootstrap_days": 1}))
    by_group = summarise(h, preds, OmegaConf.merge(CFG, {"min_bootstrap_days": 5}))
    assert by_date["config"]["bootstrap_unit"] == "date"
    assert by_group["config"]["bootstrap_unit"] == "date x underlying"
    both = _rmse_of([0.01, 0.03])  # equal row counts per underlying
    assert by_date["metrics"] == by_group["metrics"]  # the unit changes the CI only
    assert by_date["metrics"]["candidate"]["iv_rmse"] == pytest.approx(both)
    assert by_date["ci"]["candidate"]["iv_rmse"] == pytest.approx([both, both])
    assert by_group["ci"]["candidate"]["iv_rmse"] == pytest.approx([0.01, 0.03])
    lo, hi = by_group["ci"]["candidate"]["iv_skill_vs_baseline_prev_iv"]
    assert lo < hi


def test_summarise_rejects_misaligned_predictions():
    h = holdout(days=1)
    with pytest.raises(ValueError, match="candidate"):
        summarise(h, {"candidate": pd.DataFrame({"iv": [0.2], "price": [1.0]})}, CFG)
