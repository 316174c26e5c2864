"""pipeline.market.occ: OCC symbols parsed from the right, invalid ones as missing rows."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipeline.market.occ import (
    OCC_COLUMNS,
    format_occ_symbol,
    format_occ_symbols,
    parse_occ_symbol,
    parse_occ_symbols,
)

VALID = {
    "SPY260821C00600000": ("SPY", "2026-08-21", "C", 600.0),
    "SPXW261218P05000000": ("SPXW", "2026-12-18", "P", 5000.0),
    "BRKB250117C00450500": ("BRKB", "2025-01-17", "C", 450.5),
    "AAPL1250117P00150000": ("AAPL1", "2025-01-17", "P", 150.0),  # root ends in a digit
    "X250620C00000500": ("X", "2025-06-20", "C", 0.5),
    "NANOS1270115P00012345": ("NANOS1", "2027-01-15", "P", 12.345),  # 6-char root, 3 decimals
    "SPY   260821C00600000": ("SPY", "2026-08-21", "C", 600.0),  # OCC's space-padded form
}

INVALID = [
    "SPY261321C00600000",  # month 13
    "SPY260230C00600000",  # 30 February
    "SPY260821X00600000",  # neither C nor P
    "SPY260821C0060000",  # 7 strike digits
    "260821C00600000",  # no root
    "TOOLONG260821C00600000",  # 7-char root
    "spy260821C00600000",  # lower case
    "SPY260821C00600000 junk",
    "",
]


def test_parse_series_valid_symbols():
    symbols = pd.Series(list(VALID))
    out = parse_occ_symbols(symbols)
    assert list(out.columns) == list(OCC_COLUMNS)
    assert out.dtypes.astype(str).to_dict() == OCC_COLUMNS
    for i, (root, expiry, kind, strike) in enumerate(VALID.values()):
        assert out.loc[i, "root"] == root
        assert out.loc[i, "expiry"] == pd.Timestamp(expiry)
        assert out.loc[i, "option_type"] == kind
        assert out.loc[i, "strike"] == pytest.approx(strike)


def test_parse_series_invalid_symbols_become_missing_rows_on_the_same_index():
    values = [*INVALID, None, 12.0, "SPY260821C00600000"]
    index = pd.Index([f"r{i}" for i in range(len(values))])
    out = parse_occ_symbols(pd.Series(values, index=index, dtype=object))
    assert out.index.equals(index)
    bad = out.iloc[:-1]
    assert bad.isna().all(axis=None), bad
    assert out.iloc[-1]["root"] == "SPY"
    assert out.dtypes.astype(str).to_dict() == OCC_COLUMNS


def test_parse_series_empty_keeps_dtypes():
    out = parse_occ_symbols(pd.Series([], dtype=object))
    assert out.empty
    assert out.dtypes.astype(str).to_dict() == OCC_COLUMNS


@pytest.mark.parametrize("symbol,expected", list(VALID.items()))
def test_parse_scalar(symbol, expected):
    root, expiry, kind, strike = expected
    parsed = parse_occ_symbol(symbol)
    assert (parsed.root, parsed.expiry, parsed.option_type) == (root, pd.Timestamp(expiry), kind)
    assert parsed.strike == pytest.approx(strike)


@pytest.mark.parametrize("symbol", INVALID)
def test_parse_scalar_invalid_raises_naming_the_symbol(symbol):
    with pytest.raises(ValueError, match="OCC") as info:
        parse_occ_symbol(symbol)
    assert repr(symbol) in str(info.value)


def test_parse_scalar_impossible_date_says_so():
    with pytest.raises(ValueError, match="impossible expiry date '261321'"):
        parse_occ_symbol("SPY261321C00600000")


def test_parse_scalar_non_string():
    with pytest.raises(ValueError, match="must be a string"):
        parse_occ_symbol(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("symbol", [s for s in VALID if " " not in s])
def test_format_inverts_parse(symbol):
    parsed = parse_occ_symbol(symbol)
    assert format_occ_symbol(*parsed) == symbol


def test_format_accepts_date_like_expiries_and_lower_case_type():
    assert format_occ_symbol("SPY", dt.date(2026, 8, 21), "c", 600) == "SPY260821C00600000"
    assert format_occ_symbol("SPXW", "2026-12-18", "P", 5000.0) == "SPXW261218P05000000"
    assert format_occ_symbol("SPY", pd.Timestamp("2026-08-21"), "P", 652.5) == "SPY260821P00652500"


@pytest.mark.parametrize(
    "args,match",
    [
        (("", "2026-08-21", "C", 600), "root"),
        (("TOOLONG", "2026-08-21", "C", 600), "root"),
        (("_SPX", "2026-08-21", "C", 600), "root"),
        (("SPY", "2026-08-21", "X", 600), "option_type"),
        (("SPY", "1999-08-21", "C", 600), "expiry"),
        (("SPY", "2026-08-21", "C", -1.0), "strike"),
        (("SPY", "2026-08-21", "C", 100_000.0), "strike"),
        (("SPY", "2026-08-21", "C", 600.0001), "thousandths"),
        (("SPY", "2026-08-21", "C", float("nan")), "strike"),
    ],
)
def test_format_rejects_what_the_symbol_cannot_hold(args, match):
    with pytest.raises(ValueError, match=match):
        format_occ_symbol(*args)


def test_format_vectorised_matches_scalar_and_keeps_index():
    parsed = parse_occ_symbols(pd.Series([s for s in VALID if " " not in s], index=list("abcdef")))
    out = format_occ_symbols(
        parsed["root"], parsed["expiry"], parsed["option_type"], parsed["strike"]
    )
    assert out.index.equals(parsed.index)
    assert out.tolist() == [format_occ_symbol(*row) for row in parsed.itertuples(index=False)]
    assert parse_occ_symbols(out).equals(parsed)


def test_format_vectorised_rejects_a_bad_row():
    with pytest.raises(ValueError, match="option_type"):
        format_occ_symbols(
            pd.Series(["SPY", "SPY"]),
            pd.Series(pd.to_datetime(["2026-08-21", "2026-08-21"])),
            pd.Series(["C", "Q"]),
            pd.Series([600.0, 600.0]),
        )
