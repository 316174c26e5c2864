"""The pure training core: date split and XGBoost on the feature tables (no I/O, no MLflow).

    train_model(frames, cfg) -> (booster, evals, split)

`frames` maps each trading day to its feature table (feature_engineer's output); `cfg` is the
`model_train` config (ModelTrainConfig). Rows with a reliable, finite target `iv` are used.
The split is by whole dates, oldest first: train | validation (early stopping) | holdout (the last
`holdout_days`, never seen by training or early stopping). `evals` holds the per-iteration RMSE
{"train": {"rmse": [...]}, "validation": {"rmse": [...]}}; the returned booster keeps only the trees
up to the best validation iteration. The same seed gives the same booster.
Jump days (`jump_days`: the market moved overnight more than `jump_day_factor` × the window's
median, as on a variance shock) are named in the booster's `jump_days` attribute (a JSON list of
dates) and left out of the monitor's reference only (model_train.typical_scores): the folds and
the gate keep every day (left out of the folds, post-shock retrains scored 6% worse).
With `day_weighting`, each row of both folds is weighted by 1 / its day's previous-day-IV
baseline MSE (`day_weights`): the fit and early stopping then minimise the error relative to
each day's market move, as the monitor's skill does, instead of being led by the few turbulent
days.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline.errors import ConfigError, DataError
from pipeline.features import MODEL_FEATURES
from pipeline.market_state import informative, spread_weight
from pipeline.model.pricer import (
    BASE_FLOOR,
    blended_base,
    fit_blend,
    model_inputs,
)

MIN_DAY_RMSE = 1e-4  # a day's baseline RMSE below it (0.01 vol points) is read as it (day_weights)


@dataclass(frozen=True)
class Split:
    """Trading days of each fold, oldest first."""

    train: tuple[dt.date, ...]
    validation: tuple[dt.date, ...]
    holdout: tuple[dt.date, ...]

    def tags(self) -> dict[str, str]:
        """train_start/end, validation_start/end, holdout_start/end as YYYY-MM-DD."""
        return {
            f"{fold}_{edge}": str(days[0] if edge == "start" else days[-1])
            for fold, days in (("train", self.train), ("validation", self.validation),
                               ("holdout", self.holdout))
            for edge in ("start", "end")
        }  # fmt: skip


def check_features(features: Sequence[str]) -> list[str]:
    """The configured feature list, or a ConfigError: only feature_engineer.MODEL_FEATURES (known
    before the day's option mids) may be read, so the same-day IV can never leak in."""
    features = list(features)
    unknown = [f for f in features if f not in MODEL_FEATURES]
    if unknown or not features or len(set(features)) != len(features):
        raise ConfigError(
            f"model_train.features={features}: unknown {unknown} or empty/duplicated; "
            f"allowed (no same-day information): {list(MODEL_FEATURES)}"
        )
    return features


def required_days(cfg) -> int:
    """Fewest feature days the split needs: min_train_days + validation_days + holdout_days."""
    return int(cfg.min_train_days) + int(cfg.validation_days) + int(cfg.holdout_days)


def holdout_start(cfg) -> dt.date | None:
    """`cfg.holdout_start` as a date (None when unset or absent); ConfigError when not a date."""
    value = getattr(cfg, "holdout_start", None)
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"model_train.holdout_start={value!r} is not a date; expected "
                          "YYYY-MM-DD or null") from None  # fmt: skip


def holdout_length(dates: Sequence[dt.date], start: dt.date | None, holdout_days: int) -> int:
    """How many of the sorted `dates` the holdout takes: `holdout_days` without a `start`; with
    one, the dates from `start` on, at most `holdout_days` (the newest). ConfigError when no date
    is on or after `start`: a holdout cannot begin after the last feature day."""
    if start is None:
        return holdout_days
    after = sum(1 for d in dates if d >= start)
    if after == 0:
        last = dates[-1] if dates else "none"
        raise ConfigError(f"model_train.holdout_start={start} is after the last feature day "
                          f"({last}): the holdout would be empty")  # fmt: skip
    return min(after, holdout_days)


