"""The one parser from a Cboe delayed-quotes payload to the flat raw-quotes table.

Both the Cboe client and the synthetic market produce Cboe-shaped payloads, and both go through
`chain_to_frame`, so raw data has one shape whatever its source. `RAW_COLUMNS` is that shape's
contract (column → pandas dtype, in order); the validator builds its schema from it.

Strings are plain ``object`` columns (not pandas ``string``) so parquet and csv round trips give
back the same dtypes with no extension types; missing strings are NaN. Times are naive
``datetime64[ns]`` as Cboe prints them (US/Eastern wall clock), never converted.

Structure problems are errors (`MalformedPayloadError`, `EmptyChainError`); bad values inside a
well-formed payload (a price that is not a number, ``iv == 0.0``) become NaN for validation to judge.
A changed key set is a vendor schema change (`PayloadSchemaChangeError`, a `MalformedPayloadError`
and a `pipeline.errors.SchemaChangeError`, so a failed task raises the plan's ``schema_change``
alert): a key the parser needs is missing, or a quote record (contract) carries a key it does not
know. The message names both the missing and the new keys, e.g. ``bid`` missing, ``bid_price`` new.
`chain_to_frame` raises nothing else, whatever JSON it is given.
"""

from __future__ import annotations

import reprlib
import sys
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
# Cboe sends these per contract too; the raw table does not keep them
IGNORED_CONTRACT_KEYS = (
    "change",
    "percent_change",
    "open",
    "high",
    "low",
    "tick",
    "prev_day_close",
)
KNOWN_CONTRACT_KEYS = frozenset(
    (*REQUIRED_CONTRACT_KEYS, *OPTIONAL_CONTRACT_KEYS, *IGNORED_CONTRACT_KEYS)
)
# the underlying's fields Cboe sends under `data` besides DATA_KEYS (only named in messages)
UNDERLYING_KEYS = (
    "symbol", "security_type", "exchange_id", "price_change", "price_change_percent", "bid", "ask",
    "bid_size", "ask_size", "open", "high", "low", "close", "prev_day_close", "volume", "iv30",
    "iv30_change", "iv30_change_percent", "seqno", "last_trade_time", "tick",
)  # fmt: skip
_FLOAT_MAX = sys.float_info.max
# what messages show of a value from the payload: enough to recognise it, never a page of it
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 30
_SHORT.maxlevel = 2
_SHORT.maxlist = 20  # key lists in full (a contract has 14 required keys)
_PLAIN_NUMBER_TYPES = {float, int, bool, type(None)}
_NULL_TOKENS = {"", "nan", "NaN", "NAN", "NaT", "None", "none", "null", "NULL", "<NA>", "N/A", "NA"}


class MalformedPayloadError(DataError):
    """The payload does not have the Cboe delayed-quotes structure (keys missing, wrong types)."""


class PayloadSchemaChangeError(MalformedPayloadError, SchemaChangeError):
    """The payload's keys changed: expected keys are missing and/or quote records carry unknown
    keys. Not retried (asking again gives the same schema); alerts as ``schema_change``.
    `missing` and `unknown` list the keys, sorted."""

    def __init__(self, message: str, *, missing: list[str], unknown: list[str]):
        super().__init__(message)
        self.missing = missing
        self.unknown = unknown


class EmptyChainError(DataError):
    """The payload is well formed but lists no option contracts."""


