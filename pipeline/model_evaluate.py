"""model_evaluate: the Staging candidate vs Production vs the baselines on the holdout → gate verdict.

Reads: the registry's `staging` version (the candidate; none → DataError) and `production` version
(optional); the holdout dates from the candidate version's tags `holdout_start`/`holdout_end` (set
by model_train); the feature files of those dates, rows with iv_reliable only.
Writes: `reports/evaluation_metrics.json` (an EvaluationSummary, pipeline.evaluation_summary:
evaluation.summarise's content + models + verdict);
`reports/evaluation/evaluation_buckets.{csv,json}` and `evaluation_comparison.png` (MLflow
artifacts). MLflow metrics: `<model>.<metric>`, `<model>.<metric>_ci_low|_ci_high`,
`<model>.coverage`, `<source>.quant.<check>_share`, `gate_passed`. The verdict (pipeline.gate) is
recorded on the candidate version with Registry.record_verdict, and the figures it judged on the
candidate's model_train run (`gate.*`, see candidate_run_figures), so versions compare side by side
in the MLflow UI.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, RunTag

from monitoring import alerts
from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import write_frame, write_json
from pipeline.errors import DataError
from pipeline.evaluation import BASELINES, baseline_predictions, summarise
from pipeline.evaluation_report import log_summary, plot_comparison
from pipeline.evaluation_summary import EvaluationSummary, ModelRef, VerdictRecord, write_summary
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
    summary = EvaluationSummary.of(summarise(holdout, predictions, cfg, seed=int(ctx.cfg.seed)))
    summary = summary.with_models({
        alias: ModelRef(name=name, version=str(mv.version), run_id=mv.run_id) if mv else None
        for alias, mv in (("candidate", candidate), ("production", production))
    })  # fmt: skip
    log_summary(ctx.log, summary.to_json())
    verdict = gate_verdict(summary, cfg)
    summary = summary.with_verdict(
        VerdictRecord(passed=verdict.passed, reasons=verdict.reasons, metrics=verdict.metrics)
    )
    _report(ctx, summary)
    for reason in verdict.reasons:
        ctx.log.log(20 if verdict.passed else 30, "gate: %s", reason)
    mlflow.set_tags(
        {
            "gate.verdict": "passed" if verdict.passed else "failed",
            "candidate.version": str(candidate.version),
        }
    )
    _mark_candidate_run(candidate.run_id, summary, verdict)
    Registry(name).record_verdict(
        str(candidate.version), verdict.passed, verdict.reasons, verdict.metrics
    )
    alerts.gate_verdict(ctx, candidate.version, verdict)  # failed_gate when it failed
    ctx.log.info(
        "gate verdict on v%s: %s", candidate.version, "passed" if verdict.passed else "FAILED"
    )


def _report(ctx: TaskContext, summary: EvaluationSummary) -> None:
    """evaluation_metrics.json, the bucket tables and the plot; figures as MLflow metrics."""
    content = summary.to_json()
    ctx.reports.append(write_summary(summary, metrics_path(ctx)))
    folder = ctx.artifacts.reports_dir / "evaluation"
    buckets = pd.DataFrame(content["buckets"])
    ctx.reports.append(write_frame(buckets, folder / "evaluation_buckets.csv"))
    ctx.reports.append(write_json(content["buckets"], folder / "evaluation_buckets.json"))
    ctx.reports.append(plot_comparison(content, folder / "evaluation_comparison.png"))
    for model, figures in content["metrics"].items():
        for metric, value in figures.items():
            _metric(ctx, f"{model}.{metric}", value)
        for metric, (low, high) in summary.ci.get(model, {}).items():
            _metric(ctx, f"{model}.{metric}_ci_low", low)
            _metric(ctx, f"{model}.{metric}_ci_high", high)
        _metric(ctx, f"{model}.coverage", summary.coverage.get(model))
    for source, checks in summary.quant.items():
        for check, result in checks.items():
            _metric(ctx, f"{source}.quant.{check}_share", result.share)
    ctx.metric("gate_passed", float(summary.verdict is not None and summary.verdict.passed))
    ctx.metric("holdout_rows", summary.holdout.rows_scored)
    ctx.metric("holdout_days", summary.holdout.days)


def _metric(ctx: TaskContext, key: str, value) -> None:
    if value is not None and np.isfinite(value):  # MLflow cannot plot a missing figure
        ctx.metric(key, value)


def candidate_run_figures(summary, verdict) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) for the candidate's model_train run: what the gate judged, on the
    candidate's holdout (informative quotes, priced as served). Metrics `gate.iv_rmse_vol_points`
    (IV RMSE ×100: the UI shows 3 decimals), `gate.inside_spread_share`,
    `gate.iv_skill_vs_best_baseline` and its bootstrap CI (`..._ci_low`, `..._ci_high`),
    `gate.iv_rmse_vs_production` (relative; with a Production),
    `gate.passed` (1/0); tags `gate.verdict` (passed | failed), `gate.best_baseline`,
    `gate.holdout` (first..last day). A figure that could not be computed is left out."""
    summary = EvaluationSummary.of(summary)
    cand, rmse = summary.figures("candidate"), summary.iv_rmse("candidate")  # None: not scored
    metrics = {
        "gate.iv_rmse_vol_points": None if rmse is None else 100 * rmse,
        "gate.inside_spread_share": cand.inside_spread_share if cand else None,
        "gate.iv_rmse_vs_production": verdict.metrics.get("relative_to_production"),
        "gate.passed": float(verdict.passed),
    }
    tags = {"gate.verdict": "passed" if verdict.passed else "failed",
            "gate.holdout": f"{summary.holdout.start}..{summary.holdout.end}"}  # fmt: skip
    base = {b: rmse for b in BASELINES if (rmse := summary.iv_rmse(b)) is not None}
    if cand and base:
        best = min(base, key=base.get)  # as the gate picks it
        low, high = summary.interval("candidate", f"iv_skill_vs_{best}")
        metrics |= {"gate.iv_skill_vs_best_baseline": cand.skill_vs(best),
                    "gate.iv_skill_vs_best_baseline_ci_low": low,
                    "gate.iv_skill_vs_best_baseline_ci_high": high}  # fmt: skip
        tags["gate.best_baseline"] = best
    found = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
    return found, tags


def _mark_candidate_run(run_id: str, summary, verdict) -> None:
    """Log candidate_run_figures onto the candidate's model_train run (the version's run_id)."""
    metrics, tags = candidate_run_figures(summary, verdict)
    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )


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
