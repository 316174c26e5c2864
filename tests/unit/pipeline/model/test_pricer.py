"""pipeline.model.pricer and market_state: validation, state defaults vs given inputs, and the
no-skew guarantee (a raw contract gets exactly the features feature_engineer gave it)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from omegaconf import OmegaConf

from pipeline.feature_engineer import MODEL_FEATURES, build_features, contract_ivs, fit_surfaces
from pipeline.model.market_state import MarketState
from pipeline.model.packaging import find_pickles
from pipeline.model.pricer import (
    CONTRACT_COLUMNS,
    IV_FLOOR,
    ContractError,
    model_features,
    predict_frame,
)
from pipeline.quant.black_scholes import black_price
from tests.factories import DAY, MARKET, good_quotes

FE_CFG = OmegaConf.create({"realised_vol_windows": [5, 10, 20], "realised_vol_min_periods": 3,
                           "min_vega": 0.01})  # fmt: skip
YESTERDAY = dt.date(2026, 2, 27)  # the trading day before DAY (2026-03-02)
RAW = [*CONTRACT_COLUMNS, "option"]


def _spots(end: dt.date) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    dates = pd.bdate_range(end=pd.Timestamp(DAY), periods=30)
    spots = 600 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
    df = pd.DataFrame({"date": dates, "underlying": "SPY", "spot": spots})
    return df[df["date"] <= pd.Timestamp(end)]


@pytest.fixture(scope="module")
def days():
    """(yesterday's features, today's features): today's prev_* come from yesterday's."""
    prev = build_features(good_quotes(n=30, day=YESTERDAY, vol=0.20), _spots(YESTERDAY), None,
                          YESTERDAY, MARKET, FE_CFG)  # fmt: skip
    today = build_features(good_quotes(n=30, day=DAY, vol=0.22, spot=605.0), _spots(DAY), prev,
                           DAY, MARKET, FE_CFG)  # fmt: skip
    return prev, today


@pytest.fixture(scope="module")
def state(days):
    """Yesterday's surface and contract IVs, today's realised vols: what today's features used."""
    prev, today = days
    realised = today.groupby("underlying")[["rv_5d", "rv_10d", "rv_20d"]].first().reset_index()
    return MarketState(as_of=YESTERDAY, rate=0.04, default_dividend_yield=0.0,
                       dividend_yields={"SPY": 0.01}, realised=realised,
                       surfaces=fit_surfaces(prev), contract_ivs=contract_ivs(prev))  # fmt: skip


@pytest.fixture(scope="module")
def identity_booster():
    """A booster that adds ~nothing to its base margin: predictions = the base level."""
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(50, len(MODEL_FEATURES))),
                     columns=list(MODEL_FEATURES))  # fmt: skip
    d = xgb.DMatrix(x, label=np.full(50, 0.2), base_margin=np.full(50, 0.2))
    return xgb.train({"eta": 1e-12, "max_depth": 1}, d, num_boost_round=1)


def test_features_of_a_feature_row_are_the_feature_files_own(days, state):
    _, today = days
    assert today["prev_iv"].notna().all() and today["prev_surface_iv"].notna().all()
    ours = model_features(today, state)  # state columns present: used as given
    pd.testing.assert_frame_equal(ours[list(MODEL_FEATURES)], today[list(MODEL_FEATURES)],
                                  check_dtype=False)  # fmt: skip


def test_raw_contracts_get_the_same_features_from_the_state(days, state):
    """The no-skew guarantee: contract fields + the saved state → feature_engineer's features."""
    _, today = days
    ours = model_features(today[RAW], state)
    pd.testing.assert_frame_equal(ours[list(MODEL_FEATURES)], today[list(MODEL_FEATURES)],
                                  check_dtype=False, rtol=1e-12)  # fmt: skip


def test_given_state_columns_override_the_state_and_the_rest_default(days, state):
    _, today = days
    raw = today[RAW].assign(prev_surface_iv=0.5, rv_20d=np.nan)
    ours = model_features(raw, state)
    assert (ours["prev_surface_iv"] == 0.5).all()
    assert ours["rv_20d"].isna().all() and ours["vol_time"].isna().all()  # null = unknown, as given
    np.testing.assert_allclose(ours["prev_atm_iv"], today["prev_atm_iv"])  # from the state
    no_symbol = model_features(today[list(CONTRACT_COLUMNS)], state)
    assert no_symbol["prev_iv"].isna().all()  # without `option` there is no contract history


def test_rate_and_dividend_default_to_the_state_where_missing(days, state):
    _, today = days
    raw = today[RAW].head(3).assign(rate=[0.05, np.nan, 0.04], dividend_yield=[np.nan, 0.0, 0.01])
    g = model_features(raw, state)
    assert list(g["rate"]) == [0.05, 0.04, 0.04]
    assert list(g["dividend_yield"]) == [0.01, 0.0, 0.01]  # SPY's default yield where null


