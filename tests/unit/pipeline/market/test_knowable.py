"""The variance knowable at a close (synthetic_path.knowable_variance) inverts the generator: with
the leverage at ±1 the day's return reveals the whole vol shock, so the knowable smile is the
true one; with no leverage the return reveals nothing; shock days get the true variance."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from pipeline.market.calendar import trading_days
from pipeline.market.synthetic import generate_chain, knowable_truth
from pipeline.market.synthetic_path import DT, PathSpec, get_path, knowable_variance
from tests.unit.pipeline.market.test_synthetic import MARKET, SHOCK, make_cfg

ORIGIN = dt.date(2024, 6, 3)


def _spec(leverage: float, shocks=()) -> PathSpec:
    return PathSpec(seed=7, symbol="SPX", kind="index", origin=ORIGIN, spot=5000.0, vol=0.18,
                    vol_of_vol=1.2, mean_reversion=4.0, leverage=leverage,
                    shock_dates=tuple(shocks), shock_size=4.0)  # fmt: skip


@pytest.mark.parametrize("leverage", [-1.0, 1.0])
def test_a_return_that_reveals_the_whole_shock_gives_the_true_variance(leverage):
    spec = _spec(leverage)
    path = get_path(spec, dt.date(2024, 8, 30))
    for i in range(1, len(path.dates)):
        assert knowable_variance(spec, path, i) == pytest.approx(path.var[i], rel=1e-9)


def test_without_leverage_the_return_reveals_nothing():
    spec = _spec(0.0)
    path = get_path(spec, dt.date(2024, 8, 30))
    xi, kappa = spec.vol_of_vol, spec.mean_reversion
    target = math.log(spec.vol**2) - xi * xi / (4.0 * kappa)
    for i in range(1, len(path.dates)):
        ln_prev = math.log(path.var[i - 1])
        mean = ln_prev + kappa * (target - ln_prev) * DT
        assert knowable_variance(spec, path, i) == pytest.approx(math.exp(mean + xi * xi * DT / 4))


def test_the_origin_and_a_shock_day_get_the_true_variance():
    shock = [d for d in trading_days(dt.date(2024, 7, 1), dt.date(2024, 7, 10))][2]
    spec = _spec(-0.7, [shock])
    path = get_path(spec, dt.date(2024, 7, 31))
    i = path.index[shock]
    assert knowable_variance(spec, path, i) == path.var[i]
    assert knowable_variance(spec, path, 0) == path.var[0]
    assert knowable_variance(spec, path, i + 1) != path.var[i + 1]


def test_knowable_truth_prices_the_same_contracts_with_the_forecast_smile():
    cfg = make_cfg(shock_dates=[str(SHOCK)])
    day = dt.date(2024, 6, 12)
    truth = generate_chain("SPY", day, cfg, MARKET)[1]
    known = knowable_truth("SPY", day, cfg, MARKET)
    assert known.drop(columns="true_iv").equals(truth.drop(columns="true_iv"))
    priced = np.isfinite(truth["true_iv"])  # expired bad rows have no IV in either
    assert np.isfinite(known["true_iv"]).equals(priced) and priced.sum() > 2000
    gap = np.abs(known["true_iv"] - truth["true_iv"])[priced]
    assert 0 < gap.max() < 0.05  # a day's unrevealed vol shock: a vol point or so, not a new level
    assert knowable_truth("SPY", SHOCK, cfg, MARKET)["true_iv"].equals(
        generate_chain("SPY", SHOCK, cfg, MARKET)[1]["true_iv"]
    )
