"""The pricer on NumPy arrays: raw contract fields → (iv, price) without a DataFrame (issue 16).

The same pricing as pipeline.model.pricer.predict_frame (its module docstring says what is
priced and how), built for latency: one contract costs a few XGBoost per-call overheads, not
pandas' per-column ones. `predict_frame` stays as the oracle: tests/unit/pipeline/model/
test_array_path.py proves both give the same iv and price on every row and the same error.

- validation on typed arrays, with validate_contracts' messages (the builders in pricer and
  pipeline.model.plausibility are shared, not copied) and the same order of problems;
- the market state as arrays indexed by underlying (realised vols, surface coefficients, spots,
  dividend yields, each underlying's SSVI slices sorted by expiry) and by contract symbol
  (previous IVs), built once per MarketState and kept while it lives (`state_arrays`, through
  pipeline.market_state.memo): no merge, no pandas per call;
- the booster's inputs as a float32 matrix in its feature order, `inplace_predict` with the base
  margin, then the vectorised Black price (pipeline.quant.black_scholes).

`price_columns(columns, ...)` takes {field: array}; `predict_contracts(frame, ...)` is the
drop-in for predict_frame (the pyfunc model's predict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline.market_state import RV_COLUMNS, SURFACE_COEFS, MarketState, StateStore, memo
from pipeline.market_state import _surface_design as surface_design
from pipeline.model import pricer
from pipeline.model.plausibility import implausible_arrays, input_problems, whole_days
from pipeline.model.pricer import (
    CONTRACT_COLUMNS,
    OPTIONAL_COLUMNS,
    STATE_COLUMNS,
    UNDERLYING_STATE_COLUMNS,
    ContractError,
)
from pipeline.quant import smile
from pipeline.quant.black_scholes import black_price

KNOWN_COLUMNS = (*CONTRACT_COLUMNS, *OPTIONAL_COLUMNS)
_SMALL = 64  # below this many keys a dict lookup per key beats one Index.get_indexer call


@dataclass(frozen=True)
class Positions:
    """Keys → their positions 0..n-1, n where absent: a dict lookup per key for a few keys, one
    hash-table pass (pandas.Index.get_indexer) for many; both give the same positions."""

    of: dict
    index: pd.Index

    @classmethod
    def build(cls, keys: Sequence) -> Positions:
        return cls({k: i for i, k in enumerate(keys)}, pd.Index(list(keys), dtype=object))

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        absent = len(self.of)
        if len(keys) < _SMALL:
            return np.fromiter((self.of.get(k, absent) for k in keys), np.intp, len(keys))
        pos = self.index.get_indexer(keys)
        return np.where(pos < 0, absent, pos)


@dataclass(frozen=True)
class StateArrays:
    """A MarketState as arrays indexed by underlying code (`code_of`); the extra last row (code
    len(codes)) is an unknown underlying: NaN everywhere, the default dividend yield."""

    code_of: Positions  # underlying → code
    rv: dict[str, np.ndarray]  # rv_* column → per code
    surface: np.ndarray  # (codes + 1, 6) SURFACE_COEFS
    spot: np.ndarray
    dividend_yield: np.ndarray
    smiles: dict[int, smile.UnderlyingSlices]  # code → that underlying's SSVI slices, as arrays
    iv_of: Positions  # option (OCC symbol) → position in prev_ivs
    prev_ivs: np.ndarray  # the state's reliable IV per option, then NaN (an unknown option)

    def prev_iv(self, options: np.ndarray) -> np.ndarray:
        return self.prev_ivs[self.iv_of(options)]


def state_arrays(state: MarketState) -> StateArrays:
    """`state` as StateArrays, built on first use and kept while the (immutable) state lives."""
    return memo(state, "array_path", _build_state_arrays)


def _by_underlying(frame: pd.DataFrame, codes: dict[str, int], columns) -> np.ndarray:
    """(codes + 1, len(columns)) floats of `frame`'s rows by underlying (NaN where absent)."""
    out = np.full((len(codes) + 1, len(columns)), np.nan)
    for underlying, row in zip(frame["underlying"], frame[list(columns)].to_numpy(float),
                               strict=True):  # fmt: skip
        out[codes[underlying]] = row
    return out


