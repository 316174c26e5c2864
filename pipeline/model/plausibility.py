"""Plausibility bounds on the contracts the model prices, and a last check of its inputs.

`pricer.validate_contracts` checks that each field is well formed (finite numbers, strike and
spot > 0, real dates, expiry after quote_date). A well-formed contract can still be absurd: spot
1e-310 (a subnormal float) passes `> 0`, then ln(strike/spot) overflows to infinity and XGBoost
refuses the whole batch; strike 1e-6 or spot 1e7 against a strike of 600 price at the IV clip,
a meaningless number. `implausible(contracts)` names such rows; every caller of the model gets it
(training, the monitor, the service), so the service answers 422 naming the field, never a 5xx.

The bounds, chosen to keep every listed contract and every feature finite:

- strike and spot: MIN_LEVEL (0.01) to MAX_LEVEL (10,000,000). One cent is the smallest price
  step of listed options and their underlyings; nothing listed trades near ten million (a larger
  figure is a unit mistake, and 1e300 would overflow the pricing maths). Subnormal floats
  (< 2.2e-308) are far below the floor.
- moneyness: |ln(strike/spot)| ≤ MAX_LOG_MONEYNESS = ln(1,000), a strike within a factor of 1,000
  of spot. The project's markets never come near it: over the generated feature files (default
  ssvi market: 8 underlyings, strikes ±4 standard deviations, expiries to 2 years; the replay
  scenarios, variance ×4 shocks and strikes listed twice as wide; sabr_jumps with the accuracy
  benchmark's shock) the widest row has |ln(strike/spot)| = 3.9 (a strike 49× spot), the default
  market's 1.3. Listed chains quote strikes within a few multiples of spot.
- no bound per √T (on |ln(strike/spot)|/√T): on a 1-day expiry √T = 0.05, so a strike 20% away
  is already 3.8 units; how many units are plausible depends on the volatility, which validation
  does not know. With the bound above and T ≥ 1 day the feature stays below 132: finite.
- rate and dividend_yield: within ±MAX_RATE (±100% a year, continuous; null = the state's).
- expiry: at most MAX_YEARS (30) years after quote_date (listed options run to ~3 years).

Within these bounds the geometry is finite: |ln(forward/strike)| ≤ ln(1,000) + 2 × 30.

`model_input_problems(...)` is the last guard before the booster (pricer.predict_frame): a row whose
model inputs XGBoost cannot take (infinite, or beyond float32, the type XGBoost reads them as) is
refused naming the field it comes from. Contracts within the bounds never trip it; caller-given
market-state columns (rv_20d = 1e300, ...) can. NaN is allowed there: it means "unknown".

Problems are (row label, message, field) tuples, as `pricer._raise` reports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_LEVEL = 0.01
MAX_LEVEL = 10_000_000.0
MAX_STRIKE_RATIO = 1_000  # strike within a factor of 1,000 of spot
MAX_LOG_MONEYNESS = math.log(MAX_STRIKE_RATIO)
MAX_RATE = 1.0
MAX_YEARS = 30
MAX_DAYS = MAX_YEARS * 366
NS_PER_DAY = 86_400 * 10**9

FLOAT32_MAX = float(np.finfo(np.float32).max)  # XGBoost reads its inputs as float32
# the input field to name when a model feature is not finite (other features are input columns)
FEATURE_FIELDS = {"t_years": "expiry", "sqrt_t": "expiry", "log_moneyness": "strike",
                  "std_moneyness": "strike", "vol_time": "rv_20d", "is_call": "option_type",
                  "base margin": "prev_smile_iv"}  # fmt: skip

Problem = tuple[object, str, str]  # (row label, message, field)


def _show(value) -> str:
    """A number as the caller wrote it (shortest repr: 5e-324, 600.0)."""
    return repr(float(value))


def implausible(contracts: pd.DataFrame) -> list[Problem]:
    """The problems of typed contracts (validate_contracts' frame) outside the bounds above.

    Values validate_contracts already refuses (missing, not finite, ≤ 0, not a date) are not
    reported again."""
    c = contracts
    optional = {f: c[f].to_numpy(float) for f in ("rate", "dividend_yield") if f in c}
    return implausible_arrays(c.index, c["strike"].to_numpy(float), c["spot"].to_numpy(float),
                              optional, c["expiry"].to_numpy(), c["quote_date"].to_numpy())  # fmt: skip


def implausible_arrays(
    labels, strike: np.ndarray, spot: np.ndarray, rates: dict, expiry, quote_date
) -> list[Problem]:
    """`implausible` on typed arrays: row `labels`, float strike and spot, the given `rates`
    ({"rate"/"dividend_yield": floats}, NaN = the default) and datetime64 expiry / quote_date
    (NaT where not a date). The array path (pipeline.model.array_path) calls it directly."""
    problems = []
    for field, v in (("strike", strike), ("spot", spot)):
        for i in np.flatnonzero(np.isfinite(v) & (v > 0) & ((v < MIN_LEVEL) | (v > MAX_LEVEL))):
            problems.append((labels[i], f"{field} must be between {MIN_LEVEL:g} and "
                             f"{MAX_LEVEL:,.0f}, got {_show(v[i])}", field))  # fmt: skip

    levels_ok = (np.minimum(strike, spot) >= MIN_LEVEL) & (np.maximum(strike, spot) <= MAX_LEVEL)
    with np.errstate(all="ignore"):  # rows with NaN or ≤ 0 levels: already refused
        log_moneyness = np.where(levels_ok, np.log(strike / spot), 0.0)
    for i in np.flatnonzero(np.abs(log_moneyness) > MAX_LOG_MONEYNESS):
        problems.append((labels[i], f"strike {_show(strike[i])} is implausibly far from spot "
                         f"{_show(spot[i])}: ln(strike/spot) = {log_moneyness[i]:.1f}, over the "
                         f"bound ±ln(1,000) (a strike within a factor of {MAX_STRIKE_RATIO:,} of "
                         "spot)", "strike"))  # fmt: skip

    for field in ("rate", "dividend_yield"):
        v = rates[field] if field in rates else np.full(len(strike), np.nan)
        for i in np.flatnonzero(np.isfinite(v) & (np.abs(v) > MAX_RATE)):  # NaN: the default
            problems.append((labels[i], f"{field} must be between {-MAX_RATE:g} and "
                             f"{MAX_RATE:g} (a year, continuous), got {_show(v[i])}", field))  # fmt: skip

    days = whole_days(expiry, quote_date)
    for i in np.flatnonzero(days > MAX_DAYS):
        problems.append((labels[i], f"expiry {pd.Timestamp(expiry[i]):%Y-%m-%d} is more than "
                         f"{MAX_YEARS} years after quote_date "
                         f"{pd.Timestamp(quote_date[i]):%Y-%m-%d}", "expiry"))  # fmt: skip
    return problems


def whole_days(expiry, quote_date) -> np.ndarray:
    """Whole days from quote_date to expiry (floored, as pandas' .dt.days), NaN where either is
    NaT: datetime64 arrays of any unit."""
    e, d = (np.asarray(x, "datetime64[ns]") for x in (expiry, quote_date))
    delta = (e - d).view(np.int64)
    days = (delta // NS_PER_DAY).astype(float)
    return np.where(np.isnat(e) | np.isnat(d), np.nan, days)


def model_input_problems(
    features: pd.DataFrame, names: Sequence[str], base_margin: np.ndarray
) -> list[Problem]:
    """The problems of rows whose model inputs (the `names` feature columns and the base margin)
    XGBoost cannot take: infinite, or finite beyond float32. NaN (unknown) is fine."""
    inputs = {name: features[name].to_numpy(float) for name in names}
    return input_problems(features.index, inputs, base_margin)


def input_problems(labels, inputs: dict[str, np.ndarray], base_margin) -> list[Problem]:
    """`model_input_problems` on arrays: row `labels`, {feature name: floats} in the booster's
    order, and the base margin."""
    problems: list[Problem] = []
    inputs = {**inputs, "base margin": np.asarray(base_margin, float)}
    for name, values in inputs.items():
        field = FEATURE_FIELDS.get(name, name)
        for i in np.flatnonzero(np.abs(values) > FLOAT32_MAX):  # inf included, NaN not
            problems.append((labels[i], f"the model input {name} is not finite "
                             f"({_show(values[i])}): check {field}", field))  # fmt: skip
    return problems
