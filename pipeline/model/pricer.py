"""Pricing raw contracts with a trained booster (pure; no I/O). Training and serving both use it.

Input: one row per contract with `CONTRACT_COLUMNS` (underlying, option_type "C"/"P", strike,
expiry, quote_date, spot) and any of `OPTIONAL_COLUMNS`:
- `option` (OCC symbol): looks up the contract's previous-day IV in the market state;
- `rate`, `dividend_yield`: default (also where null) to the state's conventions (cfg.market);
- `STATE_COLUMNS` (rv_*, prev_iv, prev_surface_iv, prev_atm_iv, prev_skew, prev_smile_iv,
  prev_smile_iv_strike, spot_return): used as given when the column is present (a null means
  "unknown", as in the feature files); absent columns come from the market state.
Other columns are ignored (a feature table may be passed as is: its `iv` target is never read).

**Which state**: each contract is priced with the market state of the last trading day before its
quote_date (pipeline.market_state.StateStore: the daily states feature_engineer publishes, and
the model's own training-day state); a quote date whose state is missing or too old is refused
(`StateMissing`, a ContractError naming the date it needs and the newest it has), never priced
with a stale surface. Features are built by the same functions as the feature tables
(`contract_geometry`, `state_features`): a contract priced here gets exactly the features it had
in training, and the monitor, which prices through this same path, watches what is served.

The booster predicts IV as a correction to a base level, the previous day's SSVI smile at the
contract (`prev_smile_iv`, arbitrage-free, linear in total variance outside the fitted range; the
quadratic surface `prev_surface_iv` where no smile was fitted, the underlying's rv_20d where there
is no surface, then 20%), passed to XGBoost as base_margin. On the booster's `target_scale`
"log" (the default since model_train.target_scale) the correction is a factor on that base and
the vol-unit features are read relative to it (`model_inputs`): the same smile shape gives the
same inputs at any vol level, so a regime change of the level is no extrapolation for the trees.

Output: DataFrame(iv, price) on the input's index; iv clipped to [IV_FLOOR, IV_CAP] (a 1% vol
floor: trees can extrapolate below zero on unseen inputs, and a non-positive vol has no price);
price = Black-Scholes-Merton with that IV (pipeline.quant.black_scholes).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline.features import contract_geometry
from pipeline.market_state import MarketState, StateStore, StateUnavailable, state_features
from pipeline.model.plausibility import implausible, model_input_problems
from pipeline.quant.black_scholes import black_price

CONTRACT_COLUMNS = ("underlying", "option_type", "strike", "expiry", "quote_date", "spot")
STATE_COLUMNS = ("rv_5d", "rv_10d", "rv_20d", "prev_iv", "prev_surface_iv", "prev_atm_iv",
                 "prev_skew", "prev_smile_iv", "prev_smile_iv_strike", "spot_return")  # fmt: skip
OPTIONAL_COLUMNS = ("option", "rate", "dividend_yield", *STATE_COLUMNS)
# state columns an unknown underlying needs from the caller (prev_iv comes from the contract's;
# without prev_smile_iv the base falls back to prev_surface_iv)
UNDERLYING_STATE_COLUMNS = tuple(
    c for c in STATE_COLUMNS if c not in ("prev_iv", "prev_smile_iv", "prev_smile_iv_strike")
)
IV_FLOOR, IV_CAP = 0.01, 5.0
# the base's learnt dynamics (fit_blend): yesterday's smile at this strike against yesterday's
# forward (sticky strike) and the contract's own IV yesterday, as gaps to the smile base
BLEND_TERMS = ("prev_smile_iv_strike", "prev_iv")
DEFAULT_BASE_IV = 0.20  # base level where neither a surface nor a realised vol is known
# features in vol units: read relative to the base on the log scale (model_inputs)
VOL_LEVEL_FEATURES = ("rv_5d", "rv_10d", "rv_20d", "prev_iv", "prev_surface_iv", "prev_atm_iv",
                      "prev_smile_iv", "prev_smile_iv_strike")  # fmt: skip
BASE_FLOOR = 1e-4  # vols below it are read as it on the log scale (ln of 0 is not a number)
DAY_SD = (1.0 / 252.0) ** 0.5  # one trading day in years, square-rooted: a vol's daily move
MAX_REPORTED = 10  # problems listed in one ContractError message


class ContractError(ValueError):
    """Invalid contract rows; the message names each row index and its problem. `problems`:
    (row label, field or None, message) per problem, for callers that report them one by one."""

    def __init__(self, message: str, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class StateMissing(ContractError):
    """No market state recent enough for some quote dates (the message names them)."""


def as_store(states: MarketState | StateStore) -> StateStore:
    return states if isinstance(states, StateStore) else StateStore.of(states)


def _show(value) -> str:
    """A bad input value as the caller wrote it: text quoted, numbers plain (no np.float64(...))."""
    value = value.item() if isinstance(value, np.generic) else value
    return repr(value) if isinstance(value, str) else str(value)


# -- what a bad contract field is told (both paths: validate_contracts and array_path) ----------
def missing_columns_message(missing: list[str]) -> str:
    return (f"missing required column(s) {missing} (all rows); required: "
            f"{list(CONTRACT_COLUMNS)}, optional: {list(OPTIONAL_COLUMNS)}")  # fmt: skip


def missing_value(col: str) -> str:
    return f"missing {col}"


def bad_option_type(raw) -> str:
    return f"option_type {_show(raw)} is not 'C' or 'P'"


def not_finite(col: str, raw) -> str:
    return f"{col} {_show(raw)} is not a finite number"


def not_positive(col: str, value: float) -> str:
    return f"{col} must be positive, got {value}"


def not_a_date(col: str, raw) -> str:
    return f"{col} {_show(raw)} is not a date"


def not_after(expiry, quote_date) -> str:
    return (f"expiry {pd.Timestamp(expiry):%Y-%m-%d} is not after quote_date "
            f"{pd.Timestamp(quote_date):%Y-%m-%d}")  # fmt: skip


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def validate_contracts(contracts: pd.DataFrame) -> pd.DataFrame:
    """The known columns of `contracts`, typed and checked (a new frame, same index).

    Raises ContractError naming row index and problem: missing column or value, unknown option
    type, non-positive strike/spot, expiry not after quote date, non-finite numbers, values
    outside the plausibility bounds (pipeline.model.plausibility: levels, moneyness, rates, term)."""
    if not isinstance(contracts, pd.DataFrame):
        raise ContractError(f"expected a DataFrame of contracts, got {type(contracts).__name__}")
    missing = [c for c in CONTRACT_COLUMNS if c not in contracts.columns]
    if missing:
        raise ContractError(missing_columns_message(missing))
    c = contracts[[col for col in (*CONTRACT_COLUMNS, *OPTIONAL_COLUMNS) if col in contracts]]
    c = c.copy()
    problems: list[tuple[object, str]] = []

    def flag(mask, message) -> None:
        for idx in c.index[np.asarray(mask, bool)]:
            problems.append((idx, message(idx)))

    raw = contracts
    for col in ("underlying", "option_type"):
        flag(raw[col].isna(), lambda i, col=col: missing_value(col))
    c["underlying"] = raw["underlying"].astype(str)
    # normalised once per distinct value: str methods on every row cost ~0.2 s per 200k rows
    types = raw["option_type"]
    c["option_type"] = types.map({v: str(v).strip().upper() for v in types.unique()})
    bad_type = raw["option_type"].notna() & ~c["option_type"].isin(["C", "P"])
    flag(bad_type, lambda i: bad_option_type(raw.at[i, "option_type"]))
    for col in ("strike", "spot"):
        c[col] = _numbers(raw[col])
        v = c[col].to_numpy()
        flag(~np.isfinite(v), lambda i, col=col: not_finite(col, raw.at[i, col]))
        flag(np.isfinite(v) & (v <= 0), lambda i, col=col: not_positive(col, c.at[i, col]))
    for col in ("expiry", "quote_date"):
        c[col] = pd.to_datetime(raw[col], errors="coerce")
        flag(c[col].isna(), lambda i, col=col: not_a_date(col, raw.at[i, col]))
    late = (c["expiry"] <= c["quote_date"]).to_numpy()
    flag(late, lambda i: not_after(c.at[i, "expiry"], c.at[i, "quote_date"]))
    for col in ("rate", "dividend_yield", *STATE_COLUMNS):
        if col in c:
            c[col] = _numbers(raw[col])
            text = raw[col].notna() & c[col].isna()  # a value that is not a number
            flag(text | np.isinf(c[col]), lambda i, col=col: not_finite(col, raw.at[i, col]))
    if "option" in c:
        c["option"] = raw["option"].where(raw["option"].notna(), None)
    problems += implausible(c)  # well formed but absurd: spot 1e-310, strike 1,000× spot, ...
    _raise(problems)
    return c


def _raise(problems: list[tuple], error: type[ContractError] = ContractError) -> None:
    """Raise `error` for (row label, message[, field]) problems, if any."""
    if problems:
        rows = sorted({str(p[0]) for p in problems})
        shown = "; ".join(f"row {p[0]}: {p[1]}" for p in problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        detail = [(p[0], p[2] if len(p) > 2 else None, p[1]) for p in problems]
        raise error(f"{len(rows)} invalid contract row(s): {shown}{more}", detail)


def states_for(c: pd.DataFrame, store: StateStore, labels=None) -> dict[pd.Timestamp, MarketState]:
    """The state of each distinct quote date of validated contracts `c`; StateMissing naming
    the rows and dates without one, ContractError naming rows whose underlying the state has no
    data for (unless the caller gives the state columns)."""
    days = c["quote_date"].dt.normalize().to_numpy()
    states = lookup_states(days, store)
    absent = [col for col in UNDERLYING_STATE_COLUMNS if col not in c]
    names = c.index if labels is None else labels
    _raise(unknown_underlyings(states, days, c["underlying"].to_numpy(), absent, names))
    return states


def lookup_states(days: np.ndarray, store: StateStore) -> dict:
    """{day: its state} for each distinct (normalised) quote date in `days`, in order of first
    appearance; StateMissing naming the dates without one and how many contracts each has."""
    states, missing = {}, []
    for day in pd.unique(days):
        try:
            states[day] = store.lookup(day)
        except StateUnavailable as exc:
            missing.append(f"{exc} ({int((days == day).sum())} contract(s))")
    if missing:
        more = f"; and {len(missing) - 2} more quote date(s)" if len(missing) > 3 else ""
        raise StateMissing("; ".join(missing[: 2 if more else 3]) + more)
    return states


def unknown_underlyings(states: dict, days: np.ndarray, underlying: np.ndarray,
                        absent: list[str], labels) -> list[tuple]:  # fmt: skip
    """Problems of rows whose underlying their day's state has no data for, when the caller
    gives none of the `absent` state columns either (none absent: no problem)."""
    problems = []
    if not absent:
        return problems
    for day, state in states.items():
        known = state.underlyings
        bad = (days == day) & ~np.isin(underlying, list(known))
        problems += [(labels[i], f"unknown underlying {underlying[i]!r}: the market "
                      f"state of {state.as_of} has no data for it (it has: {sorted(known)}); "
                      f"pass the columns {absent}", "underlying")
                     for i in np.flatnonzero(bad)]  # fmt: skip
    return problems


def model_features(contracts: pd.DataFrame, states: MarketState | StateStore) -> pd.DataFrame:
    """Validated contracts → geometry (t_years, forward, discount, moneyness, is_call, ...) and the
    market-state features (given columns as given, the rest from each quote date's state), on
    the input's index."""
    # positional from here on: a caller's index may repeat labels; it is put back at the end
    c = validate_contracts(contracts).reset_index(drop=True)
    states = states_for(c, as_store(states), labels=contracts.index)
    day_of = c["quote_date"].dt.normalize()
    parts = []
    for day, state in states.items():
        part = c[(day_of == day).to_numpy()]
        if "rate" in part:
            part = part.assign(rate=part["rate"].fillna(state.rate))
        if "dividend_yield" in part:
            default_q = (
                part["underlying"].map(state.dividend_yields).fillna(state.default_dividend_yield)
            )
            part = part.assign(dividend_yield=part["dividend_yield"].fillna(default_q))
        geometry = contract_geometry(part, state.market)
        snapshot = state_features(geometry, state)
        given = [col for col in STATE_COLUMNS if col in part]
        snapshot[given] = part[given]
        # vol_time as state_features defines it, now from the rv_20d actually used
        snapshot["vol_time"] = snapshot["rv_20d"] * geometry["sqrt_t"]
        geometry = geometry.drop(columns=[col for col in snapshot.columns if col in geometry])
        parts.append(pd.concat([geometry, snapshot], axis=1))
    if not parts:  # no contracts: the same columns, no rows
        geometry = contract_geometry(c, MarketState(dt.date.min, 0.0, 0.0).market)
        parts = [pd.concat([geometry, state_features(geometry, None)], axis=1)]
    return pd.concat(parts).sort_index().set_axis(contracts.index)


def _fill(values: np.ndarray, fallback) -> np.ndarray:
    """`values` with NaN replaced by `fallback` (pandas' fillna, on arrays)."""
    return np.where(np.isnan(values), fallback, values)


def base_iv(features) -> np.ndarray:
    """The smile base: prev_smile_iv, else prev_surface_iv, else rv_20d, else DEFAULT_BASE_IV.
    `features`: a frame, or a mapping of column name → array (the array path)."""
    base = _fill(np.asarray(features["prev_smile_iv"], float),
                 np.asarray(features["prev_surface_iv"], float))  # fmt: skip
    if "rv_20d" in features:
        base = _fill(base, np.asarray(features["rv_20d"], float))
    return _fill(base, DEFAULT_BASE_IV)


def blend_terms(features, base: np.ndarray) -> np.ndarray:
    """(rows, len(BLEND_TERMS)): each term's gap to the smile base (0 where it is unknown)."""
    cols = []
    for name in BLEND_TERMS:
        known = name in features
        value = np.asarray(features[name], float) if known else np.full(len(base), np.nan)
        cols.append(np.nan_to_num(value - base, nan=0.0, posinf=0.0, neginf=0.0))
    return np.column_stack(cols) if cols else np.zeros((len(base), 0))


def fit_blend(features: pd.DataFrame, target, weights=None) -> dict[str, float]:
    """The base's dynamics, learnt from the training rows: least squares of (target − smile
    base) on the gaps of the sticky-strike smile and of the contract's own IV yesterday to it,
    each coefficient clipped to [0, 1]. 0 and 0 = the smile re-read at today's moneyness (sticky
    moneyness); 1 on the strike term = sticky strike; weight on prev_iv = how much of a
    contract's own deviation from yesterday's smile persists."""
    base = base_iv(features)
    x, y = blend_terms(features, base), np.asarray(target, float) - base
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    ok = np.isfinite(y) & np.isfinite(w)
    sw = np.sqrt(w[ok])[:, None]
    coef, *_ = np.linalg.lstsq(x[ok] * sw, y[ok] * sw[:, 0], rcond=None)
    return {n: float(np.clip(c, 0.0, 1.0)) for n, c in zip(BLEND_TERMS, coef, strict=True)}


def blended_base(features, blend: dict[str, float] | None) -> np.ndarray:
    """The level the booster corrects: the smile base moved by the learnt blend (fit_blend)."""
    base = base_iv(features)
    if not blend:
        return base
    coef = np.array([float(blend.get(n, 0.0)) for n in BLEND_TERMS])
    return base + blend_terms(features, base) @ coef


def booster_blend(booster: xgb.Booster) -> dict[str, float]:
    """The blend saved with the booster (an attribute: it travels in the UBJSON file)."""
    return json.loads(booster.attr("base_blend") or "{}")


def booster_scale(booster: xgb.Booster) -> str:
    """The scale the booster was fitted on (`target_scale` attribute; older boosters: level)."""
    return booster.attr("target_scale") or "level"


def booster_moves(booster: xgb.Booster) -> str:
    """How the booster reads the day's move and moneyness (`moves` attribute: "standardised" or,
    for boosters fitted before model_train.standardise_moves, "raw")."""
    return booster.attr("moves") or "raw"


def model_inputs(
    features: pd.DataFrame,
    names: Sequence[str],
    blend: dict | None = None,
    scale: str = "level",
    moves: str = "raw",
) -> tuple[pd.DataFrame, np.ndarray]:
    """(the booster's input columns `names` in order, its base margin): `input_arrays` as a
    frame on the features' index."""
    columns, margin = input_arrays(features, names, blend, scale, moves)
    return pd.DataFrame(columns, index=features.index, columns=list(names)), margin


def input_arrays(
    features,
    names: Sequence[str],
    blend: dict | None = None,
    scale: str = "level",
    moves: str = "raw",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({name: float array} for the booster's inputs `names`, its base margin); `features`: a
    frame or a mapping of column name → array.

    scale "level": features as they are, margin = `blended_base`; the trees add vol points.
    scale "log": the correction is a factor: margin = ln(blended base), and every feature in vol
    units is read relative to that base (VOL_LEVEL_FEATURES → ln(feature / base), prev_skew /
    base, vol_time → base × sqrt_t), so the trees see the same inputs for the same smile shape
    at 15% or at 60% vol: a regime whose level the training days never reached is not an
    extrapolation.

    moves "standardised" (log scale only) also reads the day's move and the moneyness in
    standard deviations, as the market's own dynamics do: spot_return / (prev_atm_iv × √(1/252))
    (a 2% fall is a 2-sd day at 16% vol, a 1-sd day at 32%), std_moneyness / base (k / (σ√T))
    and log_moneyness / prev_atm_iv; "raw" reads them as they are."""
    x = {name: np.asarray(features[name], float) for name in names}
    base = blended_base(features, blend)
    if scale == "level":
        return x, base
    if scale != "log":
        raise ValueError(f"unknown target scale {scale!r}: expected level or log")
    base = np.maximum(base, BASE_FLOOR)
    for name in x:
        if name in VOL_LEVEL_FEATURES:
            x[name] = np.log(np.maximum(x[name], BASE_FLOOR) / base)
        elif name == "prev_skew":
            x[name] = x[name] / base
        elif name == "vol_time":
            x[name] = base * np.asarray(features["sqrt_t"], float)
    if moves == "standardised":
        standardise_moves(x, features, base)
    elif moves != "raw":
        raise ValueError(f"unknown moves {moves!r}: expected raw or standardised")
    return x, np.log(base)


def standardise_moves(x: dict[str, np.ndarray], features, base: np.ndarray) -> None:
    """The day's move and the moneyness in standard deviations (input_arrays, in place): the
    underlying's ATM vol yesterday (the contract's base where there is none) is the unit."""
    atm = np.asarray(features["prev_atm_iv"], float) if "prev_atm_iv" in features else base
    atm = np.where(np.isfinite(atm) & (atm > BASE_FLOOR), atm, base)
    if "spot_return" in x:
        x["spot_return"] = x["spot_return"] / (atm * DAY_SD)
    if "std_moneyness" in x:
        x["std_moneyness"] = x["std_moneyness"] / base
    if "log_moneyness" in x:
        x["log_moneyness"] = x["log_moneyness"] / atm


def design_matrix(
    features: pd.DataFrame,
    names: Sequence[str],
    label=None,
    blend: dict | None = None,
    scale: str = "level",
    moves: str = "raw",
) -> xgb.DMatrix:
    """The booster's input (`model_inputs`), with the target IV `label` on the same scale."""
    x, margin = model_inputs(features, names, blend, scale, moves)
    if label is not None and scale == "log":
        label = np.log(np.maximum(np.asarray(label, float), BASE_FLOOR))
    return xgb.DMatrix(x, label=label, base_margin=margin, feature_names=list(names))


def predict_iv(features: pd.DataFrame, booster: xgb.Booster, names: Sequence[str]) -> np.ndarray:
    """Clipped IV predictions for a frame that has the `names` feature columns."""
    if features.empty:
        return np.empty(0)
    scale = booster_scale(booster)
    matrix = design_matrix(features, names, blend=booster_blend(booster), scale=scale,
                           moves=booster_moves(booster))  # fmt: skip
    raw = booster.predict(matrix)
    return to_iv(raw, scale)


def to_iv(raw: np.ndarray, scale: str) -> np.ndarray:
    """The booster's raw predictions on `scale` → IV clipped to [IV_FLOOR, IV_CAP]."""
    return np.clip(np.exp(raw) if scale == "log" else raw, IV_FLOOR, IV_CAP)


def predict_frame(
    contracts: pd.DataFrame,
    booster: xgb.Booster,
    states: MarketState | StateStore,
    features: Sequence[str],
) -> pd.DataFrame:
    """Raw contract rows → DataFrame(iv, price) on the input's index (see the module docstring).
    `states`: where each quote date's state comes from (a single MarketState prices the quote
    dates of the trading day after it only)."""
    feats = model_features(contracts, states)
    # last guard: XGBoost refuses the whole batch over one infinite input; name the row instead
    inputs, margin = model_inputs(feats, features, booster_blend(booster), booster_scale(booster),
                                  booster_moves(booster))  # fmt: skip
    _raise(model_input_problems(inputs.set_axis(feats.index), features, margin))
    iv = predict_iv(feats, booster, features)
    price = black_price(
        feats["forward"], feats["strike"], feats["t_years"], feats["discount"], iv,
        feats["is_call"].astype(bool),
    )  # fmt: skip
    return pd.DataFrame({"iv": iv, "price": np.asarray(price, float)}, index=contracts.index)
