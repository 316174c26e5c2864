"""model_evaluate: the Staging candidate vs Production vs the baselines on the holdout → gate verdict.

Reads: the registry's `staging` version (the candidate; none → DataError) and `production` version
(optional); the holdout dates from the candidate version's tags `holdout_start`/`holdout_end` (set
by model_train); the feature files of those dates, rows with iv_reliable only.
Writes: `reports/evaluation_metrics.json` (evaluation.summarise's content + models + verdict);
`reports/evaluation/evaluation_buckets.{csv,json}` and `evaluation_comparison.png` (MLflow
artifacts). MLflow metrics: `<model>.<metric>`, `<model>.<metric>_ci_low|_ci_high`,
`<model>.coverage`, `<source>.quant.<check>_share`, `gate_passed`. The verdict (pipeline.gate) is
recorded on the candidate version with Registry.record_verdict.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from monitoring import alerts
from pipeline.artifacts import write_frame, write_json
from pipeline.errors import DataError
from pipeline.evaluation import baseline_predictions, summarise
from pipeline.evaluation_report import log_summary, plot_comparison
from pipeline.gate import gate_verdict
from pipeline.market.calendar import trading_days
from pipeline.model import packaging
from pipeline.model_train import read_features
from pipeline.registry import Registry
from pipeline.runtime import TaskContext, TaskSpec, execute, parse_date


def _versions(ctx: TaskContext):
    """(candidate, production) ModelVersions; either may be None."""
    registry = Registry(ctx.cfg.registry.model_name)
    return registry.resolve("staging"), registry.resolve("production")


def _candidate(ctx: TaskContext):
    candidate, production = _versions(ctx)
    if candidate is None:
        raise DataError("nothing in Staging to evaluate: run model_train first")
    return candidate, production


def holdout_dates(mv) -> list[dt.date]:
    """Trading days between the version's holdout_start and holdout_end tags (inclusive)."""
    tags = dict(getattr(mv, "tags", None) or {})
    if not {"holdout_start", "holdout_end"} <= set(tags):  # fall back on the training run's tags
        tags = mlflow.MlflowClient().get_run(mv.run_id).data.tags | tags
    try:
        start, end = parse_date(tags["holdout_start"]), parse_date(tags["holdout_end"])
    except KeyError:
        raise DataError(
            f"model version {mv.version} has no holdout_start/holdout_end tags "
            "(model_train sets them): cannot tell which days it never saw"
        ) from None
    return trading_days(start, end)


def _holdout_paths(ctx: TaskContext) -> list[Path]:
    candidate, _ = _versions(ctx)
    if candidate is None:
        return []
    paths = [ctx.artifacts.features(d) for d in holdout_dates(candidate)]
    return [p for p in paths if p.exists()]


def load_holdout(paths: list[Path]) -> pd.DataFrame:
    """The holdout feature rows with a reliable target IV: the columns that pricing and scoring
    read (model_train.read_features: datetimes parsed, csv keeps strings)."""
    frames = [read_features(p) for p in paths]
    return pd.concat([f[f["iv_reliable"].astype(bool)] for f in frames], ignore_index=True)


def predict(model_uri: str, frame: pd.DataFrame, ctx: TaskContext) -> pd.DataFrame:
    """(iv, price) of a registered pyfunc model for each row of the feature table `frame`, priced
    as the service prices: raw contract fields in, each day's published market state."""
    serving = ctx.cfg.serving
    model = packaging.served_model(model_uri, ctx.artifacts.state_dir, serving.max_state_age_days)
    return packaging.predict_served(model, frame, model_uri)


