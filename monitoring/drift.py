"""Evidently 0.7 reports of the Production model: feature drift and IV errors, current vs reference.

`build_report(current, reference, features, ...)` runs one Evidently Report over two scored frames
(each: the model's feature columns, the market mid IV `iv` and the model's `iv_pred`, plus
`underlying`):
- drift: `DriftedColumnsCount` over the features and one `ValueDrift` per feature; the
  per-column drift tests (include_tests) say which columns drifted. Contract-level features are
  tested per contract (Evidently's choice: normed Wasserstein distance above 1,000 rows). The
  market-state features that hold **one value per underlying and day** (UNDERLYING_DAY_FEATURES:
  realised vols, yesterday's ATM level and skew) are tested on one row per underlying-day with
  Kolmogorov-Smirnov at p < 0.05: repeating a day's 8 values over ~20k contracts would make any
  day-to-day move of 8 numbers look like a shift of the whole distribution (pseudo-replication:
  on calm days of the default market 5 of 13 features "drifted" that way, 38-46%, against a 50%
  trigger). One day (8 underlyings) against the reference's ~80 underlying-days flags a level
  change across the market, such as a volatility regime shock, not the daily wobble;
- regression: `RMSE` and `MAE` of `iv_pred` against `iv` (current and reference side by side);
- per underlying: `MeanValue` of the absolute IV error `abs_error__<underlying>` (the column is
  the error on that underlying's rows, empty elsewhere), i.e. the underlying's MAE, which the
  dashboard plots per underlying.

`figures(snapshot)` reads the results **by metric name** (the metric's config type, e.g.
`DriftedColumnsCount`, plus its column), never by position in the report.

Speed. Evidently's cost is mostly per column (a plotly figure for every drift widget) plus a
per-row cost: its DataDriftPreset takes ~62 s on 1M rows (docs/ARCHITECTURE.md); this report takes 20,000 rows ~3 s, 10,000 rows ~2.5 s, 5,000 rows ~1.5 s (13 features, 2 cores).
So callers pass `sample(frame, n, seed)`: a seeded uniform sample of at most n rows of each frame
(`monitor.sample_size`, default 10,000; a whole day of the default market, ~18k contracts, is
sampled too). The drift test on more than 1,000 rows is the normed Wasserstein distance against a
0.1 threshold, an effect size, so its verdicts do not depend on the sample size the way p-values
would. The headline RMSE/MAE that drive the retrain trigger are computed by the caller with NumPy
over **all** rows (`errors`); the report's RMSE/MAE are the sample's.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.artifacts import atomic_path

TARGET, PREDICTION = "iv", "iv_pred"
ERROR_PREFIX = "abs_error__"
# features with one value per (underlying, quote date): tested on one row per underlying-day
UNDERLYING_DAY_FEATURES = ("rv_5d", "rv_10d", "rv_20d", "prev_atm_iv", "prev_skew")
UNDERLYING_DAY_TEST = "ks"  # p-value test at Evidently's default threshold 0.05


def sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most `n` rows of `frame`, drawn uniformly with `seed` (all of it when smaller)."""
    if n <= 0 or len(frame) <= n:
        return frame.reset_index(drop=True)
    rows = np.random.default_rng(seed).choice(len(frame), size=n, replace=False)
    return frame.iloc[np.sort(rows)].reset_index(drop=True)


