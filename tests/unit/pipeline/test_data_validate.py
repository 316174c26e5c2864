from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.data_validate import validate_quotes
from pipeline.errors import DataError, SchemaChangeError
from tests.factories import DAY, MARKET, VALIDATE, good_quotes


def test_clean_quotes_all_pass_and_report_counts_every_rule():
    result = validate_quotes(good_quotes(), VALIDATE, MARKET, DAY)
    assert len(result.valid) == 12 and result.quarantine.empty
    assert all(r == {"passed": 12, "failed": 0} for r in result.report["rules"].values())
    assert {
        "bid_le_ask",
        "no_arbitrage_bounds",
        "not_duplicated",
        "expiry_after_quote_date",
        "strike_positive",
        "not_null_bid",
    } <= set(result.report["rules"])
    assert result.report["null_rate"]["bid"] == 0.0


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda df: df.assign(bid=df["ask"] + 1.0), "bid_le_ask"),
        (lambda df: df.assign(strike=-df["strike"]), "strike_positive"),
        (lambda df: df.assign(bid=np.nan), "not_null_bid"),
        (lambda df: df.assign(bid=-1.0), "bid_non_negative"),
        (lambda df: df.assign(bid=0.0), "bid_quoted"),
        (lambda df: df.assign(bid_size=0.0, ask_size=0.0), "size_quoted"),
        (lambda df: df.assign(expiry=pd.Timestamp("2026-02-27")), "expiry_after_quote_date"),
        (lambda df: df.assign(bid=700.0, ask=701.0), "no_arbitrage_bounds"),
        (lambda df: df.assign(option_type="X"), "option_type_known"),
    ],
)
def test_each_rule_quarantines_its_rows_with_a_reason(corrupt, reason):
    df = good_quotes()
    df = pd.concat([df.iloc[:9], corrupt(df.iloc[9:].copy())], ignore_index=True)
    result = validate_quotes(df, VALIDATE, MARKET, DAY)
    assert len(result.valid) == 9
    assert len(result.quarantine) == 3
    assert result.quarantine["reason"].str.split(";").map(lambda r: reason in r).all(), (
        result.quarantine["reason"]
    )
    assert result.report["rules"][reason] == {"passed": 9, "failed": 3}


def test_duplicates_keep_the_first_copy():
    df = good_quotes()
    df = pd.concat([df, df.iloc[[0, 1]]], ignore_index=True)
    result = validate_quotes(df, VALIDATE, MARKET, DAY)
    assert len(result.valid) == 12
    assert list(result.quarantine["reason"]) == ["not_duplicated", "not_duplicated"]


def test_input_frame_is_not_mutated():
    df = good_quotes()
    df.loc[0, "bid"] = df.loc[0, "ask"] + 1
    before = df.copy()
    validate_quotes(df, VALIDATE, MARKET, DAY)
    pd.testing.assert_frame_equal(df, before)


def test_renamed_column_is_a_schema_change_naming_both_columns():
    df = good_quotes().rename(columns={"strike": "strike_price"})
    with pytest.raises(SchemaChangeError, match=r"missing columns \['strike'\].*strike_price"):
        validate_quotes(df, VALIDATE, MARKET, DAY)


def test_changed_type_is_a_schema_change_naming_the_column():
    df = good_quotes().assign(bid=lambda d: d["bid"].astype(str))
    with pytest.raises(SchemaChangeError, match="bid is object, expected float64"):
        validate_quotes(df, VALIDATE, MARKET, DAY)


def test_too_many_bad_rows_halts():
    df = good_quotes().assign(bid=lambda d: d["ask"] + 1.0)
    with pytest.raises(DataError, match="too many bad rows.*bid_le_ask"):
        validate_quotes(df, VALIDATE, MARKET, DAY)


def test_null_rate_spike_halts():
    df = good_quotes()
    df.loc[:8, "ask"] = np.nan
    with pytest.raises(DataError, match="null-rate spike.*ask"):
        validate_quotes(df, VALIDATE, MARKET, DAY)


def test_stale_chain_halts():
    with pytest.raises(DataError, match="stale chain"):
        validate_quotes(good_quotes(), VALIDATE, MARKET, DAY + dt.timedelta(days=10))
