"""feature_engineer: validated quotes → `data/processed/features_YYYYMMDD.<ext>`.

Per contract: time to expiry, forward, log-moneyness k = ln(K/F), standardised moneyness k/√T,
√T, mid, spread, the spread in vol terms (spread / vega), call/put flag, moneyness class (OTM /
ATM / ITM: pipeline.market_state), the market mid implied vol (the model's target, from our
vectorised solver, NaN + reason where no vol exists), and the market-state features of the last
trading day before it (realised vols, yesterday's SSVI smile and surface at this contract, the
contract's own IV yesterday, the spot's move since: pipeline.market_state.state_features), read
from the state that day's feature_engineer published, exactly as the pricing service reads it.
Then the day's own state is fitted and published: `data/state/market_state_YYYYMMDD.json`.
The same-day IV is only ever the target: every feature is known before today's option mids.
The feature code itself is pure and lives in pipeline.features (the model ships it); this module
is the task around it: reading, writing, publishing the state, logging. Realised vols read the
spot history from data_validate's small per-day spot summaries
(`data/processed/spots_YYYYMMDD.<ext>`), or a day's validated quotes where no summary exists.

The task in two halves, which main's Dask executor also runs apart (pipeline.feature_shards: per
shard of underlyings in workers, then the day's publication):

    day_features(ctx, inputs, previous, source, underlyings=None) -> DayFeatures   (compute)
    publish(ctx, day)                   (write the features, the state, the stats; log, metrics)

`run` does both for the whole day, unless the day's DayFeatures were computed elsewhere
(`computed_elsewhere`): then it only publishes them. Either way the task is the same SPEC, with
the same checkpoint, MLflow run and files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import read_frame, write_frame, write_json
from pipeline.errors import DataError
from pipeline.features import build_features, distribution_stats
from pipeline.market.calendar import shift_trading_days
from pipeline.market_state import MarketState, StateStore, StateUnavailable, state_path
from pipeline.runtime import TaskContext, TaskSpec, execute
from pipeline.spot_history import read_spots, spot_summary


def _history_dates(ctx: TaskContext) -> list[dt.date]:
    n = ctx.task_cfg.history_days
    return [shift_trading_days(ctx.date, -i) for i in range(n, 0, -1)]


def _history_paths(ctx: TaskContext) -> list[Path]:
    """Per history day, its spot summary; for a day validated before summaries were written, its
    validated quotes (read for the same three columns)."""
    paths = []
    for day in _history_dates(ctx):
        found = [
            p for p in (ctx.artifacts.spots(day), ctx.artifacts.validated_quotes(day)) if p.exists()
        ]
        paths += found[:1]
    return paths


def previous_state_store(ctx: TaskContext) -> StateStore:
    """The published states, looked up as the service does, at most previous_day_lookback
    trading days old."""
    return StateStore(ctx.artifacts.state_dir, int(ctx.task_cfg.previous_day_lookback))


def previous_state(ctx: TaskContext) -> tuple[MarketState | None, str]:
    """(the published state of the last trading day before the date, or None; what was found,
    in words)."""
    try:
        state = previous_state_store(ctx).lookup(ctx.date)
    except StateUnavailable as exc:
        return None, str(exc)
    return state, state_source(state)


def state_source(state: MarketState) -> str:
    """Where a day's state features came from, in words (the task log's line)."""
    return f"market state of {state.as_of}"


def _previous_state_path(ctx: TaskContext) -> list[Path]:
    """The previous state's file (an input of the checkpoint: a re-published state re-runs)."""
    store = previous_state_store(ctx)
    for age in range(store.max_age_days):
        path = state_path(store.folder, shift_trading_days(ctx.date, -(age + 1)))
        if path.exists():
            return [path]
    return []


@dataclass(frozen=True)
class DayInputs:
    """What a day's features are built from: its validated quotes and the spot history."""

    quotes: pd.DataFrame
    spots: pd.DataFrame  # (quote_date, underlying, spot, date): the history days' and today's
    history_days: int  # history days found


@dataclass(frozen=True)
class DayFeatures:
    """A day's feature table and market state (of some of its underlyings: a shard's), with
    what the task logs about how they were made."""

    features: pd.DataFrame
    state: MarketState
    rows_in: int  # the day's validated quotes (all of them, for a shard too)
    history_days: int
    source: str  # where the state features came from, in words (`state_source`)


def read_inputs(ctx: TaskContext) -> DayInputs:
    """The day's validated quotes and spot history (DataError: no validated quotes)."""
    source = ctx.artifacts.validated_quotes(ctx.date)
    if not source.exists():
        raise DataError(
            f"no validated quotes for {ctx.date}: {source} does not exist (run data_validate first)"
        )
    quotes = read_frame(source)
    for col in ("quote_date", "expiry"):
        # csv gives text; parquet keeps datetimes, which pd.to_datetime would scan for nothing
        if not pd.api.types.is_datetime64_dtype(quotes[col]):
            quotes[col] = pd.to_datetime(quotes[col])
    history = _history_paths(ctx)
    # `realised_vols` takes one spot per day and underlying: today's, summarised like the history
    spots = pd.concat([read_spots(history), spot_summary(quotes)], ignore_index=True)
    spots = spots.assign(date=pd.to_datetime(spots["quote_date"]).dt.normalize())
    return DayInputs(quotes, spots, len(history))


