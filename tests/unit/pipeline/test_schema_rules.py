"""The row rules as pandera reports them: every rule's failing rows, and their order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.schema import _bounds, failing_rows, quote_rules, rule_names
from tests.factories import good_quotes

RATE, YIELDS, DEFAULT_YIELD, TOLERANCE = 0.04, {"SPY": 0.01}, 0.0, 0.01


def messy_quotes() -> pd.DataFrame:
    """Clean quotes with a few rows broken in one or several ways, nulls included."""
    df = good_quotes(n=30)
    df.loc[0, "bid"] = np.nan
    df.loc[1, ["bid", "ask"]] = [5.0, 4.0]
    df.loc[2, ["bid_size", "ask_size"]] = [0.0, np.nan]
    df.loc[3, "expiry"] = pd.NaT
    df.loc[4, "option"] = df.loc[5, "option"]
    df.loc[6, ["bid", "ask"]] = [700.0, 701.0]
    df.loc[7, ["strike", "spot"]] = [np.nan, -1.0]
    df.loc[8, "option_type"] = "X"
    df.loc[9, "bid"] = 0.0
    return df


def test_each_rule_fails_exactly_the_rows_its_predicate_rejects():
    df = messy_quotes()
    failures = failing_rows(df, quote_rules(RATE, YIELDS, DEFAULT_YIELD, TOLERANCE))
    lower, upper = _bounds(df, RATE, df["underlying"].map(YIELDS).fillna(DEFAULT_YIELD))
    predicates = {  # rows that pass; comparisons with NaN fail, as the rules do
        "not_null_bid": df["bid"].notna(),
        "not_null_strike": df["strike"].notna(),
        "not_null_expiry": df["expiry"].notna(),
        "spot_positive": df["spot"] > 0,
        "strike_positive": df["strike"] > 0,
        "option_type_known": df["option_type"].isin(["C", "P"]),
        "bid_non_negative": df["bid"] >= 0,
        "bid_le_ask": df["bid"] <= df["ask"],
        "bid_quoted": df["bid"] > 0,
        "size_quoted": df["bid_size"].fillna(0) + df["ask_size"].fillna(0) > 0,
        "expiry_after_quote_date": df["expiry"] > df["quote_date"],
        "not_duplicated": ~df.duplicated("option"),
        "no_arbitrage_bounds": (df["ask"] >= lower - TOLERANCE) & (df["bid"] <= upper + TOLERANCE),
    }
    for name, passes in predicates.items():
        expected = list(df.index[~passes])
        assert sorted(failures.get(name, [])) == expected, name
    assert set(failures) <= set(rule_names(quote_rules(RATE, YIELDS, DEFAULT_YIELD, TOLERANCE)))


def test_failures_come_in_rule_order():
    schema = quote_rules(RATE, YIELDS, DEFAULT_YIELD, TOLERANCE)
    names = list(failing_rows(messy_quotes(), schema))
    order = rule_names(schema)
    assert names == sorted(names, key=order.index)
