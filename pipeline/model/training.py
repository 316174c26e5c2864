"""The pure training core: date split and XGBoost on the feature tables (no I/O, no MLflow).

    train_model(frames, cfg) -> (booster, evals, split)

`frames` maps each trading day to its feature table (feature_engineer's output); `cfg` is the
`model_train` config (ModelTrainConfig). Rows with a reliable, finite target `iv` are used.
The split is by whole dates, oldest first: train | validation (early stopping) | holdout (the last
`holdout_days`, never seen by training or early stopping). `evals` holds the per-iteration RMSE
{"train": {"rmse": [...]}, "validation": {"rmse": [...]}}; the returned booster keeps only the trees
up to the best validation iteration. The same seed gives the same booster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline.errors import ConfigError, DataError
from pipeline.feature_engineer import MODEL_FEATURES
from pipeline.model.pricer import design_matrix


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


def split_dates(
    dates: Sequence[dt.date], cfg, window: tuple[dt.date, dt.date] | None = None
) -> Split:
    """The last `holdout_days` dates → holdout, the `validation_days` before → validation, the
    rest → train. DataError when fewer than min_train_days + validation + holdout dates."""
    dates = sorted(dates)
    hold, val, min_train = int(cfg.holdout_days), int(cfg.validation_days), int(cfg.min_train_days)
    if hold < 1 or val < 1 or min_train < 1:
        raise ConfigError(f"model_train: holdout_days={hold}, validation_days={val} and "
                          f"min_train_days={min_train} must all be at least 1")  # fmt: skip
    need = required_days(cfg)
    if len(dates) < need:
        start, end = window or ((dates[0], dates[-1]) if dates else ("?", "?"))
        raise DataError(
            f"need at least {need} trading days of features (train ≥ min_train_days + validation "
            f"+ holdout = {min_train} + {val} + {hold}), found {len(dates)} between {start} and "
            f"{end}; short by {need - len(dates)} (run feature_engineer for more days)"
        )
    return Split(tuple(dates[: -(val + hold)]), tuple(dates[-(val + hold) : -hold]),
                 tuple(dates[-hold:]))  # fmt: skip


def target_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose target IV is reliable and finite."""
    keep = frame["iv_reliable"].astype(bool) & np.isfinite(frame["iv"].astype(float))
    return frame[keep]


def fold_frame(frames: Mapping[dt.date, pd.DataFrame], days: Sequence[dt.date]) -> pd.DataFrame:
    """The target rows of `days`, concatenated in date order."""
    return pd.concat([target_rows(frames[d]) for d in days], ignore_index=True)


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


def train_model(frames: Mapping[dt.date, pd.DataFrame], cfg) -> tuple[xgb.Booster, dict, Split]:
    """Fit on the train fold, early-stop on the validation fold; see the module docstring."""
    features = check_features(cfg.features)
    split = split_dates(list(frames), cfg)
    train, valid = fold_frame(frames, split.train), fold_frame(frames, split.validation)
    if train.empty or valid.empty:
        raise DataError(f"no reliable IVs to train on: {len(train)} train rows, {len(valid)} "
                        f"validation rows ({split.tags()})")  # fmt: skip
    dtrain = design_matrix(train, features, label=train["iv"].to_numpy(float))
    dvalid = design_matrix(valid, features, label=valid["iv"].to_numpy(float))
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
    best = int(booster.best_iteration)
    # keep the trees up to the best round: the saved model then predicts as validated
    booster = booster[: best + 1]
    booster.set_attr(best_iteration=str(best), rows_train=str(len(train)),
                     rows_validation=str(len(valid)))  # fmt: skip
    return booster, evals, split
