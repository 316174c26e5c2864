from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.feature_engineer import (
    MODEL_FEATURES,
    SMILE_COEFS,
    SURFACE_COEFS,
    build_features,
    contract_features,
    fit_surfaces,
    lagged_features,
    realised_vols,
    state_features,
)
from tests.factories import DAY, MARKET, good_quotes

CFG = OmegaConf.create(
    {"realised_vol_windows": [5, 20], "realised_vol_min_periods": 3, "min_vega": 0.01}
)


def spot_history(n: int = 30, daily_vol: float = 0.01, end: dt.date = DAY) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    dates = pd.bdate_range(end=end, periods=n)
    spots = 600 * np.exp(np.cumsum(rng.normal(0, daily_vol, n)))
    return pd.DataFrame({"date": dates, "underlying": "SPY", "spot": spots})


def test_contract_features_recover_the_pricing_vol_and_geometry():
    feats = contract_features(good_quotes(n=21, vol=0.25), MARKET, min_vega=0.01)
    t = (pd.Timestamp("2026-04-17") - pd.Timestamp(DAY)).days / 365
    np.testing.assert_allclose(feats["t_years"], t)
    np.testing.assert_allclose(feats["forward"], 600 * np.exp(0.03 * t))
    np.testing.assert_allclose(feats["log_moneyness"], np.log(feats["strike"] / feats["forward"]))
    np.testing.assert_allclose(feats["std_moneyness"], feats["log_moneyness"] / np.sqrt(t))
    assert set(feats["is_call"]) == {0, 1}
    # mids are rounded to cents, so the solved vol is within a small fraction of a vol point
    assert np.abs(feats["iv"] - 0.25).max() < 2e-3
    assert (feats["iv_reason"] == "ok").all() and feats["iv_reliable"].all()


def test_no_vol_gets_nan_and_a_reason():
    q = good_quotes()
    q.loc[0, ["bid", "ask"]] = [0.001, 0.002]  # an in-the-money call quoted below intrinsic
    feats = contract_features(q, MARKET, min_vega=0.01)
    assert np.isnan(feats.loc[0, "iv"]) and feats.loc[0, "iv_reason"] == "below_intrinsic"
    assert not feats.loc[0, "iv_reliable"]


def test_realised_vol_matches_the_sample_std_of_log_returns():
    hist = spot_history(n=30, daily_vol=0.01)
    rv = realised_vols(hist, DAY, [5, 20], min_periods=3).set_index("underlying")
    rets = np.diff(np.log(hist["spot"].to_numpy()))
    assert rv.loc["SPY", "rv_20d"] == pytest.approx(rets[-20:].std(ddof=1) * np.sqrt(252))
    assert rv.loc["SPY", "rv_5d"] == pytest.approx(rets[-5:].std(ddof=1) * np.sqrt(252))


def test_realised_vol_needs_min_periods():
    rv = realised_vols(spot_history(n=3), DAY, [5, 20], min_periods=3)
    assert rv[["rv_5d", "rv_20d"]].isna().all().all()


def test_lagged_features_use_yesterdays_surface_and_contracts():
    prev_day = DAY - dt.timedelta(days=3)
    yesterday = contract_features(good_quotes(n=30, day=prev_day, vol=0.3), MARKET, 0.01)
    today = contract_features(good_quotes(n=30, vol=0.2), MARKET, 0.01)
    today.loc[0, "option"] = "SPY260417C09999000"  # a contract listed today
    lagged = lagged_features(today, yesterday)
    assert np.isnan(lagged.loc[0, "prev_iv"])
    np.testing.assert_allclose(
        lagged.loc[1:, "prev_iv"], 0.3, atol=2e-3
    )  # yesterday's vol, not today's
    np.testing.assert_allclose(lagged["prev_surface_iv"], 0.3, atol=3e-3)
    np.testing.assert_allclose(lagged["prev_atm_iv"], 0.3, atol=3e-3)


def test_first_day_has_no_lagged_features():
    lagged = lagged_features(contract_features(good_quotes(), MARKET, 0.01), None)
    assert lagged.isna().all().all()


def test_no_feature_depends_on_todays_option_prices():
    """Leakage guard: move today's quotes, and every model feature must stay the same."""
    spots = spot_history().assign(date=lambda d: d["date"])
    prev = contract_features(good_quotes(n=30, day=DAY - dt.timedelta(days=3)), MARKET, 0.01)
    base = build_features(good_quotes(n=30, vol=0.2), spots, prev, DAY, MARKET, CFG)
    moved = build_features(good_quotes(n=30, vol=0.35), spots, prev, DAY, MARKET, CFG)
    assert not np.allclose(base["iv"], moved["iv"])  # the target did move
    features = [c for c in MODEL_FEATURES if c in base]
    assert len(features) >= 12
    pd.testing.assert_frame_equal(base[features], moved[features])
    assert not {"iv", "mid", "bid", "ask", "vendor_iv", "theo", "spread"} & set(MODEL_FEATURES)


def test_build_features_does_not_mutate_inputs():
    quotes = good_quotes()
    before = quotes.copy()
    build_features(quotes, spot_history(), None, DAY, MARKET, CFG)
    pd.testing.assert_frame_equal(quotes, before)


def _smile_day(n_x: int, n_s: int) -> pd.DataFrame:
    """Yesterday's reliable IVs on a (x = k/√T, s = √T) grid: a smile with cubic and quartic
    wings, which the quadratic surface cannot follow and the smile fit can."""
    x, s = np.meshgrid(np.linspace(-2.5, 2.5, n_x), np.linspace(0.2, 1.0, n_s))
    x, s = x.ravel(), s.ravel()
    iv = 0.2 - 0.03 * x + 0.01 * x**2 - 0.004 * x**3 + 0.002 * x**4 + 0.05 * s * s
    return pd.DataFrame({"underlying": "SPY", "iv_reliable": True, "std_moneyness": x,
                         "sqrt_t": s, "iv": iv})  # fmt: skip


def test_the_smile_follows_what_the_quadratic_surface_misses():
    day = _smile_day(11, 4)
    surfaces = fit_surfaces(day)
    geometry = day[["underlying", "std_moneyness", "sqrt_t"]].assign(option=None)
    empty_rv = pd.DataFrame({"underlying": pd.Series(dtype=object)})
    state = state_features(geometry, empty_rv, surfaces, pd.Series(dtype=float))
    smile_err = np.abs(state["prev_smile_iv"] - day["iv"]).max()
    surface_err = np.abs(state["prev_surface_iv"] - day["iv"]).max()
    assert smile_err < 1e-9 < 1e-3 < surface_err
    # too few quotes for 10 coefficients (fewer than 30): no smile, the surface stays
    few = fit_surfaces(_smile_day(5, 5).head(20))
    assert (
        few[list(SMILE_COEFS)].isna().all().all() and few[list(SURFACE_COEFS)].notna().all().all()
    )