def errors(actual: Any, predicted: Any) -> dict[str, float]:
    """n, rmse, mae of predicted − actual IV over the rows where both are finite (NaN if none)."""
    a, p = np.asarray(actual, float), np.asarray(predicted, float)
    ok = np.isfinite(a) & np.isfinite(p)
    err = p[ok] - a[ok]
    if not len(err):
        return {"n": 0, "rmse": math.nan, "mae": math.nan}
    return {"n": int(len(err)), "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err)))}  # fmt: skip


def errors_by_underlying(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """`errors` per underlying of a scored frame (iv, iv_pred, underlying)."""
    return {str(u): errors(g[TARGET], g[PREDICTION])
            for u, g in frame.groupby("underlying", sort=True, observed=True)}  # fmt: skip


def underlying_day_features(features: Sequence[str]) -> list[str]:
    return [c for c in features if c in UNDERLYING_DAY_FEATURES]


def evidently_frame(
    scored: pd.DataFrame, features: Sequence[str], underlyings: Sequence[str]
) -> pd.DataFrame:
    """The columns the report reads: features, iv, iv_pred and one error column per underlying.
    Underlying-day features keep their value on the first row of each (underlying, quote_date)
    only, NaN elsewhere (Evidently's drift tests drop NaN): one observation per underlying-day."""
    out = scored[[*features, TARGET, PREDICTION]].astype(float).reset_index(drop=True)
    keys = scored[["underlying", "quote_date"]].reset_index(drop=True)
    repeated = keys.duplicated().to_numpy()
    for c in underlying_day_features(features):
        out.loc[repeated, c] = np.nan
    abs_error = (out[PREDICTION] - out[TARGET]).abs().to_numpy()
    names = scored["underlying"].astype(str).to_numpy()
    for u in underlyings:
        out[f"{ERROR_PREFIX}{u}"] = np.where(names == u, abs_error, np.nan)
    return out


def build_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    features: Sequence[str],
    *,
    timestamp: dt.datetime | None = None,
    metadata: dict[str, str] | None = None,
    tags: list[str] | None = None,
    drift_share: float,
):
    """Run the drift + regression report on two scored frames → an Evidently Snapshot.
    `drift_share`: the monitor's limit (monitor.drift_share), which Evidently's DriftedColumnsCount
    reports against."""
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.metrics import MAE, RMSE, DriftedColumnsCount, MeanValue, ValueDrift

    features = list(features)
    underlyings = sorted(set(current["underlying"].astype(str)))
    cur = evidently_frame(current, features, underlyings)
    ref = evidently_frame(reference, features, underlyings)
    definition = DataDefinition(
        numerical_columns=list(cur.columns),
        regression=[Regression(target=TARGET, prediction=PREDICTION)],
    )
    per_day = {c: UNDERLYING_DAY_TEST for c in underlying_day_features(features)}
    metrics = [
        DriftedColumnsCount(columns=features, drift_share=drift_share, per_column_method=per_day),
        *[ValueDrift(column=c, method=per_day.get(c)) for c in features],
        RMSE(),
        MAE(),
        *[MeanValue(column=f"{ERROR_PREFIX}{u}") for u in underlyings],
    ]
    report = Report(metrics, include_tests=True)
    with warnings.catch_warnings():  # scipy/sklearn chatter on tiny or constant columns
        warnings.simplefilter("ignore")
        return report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
            timestamp=timestamp,
            metadata=metadata or {},
            tags=tags or [],
        )


def metric_name(config: dict) -> str:
    """`evidently:metric_v2:ValueDrift` → `ValueDrift`."""
    return str(config.get("type", "")).rsplit(":", 1)[-1]


def metric_values(snapshot) -> dict[str, Any]:
    """The snapshot's results by metric name, with the column for per-column metrics:
    {"DriftedColumnsCount": {"count", "share"}, "ValueDrift[rv_5d]": 0.03, "RMSE": 0.01,
    "MAE": {"mean", "std"}, "MeanValue[abs_error__SPY]": 0.004, ...}."""
    out: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        key = metric_name(config)
        if config.get("column") is not None:
            key = f"{key}[{config['column']}]"
        out[key] = metric.get("value")
    return out


def failed_drift_tests(snapshot) -> list[str]:
    """Columns whose ValueDrift test failed (Evidently's own per-column drift verdict)."""
    failed = []
    for test in snapshot.dict()["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if metric_name(params) == "ValueDrift" and str(test.get("status")).endswith("FAIL"):
            failed.append(str(params["column"]))
    return failed


def _number(value: Any) -> float:
    if isinstance(value, dict):  # MeanStdValue → its mean
        value = value.get("mean")
    return float(value) if value is not None else math.nan


def figures(snapshot, features: Sequence[str]) -> dict[str, Any]:
    """The report's headline figures, looked up by metric name: drift share and count, the
    drifted columns (in feature order), each feature's drift score, the sample's RMSE and MAE
    and MAE per underlying. A metric missing from the report raises KeyError naming it."""
    values = metric_values(snapshot)
    drifted = set(failed_drift_tests(snapshot))
    count = values["DriftedColumnsCount"]
    return {
        "drift_share": float(count["share"]),
        "drifted_count": int(count["count"]),
        "drifted_columns": [c for c in features if c in drifted],
        "drift_scores": {c: _number(values[f"ValueDrift[{c}]"]) for c in features},
        "sample_rmse": _number(values["RMSE"]),
        "sample_mae": _number(values["MAE"]),
        "sample_mae_by_underlying": {
            key[len("MeanValue[" + ERROR_PREFIX) : -1]: _number(v)
            for key, v in values.items()
            if key.startswith("MeanValue[" + ERROR_PREFIX)
        },
    }


def save_html(snapshot, target: Path) -> Path:
    """The report as a standalone HTML file, written atomically."""
    with atomic_path(Path(target)) as tmp:
        snapshot.save_html(str(tmp))
    return Path(target)
