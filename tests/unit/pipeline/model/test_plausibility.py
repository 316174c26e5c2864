"""pipeline.model.plausibility through the pricer: well-formed but absurd contracts (a subnormal
spot, a strike a million times away, a 40-year expiry) and model inputs XGBoost cannot take are
refused with a ContractError naming row and field, never priced and never an XGBoost crash; and
no contract of the markets the project generates (or of a real Cboe chain) is refused."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import CONFIG_DIR
from pipeline.features import MODEL_FEATURES
from pipeline.market.parse import chain_to_frame
from pipeline.market.synthetic import generate_day
from pipeline.model.plausibility import MAX_LOG_MONEYNESS, implausible
from pipeline.model.pricer import (
    CONTRACT_COLUMNS,
    ContractError,
    predict_frame,
    validate_contracts,
)
from tests.conftest import compose_config
from tests.unit.pipeline.model.test_pricer import RAW, days, identity_booster, state  # noqa: F401

ROW = 11  # the row made absurd, among labels 10, 11, 12


@pytest.fixture(scope="module")
def raw(days):  # noqa: F811
    """Three of today's contracts (SPY, strikes ~560-640, spot 605), labelled 10, 11, 12."""
    _, today, _ = days
    return today[RAW].head(3).set_axis([10, 11, 12])


def refusal(raw, booster, state, **changes) -> ContractError:  # noqa: F811
    """The ContractError of predict_frame on `raw` with row ROW changed."""
    contracts = raw.astype({col: object for col in changes if col in raw})
    for col, value in changes.items():
        contracts.loc[ROW, col] = value
    with pytest.raises(ContractError) as info:
        predict_frame(contracts, booster, state, MODEL_FEATURES)
    return info.value


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        # subnormal floats pass "> 0" and made ln(strike/spot) infinite: XGBoost refused the batch
        ({"spot": 1e-310}, "spot", "spot must be between 0.01 and 10,000,000, got 1e-310"),
        ({"spot": 1e-308}, "spot", "got 1e-308"),
        ({"spot": 2.2e-308}, "spot", "got 2.2e-308"),
        ({"spot": 5e-324}, "spot", "got 5e-324"),
        ({"strike": 5e-324}, "strike", "strike must be between 0.01"),
        # finite but absurd: priced at the IV clip before, a meaningless number
        ({"strike": 1e-6}, "strike", "got 1e-06"),
        ({"spot": 1e7}, "strike", "is implausibly far from spot 10000000.0: ln(strike/spot) = -9."),
        ({"strike": 700_000.0}, "strike", "a strike within a factor of 1,000 of spot"),
        ({"spot": 2e7, "strike": 2e7}, "strike", "strike must be between"),
        ({"rate": 3.0}, "rate", "rate must be between -1 and 1 (a year, continuous), got 3.0"),
        ({"dividend_yield": -50.0}, "dividend_yield", "got -50.0"),
        ({"expiry": pd.Timestamp("2070-01-02")}, "expiry", "more than 30 years after quote_date"),
    ],
)
def test_absurd_contracts_are_refused_naming_row_and_field(
    raw,
    state,  # noqa: F811
    identity_booster,  # noqa: F811
    changes,
    field,
    words,
):
    error = refusal(raw, identity_booster, state, **changes)
    assert [(row, f) for row, f, _ in error.problems][:1] == [(ROW, field)]
    assert f"row {ROW}: " in str(error) and words in str(error)
    assert {row for row, _, _ in error.problems} == {ROW}  # the other rows are fine


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rv_20d": 1e300}, "rv_20d"),  # vol_time = rv_20d × √T overflows float32
        ({"prev_smile_iv": 1e300}, "prev_smile_iv"),  # a feature and the base margin
        ({"prev_skew": -1e39}, "prev_skew"),  # finite in float64, infinite as XGBoost reads it
        ({"spot_return": 1e300}, "spot_return"),
    ],
)
def test_model_inputs_xgboost_cannot_take_are_refused_naming_the_field(
    raw,
    state,  # noqa: F811
    identity_booster,  # noqa: F811
    changes,
    field,
):
    """The last guard before the booster: caller-given state columns can still overflow."""
    error = refusal(raw, identity_booster, state, **changes)
    assert (ROW, field) in [(row, f) for row, f, _ in error.problems]
    assert f"row {ROW}: the model input" in str(error) and f"check {field}" in str(error)