def _raw(days) -> pd.DataFrame:
    _, today = days
    return today[RAW].head(3).set_axis([10, 11, 12])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("option_type", "X", r"row 11: option_type 'X' is not 'C' or 'P'"),
        ("option_type", None, r"row 11: missing option_type"),
        ("strike", -5.0, r"row 11: strike must be positive, got -5.0"),
        ("spot", 0.0, r"row 11: spot must be positive, got 0.0"),
        ("strike", np.inf, r"row 11: strike inf is not a finite number"),
        ("spot", "abc", r"row 11: spot 'abc' is not a finite number"),
        ("expiry", "2026-01-02", r"row 11: expiry 2026-01-02 is not after quote_date 2026-03-02"),
        ("expiry", "soon", r"row 11: expiry 'soon' is not a date"),
        (
            "underlying",
            "XYZ",
            r"row 11: unknown underlying 'XYZ': no market state .* pass the columns",
        ),
        ("rv_20d", np.inf, r"row 11: rv_20d inf is not a finite number"),
    ],
)
def test_invalid_rows_are_named_with_their_index_and_problem(days, state, column, value, message):
    raw = _raw(days).astype({column: object}) if column in _raw(days) else _raw(days)
    raw.loc[11, column] = value
    with pytest.raises(ContractError, match=message):
        model_features(raw, state)


def test_missing_column_and_several_bad_rows(days, state):
    with pytest.raises(ContractError, match=r"missing required column\(s\) \['spot'\]"):
        model_features(_raw(days).drop(columns="spot"), state)
    raw = _raw(days).assign(strike=[-1.0, 600.0, -2.0])
    with pytest.raises(ContractError, match=r"2 invalid contract row\(s\): row 10: .*; row 12: "):
        model_features(raw, state)
    assert issubclass(ContractError, ValueError)


def test_unknown_underlying_is_priced_when_all_state_columns_are_given(
    days, state, identity_booster
):
    _, today = days
    raw = today[RAW].head(2).assign(underlying="QQQ", rv_5d=0.2, rv_10d=0.2, rv_20d=0.2,
                                     prev_surface_iv=0.25, prev_atm_iv=0.25, prev_skew=-0.1)  # fmt: skip
    out = predict_frame(raw, identity_booster, state, MODEL_FEATURES)
    np.testing.assert_allclose(out["iv"], 0.25, atol=1e-9)


def test_predict_frame_prices_with_bsm_at_the_predicted_iv(days, state, identity_booster):
    _, today = days
    raw = today[RAW].set_axis(np.repeat([7], len(today)))  # repeated index labels are kept
    out = predict_frame(raw, identity_booster, state, MODEL_FEATURES)
    assert list(out.columns) == ["iv", "price"] and list(out.index) == list(raw.index)
    np.testing.assert_allclose(out["iv"], today["prev_smile_iv"], atol=1e-9)  # the base level
    expected = black_price(today["forward"], today["strike"], today["t_years"], today["discount"],
                           out["iv"].to_numpy(), today["is_call"].astype(bool))  # fmt: skip
    np.testing.assert_allclose(out["price"], expected, rtol=1e-12)
    given = predict_frame(raw.assign(prev_smile_iv=0.35), identity_booster, state, MODEL_FEATURES)
    np.testing.assert_allclose(given["iv"], 0.35, atol=1e-9)
    assert (given["price"].to_numpy() > out["price"].to_numpy()).all()  # higher vol, higher price
    # no smile (null = unknown): the quadratic surface is the base
    no_smile = raw.assign(prev_smile_iv=np.nan, prev_surface_iv=0.3)
    np.testing.assert_allclose(predict_frame(no_smile, identity_booster, state, MODEL_FEATURES)["iv"],
                               0.3, atol=1e-9)  # fmt: skip
    floored = predict_frame(raw.assign(prev_smile_iv=-1.0), identity_booster, state, MODEL_FEATURES)
    assert (floored["iv"] == IV_FLOOR).all()
    assert predict_frame(raw.head(0), identity_booster, state, MODEL_FEATURES).empty


def test_market_state_round_trips_without_pickle(days, tmp_path):
    _, today = days
    state = MarketState.from_features(today, MARKET, DAY)
    folder = state.save(tmp_path / "state")
    assert sorted(p.name for p in folder.iterdir()) == ["contract_ivs.parquet", "state.json"]
    assert find_pickles(folder) == []
    back = MarketState.load(folder)
    assert back.as_of == DAY and back.rate == 0.04 and back.dividend_yields == {"SPY": 0.01}
    pd.testing.assert_frame_equal(back.realised, state.realised, check_dtype=False)
    pd.testing.assert_frame_equal(back.surfaces, state.surfaces, check_dtype=False)
    pd.testing.assert_series_equal(back.contract_ivs, state.contract_ivs, check_names=False,
                                   check_index_type=False)  # fmt: skip
    assert back.underlyings == {"SPY"}
