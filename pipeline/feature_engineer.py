"""feature_engineer: validated quotes → `data/processed/features_YYYYMMDD.<ext>`.

Per contract: time to expiry, forward, log-moneyness k = ln(K/F), standardised moneyness k/√T,
√T, vol-time (20-day realised vol × √T), mid, spread, call/put flag, the underlying's realised
vols, the market mid implied vol (the model's target, from our vectorised solver, NaN + reason
where no vol exists) and lagged surface features from the previous trading day's features file.
The same-day IV is only ever the target: every feature is known before today's option mids.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.artifacts import read_frame, write_frame, write_json
from pipeline.errors import DataError
from pipeline.market.calendar import shift_trading_days
from pipeline.quant.black_scholes import black_vega
from pipeline.quant.implied_vol import implied_vol
from pipeline.runtime import TaskContext, TaskSpec, execute

TRADING_DAYS_PER_YEAR = 252
MODEL_FEATURES = (  # what a model may read; `iv` is the target, never a feature
    "t_years", "sqrt_t", "log_moneyness", "std_moneyness", "vol_time", "is_call",
    "rv_5d", "rv_10d", "rv_20d", "prev_iv", "prev_surface_iv", "prev_atm_iv", "prev_skew",
)


def contract_features(quotes: pd.DataFrame, market, min_vega: float) -> pd.DataFrame:
    """Static per-contract features and the target IV (a new frame; `quotes` is not touched)."""
    q = quotes
    t = (pd.to_datetime(q["expiry"]) - pd.to_datetime(q["quote_date"])).dt.days.to_numpy() / 365.0
    rate = float(market.rate)
    yields = q["underlying"].map(dict(market.dividend_yields)).fillna(market.default_dividend_yield)
    discount = np.exp(-rate * t)
    forward = q["spot"].to_numpy() * np.exp((rate - yields.to_numpy(float)) * t)
    strike = q["strike"].to_numpy(float)
    is_call = (q["option_type"] == "C").to_numpy()
    mid = 0.5 * (q["bid"].to_numpy(float) + q["ask"].to_numpy(float))
    solved = implied_vol(mid, forward, strike, t, discount, is_call)
    vega_point = 0.01 * black_vega(forward, strike, t, discount, solved.iv)  # price per vol point
    k = np.log(strike / forward)
    out = q.copy()
    out = out.assign(
        t_years=t, sqrt_t=np.sqrt(t), rate=rate, dividend_yield=yields.to_numpy(float),
        discount=discount, forward=forward, log_moneyness=k, std_moneyness=k / np.sqrt(t),
        mid=mid, spread=q["ask"] - q["bid"], rel_spread=(q["ask"] - q["bid"]) / mid,
        is_call=is_call.astype(int), iv=solved.iv, iv_reason=solved.reason,
        vega_point=vega_point, iv_reliable=(solved.reason == "ok") & (vega_point >= min_vega),
    )
    return out


def realised_vols(spots: pd.DataFrame, date: dt.date, windows, min_periods: int) -> pd.DataFrame:
    """Annualised close-to-close vols per underlying at `date` from a (date, underlying, spot) history."""
    wide = spots.pivot_table(index="date", columns="underlying", values="spot", aggfunc="first").sort_index()
    rets = np.log(wide).diff()
    cols = {}
    for w in windows:
        vol = rets.rolling(w, min_periods=min(min_periods, w)).std() * np.sqrt(TRADING_DAYS_PER_YEAR)
        cols[f"rv_{w}d"] = vol.loc[pd.Timestamp(date)] if pd.Timestamp(date) in vol.index else np.nan
    return pd.DataFrame(cols).rename_axis("underlying").reset_index()


def _surface_design(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    x = np.clip(x, -3.0, 3.0)
    return np.column_stack([np.ones_like(x), x, x * x, s, s * x, s * s])


def lagged_features(today: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Yesterday's IVs at today's contracts: same contract, and a fitted quadratic surface in
    (k/√T, √T) per underlying (Dumas-Fleming-Whaley style) for new contracts and for the ATM level."""
    cols = ["prev_iv", "prev_surface_iv", "prev_atm_iv", "prev_skew"]
    out = pd.DataFrame(np.nan, index=today.index, columns=cols)
    if previous is None or previous.empty:
        return out
    prev = previous[previous["iv_reliable"].astype(bool)]
    out["prev_iv"] = today["option"].map(prev.drop_duplicates("option").set_index("option")["iv"])
    for underlying, grp in prev.groupby("underlying"):
        mask = (today["underlying"] == underlying).to_numpy()
        if len(grp) < 12 or not mask.any():
            continue
        coef, *_ = np.linalg.lstsq(_surface_design(grp["std_moneyness"].to_numpy(), grp["sqrt_t"].to_numpy()),
                                   grp["iv"].to_numpy(), rcond=None)
        x, s = today.loc[mask, "std_moneyness"].to_numpy(), today.loc[mask, "sqrt_t"].to_numpy()
        out.loc[mask, "prev_surface_iv"] = _surface_design(x, s) @ coef
        out.loc[mask, "prev_atm_iv"] = _surface_design(np.zeros_like(s), s) @ coef
        out.loc[mask, "prev_skew"] = coef[1] + coef[4] * s  # d iv / d (k/√T) at the money
    return out


