"""The pure feature code: contract geometry, the target IV and the feature tables' columns.

No I/O and no task, runtime or monitoring import: the feature_engineer task (files, checkpoints,
MLflow) and the pricer the model ships (pipeline.model.pricer) both build features with these
functions, so a contract priced by the served model gets exactly the features it had in training.

- `MODEL_FEATURES`: what a model may read (`iv` is the target, never a feature);
- `contract_geometry`: time to expiry, forward, moneyness of raw contract rows;
- `market_iv` / `contract_features`: the quoted mid's implied vol and the spread in vol terms;
- `realised_vols`: annualised close-to-close vols from a spot history;
- `build_features`: a day's quotes + spots + the previous state → (features, the day's state);
- `distribution_stats`: the summary feature_engineer logs per day.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline.market_state import MarketState, informative, moneyness_class, state_features
from pipeline.quant.black_scholes import black_vega
from pipeline.quant.implied_vol import implied_vol

TRADING_DAYS_PER_YEAR = 252
MODEL_FEATURES = (  # what a model may read; `iv` is the target, never a feature
    "t_years",
    "sqrt_t",
    "log_moneyness",
    "std_moneyness",
    "vol_time",
    "is_call",
    "rv_5d",
    "rv_10d",
    "rv_20d",
    "prev_iv",
    "prev_surface_iv",
    "prev_atm_iv",
    "prev_skew",
    "prev_smile_iv",
    "prev_smile_iv_strike",
    "spot_return",
)


def _datetimes(values: pd.Series) -> pd.Series:
    """`values` as datetimes; as they are when they already are (pd.to_datetime would walk every
    value deciding whether to cache: ~0.2 s per 200k rows)."""
    return values if pd.api.types.is_datetime64_any_dtype(values) else pd.to_datetime(values)


def contract_geometry(contracts: pd.DataFrame, market) -> pd.DataFrame:
    """Contract fields → time to expiry, forward, moneyness (a new frame; the input is not touched).

    Needs underlying, option_type, strike, expiry, quote_date, spot; `rate` and `dividend_yield`
    columns are used when present, else the `market` config's values.
    """
    c = contracts
    t = (_datetimes(c["expiry"]) - _datetimes(c["quote_date"])).dt.days.to_numpy() / 365.0
    default_q = (
        c["underlying"].map(dict(market.dividend_yields)).fillna(market.default_dividend_yield)
    )
    rate = c["rate"].to_numpy(float) if "rate" in c else np.full(len(c), float(market.rate))
    q = c["dividend_yield"].to_numpy(float) if "dividend_yield" in c else default_q.to_numpy(float)
    forward = c["spot"].to_numpy(float) * np.exp((rate - q) * t)
    k = np.log(c["strike"].to_numpy(float) / forward)
    return c.assign(
        t_years=t,
        sqrt_t=np.sqrt(t),
        rate=rate,
        dividend_yield=q,
        discount=np.exp(-rate * t),
        forward=forward,
        log_moneyness=k,
        std_moneyness=k / np.sqrt(t),
        is_call=(c["option_type"] == "C").to_numpy().astype(int),
    )


def market_iv(geometry: pd.DataFrame, min_vega: float) -> pd.DataFrame:
    """The target: implied vol of the quoted mid (NaN + reason where no vol exists)."""
    g = geometry
    mid = 0.5 * (g["bid"].to_numpy(float) + g["ask"].to_numpy(float))
    fwd, strike, t, disc = (
        g[c].to_numpy(float) for c in ("forward", "strike", "t_years", "discount")
    )
    solved = implied_vol(mid, fwd, strike, t, disc, g["is_call"].to_numpy().astype(bool))
    vega_point = 0.01 * black_vega(fwd, strike, t, disc, solved.iv)  # price per vol point
    spread = g["ask"] - g["bid"]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread_iv = np.where(vega_point > 0, 0.01 * spread.to_numpy(float) / vega_point, np.nan)
    out = g.assign(
        mid=mid,
        spread=spread,
        rel_spread=spread / mid,
        spread_iv=spread_iv,  # the quoted spread in vol (0.01 = 1 vol point)
        iv=solved.iv,
        iv_reason=solved.reason,
        vega_point=vega_point,
        iv_reliable=(solved.reason == "ok") & (vega_point >= min_vega),
        moneyness_class=moneyness_class(g["std_moneyness"], g["is_call"]),
    )
    return out.assign(informative=informative(out))


def contract_features(quotes: pd.DataFrame, market, min_vega: float) -> pd.DataFrame:
    """Static per-contract features and the target IV (a new frame; `quotes` is not touched)."""
    return market_iv(contract_geometry(quotes, market), min_vega)


def realised_vols(spots: pd.DataFrame, date: dt.date, windows, min_periods: int) -> pd.DataFrame:
    """Annualised close-to-close vols per underlying at `date` from a (date, underlying, spot) history."""
    wide = spots.pivot_table(
        index="date", columns="underlying", values="spot", aggfunc="first"
    ).sort_index()
    rets = np.log(wide).diff()
    cols = {}
    for w in windows:
        vol = rets.rolling(w, min_periods=min(min_periods, w)).std() * np.sqrt(
            TRADING_DAYS_PER_YEAR
        )
        cols[f"rv_{w}d"] = (
            vol.loc[pd.Timestamp(date)] if pd.Timestamp(date) in vol.index else np.nan
        )
    return pd.DataFrame(cols).rename_axis("underlying").reset_index()


def build_features(
    quotes: pd.DataFrame,
    spots: pd.DataFrame,
    previous: MarketState | None,
    date: dt.date,
    market,
    cfg,
) -> tuple[pd.DataFrame, MarketState]:
    """The task's pure core: today's validated quotes + spot history + the previous trading
    day's state → (today's features, today's state)."""
    feats = contract_features(quotes, market, cfg.min_vega)
    state = state_features(feats, previous)
    feats = pd.concat([feats, state], axis=1)
    rv = realised_vols(spots, date, cfg.realised_vol_windows, cfg.realised_vol_min_periods)
    return feats, MarketState.from_day(feats, rv, market, date)


def distribution_stats(feats: pd.DataFrame) -> dict[str, dict[str, float]]:
    num = feats[[c for c in (*MODEL_FEATURES, "iv", "mid", "spread") if c in feats]].astype(float)
    desc = num.describe(percentiles=[0.05, 0.5, 0.95]).T
    desc["null_rate"] = num.isna().mean()
    return {c: {k: round(float(v), 6) for k, v in row.items()} for c, row in desc.iterrows()}
