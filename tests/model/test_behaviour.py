"""Behaviour of a model trained on the tiny market (pure core, no MLflow), priced like serving does:
the last feature day's listed contracts, quoted the next trading day, market state from the
snapshot. Quant sanity: put-call parity, call price non-increasing and convex in strike (puts
non-decreasing), prices within no-arbitrage bounds, higher vol inputs → higher IV → higher price,
call prices increasing in spot. Tolerances are one quoted tick (pipeline.quant.checks)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.artifacts import Artifacts
from pipeline.market_state import MarketState
from pipeline.model.pricer import CONTRACT_COLUMNS, IV_CAP, IV_FLOOR, model_features, predict_frame
from pipeline.model.training import train_model
from pipeline.model_train import read_features
from pipeline.quant.black_scholes import black_price
from pipeline.quant.checks import bounds_violations, parity_residuals, strike_shape_violations
from tests.conftest import TINY_MARKET, compose_config

pytestmark = pytest.mark.slow
LAST = dt.date(2026, 3, 31)
NEXT = pd.Timestamp("2026-04-01")
VOL_COLUMNS = ("rv_5d", "rv_10d", "rv_20d", "prev_iv", "prev_surface_iv", "prev_atm_iv",
               "prev_smile_iv", "prev_smile_iv_strike")  # fmt: skip


@pytest.fixture(scope="module")
def model(tiny_features_root):
    """(booster, state, features, last day's feature rows): trained once for the module."""
    cfg = compose_config([f"paths.root={tiny_features_root}", *TINY_MARKET, f"date={LAST}",
                          "model_train.n_estimators=60"])  # fmt: skip
    art = Artifacts(cfg.paths, cfg.data_format)
    days = pd.bdate_range(end=LAST, periods=40).date
    frames = {d: read_features(art.features(d)) for d in days if art.features(d).exists()}
    booster, _, _ = train_model(frames, cfg.model_train)
    state = MarketState.load(art.market_state(LAST))  # published by feature_engineer
    return booster, state, list(cfg.model_train.features), frames[LAST]


@pytest.fixture(scope="module")
def priced(model):
    """Tomorrow's prices of today's listed contracts (expiring after tomorrow), with geometry
    and today's bid/ask (the checks infer each underlying's tick from the spreads)."""
    booster, state, features, day = model
    raw = day[[*CONTRACT_COLUMNS, "option"]].assign(quote_date=NEXT)
    raw = raw[raw["expiry"] > NEXT + pd.Timedelta(days=1)]
    out = predict_frame(raw, booster, state, features)
    geometry = model_features(raw, state).assign(bid=day["bid"], ask=day["ask"])
    return raw, geometry, out


def test_predictions_are_finite_clipped_vols(priced):
    _, _, out = priced
    assert np.isfinite(out.to_numpy()).all()
    assert out["iv"].between(IV_FLOOR, IV_CAP).all()
    assert out["iv"].between(0.03, 1.0).all()  # the tiny market's vols are 10-30%


def test_put_call_parity(priced):
    _, g, out = priced
    check = parity_residuals(g, out["price"])
    assert check.checked > 500
    # a call and its put share an IV unless a tree splits on is_call: rare and sub-tick on average
    assert check.share <= 0.03, check.details.head()
    assert check.stats["mean_abs_residual"] < 0.01


def test_call_prices_fall_and_put_prices_rise_convexly_in_strike(priced):
    _, g, out = priced
    shape = strike_shape_violations(g, out["price"])
    assert shape["monotonic"].checked > 1000
    assert shape["monotonic"].share <= 0.005, shape["monotonic"].details.head()
    assert shape["convexity"].share <= 0.03, shape["convexity"].details.head()


def test_prices_within_no_arbitrage_bounds(priced):
    _, g, out = priced
    check = bounds_violations(g, out["price"], tick=0.0)
    assert check.checked == len(out) and check.violations == 0, check.details.head()


def test_higher_vol_inputs_give_higher_iv_and_higher_price(model, priced):
    booster, state, features, _ = model
    raw, g, out = priced
    base = g[list(VOL_COLUMNS) + ["prev_skew"]]
    bumped = predict_frame(raw.assign(**{c: base[c] + 0.05 for c in VOL_COLUMNS},
                                      prev_skew=base["prev_skew"]), booster, state, features)  # fmt: skip
    higher = bumped["iv"] > out["iv"]
    assert higher.mean() > 0.99
    assert (bumped["price"][higher] > out["price"][higher]).all()


def test_price_is_increasing_in_the_predicted_vol(priced):
    _, g, out = priced
    args = [g[c].to_numpy(float) for c in ("forward", "strike", "t_years", "discount")]
    is_call = g["is_call"].astype(bool)
    lo = black_price(*args, out["iv"].to_numpy(), is_call)
    hi = black_price(*args, out["iv"].to_numpy() + 0.01, is_call)
    assert (hi > lo).all()
    np.testing.assert_allclose(lo, out["price"])


def test_call_prices_rise_with_spot(model, priced):
    booster, state, features, _ = model
    raw, g, out = priced
    up = predict_frame(raw.assign(spot=raw["spot"] * 1.01), booster, state, features)
    calls = g["is_call"].astype(bool)
    assert (up["price"][calls] > out["price"][calls]).mean() > 0.99
    assert (up["price"][~calls] < out["price"][~calls]).mean() > 0.99
