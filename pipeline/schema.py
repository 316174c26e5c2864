"""pandera schemas for quotes: the column contract (a change halts) and the row rules (bad rows
are quarantined with the names of the rules they break).

The column contract is `pipeline.market.parse.RAW_COLUMNS`; the rules need the market's rate and
dividend yields for the no-arbitrage bounds, so `quote_rules(...)` builds them per run.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.errors import SchemaChangeError
from pipeline.market.parse import RAW_COLUMNS

# Columns a quote cannot be used without; a null here quarantines the row.
REQUIRED = (
    "underlying",
    "spot",
    "option",
    "expiry",
    "option_type",
    "strike",
    "bid",
    "ask",
    "quote_date",
)
# What the row rules read: validating only these keeps pandera's failure-case tables small.
RULE_COLUMNS = (*REQUIRED, "bid_size", "ask_size")


def column_contract() -> pa.DataFrameSchema:
    """Names and dtypes of raw quotes. Nulls are allowed here; the row rules judge them."""
    return pa.DataFrameSchema(
        {
            name: pa.Column(dtype, nullable=True, coerce=False)
            for name, dtype in RAW_COLUMNS.items()
        },
        strict=False,
        name="raw_quotes",
    )


def check_columns(df: pd.DataFrame) -> list[str]:
    """Raise SchemaChangeError naming missing/renamed/retyped columns; return unexpected columns."""
    missing = [c for c in RAW_COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in RAW_COLUMNS]
    if missing:
        hint = f"; unexpected columns {extra} (renamed?)" if extra else ""
        raise SchemaChangeError(f"schema change: missing columns {missing}{hint}")
    try:
        # The contract is names and dtypes only (every column nullable, no value checks), so a
        # zero-row slice tells pandera everything without it copying and scanning the table.
        column_contract().validate(df.iloc[:0][list(RAW_COLUMNS)], lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        bad = cases.loc[
            cases["check"].astype(str).str.startswith("dtype"), ["column", "failure_case"]
        ]
        changed = {str(r.column): str(r.failure_case) for r in bad.itertuples()}
        raise SchemaChangeError(
            "schema change: column types differ from the contract: "
            + ", ".join(f"{c} is {got}, expected {RAW_COLUMNS[c]}" for c, got in changed.items())
        ) from None
    return extra


def _bounds(df: pd.DataFrame, rate: float, yields: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Discounted no-arbitrage lower/upper bounds for each quote."""
    t = (df["expiry"] - df["quote_date"]).dt.days.clip(lower=0) / 365.0
    disc = np.exp(-rate * t)
    fwd_disc = df["spot"] * np.exp(-yields * t)  # S e^{-qT} = D F
    k_disc = df["strike"] * disc
    is_call = df["option_type"] == "C"
    lower = np.where(is_call, (fwd_disc - k_disc).clip(lower=0), (k_disc - fwd_disc).clip(lower=0))
    upper = np.where(is_call, fwd_disc, k_disc)
    return pd.Series(lower, df.index), pd.Series(upper, df.index)


def quote_rules(
    rate: float, dividend_yields: Mapping[str, float], default_yield: float, tolerance: float
) -> pa.DataFrameSchema:
    """Row rules. Each check's name is the quarantine reason for the rows that fail it.

    Rules on one column are that column's checks. Rules that read several columns are evaluated
    once per row by the schema's parser into a boolean column named after the rule, which a column
    check of the same name then requires to be True. Why not dataframe-wide checks: pandera
    reports their failures by stacking every column of every failing row into its failure-case
    table (~1 s for a 20k-row day), while a column check reports one cell per failing row.
    """

    def within_bounds(df: pd.DataFrame) -> pd.Series:
        yields = df["underlying"].map(dict(dividend_yields)).fillna(default_yield).astype(float)
        lower, upper = _bounds(df, rate, yields)
        return (df["ask"] >= lower - tolerance) & (df["bid"] <= upper + tolerance)

    row_rules = {  # rule name → True for the rows that pass it
        "bid_le_ask": lambda df: df["bid"] <= df["ask"],
        "bid_quoted": lambda df: df["bid"] > 0,  # zero-bid wings have no usable mid
        "size_quoted": lambda df: (df["bid_size"].fillna(0) + df["ask_size"].fillna(0)) > 0,
        "expiry_after_quote_date": lambda df: df["expiry"] > df["quote_date"],
        "not_duplicated": lambda df: ~df.duplicated("option", keep="first"),
        "no_arbitrage_bounds": within_bounds,
    }

    def evaluate_row_rules(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(**{name: rule_fn(df) for name, rule_fn in row_rules.items()})

    def rule(fn, name: str) -> pa.Check:
        return pa.Check(fn, name=name, ignore_na=False)

    required = {c: pa.Column(RAW_COLUMNS[c], nullable=False, coerce=False) for c in REQUIRED}
    required["strike"] = pa.Column(float, rule(lambda s: s > 0, "strike_positive"), nullable=False)
    required["spot"] = pa.Column(float, rule(lambda s: s > 0, "spot_positive"), nullable=False)
    required["bid"] = pa.Column(float, rule(lambda s: s >= 0, "bid_non_negative"), nullable=False)
    required["ask"] = pa.Column(float, rule(lambda s: s > 0, "ask_positive"), nullable=False)
    required["option_type"] = pa.Column(
        object, rule(lambda s: s.isin(["C", "P"]), "option_type_known"), nullable=False
    )
    passed = {name: pa.Column(bool, rule(lambda s: s, name), nullable=False) for name in row_rules}
    return pa.DataFrameSchema(
        {**required, **passed},
        parsers=pa.Parser(evaluate_row_rules),
        strict=False,
        name="quote_rules",
    )


def rule_names(schema: pa.DataFrameSchema) -> list[str]:
    names = [f"not_null_{c}" for c in REQUIRED]
    names += [chk.name for col in schema.columns.values() for chk in col.checks]
    names += [chk.name for chk in schema.checks]
    return names


def failing_rows(df: pd.DataFrame, schema: pa.DataFrameSchema) -> dict[str, pd.Index]:
    """Run every rule lazily; map rule name → index of the rows that fail it, in `rule_names`
    order (so a quarantined row's reasons are always listed in the same order)."""
    try:
        # inplace: the column selection is already a copy of our own; pandera need not copy it
        schema.validate(df[list(RULE_COLUMNS)], lazy=True, inplace=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index"])
        found: dict[str, pd.Index] = {}
        for (check, column), group in cases.groupby(["check", "column"], dropna=False, sort=False):
            name = f"not_null_{column}" if check == "not_nullable" else str(check)
            idx = pd.Index(group["index"].astype(int).unique())
            found[name] = found[name].union(idx) if name in found else idx
        return {name: found[name] for name in rule_names(schema) if name in found}
    return {}
