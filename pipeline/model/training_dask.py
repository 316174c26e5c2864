"""train_model on a Dask cluster (`main.executor=dask`): the same data, split and booster.

    train_model_dask(frames, cfg, client) -> (booster, evals, split)

The data preparation is train_model's own (training.training_data: split, blend, folds, weights,
base margins); only the boosting runs on the cluster, through xgboost.dask: each fold's rows are
cut into one chunk per worker (date order kept), loaded as a DaskDMatrix with its label, base
margin and weights, and xgboost.dask.train early-stops on the validation fold. The booster comes
back cut to its best round with train_model's attributes (training.finish_booster), so the rest
of model_train (pricing, packaging, registry) cannot tell the two apart.

Same model? On one worker, yes: the same rows in the same order give the same quantile bins and
the same trees (tests/integration/test_training_dask.py checks the predictions bitwise). On
several workers, no: each worker sketches the quantiles of its own rows and the sketches are
merged, so the histogram bins (the candidate split points), and with them the trees, differ;
the row subsampling also draws per worker. The test holds the holdout RMSE of 2 workers within
5% of single-process training.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline.model.training import Fold, Split, finish_booster, training_data, xgb_params


def _chunked(values: np.ndarray, parts: int):
    """`values` as a dask array of `parts` row chunks (as even as possible, in order)."""
    import dask.array as da

    rows = max(1, -(-len(values) // parts))
    return da.from_array(values, chunks=(rows, *values.shape[1:]))


def dask_matrix(client, fold: Fold, parts: int):
    """The fold as a DaskDMatrix of `parts` row chunks: features, label, base margin, weights."""
    from xgboost import dask as dxgb

    weight = None if fold.weight is None else _chunked(np.asarray(fold.weight, float), parts)
    return dxgb.DaskDMatrix(
        client,
        _chunked(fold.x.to_numpy(float), parts),
        _chunked(np.asarray(fold.label, float), parts),
        base_margin=_chunked(np.asarray(fold.margin, float), parts),
        weight=weight,
        feature_names=list(fold.x.columns),
    )


def train_model_dask(
    frames: Mapping[dt.date, pd.DataFrame], cfg, client
) -> tuple[xgb.Booster, dict, Split]:
    """train_model's result, boosted by xgboost.dask on `client`'s workers (module docstring)."""
    from xgboost import dask as dxgb

    data = training_data(frames, cfg)
    parts = max(1, len(client.scheduler_info()["workers"]))
    dtrain = dask_matrix(client, data.train, parts)
    dvalid = dask_matrix(client, data.validation, parts)
    output = dxgb.train(
        client,
        xgb_params(cfg),
        dtrain,
        num_boost_round=int(cfg.n_estimators),
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=int(cfg.early_stopping_rounds),
        verbose_eval=False,
    )
    return finish_booster(output["booster"], data), output["history"], data.split
