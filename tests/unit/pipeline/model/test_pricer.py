"""pipeline.model.pricer and pipeline.market_state: validation, state defaults vs given inputs,
the no-skew guarantee (a raw contract gets exactly the features feature_engineer gave it), and
which state prices which quote date (StateStore: fresh, stale, missing, hot-reloaded)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from omegaconf import OmegaConf

from pipeline.features import MODEL_FEATURES, build_features
from pipeline.market_state import MarketState, StateStore, StateUnavailable, state_path
from pipeline.model.packaging import find_pickles
from pipeline.model.pricer import (
    CONTRACT_COLUMNS,
    IV_FLOOR,
    ContractError,
    StateMissing,
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
    """(yesterday's features, today's features, yesterday's published state): today's state
    features come from yesterday's state, as feature_engineer builds them."""
    prev, prev_state = build_features(good_quotes(n=30, day=YESTERDAY, vol=0.20),
                                      _spots(YESTERDAY), None, YESTERDAY, MARKET, FE_CFG)  # fmt: skip
    today, _ = build_features(good_quotes(n=30, day=DAY, vol=0.22, spot=605.0), _spots(DAY),
                              prev_state, DAY, MARKET, FE_CFG)  # fmt: skip
    return prev, today, prev_state


@pytest.fixture(scope="module")
def state(days):
    """Yesterday's published state: what today's features used."""
    return days[2]


@pytest.fixture(scope="module")
def identity_booster():
    """A booster that adds ~nothing to its base margin: predictions = the base level."""
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(50, len(MODEL_FEATURES))),
                     columns=list(MODEL_FEATURES))  # fmt: skip
    d = xgb.DMatrix(x, label=np.full(50, 0.2), base_margin=np.full(50, 0.2))
    return xgb.train({"eta": 1e-12, "max_depth": 1}, d, num_boost_round=1)


def test_features_of_a_feature_row_are_the_feature_files_own(days, state):
    _, today, _ = days
    assert today["prev_iv"].notna().all() and today["prev_surface_iv"].notna().all()
    ours = model_features(today, state)  # state columns present: used as given
    pd.testing.assert_frame_equal(ours[list(MODEL_FEATURES)], today[list(MODEL_FEATURES)],
                                  check_dtype=False)  # fmt: skip


def test_raw_contracts_get_the_same_features_from_the_state(days, state):
    """The no-skew guarantee: contract fields + the saved state → feature_engineer's features."""
    _, today, _ = days
    ours = model_features(today[RAW], state)
    pd.testing.assert_frame_equal(ours[list(MODEL_FEATURES)], today[list(MODEL_FEATURES)],
                                  check_dtype=False, rtol=1e-12)  # fmt: skip


def test_given_state_columns_override_the_state_and_the_rest_default(days, state):
    _, today, _ = days
    raw = today[RAW].assign(prev_surface_iv=0.5, rv_20d=np.nan)
    ours = model_features(raw, state)
    assert (ours["prev_surface_iv"] == 0.5).all()
    assert ours["rv_20d"].isna().all() and ours["vol_time"].isna().all()  # null = unknown, as given
    np.testing.assert_allclose(ours["prev_atm_iv"], today["prev_atm_iv"])  # from the state
    no_symbol = model_features(today[list(CONTRACT_COLUMNS)], state)
    assert no_symbol["prev_iv"].isna().all()  # without `option` there is no contract history


def test_rate_and_dividend_default_to_the_state_where_missing(days, state):
    _, today, _ = days
    raw = today[RAW].head(3).assign(rate=[0.05, np.nan, 0.04], dividend_yield=[np.nan, 0.0, 0.01])
    g = model_features(raw, state)
    assert list(g["rate"]) == [0.05, 0.04, 0.04]
    assert list(g["dividend_yield"]) == [0.01, 0.0, 0.01]  # SPY's default yield where null


def _raw(days) -> pd.DataFrame:
    _, today, _ = days
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
            r"row 11: unknown underlying 'XYZ': the market state of 2026-02-27 has no data for "
            r"it .* pass the columns",
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
    _, today, _ = days
    raw = today[RAW].head(2).assign(underlying="QQQ", rv_5d=0.2, rv_10d=0.2, rv_20d=0.2,
                                     prev_surface_iv=0.25, prev_atm_iv=0.25, prev_skew=-0.1,
                                     spot_return=0.0)  # fmt: skip
    out = predict_frame(raw, identity_booster, state, MODEL_FEATURES)
    np.testing.assert_allclose(out["iv"], 0.25, atol=1e-9)


def test_predict_frame_prices_with_bsm_at_the_predicted_iv(days, state, identity_booster):
    _, today, _ = days
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


