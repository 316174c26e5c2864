"""pipeline.model.array_path against its oracle pipeline.model.pricer.predict_frame: the same iv
and price on every row of the default and the tiny synthetic markets (raw contracts, feature rows
with their state columns given, several quote dates at once), and the same error on bad input."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from pipeline.features import MODEL_FEATURES
from pipeline.main import run_pipeline
from pipeline.market_state import StateStore
from pipeline.model.array_path import predict_contracts, price_columns
from pipeline.model.pricer import (
    CONTRACT_COLUMNS,
    ContractError,
    design_matrix,
    fit_blend,
    predict_frame,
)
from pipeline.runtime import tracking_to
from tests.conftest import NO_SERVICE, TINY_MARKET, compose_config

pytestmark = pytest.mark.slow  # builds 4 days of two markets (~25 s)
END = dt.date(2026, 3, 31)
RAW = [*CONTRACT_COLUMNS, "option"]
FEATURES = list(MODEL_FEATURES)


def _market(root, tiny: bool):
    """(feature tables by day, the daily states' store) of 4 trading days of a market."""
    cfg = compose_config([f"paths.root={root}", NO_SERVICE, *(TINY_MARKET if tiny else []),
                          f"main.end_date={END}", "main.days=4",
                          "main.tasks=[data_fetch,data_validate,feature_engineer]"])  # fmt: skip
    with tracking_to(cfg):
        run_pipeline(cfg)
    files = sorted((root / "data" / "processed").glob("features_*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    return frames, StateStore(root / "data" / "state", 2)


def _booster(frames) -> xgb.Booster:
    """A small booster fitted like train_model's (log scale, standardised moves, learnt blend) on
    the days with a previous state."""
    train = pd.concat(frames[1:-1], ignore_index=True)
    train = train[train["iv_reliable"].astype(bool)]
    blend = fit_blend(train, train["iv"])
    matrix = design_matrix(train, FEATURES, train["iv"].to_numpy(float), blend, "log",
                           "standardised")  # fmt: skip
    booster = xgb.train({"max_depth": 5, "eta": 0.3, "seed": 0}, matrix, num_boost_round=40)
    booster.set_attr(base_blend=json.dumps(blend), target_scale="log", moves="standardised")
    return booster


@pytest.fixture(scope="module", params=["tiny", "default"])
def market(request, tmp_path_factory):
    frames, store = _market(tmp_path_factory.mktemp(request.param), request.param == "tiny")
    return frames, store, _booster(frames)


def _assert_same(contracts, booster, store):
    oracle = predict_frame(contracts, booster, store, FEATURES)
    ours = predict_contracts(contracts, booster, store, FEATURES)
    assert len(ours) == len(contracts) > 0
    assert ours.index.equals(contracts.index)
    assert np.isfinite(ours.to_numpy()).all()
    np.testing.assert_allclose(ours["iv"], oracle["iv"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["price"], oracle["price"], rtol=0, atol=1e-12)


def test_raw_contracts_price_the_same_on_every_row(market):
    frames, store, booster = market
    _assert_same(frames[-1][RAW], booster, store)


def test_feature_rows_with_given_state_columns_price_the_same(market):
    frames, store, booster = market
    rows = frames[-1].copy()
    rows.loc[rows.index[::7], "prev_iv"] = np.nan  # given unknowns stay unknown
    rows["rate"] = np.where(np.arange(len(rows)) % 3 == 0, np.nan, 0.031)
    _assert_same(rows, booster, store)


def test_several_quote_dates_and_a_shuffled_index_price_the_same(market):
    frames, store, booster = market
    rows = pd.concat([f[RAW] for f in frames[1:]], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=0).set_axis(np.arange(len(rows))[::-1] * 3)
    _assert_same(rows, booster, store)


BAD = {  # column → a bad value for the first row (the second row gets another where given)
    "strike": [np.nan, -5.0],
    "spot": ["abc", 5e-310],
    "option_type": ["X", None],
    "underlying": [None, "NOPE"],
    "expiry": ["not a date", "2020-01-02"],
    "quote_date": ["2026-03-31", "1990-01-02"],
    "rate": [5.0, np.inf],
    "rv_20d": [1e300, "high"],
}


@pytest.mark.parametrize("column", list(BAD))
def test_bad_inputs_get_the_same_error(market, column):
    frames, store, booster = market
    rows = frames[-1][RAW].head(4).copy().reset_index(drop=True)
    rows[column] = rows[column].astype(object) if column in rows else None
    rows.loc[0, column], rows.loc[1, column] = BAD[column]
    with pytest.raises(ContractError) as oracle:
        predict_frame(rows, booster, store, FEATURES)
    with pytest.raises(ContractError) as ours:
        predict_contracts(rows, booster, store, FEATURES)
    assert type(ours.value) is type(oracle.value)
    assert str(ours.value) == str(oracle.value)
    assert ours.value.problems == oracle.value.problems


def test_missing_columns_and_empty_input(market):
    frames, store, booster = market
    rows = frames[-1][RAW].head(2)
    for call in (predict_frame, predict_contracts):
        with pytest.raises(ContractError, match=r"missing required column\(s\) \['spot'\]"):
            call(rows.drop(columns="spot"), booster, store, FEATURES)
        assert call(rows.head(0), booster, store, FEATURES).empty
    iv, price = price_columns({c: rows[c].to_numpy() for c in RAW}, booster, store, FEATURES)
    np.testing.assert_array_equal(iv, predict_frame(rows, booster, store, FEATURES)["iv"])