def test_contracts_at_the_bounds_are_priced(raw, state, identity_booster):  # noqa: F811
    strike = float(raw.loc[ROW, "spot"]) * np.exp(MAX_LOG_MONEYNESS - 1e-9)
    contracts = raw.assign(strike=raw["strike"].where(raw.index != ROW, strike), rate=1.0)
    out = predict_frame(contracts, identity_booster, state, MODEL_FEATURES)
    assert np.isfinite(out.to_numpy()).all()


# -- the markets the project generates, and a real Cboe chain --------------------------------
DAY = dt.date(2026, 3, 3)
# the accuracy benchmark's shock (benchmarks/accuracy.py): variance x4, strikes twice as wide
SHOCK = ["data_fetch.synthetic.shock_dates=[2026-03-02]", "data_fetch.synthetic.shock_size=4.0",
         "data_fetch.synthetic.shock_strike_width=2.0"]  # fmt: skip
MARKETS = {
    # the default market: strikes ±4 standard deviations, expiries to 2 years (its most volatile
    # underlyings, whose wings are widest)
    "ssvi": ("synthetic", [], ["IWM", "_RUT", "_NDX"]),
    "ssvi, variance x4, strikes twice as wide": ("synthetic", SHOCK, ["IWM", "_RUT", "_NDX"]),
    "sabr_jumps, variance x4, strikes twice as wide": ("synthetic_jumps", SHOCK, None),
}


def contracts_of(payloads) -> pd.DataFrame:
    """The chains' contracts that reach the model: data_validate quarantines expired contracts
    and rows without the contract fields (a strike too large for the OCC symbol's 8 digits has
    no option_type)."""
    quotes = pd.concat([chain_to_frame(p) for p in payloads.values()], ignore_index=True)
    quotes = quotes.dropna(subset=list(CONTRACT_COLUMNS))
    return quotes[quotes["expiry"] > quotes["quote_date"]]


@pytest.mark.parametrize("market", MARKETS)
def test_no_contract_of_the_generated_markets_is_implausible(market):
    family, overrides, symbols = MARKETS[market]
    cfg = compose_config([f"data_fetch={family}", "data_fetch.synthetic.bad_row_rate=0",
                          "paths.root=unused", *overrides])  # fmt: skip
    payloads, _ = generate_day(DAY, cfg.data_fetch.synthetic, cfg.market, symbols)
    contracts = contracts_of(payloads)
    assert implausible(validate_contracts(contracts)) == []
    wings = np.log(contracts["strike"] / contracts["spot"]).abs().max()
    years = (contracts["expiry"] - contracts["quote_date"]).dt.days.max() / 365
    assert 1.0 < wings < MAX_LOG_MONEYNESS and years > 1.2  # deep wings and long expiries


def test_no_contract_of_a_real_cboe_chain_is_implausible():
    payload = json.loads((CONFIG_DIR.parent / "tests/fixtures/cboe/spy_chain.json").read_text())
    contracts = contracts_of({"SPY": payload})
    assert implausible(validate_contracts(contracts)) == []


@pytest.mark.parametrize(
    ("field", "value"), [("strike", np.inf), ("spot", -1.0), ("rate", -np.inf)]
)
def test_a_value_validation_already_refuses_is_reported_once(raw, field, value):
    contracts = raw.assign(**{field: raw.get(field, np.nan)}).astype({field: float})
    contracts.loc[ROW, field] = value
    with pytest.raises(ContractError) as info:
        validate_contracts(contracts)
    assert [row for row, _, _ in info.value.problems] == [ROW]