def build_features(quotes: pd.DataFrame, spots: pd.DataFrame, previous: pd.DataFrame | None,
                   date: dt.date, market, cfg) -> pd.DataFrame:
    """The task's pure core: today's validated quotes + spot history + yesterday's features."""
    feats = contract_features(quotes, market, cfg.min_vega)
    rv = realised_vols(spots, date, cfg.realised_vol_windows, cfg.realised_vol_min_periods)
    feats = feats.merge(rv, on="underlying", how="left")
    feats["vol_time"] = feats["rv_20d"] * feats["sqrt_t"]
    lagged = lagged_features(feats, previous)
    return pd.concat([feats, lagged], axis=1)


def distribution_stats(feats: pd.DataFrame) -> dict[str, dict[str, float]]:
    num = feats[[c for c in (*MODEL_FEATURES, "iv", "mid", "spread") if c in feats]].astype(float)
    desc = num.describe(percentiles=[0.05, 0.5, 0.95]).T
    desc["null_rate"] = num.isna().mean()
    return {c: {k: round(float(v), 6) for k, v in row.items()} for c, row in desc.iterrows()}


def _history_dates(ctx: TaskContext) -> list[dt.date]:
    n = ctx.task_cfg.history_days
    return [shift_trading_days(ctx.date, -i) for i in range(n, 0, -1)]


def _history_paths(ctx: TaskContext) -> list[Path]:
    paths = [ctx.artifacts.validated_quotes(d) for d in _history_dates(ctx)]
    return [p for p in paths if p.exists()]


def _previous_features(ctx: TaskContext) -> Path | None:
    for i in range(1, ctx.task_cfg.previous_day_lookback + 1):
        path = ctx.artifacts.features(shift_trading_days(ctx.date, -i))
        if path.exists():
            return path
    return None


def run(ctx: TaskContext) -> None:
    cfg = ctx.task_cfg
    source = ctx.artifacts.validated_quotes(ctx.date)
    if not source.exists():
        raise DataError(f"no validated quotes for {ctx.date}: {source} does not exist (run data_validate first)")
    quotes = read_frame(source)
    for col in ("quote_date", "expiry"):
        quotes[col] = pd.to_datetime(quotes[col])
    history = [read_frame(p, ["quote_date", "underlying", "spot"]) for p in _history_paths(ctx)]
    spots = pd.concat([*history, quotes[["quote_date", "underlying", "spot"]]], ignore_index=True)
    spots = spots.assign(date=pd.to_datetime(spots["quote_date"]).dt.normalize())
    prev_path = _previous_features(ctx)
    previous = read_frame(prev_path) if prev_path else None
    feats = build_features(quotes, spots, previous, ctx.date, ctx.cfg.market, cfg)
    write_frame(feats, ctx.artifacts.features(ctx.date))
    stats = distribution_stats(feats)
    stats_path = write_json(stats, ctx.artifacts.reports_dir / "features" / f"feature_stats_{ctx.date:%Y%m%d}.json")
    ctx.reports.append(stats_path)
    reasons = feats["iv_reason"].value_counts().to_dict()
    ctx.log.info("features created: %d rows x %d columns; history days %d; previous day %s",
                 len(feats), feats.shape[1], len(history), prev_path.name if prev_path else "none")
    ctx.log.info("implied vol: %s; reliable %d", reasons, int(feats["iv_reliable"].sum()))
    for col in ("iv", "rv_20d", "std_moneyness", "prev_iv", "prev_surface_iv"):
        s = stats[col]
        ctx.log.info("%-16s mean %.4f std %.4f p5 %.4f p95 %.4f null %.3f",
                     col, s["mean"], s["std"], s["5%"], s["95%"], s["null_rate"])
        ctx.metric(f"{col}.mean", s["mean"])
        ctx.metric(f"{col}.null_rate", s["null_rate"])
    ctx.metric("rows_in", len(quotes))
    ctx.metric("rows_out", len(feats))
    ctx.metric("iv_reliable_share", float(feats["iv_reliable"].mean()))


SPEC = TaskSpec(
    name="feature_engineer",
    run=run,
    inputs=lambda ctx: [p for p in [ctx.artifacts.validated_quotes(ctx.date)] if p.exists()]
    + _history_paths(ctx) + [p for p in [_previous_features(ctx)] if p],
    outputs=lambda ctx: [ctx.artifacts.features(ctx.date)],
)


def main(cfg) -> None:
    execute(SPEC, cfg)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
