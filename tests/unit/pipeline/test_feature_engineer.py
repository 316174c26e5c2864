from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.features import (
    MODEL_FEATURES,
    build_features,
    contract_features,
    realised_vols,
)
from pipeline.market_state import MarketState, state_features
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


def _state(quotes: pd.DataFrame, day: dt.date) -> MarketState:
    feats = contract_features(quotes, MARKET, 0.01)
    rv = pd.DataFrame({"underlying": ["SPY"], "rv_5d": [0.18], "rv_10d": [0.19], "rv_20d": [0.2]})
    return MarketState.from_day(feats, rv, MARKET, day)


def test_state_features_use_yesterdays_state_and_contracts():
    prev_day = DAY - dt.timedelta(days=3)
    yesterday = _state(good_quotes(n=30, day=prev_day, vol=0.3), prev_day)
    today = contract_features(good_quotes(n=30, vol=0.2, spot=606.0), MARKET, 0.01)
    today.loc[0, "option"] = "SPY260417C09999000"  # a contract listed today
    lagged = state_features(today, yesterday)
    assert np.isnan(lagged.loc[0, "prev_iv"])
    np.testing.assert_allclose(
        lagged.loc[1:, "prev_iv"], 0.3, atol=2e-3
    )  # yesterday's vol, not today's
    for col in ("prev_surface_iv", "prev_atm_iv", "prev_smile_iv", "prev_smile_iv_strike"):
        np.testing.assert_allclose(lagged[col], 0.3, atol=3e-3)
    np.testing.assert_allclose(lagged["spot_return"], np.log(606 / 600))
    np.testing.assert_allclose(lagged["rv_20d"], 0.2)
    np.testing.assert_allclose(lagged["vol_time"], 0.2 * today["sqrt_t"])


def test_first_day_has_no_state_features():
    lagged = state_features(contract_features(good_quotes(), MARKET, 0.01), None)
    assert lagged.isna().all().all() and {"rv_5d", "rv_20d", "prev_smile_iv"} <= set(lagged)


def test_quotes_are_classed_otm_atm_itm_with_their_spread_in_vol():
    feats = contract_features(good_quotes(n=41, vol=0.2), MARKET, 0.01)
    x, call = feats["std_moneyness"], feats["is_call"].astype(bool)
    cls = feats["moneyness_class"]
    assert (cls[x.abs() <= 0.1] == "ATM").all()
    assert (cls[(x > 0.1) & call] == "OTM").all() and (cls[(x < -0.1) & ~call] == "OTM").all()
    assert (cls[(x > 0.1) & ~call] == "ITM").all() and (cls[(x < -0.1) & call] == "ITM").all()
    assert (feats["informative"] == (feats["iv_reliable"] & (cls != "ITM"))).all()
    # the spread in vol: 2 cents over the vega of one vol point
    np.testing.assert_allclose(feats["spread_iv"], 0.01 * feats["spread"] / feats["vega_point"])


def test_an_all_itm_day_falls_back_and_never_gives_nan_features():
    """Only in-the-money quotes: the smile is fitted on them (named as a fallback); features
    built from that state are finite everywhere."""
    prev_day = DAY - dt.timedelta(days=3)
    quotes = good_quotes(n=60, day=prev_day, vol=0.25)
    itm = contract_features(quotes, MARKET, 0.01)["moneyness_class"].to_numpy() == "ITM"
    state = _state(quotes[itm], prev_day)
    assert state.fallbacks and all("underlying" in f for f in state.fallbacks)
    assert any("all" in str(f.get("reason", "")) or "ITM" in str(f) for f in state.fallbacks)
    lagged = state_features(contract_features(good_quotes(n=30), MARKET, 0.01), state)
    cols = ["prev_surface_iv", "prev_atm_iv", "prev_skew", "prev_smile_iv", "prev_smile_iv_strike"]
    assert np.isfinite(lagged[cols].to_numpy(float)).all()
    np.testing.assert_allclose(lagged["prev_smile_iv"], 0.25, atol=0.01)


def test_no_feature_depends_on_todays_option_prices():
    """Leakage guard: move today's quotes, and every model feature must stay the same."""
    spots = spot_history().assign(date=lambda d: d["date"])
    prev = _state(good_quotes(n=30, day=DAY - dt.timedelta(days=3)), DAY - dt.timedelta(days=3))
    base, _ = build_features(good_quotes(n=30, vol=0.2), spots, prev, DAY, MARKET, CFG)
    moved, _ = build_features(good_quotes(n=30, vol=0.35), spots, prev, DAY, MARKET, CFG)
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