def _build_state_arrays(state: MarketState) -> StateArrays:
    names = sorted({*state.realised["underlying"], *state.surfaces["underlying"],
                    *state.spots.index, *state.smiles["underlying"], *state.dividend_yields})  # fmt: skip
    codes = {str(u): i for i, u in enumerate(names)}
    rv_cols = sorted({*RV_COLUMNS, *(c for c in state.realised.columns if c.startswith("rv_"))})
    present = [c for c in rv_cols if c in state.realised]
    realised = _by_underlying(state.realised, codes, present)
    rv = {c: realised[:, present.index(c)] if c in present else np.full(len(codes) + 1, np.nan)
          for c in rv_cols}  # fmt: skip
    spots = pd.DataFrame({"underlying": state.spots.index, "spot": state.spots.to_numpy(float)})
    dividend = np.full(len(codes) + 1, float(state.default_dividend_yield))
    for underlying, q in state.dividend_yields.items():
        dividend[codes[underlying]] = float(q)
    groups = state.smiles.groupby("underlying", sort=False) if len(state.smiles) else ()
    ivs = {str(k): float(v) for k, v in state.contract_ivs.items()}  # the last of a repeated one
    return StateArrays(
        code_of=Positions.build(list(codes)),
        rv=rv,
        surface=_by_underlying(state.surfaces, codes, SURFACE_COEFS),
        spot=_by_underlying(spots, codes, ["spot"])[:, 0],
        dividend_yield=dividend,
        smiles={codes[u]: smile.underlying_slices(sl) for u, sl in groups},
        iv_of=Positions.build(list(ivs)),
        prev_ivs=np.append(np.fromiter(ivs.values(), float, len(ivs)), np.nan),
    )


# -- validation -----------------------------------------------------------------------------------
def _floats(raw: np.ndarray) -> np.ndarray:
    """Numbers as floats, anything else NaN (pandas.to_numeric(errors="coerce"))."""
    if raw.dtype.kind in "fiub":
        return raw.astype(float)
    return np.asarray(pd.to_numeric(raw, errors="coerce"), dtype=float)


def _dates(raw: np.ndarray) -> np.ndarray:
    """datetime64[ns], NaT where not a date (pandas.to_datetime(errors="coerce"))."""
    if raw.dtype.kind == "M":
        return raw.astype("datetime64[ns]")
    return np.asarray(pd.to_datetime(raw, errors="coerce"), dtype="datetime64[ns]")


