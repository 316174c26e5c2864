"""The one parser from a Cboe delayed-quotes payload to the flat raw-quotes table.

Both the Cboe client and the synthetic market produce Cboe-shaped payloads, and both go through
`chain_to_frame`, so raw data has one shape whatever its source. `RAW_COLUMNS` is that shape's
contract (column → pandas dtype, in order); the validator builds its schema from it.

Strings are plain ``object`` columns (not pandas ``string``) so parquet and csv round trips give
back the same dtypes with no extension types; missing strings are NaN. Times are naive
``datetime64[ns]`` as Cboe prints them (US/Eastern wall clock), never converted.

Structure problems are errors (`MalformedPayloadError`, `EmptyChainError`); bad values inside a
well-formed payload (a price that is not a number, ``iv == 0.0``) become NaN for validation to judge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import DataError, SchemaChangeError
from pipeline.market.occ import parse_occ_symbols

RAW_COLUMNS: dict[str, str] = {
    "quote_time": "datetime64[ns]",  # payload `timestamp`
    "quote_date": "datetime64[ns]",  # quote_time at midnight
    "underlying": "object",  # top-level `symbol` as Cboe spells it (_SPX, SPY)
    "spot": "float64",  # data.current_price
    "option": "object",  # OCC symbol
    "root": "object",
    "expiry": "datetime64[ns]",
    "option_type": "object",  # "C" | "P"
    "strike": "float64",
    "bid": "float64",
    "ask": "float64",
    "bid_size": "float64",
    "ask_size": "float64",
    "volume": "float64",
    "open_interest": "float64",
    "vendor_iv": "float64",  # Cboe per-contract `iv` (a fraction); 0.0 there means missing → NaN
    "last_trade_price": "float64",
    "last_trade_time": "datetime64[ns]",  # NaT when absent or empty
    "delta": "float64",
    "gamma": "float64",
    "vega": "float64",
    "theta": "float64",
    "rho": "float64",
    "theo": "float64",
}

TOP_LEVEL_KEYS = ("timestamp", "symbol", "data")
DATA_KEYS = ("current_price", "options")
# contract fields copied as numbers, by payload key → raw column
NUMERIC_FIELDS = {
    "bid": "bid",
    "ask": "ask",
    "bid_size": "bid_size",
    "ask_size": "ask_size",
    "volume": "volume",
    "open_interest": "open_interest",
    "iv": "vendor_iv",
    "delta": "delta",
    "gamma": "gamma",
    "vega": "vega",
    "theta": "theta",
    "rho": "rho",
    "theo": "theo",
}
REQUIRED_CONTRACT_KEYS = ("option", *NUMERIC_FIELDS)
# untraded contracts may lack these; they become NaN / NaT rather than an error
OPTIONAL_CONTRACT_KEYS = ("last_trade_price", "last_trade_time")
_NULL_TOKENS = {"", "nan", "NaN", "NAN", "NaT", "None", "none", "null", "NULL", "<NA>", "N/A", "NA"}


class MalformedPayloadError(DataError):
    """The payload does not have the Cboe delayed-quotes structure (keys missing, wrong types)."""


class EmptyChainError(DataError):
    """The payload is well formed but lists no option contracts."""


def check_payload(payload: Any, symbol: str | None = None) -> None:
    """Raise MalformedPayloadError unless `payload` has the Cboe top-level structure.

    Checks: a dict with `timestamp`, `symbol`, `data`; `data` a dict with `current_price` and
    `options`; `options` a list. Contracts themselves are checked by `chain_to_frame`.
    `symbol` (what was requested) only improves the message.
    """
    who = symbol or (payload.get("symbol") if isinstance(payload, dict) else None) or "?"
    if not isinstance(payload, dict):
        raise MalformedPayloadError(
            f"Cboe payload for {who!r} is a {type(payload).__name__}, expected a JSON object"
        )
    missing = [k for k in TOP_LEVEL_KEYS if k not in payload]
    if missing:
        raise MalformedPayloadError(
            f"Cboe payload for {who!r} misses top-level keys {missing} (has {sorted(payload)[:10]})"
        )
    data = payload["data"]
    if not isinstance(data, dict):
        raise MalformedPayloadError(
            f"Cboe payload for {who!r}: 'data' is a {type(data).__name__}, expected an object"
        )
    missing = [k for k in DATA_KEYS if k not in data]
    if missing:
        raise MalformedPayloadError(f"Cboe payload for {who!r} misses keys {missing} under 'data'")
    if not isinstance(data["options"], list):
        raise MalformedPayloadError(
            f"Cboe payload for {who!r}: 'data.options' is a {type(data['options']).__name__}, "
            "expected a list"
        )


def _check_contracts(options: list, who: str) -> None:
    """Every contract is an object with the required keys, or one error summarising all offenders."""
    required = set(REQUIRED_CONTRACT_KEYS)
    missing: set[str] = set()
    offenders: list[str] = []
    for i, contract in enumerate(options):
        if not isinstance(contract, dict):
            raise MalformedPayloadError(
                f"Cboe payload for {who!r}: data.options[{i}] is a {type(contract).__name__}, "
                "expected an object"
            )
        lacking = required.difference(contract)
        if lacking:
            missing |= lacking
            offenders.append(str(contract.get("option", f"options[{i}]")))
    if offenders:
        raise MalformedPayloadError(
            f"Cboe payload for {who!r}: {len(offenders)} of {len(options)} contracts miss required "
            f"keys {sorted(missing)} (first: {offenders[:3]})"
        )


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def chain_to_frame(payload: dict) -> pd.DataFrame:
    """One Cboe delayed-quotes payload (one underlying) → raw-quotes DataFrame with `RAW_COLUMNS`.

    One row per contract, in payload order; the payload is not modified. Expired or otherwise
    odd contracts are kept: quarantining them is the validator's job.
    Raises MalformedPayloadError (structure) or EmptyChainError (no contracts).
    """
    check_payload(payload)
    who = str(payload["symbol"])
    options = payload["data"]["options"]
    if not options:
        raise EmptyChainError(
            f"Cboe payload for {who!r} at {payload['timestamp']!r} lists no option contracts"
        )
    _check_contracts(options, who)
    stamp = payload["timestamp"]
    quote_time = (
        pd.to_datetime(stamp, errors="coerce", format="ISO8601") if isinstance(stamp, str) else None
    )
    if quote_time is None or pd.isna(quote_time):
        raise MalformedPayloadError(
            f"Cboe payload for {who!r}: timestamp {payload['timestamp']!r} is not a date-time"
        )
    quote_time = quote_time.tz_localize(None) if quote_time.tzinfo else quote_time

    contracts = pd.DataFrame.from_records(
        options, columns=[*REQUIRED_CONTRACT_KEYS, *OPTIONAL_CONTRACT_KEYS]
    )
    occ = parse_occ_symbols(contracts["option"])
    spot = pd.to_numeric(pd.Series([payload["data"]["current_price"]]), errors="coerce")[0]

    out = pd.DataFrame(index=contracts.index)
    out["quote_time"] = quote_time
    out["quote_date"] = quote_time.normalize()
    out["underlying"] = who
    out["spot"] = float(spot)
    option = contracts["option"].astype(object)
    # a stray number as a symbol must not make the column mixed-type (parquet refuses those)
    out["option"] = option.where(option.isna() | option.map(type).eq(str), option.astype(str))
    for col in occ.columns:
        out[col] = occ[col]
    for key, col in NUMERIC_FIELDS.items():
        out[col] = _numbers(contracts[key])
    out["vendor_iv"] = out["vendor_iv"].mask(out["vendor_iv"] == 0.0)
    out["last_trade_price"] = _numbers(contracts["last_trade_price"])
    out["last_trade_time"] = _to_datetime(contracts["last_trade_time"])
    return out[list(RAW_COLUMNS)].astype(RAW_COLUMNS)


def _to_datetime(values: pd.Series) -> pd.Series:
    """Mixed strings/None → naive datetime64[ns]; anything unparseable or empty → NaT."""
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text.mask(text.isin(_NULL_TOKENS)), errors="coerce", format="ISO8601")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def empty_raw() -> pd.DataFrame:
    """A zero-row table with the raw columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in RAW_COLUMNS.items()})