def run(ctx: TaskContext) -> None:
    cfg, name = ctx.task_cfg, ctx.cfg.registry.model_name
    candidate, production = _candidate(ctx)
    dates = holdout_dates(candidate)
    paths = _holdout_paths(ctx)
    if not paths:
        raise DataError(
            f"no feature files for candidate v{candidate.version}'s holdout "
            f"{dates[0]}..{dates[-1]} (run feature_engineer for those days)"
        )
    if len(paths) < len(dates):
        ctx.log.warning("holdout: %d of %d days have feature files", len(paths), len(dates))
    holdout = load_holdout(paths)
    ctx.log.info(
        "holdout %s..%s: %d reliable rows over %d days; candidate v%s, production %s",
        dates[0],
        dates[-1],
        len(holdout),
        len(paths),
        candidate.version,
        f"v{production.version}" if production else "none",
    )
    # pinned versions (not the moving aliases), so the scores belong to what upstream() keyed
    predictions = {"candidate": predict(f"models:/{name}/{candidate.version}", holdout, ctx)}
    if production is not None:
        predictions["production"] = predict(f"models:/{name}/{production.version}", holdout, ctx)
    predictions |= baseline_predictions(holdout)
    summary = summarise(holdout, predictions, cfg, seed=int(ctx.cfg.seed))
    summary["models"] = {
        alias: ({"name": name, "version": str(mv.version), "run_id": mv.run_id} if mv else None)
        for alias, mv in (("candidate", candidate), ("production", production))
    }
    log_summary(ctx.log, summary)
    verdict = gate_verdict(summary, cfg)
    summary["verdict"] = {
        "passed": verdict.passed,
        "reasons": verdict.reasons,
        "metrics": verdict.metrics,
    }
    _report(ctx, summary)
    for reason in verdict.reasons:
        ctx.log.log(20 if verdict.passed else 30, "gate: %s", reason)
    mlflow.set_tags(
        {
            "gate.verdict": "passed" if verdict.passed else "failed",
            "candidate.version": str(candidate.version),
        }
    )
    Registry(name).record_verdict(
        str(candidate.version), verdict.passed, verdict.reasons, verdict.metrics
    )
    alerts.gate_verdict(ctx, candidate.version, verdict)  # failed_gate when it failed
    ctx.log.info(
        "gate verdict on v%s: %s", candidate.version, "passed" if verdict.passed else "FAILED"
    )


def _report(ctx: TaskContext, summary: dict) -> None:
    """evaluation_metrics.json, the bucket tables and the plot; figures as MLflow metrics."""
    ctx.reports.append(write_json(summary, metrics_path(ctx)))
    folder = ctx.artifacts.reports_dir / "evaluation"
    buckets = pd.DataFrame(summary["buckets"])
    ctx.reports.append(write_frame(buckets, folder / "evaluation_buckets.csv"))
    ctx.reports.append(write_json(summary["buckets"], folder / "evaluation_buckets.json"))
    ctx.reports.append(plot_comparison(summary, folder / "evaluation_comparison.png"))
    for model, figures in summary["metrics"].items():
        for metric, value in figures.items():
            _metric(ctx, f"{model}.{metric}", value)
        for metric, (low, high) in summary["ci"].get(model, {}).items():
            _metric(ctx, f"{model}.{metric}_ci_low", low)
            _metric(ctx, f"{model}.{metric}_ci_high", high)
        _metric(ctx, f"{model}.coverage", summary["coverage"].get(model))
    for source, checks in summary["quant"].items():
        for check, result in checks.items():
            _metric(ctx, f"{source}.quant.{check}_share", result["share"])
    ctx.metric("gate_passed", float(summary["verdict"]["passed"]))
    ctx.metric("holdout_rows", summary["holdout"]["rows_scored"])
    ctx.metric("holdout_days", summary["holdout"]["days"])


def _metric(ctx: TaskContext, key: str, value) -> None:
    if value is not None and np.isfinite(value):  # MLflow cannot plot a missing figure
        ctx.metric(key, value)


def metrics_path(ctx: TaskContext) -> Path:
    return ctx.artifacts.reports_dir / "evaluation_metrics.json"


def upstream(ctx: TaskContext) -> dict[str, str]:
    """Registry references that key the checkpoint: a new candidate or production re-evaluates."""
    return {
        alias: f"{mv.version}:{mv.run_id}" if mv else "none"
        for alias, mv in zip(("staging", "production"), _versions(ctx), strict=True)
    }


SPEC = TaskSpec(
    name="model_evaluate",
    run=run,
    inputs=_holdout_paths,
    outputs=lambda ctx: [metrics_path(ctx)],
    config_keys=("market", "data_format", "registry", "seed"),
    upstream=upstream,
    log_name="model_eval",  # the original plan's log name: logs/model_eval_YYYYMMDD.log
)


def main(cfg) -> None:
    execute(SPEC, cfg)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