def split_dates(
    dates: Sequence[dt.date], cfg, window: tuple[dt.date, dt.date] | None = None
) -> Split:
    """The last `holdout_days` dates → holdout, the `validation_days` before → validation, the
    rest → train. With `holdout_start` (the monitor's change point on a retrain) the holdout is
    the dates from it on instead (at least 1; the last `holdout_days` when there are more), so a
    candidate retrained after a change is judged on the days after it only. DataError when the
    train fold would have fewer than min_train_days dates."""
    dates = sorted(dates)
    hold, val, min_train = int(cfg.holdout_days), int(cfg.validation_days), int(cfg.min_train_days)
    if hold < 1 or val < 1 or min_train < 1:
        raise ConfigError(f"model_train: holdout_days={hold}, validation_days={val} and "
                          f"min_train_days={min_train} must all be at least 1")  # fmt: skip
    start = holdout_start(cfg)
    if dates:
        hold = holdout_length(dates, start, hold)
    need = min_train + val + hold
    if len(dates) < need:
        first, last = window or ((dates[0], dates[-1]) if dates else ("?", "?"))
        since = f" from {start}" if start is not None and dates else ""
        raise DataError(
            f"need at least {need} trading days of features (train ≥ min_train_days + validation "
            f"+ holdout{since} = {min_train} + {val} + {hold}), found {len(dates)} between "
            f"{first} and {last}; short by {need - len(dates)} (run feature_engineer for more days)"
        )
    return Split(tuple(dates[: -(val + hold)]), tuple(dates[-(val + hold) : -hold]),
                 tuple(dates[-hold:]))  # fmt: skip


def target_rows(frame: pd.DataFrame, fit_rows: str = "reliable") -> pd.DataFrame:
    """Rows whose target IV is reliable and finite; with fit_rows="informative", only the
    OTM and ATM ones (pipeline.market_state.informative)."""
    keep = frame["iv_reliable"].astype(bool) & np.isfinite(frame["iv"].astype(float))
    if fit_rows == "informative":
        keep &= informative(frame)
    elif fit_rows != "reliable":
        raise ConfigError(f"model_train.fit_rows={fit_rows!r}: expected informative or reliable")
    return frame[keep]


def fold_frame(
    frames: Mapping[dt.date, pd.DataFrame], days: Sequence[dt.date], fit_rows: str = "reliable"
) -> pd.DataFrame:
    """The target rows of `days`, concatenated in date order."""
    return pd.concat([target_rows(frames[d], fit_rows) for d in days], ignore_index=True)


def row_weights(frame: pd.DataFrame, cfg) -> np.ndarray | None:
    """1 / spread in vol per row (model_train.spread_weighting), scaled to mean 1; else None."""
    if not bool(getattr(cfg, "spread_weighting", False)) or "spread_iv" not in frame:
        return None
    w = spread_weight(frame["spread_iv"])
    return w / w.mean() if len(w) and w.mean() > 0 else None


def previous_day_rmse(frame: pd.DataFrame) -> float:
    """The previous-day-IV baseline's IV RMSE on a day's informative quotes (the contract's IV
    yesterday, else yesterday's smile at today's moneyness): how far the market moved overnight."""
    rows = frame[informative(frame)]
    if rows.empty:
        return float("nan")
    prev = rows["prev_iv"].astype(float)
    if "prev_smile_iv" in rows:
        prev = prev.fillna(rows["prev_smile_iv"].astype(float))
    err = (prev - rows["iv"].astype(float)).to_numpy(float)
    err = err[np.isfinite(err)]
    return float(np.sqrt(np.mean(err**2))) if len(err) else float("nan")