def day_features(
    ctx: TaskContext,
    inputs: DayInputs,
    previous: MarketState | None,
    source: str,
    underlyings: Collection[str] | None = None,
) -> DayFeatures:
    """The day's features and state built on the `previous` day's state (build_features), of
    the `underlyings` only when given: their quotes' features, and the state's per-underlying
    tables restricted to them (realised vols are worked out on the whole spot history, so that
    each is what the whole day gives it)."""
    quotes = inputs.quotes
    if underlyings is not None:
        quotes = quotes[quotes["underlying"].isin(underlyings)]
    feats, state = build_features(quotes, inputs.spots, previous, ctx.date, ctx.cfg.market,
                                  ctx.task_cfg)  # fmt: skip
    if underlyings is not None:
        realised = state.realised[state.realised["underlying"].isin(underlyings)]
        state = replace(state, realised=realised.reset_index(drop=True))
    return DayFeatures(feats, state, len(inputs.quotes), inputs.history_days, source)


_ELSEWHERE: ContextVar[tuple[DayFeatures | None, str]] = ContextVar(
    "feature_engineer_elsewhere", default=(None, "")
)


@contextmanager
def computed_elsewhere(day: DayFeatures | None, note: str) -> Iterator[None]:
    """Inside the block, `run` for the date of `day`'s state publishes `day` instead of
    computing it (None: it computes as usual), and logs `note` (how `day` was computed, or why
    `run` computes the day)."""
    token = _ELSEWHERE.set((day, note))
    try:
        yield
    finally:
        _ELSEWHERE.reset(token)


def run(ctx: TaskContext) -> None:
    day, note = _ELSEWHERE.get()
    if note:
        ctx.log.info("%s", note)
    if day is None or day.state.as_of != ctx.date:
        previous, source = previous_state(ctx)
        day = day_features(ctx, read_inputs(ctx), previous, source)
    publish(ctx, day)


def publish(ctx: TaskContext, day: DayFeatures) -> None:
    """Write the day's features, state and feature stats; log and record the figures."""
    feats, state = day.features, day.state
    write_frame(feats, ctx.artifacts.features(ctx.date))
    ctx.reports.append(state.save(ctx.artifacts.market_state(ctx.date)))
    stats = distribution_stats(feats)
    stats_path = write_json(
        {**stats, "smile": {"slices": len(state.smiles), "fallbacks": list(state.fallbacks)}},
        ctx.artifacts.reports_dir / "features" / f"feature_stats_{ctx.date:%Y%m%d}.json",
    )
    ctx.reports.append(stats_path)
    reasons = feats["iv_reason"].value_counts().to_dict()
    ctx.log.info(
        "features created: %d rows x %d columns; history days %d; state features from: %s",
        len(feats),
        feats.shape[1],
        day.history_days,
        day.source,
    )
    classes = feats.loc[feats["iv_reliable"].astype(bool), "moneyness_class"].value_counts()
    ctx.log.info("reliable quotes by moneyness: %s; informative (OTM+ATM) %d",
                 classes.to_dict(), int(feats["informative"].sum()))  # fmt: skip
    ctx.log.info("market state %s published: %d smile slices for %d underlyings",
                 state.as_of, len(state.smiles), state.smiles["underlying"].nunique())  # fmt: skip
    for fb in state.fallbacks:
        ctx.log.warning("smile fallback: %s", fb)
    ctx.metric("smile_slices", len(state.smiles))
    ctx.metric("smile_fallbacks", len(state.fallbacks))
    ctx.metric("informative_share", float(feats["informative"].mean()) if len(feats) else 0.0)
    ctx.log.info("implied vol: %s; reliable %d", reasons, int(feats["iv_reliable"].sum()))
    for col in ("iv", "rv_20d", "std_moneyness", "prev_iv", "prev_surface_iv", "prev_smile_iv"):
        s = stats[col]
        ctx.log.info(
            "%-16s mean %.4f std %.4f p5 %.4f p95 %.4f null %.3f",
            col,
            s["mean"],
            s["std"],
            s["5%"],
            s["95%"],
            s["null_rate"],
        )
        ctx.metric(f"{col}.mean", s["mean"])
        ctx.metric(f"{col}.null_rate", s["null_rate"])
    ctx.metric("rows_in", day.rows_in)
    ctx.metric("rows_out", len(feats))
    ctx.metric("iv_reliable_share", float(feats["iv_reliable"].mean()))


SPEC = TaskSpec(
    name="feature_engineer",
    run=run,
    inputs=lambda ctx: (
        [p for p in [ctx.artifacts.validated_quotes(ctx.date)] if p.exists()]
        + _history_paths(ctx)
        + _previous_state_path(ctx)
    ),
    outputs=lambda ctx: [ctx.artifacts.features(ctx.date), ctx.artifacts.market_state(ctx.date)],
)


def main(cfg) -> None:
    execute(SPEC, cfg)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
