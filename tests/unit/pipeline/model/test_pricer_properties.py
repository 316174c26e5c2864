"""Property: whatever a caller puts in a contract's fields, pipeline.model.pricer.predict_frame
either prices every row with a finite iv and price, or raises ContractError naming the bad row and
field (StateMissing: naming the quote_date it has no state for). Never another exception (an
XGBoost crash over a subnormal spot was one), never a non-finite answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.features import MODEL_FEATURES
from pipeline.model.pricer import (
    OPTIONAL_COLUMNS,
    ContractError,
    StateMissing,
    predict_frame,
)
from tests.unit.pipeline.model.test_pricer import RAW, days, identity_booster, state  # noqa: F401

LABELS = [10, 11, 12]
FIELDS = sorted({*RAW, *OPTIONAL_COLUMNS})  # contract fields, rate, dividend, state columns
ANY_VALUE = st.one_of(
    st.floats(),  # NaN, ±inf, subnormals, ±1e308 included
    st.text(max_size=24),
    st.integers(),
    st.none(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
)
# bounded: ~0.1 s per priced example on a loaded 2-core machine
SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)
# pandas parsing a drawn string as a date, one element at a time: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Could not infer format:UserWarning")


@pytest.fixture(scope="module")
def contracts(days):  # noqa: F811
    """Three of today's SPY contracts (strikes ~560-640, spot 605), labelled 10, 11, 12."""
    _, today, _ = days
    return today[RAW].head(3).set_axis(LABELS)


def check(contracts, booster, state, row, fields) -> None:  # noqa: F811
    """Price `contracts` (row `row` holds the drawn `fields`) and check the property."""
    try:
        out = predict_frame(contracts, booster, state, MODEL_FEATURES)
    except StateMissing as exc:
        assert "quote_date" in fields and "quote_date" in str(exc), exc
        return
    except ContractError as exc:
        assert exc.problems, exc
        assert {label for label, _, _ in exc.problems} == {row}, exc  # only the bad row
        named = [
            f for _, f, message in exc.problems if f in fields or any(n in message for n in fields)
        ]
        assert named, f"no problem names any of {fields}: {exc}"
        assert f"row {row}: " in str(exc)
        return
    assert list(out.index) == LABELS and list(out.columns) == ["iv", "price"]
    assert np.isfinite(out.to_numpy(float)).all(), out


def with_value(contracts: pd.DataFrame, row: int, field: str, value) -> pd.DataFrame:
    """`contracts` with `value` in row `row` of column `field` (a new column: null elsewhere)."""
    changed = contracts.copy()
    if field not in changed:
        changed[field] = None
    changed = changed.astype({field: object})
    changed.at[row, field] = value
    return changed


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=ANY_VALUE, row=st.sampled_from(LABELS))
@example(field="spot", value=1e-310, row=11)  # the 500s of issue 13
@example(field="spot", value=5e-324, row=11)
@example(field="strike", value=5e-324, row=12)
@example(field="strike", value=1e-6, row=10)  # priced at the IV clip before
@example(field="rv_20d", value=1e300, row=11)  # finite, but not as XGBoost's float32
def test_any_value_in_any_field_is_priced_finitely_or_refused_by_row_and_field(
    contracts,
    identity_booster,  # noqa: F811
    state,  # noqa: F811
    field,
    value,
    row,
):
    check(with_value(contracts, row, field, value), identity_booster, state, row, [field])


ANY_FLOAT = st.floats()
LEVEL = st.one_of(ANY_FLOAT, st.floats(1e-4, 1e8))  # any float, and often a plausible size
RATE = st.one_of(ANY_FLOAT, st.floats(-2, 2))


@SETTINGS
@given(strike=LEVEL, spot=LEVEL, rate=RATE, dividend_yield=RATE, term_days=st.integers(1, 40_000))
@example(strike=600.0, spot=1e7, rate=0.0, dividend_yield=0.0, term_days=30)  # meaningless before
@example(strike=1e7, spot=0.01, rate=1.0, dividend_yield=-1.0, term_days=10_950)
def test_any_numbers_together_are_priced_finitely_or_refused_by_row_and_field(
    contracts,
    identity_booster,  # noqa: F811
    state,  # noqa: F811
    strike,
    spot,
    rate,
    dividend_yield,
    term_days,
):
    """All numbers of one row drawn at once (extreme moneyness with extreme rates and terms)."""
    row = 11
    changed = contracts.assign(rate=np.nan, dividend_yield=np.nan)
    expiry = changed.at[row, "quote_date"] + pd.Timedelta(days=term_days)
    changed = changed.astype({"expiry": object})
    for field, value in {"strike": strike, "spot": spot, "rate": rate,
                         "dividend_yield": dividend_yield, "expiry": expiry}.items():  # fmt: skip
        changed.at[row, field] = value
    fields = ["strike", "spot", "rate", "dividend_yield", "expiry"]
    check(changed, identity_booster, state, row, fields)


def test_the_unchanged_contracts_are_priced(contracts, identity_booster, state):  # noqa: F811
    """The properties start from contracts that price."""
    check(contracts, identity_booster, state, row=None, fields=[])