def day_weights(frame: pd.DataFrame) -> np.ndarray:
    """Per row, 1 / its day's previous-day-IV baseline MSE (`previous_day_rmse`², floored at
    MIN_DAY_RMSE²; a day without one gets the median day's), scaled to mean 1: every day counts by
    its error relative to how far the market moved that day, the measure the monitor judges a
    model on (skill vs the previous day's IV, day by day). Unweighted, a shock day's errors
    (10-20x a calm day's) outweigh weeks of calm days in the fit and in early stopping."""
    if frame.empty:
        return np.ones(0)
    rmse = frame.groupby("quote_date", sort=False).apply(previous_day_rmse, include_groups=False)
    factor = 1.0 / np.maximum(rmse.to_numpy(float), MIN_DAY_RMSE) ** 2
    factor = pd.Series(np.where(np.isfinite(factor), factor, np.nan), index=rmse.index)
    factor = factor.fillna(factor.median() if factor.notna().any() else 1.0)
    w = frame["quote_date"].map(factor).to_numpy(float)
    return w / w.mean()


def jump_days(frames: Mapping[dt.date, pd.DataFrame], factor: float | None) -> tuple[dt.date, ...]:
    """Days the previous day's market state does not describe: the previous-day-IV baseline's
    RMSE above `factor` × its median over `frames` (a gap, a variance shock). No model foresees
    such a day from yesterday's state; in a pooled holdout RMSE it outweighs the calm days
    several-fold. None or 0: no day."""
    if not factor or len(frames) < 3:
        return ()
    moved = {d: previous_day_rmse(f) for d, f in frames.items()}
    finite = [v for v in moved.values() if np.isfinite(v)]
    if not finite:
        return ()
    limit = float(factor) * float(np.median(finite))
    return tuple(sorted(d for d, v in moved.items() if np.isfinite(v) and v > limit))


def target_scale(cfg) -> str:
    """model_train.target_scale: log (the trees correct the base by a factor) or level."""
    scale = str(getattr(cfg, "target_scale", "level"))
    if scale not in ("level", "log"):
        raise ConfigError(f"model_train.target_scale={scale!r}: expected log or level")
    return scale


def moves(cfg) -> str:
    """model_train.standardise_moves → how the booster reads the day's move and the moneyness
    (pricer.input_arrays): "standardised" (log scale only) or "raw"."""
    if not bool(getattr(cfg, "standardise_moves", False)):
        return "raw"
    if target_scale(cfg) != "log":
        raise ConfigError("model_train.standardise_moves=true needs model_train.target_scale=log "
                          f"(got {target_scale(cfg)!r}): moves are read in the base's units")  # fmt: skip
    return "standardised"


def xgb_params(cfg) -> dict:
    """XGBoost parameters from the model_train config (deterministic: fixed seed, hist)."""
    return {
        "objective": "reg:squarederror",
        "eval_metric": "rmse",
        "tree_method": "hist",
        "eta": float(cfg.learning_rate),
        "max_depth": int(cfg.max_depth),
        "min_child_weight": float(cfg.min_child_weight),
        "subsample": float(cfg.subsample),
        "colsample_bytree": float(cfg.colsample_bytree),
        "lambda": float(cfg.reg_lambda),
        "seed": int(cfg.seed),
    }


@dataclass(frozen=True)
class Fold:
    """One fold's booster inputs: features `x` (the booster's columns in order), the target on
    the booster's scale, the base margin and the row weights (None: all 1)."""

    x: pd.DataFrame
    label: np.ndarray
    margin: np.ndarray
    weight: np.ndarray | None

    def dmatrix(self) -> xgb.DMatrix:
        """An in-process DMatrix of the fold."""
        return xgb.DMatrix(self.x, label=self.label, base_margin=self.margin, weight=self.weight,
                           feature_names=list(self.x.columns))  # fmt: skip


@dataclass(frozen=True)
class TrainingData:
    """Everything train_model fits on, whatever runs xgb.train (this process or Dask)."""

    split: Split
    train: Fold
    validation: Fold
    blend: dict
    scale: str
    moves: str
    jumps: tuple[dt.date, ...]