def _option_types(raw: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """'C'/'P' as written modulo case and spaces; each distinct value normalised once."""
    typed = np.empty(len(raw), object)
    for value in dict.fromkeys(raw[~missing].tolist()):  # distinct, in order (pandas.unique)
        typed[raw == value] = str(value).strip().upper()
    typed[missing] = np.nan
    return typed


@dataclass
class Typed:
    """Validated contract columns as arrays (validate_contracts' frame, as arrays)."""

    fields: dict[str, np.ndarray]
    labels: Sequence


def validate_columns(columns: Mapping[str, np.ndarray], labels: Sequence) -> Typed:
    """validate_contracts on arrays: the same checks, messages and order of problems."""
    missing = [c for c in CONTRACT_COLUMNS if c not in columns]
    if missing:
        raise ContractError(pricer.missing_columns_message(missing))
    raw = {c: np.asarray(columns[c]) for c in KNOWN_COLUMNS if c in columns}
    problems: list[tuple] = []

    def flag(mask, message) -> None:
        if mask.any():
            problems.extend((labels[i], message(i)) for i in np.flatnonzero(mask))

    na = {c: pd.isna(raw[c]) for c in ("underlying", "option_type")}
    for col in ("underlying", "option_type"):
        flag(na[col], lambda i, col=col: pricer.missing_value(col))
    t = {"underlying": raw["underlying"].astype(str).astype(object)}
    t["option_type"] = _option_types(raw["option_type"], na["option_type"])
    bad_type = ~na["option_type"] & (t["option_type"] != "C") & (t["option_type"] != "P")
    flag(bad_type, lambda i: pricer.bad_option_type(raw["option_type"][i]))
    for col in ("strike", "spot"):
        v = t[col] = _floats(raw[col])
        flag(~np.isfinite(v), lambda i, col=col: pricer.not_finite(col, raw[col][i]))
        flag(np.isfinite(v) & (v <= 0), lambda i, col=col: pricer.not_positive(col, t[col][i]))
    for col in ("expiry", "quote_date"):
        t[col] = _dates(raw[col])
        flag(np.isnat(t[col]), lambda i, col=col: pricer.not_a_date(col, raw[col][i]))
    late = t["expiry"] <= t["quote_date"]
    flag(late, lambda i: pricer.not_after(t["expiry"][i], t["quote_date"][i]))
    for col in ("rate", "dividend_yield", *STATE_COLUMNS):
        if col in raw:
            v = t[col] = _floats(raw[col])
            text = ~pd.isna(raw[col]) & np.isnan(v)  # a value that is not a number
            flag(text | np.isinf(v), lambda i, col=col: pricer.not_finite(col, raw[col][i]))
    if "option" in raw:
        t["option"] = np.where(pd.isna(raw["option"]), None, raw["option"]).astype(object)
    rates = {c: t[c] for c in ("rate", "dividend_yield") if c in t}
    problems += implausible_arrays(labels, t["strike"], t["spot"], rates, t["expiry"],
                                   t["quote_date"])  # fmt: skip
    pricer._raise(problems)
    return Typed(t, labels)


# -- features -------------------------------------------------------------------------------------
def _features(t: dict[str, np.ndarray], state: MarketState) -> dict[str, np.ndarray]:
    """contract_geometry + state_features + the caller's state columns (model_features), for
    rows that all price with `state`."""
    a = state_arrays(state)
    code = a.code_of(t["underlying"])
    rate = pricer._fill(t["rate"], state.rate) if "rate" in t else np.full(len(code), state.rate)
    q = a.dividend_yield[code]
    q = pricer._fill(t["dividend_yield"], q) if "dividend_yield" in t else q
    # contract_geometry
    f = {"t_years": whole_days(t["expiry"], t["quote_date"]) / 365.0, "strike": t["strike"]}
    tt = f["t_years"]
    f["sqrt_t"] = np.sqrt(tt)
    f["discount"] = np.exp(-rate * tt)
    f["forward"] = t["spot"] * np.exp((rate - q) * tt)
    k = f["log_moneyness"] = np.log(t["strike"] / f["forward"])
    f["std_moneyness"] = k / f["sqrt_t"]
    f["is_call"] = (t["option_type"] == "C").astype(int)
    # state_features
    f.update({col: values[code] for col, values in a.rv.items()})
    options = t.get("option")
    f["prev_iv"] = np.full(len(code), np.nan) if options is None else a.prev_iv(options)
    c, x, s = a.surface[code], f["std_moneyness"], f["sqrt_t"]
    f["prev_surface_iv"] = np.einsum("ij,ij->i", surface_design(x, s), c)
    f["prev_atm_iv"] = np.einsum("ij,ij->i", surface_design(np.zeros_like(s), s), c)
    f["prev_skew"] = c[:, 1] + c[:, 4] * s
    with np.errstate(divide="ignore", invalid="ignore"):
        f["spot_return"] = np.log(t["spot"] / a.spot[code])
    f["prev_smile_iv"], f["prev_smile_iv_strike"] = _smile_ivs(a, code, t, k, f["spot_return"])
    for col in ("prev_smile_iv", "prev_smile_iv_strike"):
        f[col] = pricer._fill(f[col], f["prev_surface_iv"])
    f.update({col: t[col] for col in STATE_COLUMNS if col in t})  # given: used as given
    f["vol_time"] = f["rv_20d"] * f["sqrt_t"]
    return f


def _smile_ivs(a: StateArrays, code, t, k, spot_return) -> tuple[np.ndarray, np.ndarray]:
    """(sticky-moneyness, sticky-strike) smile IVs (state_features' smile.smile_iv), both from
    one evaluation per underlying."""
    n = len(code)
    both = np.full(2 * n, np.nan)
    e, d = (t[col].view(np.int64) for col in ("expiry", "quote_date"))
    k2 = np.concatenate([k, k + np.nan_to_num(spot_return)])
    code2, e2, d2 = np.tile(code, 2), np.tile(e, 2), np.tile(d, 2)
    asked = np.unique(code)  # only the underlyings asked for
    for underlying_code in asked:
        slices = a.smiles.get(int(underlying_code))
        if slices is None:
            continue
        rows = slice(None) if len(asked) == 1 else np.flatnonzero(code2 == underlying_code)
        var, _ = smile.underlying_variance(slices, e2[rows], d2[rows], k2[rows])
        both[rows] = np.sqrt(var)
    return both[:n], both[n:]


# -- pricing --------------------------------------------------------------------------------------
def price_columns(
    columns: Mapping[str, np.ndarray],
    booster: xgb.Booster,
    states: MarketState | StateStore,
    features: Sequence[str],
    labels: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(iv, price) of raw contract fields {column: array} (predict_frame's columns); `labels`
    name the rows in errors (default: positions). Raises ContractError / StateMissing exactly
    as predict_frame does."""
    n = len(next(iter(columns.values()))) if columns else 0
    labels = range(n) if labels is None else labels
    typed = validate_columns(columns, labels).fields
    days = typed["quote_date"].astype("datetime64[D]").astype("datetime64[ns]")
    states = pricer.lookup_states(days, pricer.as_store(states))
    absent = [col for col in UNDERLYING_STATE_COLUMNS if col not in typed]
    pricer._raise(pricer.unknown_underlyings(states, days, typed["underlying"], absent, labels))
    if n == 0:
        return np.empty(0), np.empty(0)
    feats = _merge_days(typed, days, states)
    blend, scale = pricer.booster_blend(booster), pricer.booster_scale(booster)
    inputs, margin = pricer.input_arrays(
        feats, features, blend, scale, pricer.booster_moves(booster)
    )
    # last guard: XGBoost refuses the whole batch over one infinite input; name the row instead
    pricer._raise(input_problems(labels, inputs, margin))
    x = np.empty((n, len(features)), np.float32)
    for j, name in enumerate(features):
        x[:, j] = inputs[name]
    iv = pricer.to_iv(booster.inplace_predict(x, base_margin=margin), scale)
    price = black_price(feats["forward"], feats["strike"], feats["t_years"], feats["discount"],
                        iv, feats["is_call"].astype(bool))  # fmt: skip
    return np.asarray(iv, float), np.asarray(price, float)


def _merge_days(typed: dict, days: np.ndarray, states: dict) -> dict[str, np.ndarray]:
    """Each row's features from its quote date's state (one state: no splitting at all)."""
    if len(states) == 1:
        return _features(typed, next(iter(states.values())))
    out: dict[str, np.ndarray] = {}
    for day, state in states.items():
        rows = np.flatnonzero(days == day)
        part = _features({c: v[rows] for c, v in typed.items()}, state)
        for col, values in part.items():
            if col not in out:
                out[col] = np.empty(len(days), values.dtype)  # every row is set
            out[col][rows] = values
    return out


def predict_contracts(
    contracts: pd.DataFrame,
    booster: xgb.Booster,
    states: MarketState | StateStore,
    features: Sequence[str],
) -> pd.DataFrame:
    """predict_frame's drop-in: DataFrame(iv, price) on the input's index."""
    if not isinstance(contracts, pd.DataFrame):
        raise ContractError(f"expected a DataFrame of contracts, got {type(contracts).__name__}")
    columns = {c: contracts[c].to_numpy() for c in KNOWN_COLUMNS if c in contracts}
    iv, price = price_columns(columns, booster, states, features, contracts.index)
    # one 2-D block: about a third of the cost of a frame built column by column
    iv_price = np.column_stack([iv, price])
    return pd.DataFrame(iv_price, index=contracts.index, columns=["iv", "price"])