def frames_to_raw(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Per-symbol frames (from `chain_to_frame`) → one raw table in `RAW_COLUMNS` order and dtypes.

    Empty input or all-empty frames give `empty_raw()`. A frame missing raw columns raises
    SchemaChangeError (a bug upstream, not data to repair).
    """
    kept = [f for f in frames if len(f)]
    if not kept:
        return empty_raw()
    for f in kept:
        missing = [c for c in RAW_COLUMNS if c not in f.columns]
        if missing:
            raise SchemaChangeError(f"raw frame misses columns {missing}")
    table = pd.concat([f[list(RAW_COLUMNS)] for f in kept], ignore_index=True)
    return table.astype(RAW_COLUMNS)


def _cast_column(values: pd.Series, dtype: str) -> tuple[pd.Series, pd.Series]:
    """Cast one column; returns (cast values, mask of cells that were present but did not cast)."""
    present = values.notna()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        text = values.astype("string").str.strip()
        # numbers and dates: the usual null spellings are nulls; strings: only blanks, since
        # "NA" or "None" could be a legitimate symbol
        tokens = _NULL_TOKENS if dtype != "object" else {""}
        present &= ~text.isin(tokens).fillna(False)
    if dtype == "float64":
        cast = pd.to_numeric(values.where(present), errors="coerce").astype("float64")
    elif dtype == "datetime64[ns]":
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            cast = values
            if isinstance(cast.dtype, pd.DatetimeTZDtype):
                cast = cast.dt.tz_localize(None)
        else:
            cast = pd.to_datetime(
                values.where(present).astype("string"), errors="coerce", format="ISO8601"
            )
        cast = cast.astype("datetime64[ns]")
    else:
        # strings: keep what is there; unify missing markers as NaN
        cast = values.astype(object).where(present, np.nan)
    return cast, present & cast.isna()


def coerce_raw(df: pd.DataFrame) -> pd.DataFrame:
    """An externally loaded raw table (csv/parquet) → `RAW_COLUMNS` dtypes, first and in order.

    Strict about the contract, so a vendor's schema change halts instead of turning into NaNs:
    missing raw columns, or any present cell that cannot be cast (e.g. strike "abc", a quote_time
    that is not a date), raise SchemaChangeError naming the columns. Null markers ("", "NaN",
    "None", ...) are nulls, not failures. Extra columns are kept, after the raw ones, unchanged:
    whether they are allowed is the validator's decision. The input is not modified.
    """
    missing = [c for c in RAW_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaChangeError(f"raw quotes miss columns {missing}; expected {list(RAW_COLUMNS)}")
    duplicated = sorted(set(df.columns[df.columns.duplicated()]))
    if duplicated:
        raise SchemaChangeError(f"raw quotes repeat columns {duplicated}")
    out = {}
    failures = []
    for col, dtype in RAW_COLUMNS.items():
        try:
            cast, failed = _cast_column(df[col], dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            failures.append(f"{col} (cannot cast {df[col].dtype} to {dtype}: {exc})")
            continue
        if failed.any():
            examples = df.loc[failed, col].astype(str).unique()[:3].tolist()
            failures.append(f"{col} ({int(failed.sum())} values not {dtype}, e.g. {examples})")
        out[col] = cast
    if failures:
        raise SchemaChangeError("raw quotes columns changed type: " + "; ".join(failures))
    extras = [c for c in df.columns if c not in RAW_COLUMNS]
    result = pd.DataFrame(out, index=df.index)
    for col in extras:
        result[col] = df[col]
    return result