def fold_inputs(frame: pd.DataFrame, features, blend: dict, scale: str, cfg) -> Fold:
    """A fold's target rows → its booster inputs (pricer.model_inputs, the target on the booster's
    scale as pricer.design_matrix puts it, and the row weights)."""
    x, margin = model_inputs(frame, features, blend, scale, moves(cfg))
    label = frame["iv"].to_numpy(float)
    if scale == "log":
        label = np.log(np.maximum(label, BASE_FLOOR))
    weights = row_weights(frame, cfg)
    if bool(getattr(cfg, "day_weighting", False)):
        weights = (1.0 if weights is None else weights) * day_weights(frame)
    if scale == "log":  # an error of e in ln(IV) is ~ e × IV vol points: weigh it so
        level = np.maximum(blended_base(frame, blend), BASE_FLOOR)
        weights = (1.0 if weights is None else weights) * level**2
    return Fold(x, label, margin, weights)


def training_data(frames: Mapping[dt.date, pd.DataFrame], cfg) -> TrainingData:
    """The split, the blend and both folds' inputs: train_model's data preparation, shared with
    pipeline.model.training_dask."""
    features = check_features(cfg.features)
    split = split_dates(list(frames), cfg)
    fit_rows = str(getattr(cfg, "fit_rows", "reliable"))
    jumps = jump_days(frames, getattr(cfg, "jump_day_factor", None))  # named, still fitted on
    train = fold_frame(frames, split.train, fit_rows)
    valid = fold_frame(frames, split.validation, fit_rows)
    if train.empty or valid.empty:
        raise DataError(f"no reliable IVs to train on: {len(train)} train rows, {len(valid)} "
                        f"validation rows ({split.tags()})")  # fmt: skip
    blend = (fit_blend(train, train["iv"], row_weights(train, cfg))
             if bool(getattr(cfg, "learn_base_blend", True)) else {})  # fmt: skip
    scale = target_scale(cfg)
    return TrainingData(split, fold_inputs(train, features, blend, scale, cfg),
                        fold_inputs(valid, features, blend, scale, cfg), blend, scale, moves(cfg),
                        jumps)  # fmt: skip


def finish_booster(booster: xgb.Booster, data: TrainingData) -> xgb.Booster:
    """The booster cut to its best validation round (the saved model then predicts as
    validated), with the attributes the rest of the pipeline reads."""
    best = int(booster.best_iteration)
    booster = booster[: best + 1]
    booster.set_attr(base_blend=json.dumps(data.blend, sort_keys=True), target_scale=data.scale,
                     moves=data.moves)  # fmt: skip
    booster.set_attr(jump_days=json.dumps([str(d) for d in data.jumps]))  # "[]": none
    booster.set_attr(best_iteration=str(best), rows_train=str(len(data.train.label)),
                     rows_validation=str(len(data.validation.label)))  # fmt: skip
    return booster


def train_model(frames: Mapping[dt.date, pd.DataFrame], cfg) -> tuple[xgb.Booster, dict, Split]:
    """Fit on the train fold, early-stop on the validation fold; see the module docstring."""
    data = training_data(frames, cfg)
    dtrain, dvalid = data.train.dmatrix(), data.validation.dmatrix()
    evals: dict = {}
    booster = xgb.train(
        xgb_params(cfg),
        dtrain,
        num_boost_round=int(cfg.n_estimators),
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=int(cfg.early_stopping_rounds),
        evals_result=evals,
        verbose_eval=False,
    )
    return finish_booster(booster, data), evals, data.split


def booster_jump_days(booster: xgb.Booster) -> list[dt.date]:
    """The jump days train_model left out (its `jump_days` attribute; [] for older boosters)."""
    return [dt.date.fromisoformat(d) for d in json.loads(booster.attr("jump_days") or "[]")]
