"""model_train: the window's feature tables → an XGBoost IV model → MLflow model → Staging.

Reads: `data/processed/features_YYYYMMDD.<ext>` of the `model_train.days` trading days ending at
the date (the days that have a file). Target: `iv` on rows with `iv_reliable`; features:
`model_train.features` (only feature_engineer.MODEL_FEATURES: nothing from the same day's mids).
Split by date: train | validation (early stopping) | holdout (the last `holdout_days`).

Writes: `reports/model/train_summary_YYYYMMDD.json` (split, figures, model URI and version) and
`reports/model/{learning_curve,feature_importance,pred_vs_actual,residual_buckets}_YYYYMMDD.png`.
MLflow (in the task's run): params = the runtime's resolved config (model_train, retry, market,
data_format, registry); metrics = per-iteration `train_rmse`/`validation_rmse` (steps), the best
iteration's figures, holdout figures of the model and of both baselines; inputs = the train,
validation and holdout frames as datasets (MLflow digest; date range and file sha256 in name and
tags); the model `model` (pipeline.model.packaging: models from code, no pickle, checked); tags =
the split dates, the feature list and the market-state date. With `model_train.register`, a new
version of `registry.model_name` goes to Staging with the same tags (pipeline.registry).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from pipeline import dask_executor, task_hooks  # noqa: F401 (task_hooks registers the hooks)
from pipeline.artifacts import read_frame, write_json
from pipeline.errors import ConfigError, DataError
from pipeline.evaluation import baseline_predictions, regression_metrics
from pipeline.features import MODEL_FEATURES
from pipeline.market.calendar import shift_trading_days, trading_days
from pipeline.market_state import MarketState, StateStore, informative
from pipeline.model import packaging, plots, tracking
from pipeline.model.pricer import CONTRACT_COLUMNS, OPTIONAL_COLUMNS, predict_frame
from pipeline.model.training import (
    Split,
    booster_jump_days,
    check_features,
    required_days,
    split_dates,
    train_model,
    xgb_params,
)
from pipeline.model.training_dask import train_model_dask
from pipeline.registry import Registry
from pipeline.runtime import TaskContext, TaskSpec, execute

__all__ = ["SPEC", "main", "read_features", "train_model"]
READ_COLUMNS = list(dict.fromkeys([*CONTRACT_COLUMNS, *OPTIONAL_COLUMNS, *MODEL_FEATURES, "iv",
                                   "iv_reliable", "bid", "ask", "mid", "forward", "discount",
                                   "spread_iv", "moneyness_class"]))  # fmt: skip
MIN_MID_FOR_MAPE = 0.10  # DOMAIN.md: MAPE on mids of at least 10 cents
PLOTS = ("learning_curve", "feature_importance", "pred_vs_actual", "residual_buckets")


def window(ctx: TaskContext) -> list[dt.date]:
    """The `days` trading days ending at the task's date."""
    return trading_days(shift_trading_days(ctx.date, -(int(ctx.task_cfg.days) - 1)), ctx.date)


def feature_paths(ctx: TaskContext) -> dict[dt.date, Path]:
    """Feature files of the window that exist, by date."""
    paths = {d: ctx.artifacts.features(d) for d in window(ctx)}
    return {d: p for d, p in paths.items() if p.exists()}