def test_market_state_round_trips_as_one_strict_json_file(days, tmp_path):
    _, today, state = days
    path = state.save(tmp_path / "market_state_20260227.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["market_state_20260227.json"]
    assert find_pickles(tmp_path) == []
    back = MarketState.load(path)
    assert back.as_of == YESTERDAY and back.rate == 0.04 and back.dividend_yields == {"SPY": 0.01}
    pd.testing.assert_frame_equal(back.realised, state.realised, check_dtype=False, check_like=True)
    pd.testing.assert_frame_equal(back.surfaces, state.surfaces, check_dtype=False)
    pd.testing.assert_frame_equal(back.smiles, state.smiles, check_dtype=False, check_like=True)
    pd.testing.assert_series_equal(back.spots, state.spots, check_names=False)
    pd.testing.assert_series_equal(back.contract_ivs, state.contract_ivs, check_names=False,
                                   check_index_type=False)  # fmt: skip
    assert back.underlyings == {"SPY"} and len(back.smiles) == 1
    # the same features from the loaded state
    pd.testing.assert_frame_equal(
        model_features(today[RAW], back), model_features(today[RAW], state)
    )


def _dated(state: MarketState, day: dt.date) -> MarketState:
    return MarketState(**{**state.__dict__, "as_of": day})


def test_a_quote_date_is_priced_with_the_state_of_the_trading_day_before(days, tmp_path):
    _, today, state = days
    friday, monday, tuesday = dt.date(2026, 2, 27), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
    store = StateStore(tmp_path, max_age_days=1)
    with pytest.raises(StateUnavailable, match="no market state before it at all"):
        store.lookup(monday)
    state.save(state_path(tmp_path, friday))
    assert store.lookup(monday).as_of == friday  # Friday's state prices Monday
    assert store.lookup(dt.date(2026, 2, 28)).as_of == friday  # a Saturday: the day before too
    with pytest.raises(StateUnavailable, match=r"quote_date 2026-02-27: it needs the state of "
                                               r"2026-02-26 .*no market state before it"):  # fmt: skip
        store.lookup(friday)  # never the same day's state: that would be today's prices
    # Tuesday needs Monday's state; Friday's is 2 trading days old
    with pytest.raises(StateUnavailable, match=r"needs the state of 2026-03-02 \(max_state_age_days"
                                               r"=1\); the newest state before it is 2026-02-27 "
                                               r"\(2 trading days old\)"):  # fmt: skip
        store.lookup(tuesday)
    assert StateStore(tmp_path, max_age_days=2).lookup(tuesday).as_of == friday
    # Monday's state appears (the daily run): picked up at the next lookup, no restart
    _dated(state, monday).save(state_path(tmp_path, monday))
    assert store.lookup(tuesday).as_of == monday


def test_a_stale_or_missing_state_refuses_the_contracts_naming_the_dates(days, tmp_path):
    _, today, state = days
    raw = today[RAW].head(2)
    store = StateStore(tmp_path, max_age_days=1, bundled=[_dated(state, dt.date(2026, 2, 25))])
    with pytest.raises(StateMissing, match=r"no market state for quote_date 2026-03-02: it needs "
                       r"the state of 2026-02-27 .*newest state before it is 2026-02-25 \(3 "
                       r"trading days old\) \(2 contract\(s\)\)"):  # fmt: skip
        model_features(raw, store)
    assert issubclass(StateMissing, ContractError)  # the service's 422


@pytest.mark.parametrize(("quote_date", "expiry"),
                         [("1909-08-01", "1917-06-08"), ("2199-01-02", "2200-01-02")])  # fmt: skip
def test_a_quote_date_outside_the_trading_calendar_is_refused_not_crashed_on(days, tmp_path,
                                                                            quote_date, expiry):  # fmt: skip
    """Found by schemathesis: a 1909 quote date made the calendar raise ValueError (a 500)."""
    _, today, state = days
    raw = today[RAW].head(1).assign(quote_date=quote_date, expiry=expiry)
    with pytest.raises(StateMissing, match=rf"no market state for quote_date {quote_date}: .*"
                       r"outside the calendar"):  # fmt: skip
        model_features(raw, StateStore(tmp_path, max_age_days=1, bundled=[state]))


def test_contracts_of_several_quote_dates_each_get_their_own_state(days, tmp_path):
    _, today, state = days
    monday = dt.date(2026, 3, 2)
    other = MarketState(**{**state.__dict__, "as_of": monday,
                           "contract_ivs": state.contract_ivs + 0.05})  # fmt: skip
    store = StateStore(tmp_path, max_age_days=1, bundled=[state, other])
    raw = pd.concat([today[RAW].head(3), today[RAW].head(3).assign(quote_date=pd.Timestamp("2026-03-03"))],
                    ignore_index=True)  # fmt: skip
    feats = model_features(raw, store)
    np.testing.assert_allclose(feats["prev_iv"].iloc[3:].to_numpy(),
                               feats["prev_iv"].iloc[:3].to_numpy() + 0.05)  # fmt: skip
