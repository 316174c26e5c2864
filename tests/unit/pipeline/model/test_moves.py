"""Standardised moves (pricer.input_arrays, moves="standardised"): on the log scale the booster
reads the day's move and the moneyness in standard deviations of yesterday's vol, so the same
market at twice the vol gives the trees the same inputs; boosters fitted before it read them raw."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from omegaconf import OmegaConf

from pipeline.errors import ConfigError
from pipeline.features import MODEL_FEATURES
from pipeline.model.pricer import DAY_SD, booster_moves, design_matrix, input_arrays, predict_iv
from pipeline.model.training import moves

VOL_FEATURES = ("rv_5d", "rv_10d", "rv_20d", "prev_iv", "prev_surface_iv", "prev_atm_iv",
                "prev_smile_iv", "prev_smile_iv_strike")  # fmt: skip


def _market(vol_factor: float, n: int = 50) -> pd.DataFrame:
    """Feature rows of a market whose vols, daily moves and listed moneyness (in sd) all scale
    with `vol_factor`: the same market in sd terms."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0.02, 1.0, n)
    atm = 0.2 * vol_factor * np.ones(n)
    d = rng.uniform(-2.0, 2.0, n)  # moneyness in standard deviations
    k = d * atm * np.sqrt(t)
    frame = pd.DataFrame({"t_years": t, "sqrt_t": np.sqrt(t), "log_moneyness": k,
                          "std_moneyness": k / np.sqrt(t), "is_call": (k > 0).astype(float),
                          "spot_return": rng.normal(0, 1, n) * atm * DAY_SD})  # fmt: skip
    for name in VOL_FEATURES:
        frame[name] = atm * rng.uniform(0.9, 1.1) if name != "prev_atm_iv" else atm
    frame["vol_time"] = atm * np.sqrt(t)
    frame["prev_skew"] = -0.1 * vol_factor
    return frame


def test_the_same_market_at_twice_the_vol_reads_the_same():
    names = list(MODEL_FEATURES)
    calm = _market(1.0)
    x_calm, m_calm = input_arrays(calm, names, None, "log", "standardised")
    x_wild, m_wild = input_arrays(_market(2.0), names, None, "log", "standardised")
    same = [n for n in names if n != "vol_time"]  # ATM total vol: the smile's own variable
    for name in same:
        np.testing.assert_allclose(x_wild[name], x_calm[name], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(m_wild, m_calm + np.log(2.0), rtol=1e-12)
    raw, _ = input_arrays(_market(2.0), names, None, "log", "raw")  # raw: the move doubles
    np.testing.assert_allclose(raw["spot_return"], 2.0 * calm["spot_return"], rtol=1e-12)


def test_the_move_is_counted_in_sd_of_the_atm_vol_or_the_base_where_none():
    frame = _market(1.0, n=3)
    frame.loc[1, "prev_atm_iv"] = np.nan
    x, margin = input_arrays(frame, ["spot_return", "std_moneyness"], None, "log", "standardised")
    unit = np.where(frame["prev_atm_iv"].notna(), frame["prev_atm_iv"], np.exp(margin)) * DAY_SD
    np.testing.assert_allclose(x["spot_return"], frame["spot_return"] / unit, rtol=1e-12)
    np.testing.assert_allclose(x["std_moneyness"], frame["std_moneyness"] / np.exp(margin))


def test_a_booster_fitted_before_standardised_moves_is_read_raw():
    frame = _market(1.0)
    names = list(MODEL_FEATURES)
    label = frame["prev_smile_iv"] * (1.0 + 5.0 * frame["spot_return"])
    matrix = design_matrix(frame, names, label.to_numpy(float), {}, "log", "raw")
    booster = xgb.train({"max_depth": 3, "eta": 0.5, "seed": 0}, matrix, num_boost_round=5)
    booster.set_attr(base_blend=json.dumps({}), target_scale="log")  # no `moves`: an old booster
    assert booster_moves(booster) == "raw"
    raw = booster.predict(design_matrix(frame, names, None, {}, "log", "raw"))
    np.testing.assert_allclose(predict_iv(frame, booster, names), np.exp(raw), rtol=1e-6)


def test_standardised_moves_need_the_log_scale():
    cfg = OmegaConf.create({"standardise_moves": True, "target_scale": "level"})
    with pytest.raises(ConfigError, match="standardise_moves=true needs .*target_scale=log"):
        moves(cfg)
    assert moves(OmegaConf.create({"standardise_moves": False, "target_scale": "level"})) == "raw"
    assert moves(OmegaConf.create({"standardise_moves": True, "target_scale": "log"})) == (
        "standardised"
    )
    with pytest.raises(ValueError, match="unknown moves 'sd'"):
        input_arrays(_market(1.0), ["spot_return"], None, "log", "sd")