def read_features(path: Path) -> pd.DataFrame:
    """The columns of a feature file that training, pricing and scoring read; datetimes parsed."""
    try:
        df = read_frame(path, READ_COLUMNS)
    except (KeyError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        have = set(read_frame(path).columns)
        missing = [c for c in READ_COLUMNS if c not in have]
        if not missing:
            raise
        raise DataError(f"{path.name} lacks column(s) {missing}: written by an older "
                        "feature_engineer; rebuild it (make features ARGS='date=YYYY-MM-DD "
                        "feature_engineer.force=true', or make run)") from exc  # fmt: skip
    for col in ("quote_date", "expiry"):  # csv keeps datetimes as text
        if not pd.api.types.is_datetime64_dtype(df[col]):
            df[col] = pd.to_datetime(df[col])
    return df


def holdout_scores(holdout: pd.DataFrame, model: pd.DataFrame) -> dict[str, float]:
    """Model and baseline figures on the holdout rows every predictor can price."""
    preds = {"model": model, **baseline_predictions(holdout)}
    ok = np.isfinite(holdout["iv"].to_numpy(float))
    for p in preds.values():
        ok &= np.isfinite(p[["iv", "price"]].to_numpy(float)).all(axis=1)
    h = holdout[ok]
    out = {}
    for name, p in preds.items():
        m = regression_metrics(h["iv"], p["iv"][ok], h["mid"], p["price"][ok], h["bid"], h["ask"],
                               MIN_MID_FOR_MAPE)  # fmt: skip
        prefix = "holdout." if name == "model" else f"holdout.{name}."
        out |= {f"{prefix}{k}": v for k, v in m.items()}
    best = min(out["holdout.baseline_hist_vol.iv_rmse"], out["holdout.baseline_prev_iv.iv_rmse"])
    out["holdout.iv_rmse_vs_best_baseline"] = out["holdout.iv_rmse"] / best if best else np.nan
    return out


def _plots(ctx, booster, evals, features, holdout, pred) -> None:
    """The four PNGs (reports/model/<name>_YYYYMMDD.png), logged by the runtime as artifacts."""
    a, d = ctx.artifacts, ctx.date
    best = int(booster.attr("best_iteration"))
    ctx.reports += [
        plots.learning_curve(evals, best, a.model_plot("learning_curve", d)),
        plots.feature_importance(
            booster.get_score(importance_type="total_gain"),
            features,
            a.model_plot("feature_importance", d),
        ),
        plots.pred_vs_actual(holdout["iv"], pred["iv"], a.model_plot("pred_vs_actual", d)),
        plots.residual_buckets(holdout, pred["iv"], a.model_plot("residual_buckets", d)),
    ]


def typical_scores(holdout: pd.DataFrame, pred: pd.DataFrame, jumps) -> dict[str, float]:
    """The model's IV RMSE/MAE on the holdout without its jump days (the monitor's reference:
    one shock day in a holdout would inflate a pooled RMSE several-fold and blind the monitor
    to the version's later degradation); {} when every holdout day jumped."""
    days = pd.to_datetime(holdout["quote_date"]).dt.date
    keep = (~days.isin(set(jumps))).to_numpy() & np.isfinite(holdout["iv"].to_numpy(float))
    if not keep.any():
        return {}
    err = pred["iv"].to_numpy(float)[keep] - holdout["iv"].to_numpy(float)[keep]
    return {"holdout.typical_iv_rmse": float(np.sqrt(np.mean(err**2))),
            "holdout.typical_iv_mae": float(np.mean(np.abs(err))),
            "holdout.jump_days": float(days.isin(set(jumps)).groupby(days).any().sum())}  # fmt: skip


def _figures(booster, evals: dict, holdout: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """The run's headline metrics: best iteration and its RMSEs, fold sizes, holdout scores."""
    best = int(booster.attr("best_iteration"))
    jumps = booster_jump_days(booster)
    return {
        "best_iteration": best,
        "best_train_rmse": evals["train"]["rmse"][best],
        "best_validation_rmse": evals["validation"]["rmse"][best],
        "rows_train": int(booster.attr("rows_train")),
        "rows_validation": int(booster.attr("rows_validation")),
        "rows_holdout": len(holdout),
        **holdout_scores(holdout, pred),
        **typical_scores(holdout, pred, jumps),
        "jump_days": float(len(jumps)),
    }


def fit(ctx: TaskContext, frames: dict[dt.date, pd.DataFrame]):
    """train_model in this process, or with main.executor=dask on Dask (xgboost.dask, on
    `main.dask_scheduler`'s cluster or a LocalCluster of `main.workers` processes, closed after):
    the same data preparation and booster attributes (pipeline.model.training_dask)."""
    main_cfg = ctx.cfg.get("main")
    if main_cfg is not None:
        dask_executor.check(main_cfg)  # ConfigError naming a bad executor or worker count
    executor = "local" if main_cfg is None else str(main_cfg.executor)
    mlflow.set_tag("train_executor", executor)
    if executor != "dask":
        return train_model(frames, ctx.task_cfg)
    with dask_executor.client_for(main_cfg) as client:
        return train_model_dask(frames, ctx.task_cfg, client)


def _publish(ctx, booster, state, features, holdout, split: Split, tags: dict):
    """Log the model, check it holds no pickle, register it (model_train.register) → (ModelInfo,
    version or None)."""
    info = packaging.log_pricer(booster, state, features, packaging.input_example(holdout, state),
                                meta_extra={"split": split.tags()},
                                max_state_age_days=int(ctx.cfg.serving.max_state_age_days))  # fmt: skip
    tracking.check_no_pickle(info.model_uri)
    if not ctx.task_cfg.register:
        return info, None
    run_id = mlflow.active_run().info.run_id
    mv = Registry(ctx.cfg.registry.model_name).register_candidate(info.model_uri, run_id, tags)
    mlflow.set_tag("model_version", str(mv.version))
    return info, str(mv.version)


def _summary(ctx, info, version, split: Split, features, state, figures) -> dict:
    """reports/model/train_summary_YYYYMMDD.json's content."""
    folds = {"train": split.train, "validation": split.validation, "holdout": split.holdout}
    return {
        "date": str(ctx.date),
        "run_id": mlflow.active_run().info.run_id,
        "model_uri": info.model_uri,
        "registered_model": ctx.cfg.registry.model_name if version else None,
        "model_version": version,
        "split": {**split.tags(), **{f"{k}_days": len(v) for k, v in folds.items()}},
        "features": features,
        "xgboost_params": xgb_params(ctx.task_cfg),
        "state_as_of": str(state.as_of),
        "metrics": {k: (float(v) if np.isfinite(v) else None) for k, v in figures.items()},
    }


def run(ctx: TaskContext) -> None:
    cfg = ctx.task_cfg
    features = check_features(cfg.features)
    paths, days = feature_paths(ctx), window(ctx)
    if len(days) < required_days(cfg):
        raise ConfigError(f"model_train.days={cfg.days} cannot hold the split: it needs at least "
                          f"{required_days(cfg)} (min_train_days + validation_days + holdout_days)")  # fmt: skip
    split_dates(list(paths), cfg, window=(days[0], days[-1]))  # DataError naming any shortfall
    frames = {d: read_features(p) for d, p in paths.items()}
    started = time.perf_counter()
    booster, evals, split = fit(ctx, frames)
    ctx.metric("train_seconds", time.perf_counter() - started)
    # the freshest state (the window's last day) is bundled with the model; the holdout is
    # priced as the service prices, each day with the state published the trading day before
    last = split.holdout[-1]
    state_file = ctx.artifacts.market_state(last)
    if not state_file.exists():
        raise DataError(f"no market state for {last}: {state_file} is missing (feature_engineer "
                        "publishes it; re-run it for that day)")  # fmt: skip
    state = MarketState.load(state_file)
    store = StateStore(ctx.artifacts.state_dir, int(ctx.cfg.feature_engineer.previous_day_lookback))
    holdout = pd.concat([frames[d] for d in split.holdout], ignore_index=True)
    # the headline rows (and the monitor's reference): informative quotes, OTM + ATM
    holdout = holdout[informative(holdout)].reset_index(drop=True)
    pred = predict_frame(holdout, booster, store, features)  # the serving path
    figures = _figures(booster, evals, holdout, pred)
    for key, value in figures.items():
        if np.isfinite(value):
            ctx.metric(key, value)
    tracking.log_curves(evals)
    tracking.log_datasets(frames, paths, split, features, ctx.artifacts.processed_dir)
    _plots(ctx, booster, evals, features, holdout, pred)
    tags = {**split.tags(), "features": ",".join(features), "state_as_of": str(state.as_of),
            "jump_days": ",".join(map(str, booster_jump_days(booster))) or "none"}  # fmt: skip
    mlflow.set_tags(tags)
    started = time.perf_counter()
    info, version = _publish(ctx, booster, state, features, holdout, split, tags)
    ctx.metric("log_model_seconds", time.perf_counter() - started)
    ctx.log.info(
        "trained on %s..%s (%d rows), early-stopped at %d; holdout %s..%s IV RMSE %.5f vs "
        "baselines hist-vol %.5f, prev-iv %.5f; model %s%s",
        split.train[0], split.train[-1], figures["rows_train"], figures["best_iteration"],
        split.holdout[0], split.holdout[-1], figures["holdout.iv_rmse"],
        figures["holdout.baseline_hist_vol.iv_rmse"], figures["holdout.baseline_prev_iv.iv_rmse"],
        info.model_uri, f" → {ctx.cfg.registry.model_name} v{version} (Staging)" if version else "",
    )  # fmt: skip
    summary = _summary(ctx, info, version, split, features, state, figures)
    ctx.reports.append(write_json(summary, ctx.artifacts.train_summary(ctx.date)))


SPEC = TaskSpec(
    name="model_train",
    run=run,
    inputs=lambda ctx: list(feature_paths(ctx).values()),
    outputs=lambda ctx: (
        [ctx.artifacts.train_summary(ctx.date)]
        + [ctx.artifacts.model_plot(p, ctx.date) for p in PLOTS]
    ),
    config_keys=("market", "data_format", "registry"),
)


def main(cfg) -> None:
    execute(SPEC, cfg)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