def _shown(value: Any, limit: int = 80) -> str:
    """A payload value for a message: its repr, shortened to about `limit` characters."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key_change(
    who: str, where: str, missing: set, unknown: set, tail: str = ""
) -> PayloadSchemaChangeError:
    """A PayloadSchemaChangeError naming the missing and the new keys `where` in the payload
    (`who`: the symbol as `_shown`)."""
    missing_keys, unknown_keys = sorted(missing, key=str), sorted(unknown, key=str)
    parts = [f"missing keys {_shown(missing_keys, 300)}"] if missing_keys else []
    parts += [f"new keys {_shown(unknown_keys, 300)}"] if unknown_keys else []
    return PayloadSchemaChangeError(
        f"Cboe payload for {who}: schema change {where}: {', '.join(parts)}{tail}",
        missing=missing_keys,
        unknown=unknown_keys,
    )


def check_payload(payload: Any, symbol: str | None = None) -> None:
    """Raise MalformedPayloadError unless `payload` has the Cboe top-level structure.

    Checks: a dict with `timestamp`, `symbol`, `data`; `data` a dict with `current_price` and
    `options`; `options` a list. A missing key is a PayloadSchemaChangeError naming the keys
    found there instead. Contracts themselves are checked by `chain_to_frame`.
    `symbol` (what was requested) only improves the message.
    """
    who = _shown(symbol or (payload.get("symbol") if isinstance(payload, dict) else None) or "?")
    if not isinstance(payload, dict):
        raise MalformedPayloadError(
            f"Cboe payload for {who} is a {type(payload).__name__}, expected a JSON object"
        )
    missing = {k for k in TOP_LEVEL_KEYS if k not in payload}
    if missing:
        raise _key_change(who, "at the top level", missing, payload.keys() - set(TOP_LEVEL_KEYS))
    data = payload["data"]
    if not isinstance(data, dict):
        raise MalformedPayloadError(
            f"Cboe payload for {who}: 'data' is a {type(data).__name__}, expected an object"
        )
    missing = {k for k in DATA_KEYS if k not in data}
    if missing:
        raise _key_change(
            who, "under 'data'", missing, data.keys() - {*DATA_KEYS, *UNDERLYING_KEYS}
        )
    if not isinstance(data["options"], list):
        raise MalformedPayloadError(
            f"Cboe payload for {who}: 'data.options' is a {type(data['options']).__name__}, "
            "expected a list"
        )


def _check_contracts(options: list, who: str) -> None:
    """Every contract is an object with the required keys and no unknown ones, or one error
    summarising all offenders (PayloadSchemaChangeError for the keys)."""
    required = frozenset(REQUIRED_CONTRACT_KEYS)
    missing: set[str] = set()
    unknown: set[str] = set()
    offenders: list[str] = []
    for i, contract in enumerate(options):
        if not isinstance(contract, dict):
            raise MalformedPayloadError(
                f"Cboe payload for {who}: data.options[{i}] is a {type(contract).__name__}, "
                "expected an object"
            )
        keys = contract.keys()
        if keys == KNOWN_CONTRACT_KEYS:  # the usual contract, in one comparison
            continue
        if not (required <= keys and keys <= KNOWN_CONTRACT_KEYS):
            missing |= required - keys
            unknown |= keys - KNOWN_CONTRACT_KEYS
            offenders.append(_shown(contract.get("option", f"options[{i}]")))
    if offenders:
        raise _key_change(
            who,
            f"in {len(offenders)} of {len(options)} contracts",
            missing,
            unknown,
            f" (first: {', '.join(offenders[:3])})",
        )


def _numbers(values: list) -> np.ndarray:
    """JSON values → float64: numbers as they are, null → NaN; as `pd.to_numeric(errors="coerce")`
    does, strings that spell a number parse and anything else becomes NaN."""
    if set(map(type, values)) <= _PLAIN_NUMBER_TYPES:
        # The usual payload converts directly, several times faster than pd.to_numeric on
        # objects. Strings never take this path: numpy's float() parsing accepts spellings
        # ("1_000") that pandas refuses.
        try:
            return np.array(values, dtype="float64")
        except OverflowError:  # an integer beyond float range: see below
            pass
    # an integer beyond float range is not a usable number (pandas would raise OverflowError)
    values = [None if type(v) is int and abs(v) > _FLOAT_MAX else v for v in values]
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy("float64")


def chain_to_frame(payload: dict) -> pd.DataFrame:
    """One Cboe delayed-quotes payload (one underlying) → raw-quotes DataFrame with `RAW_COLUMNS`.

    One row per contract, in payload order; the payload is not modified. Expired or otherwise
    odd contracts are kept: quarantining them is the validator's job.
    Raises MalformedPayloadError (structure) or EmptyChainError (no contracts).
    """
    check_payload(payload)
    symbol, who = str(payload["symbol"]), _shown(payload["symbol"])
    options = payload["data"]["options"]
    if not options:
        raise EmptyChainError(
            f"Cboe payload for {who} at {_shown(payload['timestamp'])} lists no option contracts"
        )
    _check_contracts(options, who)
    stamp = payload["timestamp"]
    quote_time = (
        pd.to_datetime(stamp, errors="coerce", format="ISO8601") if isinstance(stamp, str) else None
    )
    if quote_time is None or pd.isna(quote_time):
        raise MalformedPayloadError(
            f"Cboe payload for {who}: timestamp {_shown(payload['timestamp'])} is not a date-time"
        )
    quote_time = quote_time.tz_localize(None) if quote_time.tzinfo else quote_time
    spot = _numbers([payload["data"]["current_price"]])[0]

    # One list per payload key (an absent optional key gives None), and the frame is built once
    # from finished columns: inserting two dozen columns one by one costs several times more.
    field = {
        key: [contract.get(key) for contract in options]
        for key in (*REQUIRED_CONTRACT_KEYS, *OPTIONAL_CONTRACT_KEYS)
    }
    n = len(options)
    occ = parse_occ_symbols(pd.Series(field["option"], dtype=object))
    columns: dict[str, Any] = {
        "quote_time": np.full(n, quote_time.as_unit("ns").asm8),
        "quote_date": np.full(n, quote_time.normalize().as_unit("ns").asm8),
        "underlying": np.full(n, symbol, dtype=object),
        "spot": np.full(n, float(spot)),
        # a stray number as a symbol must not make the column mixed-type (parquet refuses those)
        "option": pd.Series(
            [s if type(s) is str or _is_null(s) else str(s) for s in field["option"]], dtype=object
        ),
        **{col: occ[col] for col in occ.columns},
        **{col: _numbers(field[key]) for key, col in NUMERIC_FIELDS.items()},
        "last_trade_price": _numbers(field["last_trade_price"]),
        "last_trade_time": _to_datetime(field["last_trade_time"]),
    }
    columns["vendor_iv"][columns["vendor_iv"] == 0.0] = np.nan
    return _as_raw_dtypes(pd.DataFrame({c: columns[c] for c in RAW_COLUMNS}))


def _as_raw_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with `RAW_COLUMNS` dtypes, casting only the columns that differ (`astype` with the
    whole mapping would copy every column even when nothing changes)."""
    dtypes = df.dtypes
    differ = {c: t for c, t in RAW_COLUMNS.items() if dtypes[c] != t}
    return df.astype(differ) if differ else df


def _to_datetime(values: list) -> pd.Series:
    """JSON values → naive datetime64[ns]: strings are stripped; anything unparseable, empty or a
    null spelling → NaT. Non-strings are parsed as their text, as pandas' "string" dtype gives."""
    text = [None if _is_null(v) else str(v).strip() for v in values]
    text = [None if t in _NULL_TOKENS else t for t in text]
    parsed = pd.to_datetime(pd.Series(text, dtype=object), errors="coerce", format="ISO8601")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _is_null(value: Any) -> bool:
    """JSON null, or NaN (Python's json module reads a bare NaN as a float)."""
    return value is None or (isinstance(value, float) and value != value)


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
    columns = list(RAW_COLUMNS)
    # select (a copy) only frames whose columns differ: `chain_to_frame` frames already match
    table = pd.concat(
        [f if list(f.columns) == columns else f[columns] for f in kept], ignore_index=True
    )
    return _as_raw_dtypes(table)


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
