"""OCC option symbols: ``ROOT`` (1–6 chars) + ``YYMMDD`` + ``C``/``P`` + strike × 1000 (8 digits).

``SPY260821C00600000`` is SPY, 2026-08-21, call, strike 600.0. Roots vary in length and may end in
a digit (``BRKB``, ``SPXW``, ``AAPL1``), so symbols are parsed from the right: the last 15
characters have a fixed layout and whatever precedes them is the root. The padded 21-character
form (``"SPY   260821C00600000"``) is accepted too; the padding is dropped.

- `parse_occ_symbols(series)` — vectorised; invalid symbols give all-missing rows (NaN/NaT), so
  the validator can quarantine them instead of the parser halting the day.
- `parse_occ_symbol(s)` — scalar; raises ValueError saying what is wrong.
- `format_occ_symbol(...)` / `format_occ_symbols(...)` — the inverse (the synthetic market uses it).

Years are 20YY. A strike of 0 is structurally valid here; whether it is sensible is validation's call.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

# Anchored at both ends; the fixed-width tail is matched first because the root is bounded.
OCC_PATTERN = r"^(?P<root>[A-Z0-9]{1,6}) *(?P<date>\d{6})(?P<option_type>[CP])(?P<strike>\d{8})$"
_OCC_RE = re.compile(OCC_PATTERN)
_ROOT_RE = re.compile(r"^[A-Z0-9]{1,6}$")
MAX_STRIKE = 99_999.999  # 8 digits of thousandths

OCC_COLUMNS = {
    "root": "object",
    "expiry": "datetime64[ns]",
    "option_type": "object",
    "strike": "float64",
}


class OccSymbol(NamedTuple):
    root: str
    expiry: pd.Timestamp
    option_type: str  # "C" | "P"
    strike: float


def parse_occ_symbols(symbols: pd.Series) -> pd.DataFrame:
    """Series of OCC symbols → DataFrame(root, expiry, option_type, strike) on the same index.

    Dtypes follow `OCC_COLUMNS`. A symbol that does not match the layout, or whose date does not
    exist (e.g. month 13), or that is not a string at all, gives a row of NaN/NaT in every column.
    """
    # One compiled-regex match per symbol, on plain lists: pandas' `str.extract` does the same
    # work several times slower (~0.1 s for a 20k-contract day).
    matches = [_OCC_RE.match(s.strip()) if isinstance(s, str) else None for s in symbols.tolist()]
    groups = [m.groups() if m else (None, None, None, None) for m in matches]
    root, date, kind, strike = zip(*groups, strict=True) if groups else ((), (), (), ())
    expiry = pd.to_datetime(
        pd.Series([None if d is None else "20" + d for d in date], symbols.index, dtype=object),
        format="%Y%m%d",
        errors="coerce",
    )
    # `\d` also matches non-ASCII digits; pandas' number parsing left such strikes NaN
    milli = [int(s) if s is not None and s.isascii() else np.nan for s in strike]
    valid = expiry.notna().to_numpy()  # a date parses only when the whole symbol matched
    return pd.DataFrame(
        {
            "root": np.where(valid, np.array(root, dtype=object), np.nan),
            "expiry": expiry.where(valid).astype("datetime64[ns]"),
            "option_type": np.where(valid, np.array(kind, dtype=object), np.nan),
            "strike": np.where(valid, np.array(milli, dtype="float64"), np.nan) / 1000.0,
        },
        index=symbols.index,
    )


def parse_occ_symbol(symbol: str) -> OccSymbol:
    """One OCC symbol → OccSymbol(root, expiry, option_type, strike), or ValueError saying why."""
    if not isinstance(symbol, str):
        raise ValueError(f"OCC symbol must be a string, got {type(symbol).__name__} {symbol!r}")
    match = _OCC_RE.match(symbol.strip())
    if match is None:
        raise ValueError(
            f"not an OCC option symbol: {symbol!r}; expected ROOT(1-6 of A-Z0-9) + YYMMDD + C|P + "
            "strike x 1000 as 8 digits, e.g. 'SPY260821C00600000'"
        )
    date = match["date"]
    try:
        expiry = pd.Timestamp(dt.datetime.strptime("20" + date, "%Y%m%d"))
    except ValueError:
        raise ValueError(
            f"OCC symbol {symbol!r} has an impossible expiry date '{date}' (YYMMDD)"
        ) from None
    return OccSymbol(match["root"], expiry, match["option_type"], int(match["strike"]) / 1000.0)


def _check_strike(strike: float) -> int:
    """Strike → integer thousandths, refusing what the 8-digit field cannot hold exactly."""
    if not np.isfinite(strike) or strike < 0 or strike > MAX_STRIKE:
        raise ValueError(f"strike {strike!r} does not fit an OCC symbol (0 to {MAX_STRIKE})")
    milli = round(strike * 1000)
    if abs(milli - strike * 1000) > 1e-6 * max(1.0, strike):
        raise ValueError(f"strike {strike!r} is not a whole number of thousandths")
    return int(milli)


def format_occ_symbol(root: str, expiry: Any, option_type: str, strike: float) -> str:
    """(root, expiry date-like, "C"/"P", strike) → e.g. 'SPY260821C00600000'; ValueError if it can't."""
    if not isinstance(root, str) or not _ROOT_RE.match(root):
        raise ValueError(f"OCC root must be 1-6 characters of A-Z0-9, got {root!r}")
    kind = str(option_type).upper()
    if kind not in ("C", "P"):
        raise ValueError(f"option_type must be 'C' or 'P', got {option_type!r}")
    when = pd.Timestamp(expiry)
    if pd.isna(when) or not 2000 <= when.year <= 2099:
        raise ValueError(f"expiry {expiry!r} is outside the OCC years 2000-2099")
    return f"{root}{when:%y%m%d}{kind}{_check_strike(float(strike)):08d}"


def format_occ_symbols(
    roots: pd.Series, expiries: pd.Series, option_types: pd.Series, strikes: pd.Series
) -> pd.Series:
    """Vectorised `format_occ_symbol` for aligned, equally long inputs → Series of symbols.

    The result carries the index of `roots` when it is a Series. Any bad row raises the scalar
    formatter's ValueError for the first offending row (a generator bug, not market data).
    """
    index = roots.index if isinstance(roots, pd.Series) else None
    root = pd.Series(np.asarray(roots, dtype=object))
    expiry = pd.Series(pd.to_datetime(np.asarray(expiries), errors="coerce"))
    kind = pd.Series(np.asarray(option_types, dtype=object)).astype(str).str.upper()
    strike = pd.Series(np.asarray(strikes, dtype="float64"))
    milli = (strike * 1000).round()
    bad = (
        ~root.map(lambda r: isinstance(r, str) and _ROOT_RE.match(r) is not None)
        | ~kind.isin(["C", "P"])
        | expiry.isna()
        | ~expiry.dt.year.between(2000, 2099)
        | ~np.isfinite(strike)
        | (strike < 0)
        | (strike > MAX_STRIKE)
        | ((milli - strike * 1000).abs() > 1e-6 * strike.abs().clip(lower=1.0))
    )
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        format_occ_symbol(root[i], expiry[i], kind[i], strike[i])  # raises the precise message
        raise ValueError(f"row {i} cannot be formatted as an OCC symbol")  # pragma: no cover
    symbols = (
        root + expiry.dt.strftime("%y%m%d") + kind + milli.astype("int64").map("{:08d}".format)
    )
    if index is not None:
        symbols.index = index
    return symbols
