"""MLflow records of a training run (thin wrappers; the task decides what to log).

- log_curves: per-iteration train/validation RMSE as metric steps (`train_rmse`, `validation_rmse`);
- log_datasets: the train/validation/holdout rows as MLflow datasets (MLflow's digest; name
  `features_<start>_<end>`; tags start, end, days, rows, files_sha256 = sha256 of the fold's
  feature files' digests), contexts `train`, `validation`, `holdout`;
- check_no_pickle: download a logged model and fail if any file in it is a pickle.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.digest_utils import MAX_ROWS, get_normalized_md5_digest
from mlflow.entities import Metric
from mlflow.types import ColSpec, Schema

from pipeline.errors import PipelineError
from pipeline.model.packaging import downloaded_pickles
from pipeline.model.training import Split
from pipeline.runtime import digest


def log_curves(evals: dict) -> None:
    """Per-iteration RMSE as metric steps, in batches (one call per point is slow on sqlite)."""
    now = int(time.time() * 1000)
    points = [Metric(f"{fold}_rmse", float(v), now, step)
              for fold in ("train", "validation") for step, v in enumerate(evals[fold]["rmse"])]  # fmt: skip
    client, run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
    for i in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[i : i + 1000])


def pandas_digest(rows: pd.DataFrame) -> str:
    """MLflow's digest of a DataFrame (mlflow.data.digest_utils.compute_pandas_digest: a hash of
    the first 10,000 rows' string and numeric columns, the row count and the column names), with
    its string-column test run on those rows: MLflow's applies type() to every cell of the whole
    frame (seconds on a training window). Equal to MLflow's value whenever the columns that hold
    only strings are the same in the first rows as in the whole frame (always, for the folds).
    Only columns that can hold a str are scanned: a numeric, bool or datetime column never does,
    and scanning the folds' 10,000 × 15 float cells cell by cell took ~0.25 s per fold."""
    head = rows.head(MAX_ROWS)
    never_str = head.select_dtypes(include=[np.number, "bool", "datetime", "datetimetz",
                                            "timedelta"]).columns  # fmt: skip
    # (with no rows, MLflow's all() holds for every column: scan them all to agree)
    scan = head.drop(columns=never_str) if len(head) else head
    strings = scan.columns[scan.map(lambda v: type(v) is str).all(0)]
    numbers = head.select_dtypes(include=[np.number]).columns
    hashed = pd.util.hash_pandas_object(head[strings.union(numbers)]).values
    return get_normalized_md5_digest(
        [hashed, np.int64(len(rows))] + [str(c).encode() for c in rows.columns]
    )


def dataset(rows: pd.DataFrame, source: Path, name: str):
    """An MLflow PandasDataset of `rows` (dates + floats), its digest and schema computed here:
    MLflow's own schema inference checks every value for null in a Python loop (minutes on a full
    market's rows), and its digest maps type() over every cell (see pandas_digest)."""
    with warnings.catch_warnings():  # MLflow registers the local source twice ("" and file:)
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
        dataset = mlflow.data.from_pandas(rows, source=str(source), name=name, targets="iv",
                                          digest=pandas_digest(rows))  # fmt: skip
    dataset.__dict__["schema"] = Schema([  # where the `schema` cached_property keeps its value
        ColSpec("datetime" if pd.api.types.is_datetime64_dtype(rows[c]) else "double", c,
                required=bool(rows[c].notna().all()))
        for c in rows.columns
    ])  # fmt: skip
    return dataset


def log_datasets(
    frames: dict, paths: dict, split: Split, features: list[str], source: Path
) -> None:
    """The three folds as MLflow datasets (one batch: each log_input call costs ~1 s on sqlite)."""
    datasets, contexts, tags = [], [], []
    for fold, days in (("train", split.train), ("validation", split.validation),
                       ("holdout", split.holdout)):  # fmt: skip
        # the model's view of the rows: dates + float features and target. Text columns would
        # make MLflow's schema inference scan every value (~1 s per 20k rows); integer columns
        # draw its missing-value warning (is_call)
        cols = ["quote_date", *features, "iv"]
        rows = pd.concat([frames[d].loc[frames[d]["iv_reliable"].astype(bool), cols]
                          for d in days], ignore_index=True)  # fmt: skip
        rows = rows[["quote_date"]].join(rows[[*features, "iv"]].astype(float))
        files = hashlib.sha256("".join(digest(paths[d]) for d in days).encode()).hexdigest()
        name = f"features_{days[0]:%Y%m%d}_{days[-1]:%Y%m%d}"
        datasets.append(dataset(rows, source, name))
        contexts.append(fold)
        tags.append({"start": str(days[0]), "end": str(days[-1]), "days": str(len(days)),
                     "rows": str(len(rows)), "files_sha256": files})  # fmt: skip
    mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=tags)


def check_no_pickle(model_uri: str) -> None:
    found = downloaded_pickles(model_uri)
    if found:
        raise PipelineError(f"the logged model {model_uri} contains pickles: {found}")
