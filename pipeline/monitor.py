"""monitor: the Production model on the newest validated day vs its reference → retrain or not.

Reads: the registry's `production` version (none → a clear message, and the task is skipped);
its feature list (tag `features`, set by model_train) and holdout dates (tags `holdout_start`/
`holdout_end`); the monitored day's `data/processed/features_YYYYMMDD.<ext>` (`monitor.date`,
default: the newest feature file) and, as the **reference recorded at registration**, the feature
files of the version's holdout days (the rows model_train scored it on; the training run logs them
as its `holdout` dataset). Rows with `iv_reliable` only, on both sides.

Computes: the version's IV predictions on every current row and on the reference sample; IV RMSE
and MAE over **all** current rows (NumPy), overall and per underlying; the reference RMSE/MAE are
the version's registration figures on its holdout rows without the holdout's jump days (training
run metrics `holdout.typical_iv_rmse`/`typical_iv_mae`: one shock day inside a holdout would
inflate the pooled figure several-fold and hide every later degradation; else `holdout.iv_rmse`/
`holdout.iv_mae` for older versions; recomputed on the reference sample if neither is logged).
Evidently (monitoring.drift) runs on a seeded sample of at most `monitor.sample_size` rows of
each side: feature drift and the regression report; results are read by metric name. Then the
retrain trigger (monitoring.trigger), given the `rmse_change` of the days this version was
monitored before (its persistence window).

Writes: `reports/drift/drift_YYYYMMDD.html` (the Evidently report) and
`reports/drift/summary_YYYYMMDD.json` (figures, decision with reasons, retrain outcome); the
day's snapshot into the Evidently workspace (`monitor.workspace`, `make dashboard`). MLflow:
metrics `rmse`, `mae`, `reference_rmse`, `reference_mae`, `rmse_change`, `drift_share`,
`drifted_columns`, `drift_score.<feature>`, `<underlying>.rmse|mae`, `retrain_triggered`; tags
`monitor.decision`, `monitor.reasons`, `monitor.drifted_columns`, `model_version`.

On a trigger with `monitor.retrain=true`: model_train (forced, window ending at the monitored day)
→ model_evaluate, nested in this run: the candidate lands in Staging with its gate verdict, behind
the manual gate (`make promote`) unless `monitor.auto_promote=true` and the gate passed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from monitoring import alerts, drift, workspace
from monitoring.trigger import Decision, Thresholds, decide
from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import Artifacts, read_frame, write_json
from pipeline.deploy_checks import promotion_check
from pipeline.errors import DataError
from pipeline.market.calendar import previous_trading_day, shift_trading_days, trading_days
from pipeline.market_state import informative
from pipeline.model import packaging
from pipeline.model.pricer import CONTRACT_COLUMNS, OPTIONAL_COLUMNS
from pipeline.model_evaluate import holdout_dates
from pipeline.registry import Registry
from pipeline.runtime import TaskContext, TaskOutcome, TaskSpec, execute, parse_date, resolve_date

# besides the model's features: what scoring, the target and the per-underlying split read
BASE_COLUMNS = ("underlying", "iv", "iv_reliable", "std_moneyness", "is_call", *CONTRACT_COLUMNS)
REFERENCE_METRICS = {"rmse": "holdout.iv_rmse", "mae": "holdout.iv_mae"}
# preferred when logged: the holdout without its jump days (pipeline.model_train.typical_scores)
TYPICAL_METRICS = {"rmse": "holdout.typical_iv_rmse", "mae": "holdout.typical_iv_mae"}


class NoProduction(DataError):
    """Nothing in Production: nothing to monitor."""


# -- what is monitored ---------------------------------------------------------------------------
def _production(cfg: DictConfig):
    return Registry(cfg.registry.model_name).resolve("production")


def _tags(mv) -> dict[str, str]:
    """The version's tags, completed with its training run's (model_train sets both)."""
    tags = dict(getattr(mv, "tags", None) or {})
    if not {"features", "holdout_start", "holdout_end"} <= set(tags):
        tags = mlflow.MlflowClient().get_run(mv.run_id).data.tags | tags
    return tags


def model_features(mv) -> list[str]:
    features = [f for f in _tags(mv).get("features", "").split(",") if f]
    if not features:
        raise DataError(f"Production v{mv.version} has no `features` tag (model_train sets it): "
                        "cannot tell which columns the model reads")  # fmt: skip
    return features


def newest_feature_day(artifacts: Artifacts) -> dt.date:
    """The date of the newest features_YYYYMMDD file (the newest validated, featured day)."""
    days = sorted(
        p.stem.split("_")[-1] for p in artifacts.processed_dir.glob(f"features_*.{artifacts.ext}")
    )
    if not days:
        raise DataError(
            f"no feature files in {artifacts.processed_dir}: run feature_engineer first"
        )
    return dt.datetime.strptime(days[-1], "%Y%m%d").date()


def monitored_date(cfg: DictConfig) -> dt.date:
    """`monitor.date`, else the newest day that has a feature file."""
    if cfg.monitor.date is not None:
        return resolve_date(cfg.monitor.date, "monitor.date")
    return newest_feature_day(Artifacts(cfg.paths, cfg.data_format))


def reference_paths(ctx: TaskContext, mv) -> tuple[list[Path], list[Path]]:
    """(existing, missing) feature files of the Production version's holdout days."""
    paths = [ctx.artifacts.features(d) for d in holdout_dates(mv)]
    return [p for p in paths if p.exists()], [p for p in paths if not p.exists()]


# -- reading and scoring -------------------------------------------------------------------------
def _columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0).columns)


def read_scored_input(path: Path, features: list[str], what: str) -> pd.DataFrame:
    """The reliable rows of one feature file with the columns the model and the monitor read;
    DataError naming the file and the missing columns when its schema does not fit the model."""
    available = _columns(path)
    missing = [c for c in dict.fromkeys([*BASE_COLUMNS, *features]) if c not in available]
    if missing:
        raise DataError(f"{what} {path.name} lacks column(s) {missing} that the Production model "
                        "or the monitor needs: schema incompatible")  # fmt: skip
    wanted = [
        c for c in dict.fromkeys([*BASE_COLUMNS, *OPTIONAL_COLUMNS, *features]) if c in available
    ]
    frame = read_frame(path, wanted)
    for col in ("quote_date", "expiry"):
        if not pd.api.types.is_datetime64_dtype(frame[col]):
            frame[col] = pd.to_datetime(frame[col])
    # informative quotes (OTM + ATM), as the reference holdout figures (pipeline.market_state)
    return frame[informative(frame)].reset_index(drop=True)


def score(model, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the model's IV prediction as `iv_pred`: the served path, the request's raw
    contract fields only (the model looks up each quote date's market state itself)."""
    out = packaging.predict_served(model, frame, "the Production model")
    return frame.assign(iv_pred=out["iv"].to_numpy(float))


def skill_figures(scored: pd.DataFrame) -> dict:
    """The day's difficulty: the previous-day-IV baseline (same contract's IV yesterday) and the
    model on the rows it prices (contracts that traded the day before). Their ratio, the model's
    skill, compares days of calm and of turmoil where the RMSE alone moves with the market."""
    has_prev = np.isfinite(scored["prev_iv"].to_numpy(float)) if "prev_iv" in scored else None
    if has_prev is None or not has_prev.any():
        return {"baseline_prev_iv_rmse": math.nan, "model_rmse_on_baseline_rows": math.nan,
                "skill_vs_prev_iv": math.nan}  # fmt: skip
    rows = scored[has_prev]
    base = drift.errors(rows["iv"], rows["prev_iv"])["rmse"]
    model = drift.errors(rows["iv"], rows["iv_pred"])["rmse"]
    return {"baseline_prev_iv_rmse": base, "model_rmse_on_baseline_rows": model,
            "skill_vs_prev_iv": model / base if base else math.nan}  # fmt: skip


def reference_figures(mv, reference: pd.DataFrame) -> dict:
    """Reference RMSE/MAE: the version's registration metrics, else the reference sample's."""
    metrics = mlflow.MlflowClient().get_run(mv.run_id).data.metrics
    for names in (TYPICAL_METRICS, REFERENCE_METRICS):
        if all(key in metrics for key in names.values()):
            return {f"reference_{k}": float(metrics[v]) for k, v in names.items()} | {
                "reference_source": f"training run {mv.run_id} metrics " + "/".join(names.values())
            }
    found = drift.errors(reference["iv"], reference["iv_pred"])
    return {"reference_rmse": found["rmse"], "reference_mae": found["mae"],
            "reference_source": "recomputed on the reference sample (no holdout metrics logged)"}  # fmt: skip


def earlier_summaries(ctx: TaskContext, mv) -> list[tuple[dt.date, dict]]:
    """(day, summary) of the days before the monitored one on which this Production version was
    monitored, oldest first: what the trigger's persistence window and backoff look back on."""
    found = []
    for path in sorted(summary_path(ctx).parent.glob("summary_*.json")):
        try:
            day = dt.datetime.strptime(path.stem.split("_")[-1], "%Y%m%d").date()
            earlier = json.loads(path.read_text()) if day < ctx.date else None
        except (ValueError, OSError):
            continue
        if earlier and str((earlier.get("model") or {}).get("version")) == str(mv.version):
            found.append((day, earlier))
    return found


def rmse_history(earlier: list[tuple[dt.date, dict]], days: int) -> list[float | None]:
    """`rmse_change` of the last `days` of `earlier`: the trigger's persistence window."""
    return [summary.get("rmse_change") for _, summary in earlier[-days:]] if days >= 1 else []


def last_failed_gate(earlier: list[tuple[dt.date, dict]], today: dt.date) -> dict | None:
    """{date, version, days_ago} of the newest of `earlier` on which the monitor retrained a
    candidate that failed the gate, or None: what the trigger's failed-gate backoff counts from."""
    for day, summary in reversed(earlier):
        retrain = summary.get("retrain") or {}
        if retrain.get("candidate_version") and (retrain.get("gate") or {}).get("passed") is False:
            return {"date": str(day), "version": retrain["candidate_version"],
                    "days_ago": len(trading_days(day, today)) - 1}  # fmt: skip
    return None


# -- the task ------------------------------------------------------------------------------------
def html_path(ctx: TaskContext) -> Path:
    return ctx.artifacts.reports_dir / "drift" / f"drift_{ctx.date:%Y%m%d}.html"


def summary_path(ctx: TaskContext) -> Path:
    return ctx.artifacts.reports_dir / "drift" / f"summary_{ctx.date:%Y%m%d}.json"


def run(ctx: TaskContext) -> None:
    cfg, mv = ctx.task_cfg, _production(ctx.cfg)
    if mv is None:
        raise NoProduction("no model in Production: nothing to monitor (make promote)")
    features, model_uri = model_features(mv), f"models:/{ctx.cfg.registry.model_name}/{mv.version}"
    current_path = ctx.artifacts.features(ctx.date)
    if not current_path.exists():
        raise DataError(f"no feature file for {ctx.date}: {current_path} (run feature_engineer)")
    found, missing = reference_paths(ctx, mv)
    if not found:
        raise DataError(f"reference data missing for Production v{mv.version}: its holdout feature "
                        f"files {[p.name for p in missing]} are not in {ctx.artifacts.processed_dir} "
                        "(run feature_engineer for those days)")  # fmt: skip
    if missing:
        ctx.log.warning(
            "reference: %d holdout day(s) missing: %s", len(missing), [p.name for p in missing]
        )
    # the served path: raw contract fields in, each day's published state (as the service)
    model = packaging.served_model(model_uri, ctx.artifacts.state_dir,
                                   ctx.cfg.serving.max_state_age_days)  # fmt: skip
    current = score(model, read_scored_input(current_path, features, "current data"))
    reference = pd.concat([read_scored_input(p, features, "reference data") for p in found],
                          ignore_index=True)  # fmt: skip
    seed, n = int(cfg.seed), int(cfg.sample_size)
    reference = score(model, drift.sample(reference, n, seed))
    summary = _figures(ctx, mv, features, current, reference)
    summary["evidently"] = _report(ctx, mv, features, drift.sample(current, n, seed), reference)
    summary |= {k: summary["evidently"].pop(k) for k in ("drift_share", "drifted_count",
                                                          "drifted_columns", "drift_scores")}  # fmt: skip
    thresholds = Thresholds.from_config(cfg)
    earlier = earlier_summaries(ctx, mv)
    summary["rmse_history"] = rmse_history(earlier, thresholds.window_days - 1)
    summary["last_failed_gate"] = last_failed_gate(earlier, ctx.date)
    trained_through = max(holdout_dates(mv))
    summary["trained_through"] = str(trained_through)
    summary["days_since_training"] = len(trading_days(trained_through, ctx.date)) - 1
    summary |= change_figures(ctx, earlier, summary, thresholds)
    decision = decide(summary, thresholds)
    summary["decision"] = {"retrain": decision.retrain, "reasons": decision.reasons,
                           "thresholds": {"rmse_degradation": float(cfg.rmse_degradation),
                                          "drift_share": float(cfg.drift_share),
                                          "failed_gate_backoff_days":
                                              thresholds.failed_gate_backoff_days}}  # fmt: skip
    _log_decision(ctx, decision, summary)
    alerts.retrain_decision(ctx, decision)  # retrain_triggered when it says retrain
    try:
        summary["retrain"] = _retrain(ctx, decision, summary.get("pending_change"))
    finally:  # the summary is written on a failed retrain too: it says what happened
        ctx.reports.append(write_json(summary, summary_path(ctx)))


def _figures(ctx, mv, features, current, reference) -> dict:
    """The summary's model, row counts and NumPy error figures (all current rows)."""
    overall = drift.errors(current["iv"], current["iv_pred"])
    by_underlying = drift.errors_by_underlying(current)
    summary = {
        "date": str(ctx.date),
        "model": {
            "name": ctx.cfg.registry.model_name,
            "version": str(mv.version),
            "run_id": mv.run_id,
        },
        "features": features,
        "reference_days": [str(d) for d in holdout_dates(mv)],
        "rows": {
            "current": len(current),
            "scored": overall["n"],
            "reference_sample": len(reference),
        },
        "rmse": overall["rmse"],
        "mae": overall["mae"],
        **reference_figures(mv, reference),
        "by_underlying": by_underlying,
    }
    summary |= skill_figures(current)
    ref = summary["reference_rmse"]
    summary["rmse_change"] = summary["rmse"] / ref - 1.0 if ref and math.isfinite(ref) else math.nan
    for key in ("rmse", "mae", "reference_rmse", "reference_mae", "rmse_change"):
        _metric(ctx, key, summary[key])
    for u, figures in by_underlying.items():
        _metric(ctx, f"{u}.rmse", figures["rmse"])
        _metric(ctx, f"{u}.mae", figures["mae"])
    ctx.metric("rows_current", len(current))
    ctx.log.info("Production v%s on %s: %d rows, IV RMSE %.5f (reference %.5f, %+.1f%%), MAE %.5f",
                 mv.version, ctx.date, overall["n"], summary["rmse"], ref,
                 100 * summary["rmse_change"], summary["mae"])  # fmt: skip
    return summary


def _report(ctx, mv, features, current, reference) -> dict:
    """The Evidently report: HTML, workspace snapshot, figures by metric name (+ MLflow)."""
    stamp = dt.datetime.combine(ctx.date, dt.time(16, 0))
    meta = {"date": str(ctx.date), "model_version": str(mv.version)}
    snapshot = drift.build_report(current, reference, features, timestamp=stamp, metadata=meta,
                                  tags=["monitor"], drift_share=float(ctx.task_cfg.drift_share))  # fmt: skip
    ctx.reports.append(drift.save_html(snapshot, html_path(ctx)))
    snapshot_id = workspace.add_day(Path(ctx.task_cfg.workspace), ctx.task_cfg.project, snapshot,
                                    ctx.date, features, sorted(set(current["underlying"].astype(str))))  # fmt: skip
    found = drift.figures(snapshot, features)
    ctx.metric("drift_share", found["drift_share"])
    ctx.metric("drifted_columns", found["drifted_count"])
    for column, value in found["drift_scores"].items():
        _metric(ctx, f"drift_score.{column}", value)
    return {**found, "rows_current": len(current), "rows_reference": len(reference),
            "html": str(html_path(ctx)), "workspace_snapshot": snapshot_id}  # fmt: skip


def _log_decision(ctx: TaskContext, decision: Decision, summary: dict) -> None:
    """Every decision, triggered or not, with its reasons: task log, MLflow tags and metric."""
    log = ctx.log.warning if decision.retrain else ctx.log.info
    log("retrain decision: %s", "RETRAIN" if decision.retrain else "no retrain")
    for reason in decision.reasons:
        log("  %s", reason)
    ctx.metric("retrain_triggered", float(decision.retrain))
    mlflow.set_tags({
        "monitor.decision": "retrain" if decision.retrain else "no_retrain",
        "monitor.reasons": " | ".join(decision.reasons)[:5000],
        "monitor.drifted_columns": ",".join(summary["drifted_columns"]) or "none",
        "model_version": summary["model"]["version"],
    })  # fmt: skip


def monitored_breaches(
    ctx: TaskContext, earlier: list[tuple[dt.date, dict]], fired: tuple[str, ...]
) -> list[tuple[dt.date, dict[str, bool]]]:
    """(day, {"rmse", "drift"} breached) of the days this version was monitored before today
    (`earlier`), each judged alone on its own figures (monitoring.trigger.day_breaches), then
    today's: the signals that fired (`fired`, Decision.fired)."""
    from monitoring.trigger import day_breaches

    thresholds = Thresholds.from_config(ctx.task_cfg)
    today = {signal: signal in fired for signal in ("rmse", "drift")}
    return [(day, day_breaches(s, thresholds)) for day, s in earlier] + [(ctx.date, today)]


def change_figures(ctx: TaskContext, earlier, summary: dict, thresholds: Thresholds) -> dict:
    """{"change_point", "pending_change"}: the first day of the current run of days whose drift
    is over its limit or whose IV RMSE jumped (monitoring.trigger.day_breaches; today judged on
    its own figures; None when today is neither), and a change
    whose retrain waited yesterday for a day after it (monitoring.trigger.decide)."""
    from monitoring.trigger import day_breaches, run_start

    def changed(s: dict) -> bool:
        flags = day_breaches(s, thresholds)
        return flags["drift"] or flags["jump"]

    days = [(day, changed(s)) for day, s in earlier]
    days.append((ctx.date, changed(summary)))
    start = run_start(days)
    pending = None
    if earlier:
        day, last = earlier[-1]
        waited = any("[deferred] the change began today" in r
                     for r in (last.get("decision") or {}).get("reasons", []))  # fmt: skip
        if waited and day == previous_trading_day(ctx.date):
            pending = last.get("change_point")
    return {"change_point": str(start) if start else None, "pending_change": pending}


def retrain_holdout_start(
    ctx: TaskContext, decision: Decision, pending: str | None = None
) -> tuple[dt.date | None, str]:
    """(change point, why) for today's retrain: monitoring.trigger.change_point over the
    Production version's monitored days, passed to model_train as `holdout_start` so the
    candidate is judged on the days from the change on; None (the usual holdout) when the
    retrain dates no change (the IV RMSE alone fired)."""
    from monitoring.trigger import change_point

    fired = tuple(decision.fired)
    days = monitored_breaches(ctx, earlier_summaries(ctx, _production(ctx.cfg)), fired)
    change = change_point(days, fired)
    if change is None and pending:
        change = parse_date(pending)
    if change is None:
        return None, (
            "no change dated (no feature drift over its limit, no one-day IV RMSE jump "
            "today): the usual holdout"
        )
    start = shift_trading_days(change, 1)  # judged on the days after the change, not on it
    if start > ctx.date:
        return None, f"change point {change} is today: no day after it yet; the usual holdout"
    return start, (f"change point {change}: drift or an IV RMSE jump since; the candidate is "
                   f"judged on the days after it, from {start}")  # fmt: skip


def _retrain(ctx: TaskContext, decision: Decision, pending: str | None = None) -> dict:
    """On a trigger (and monitor.retrain): model_train (forced; on drift, its holdout starting at
    the change point: `retrain_holdout_start`) → model_evaluate, nested here; the candidate waits
    in Staging unless auto_promote and the gate passed."""
    if not decision.retrain:
        return {"status": "not_triggered"}
    if not ctx.task_cfg.retrain:
        ctx.log.warning("retrain triggered but monitor.retrain=false: nothing run")
        return {"status": "disabled"}
    from pipeline import model_evaluate, model_train

    start, why = retrain_holdout_start(ctx, decision, pending)
    ctx.log.info("retrain: %s", why)
    cfg = ctx.cfg.copy()
    OmegaConf.update(cfg, "model_train.force", True)
    if start is not None:
        OmegaConf.update(cfg, "model_train.holdout_start", str(start))
    trained = execute(model_train.SPEC, cfg, ctx.date)
    evaluated = execute(model_evaluate.SPEC, cfg, ctx.date)
    registry = Registry(ctx.cfg.registry.model_name)
    candidate = registry.resolve("staging")
    verdict = registry.verdict(candidate.version) if candidate else None
    out = {"status": "retrained", "train_run_id": trained.run_id,
           "evaluate_run_id": evaluated.run_id,
           "candidate_version": str(candidate.version) if candidate else None,
           "holdout_start": str(start) if start else None, "change_point": why,
           "gate": verdict, "promoted": None}  # fmt: skip
    if candidate and verdict and verdict["passed"] and ctx.task_cfg.auto_promote:
        check = promotion_check(
            ctx.cfg.registry.model_name,
            ctx.artifacts.state_dir,
            int(ctx.cfg.serving.max_state_age_days),
        )  # as make promote does
        out["promoted"] = registry.promote(version=str(candidate.version), user="monitor",
                                           reason="auto-promotion after a monitor retrain "
                                                  "(monitor.auto_promote=true)", check=check)  # fmt: skip
    ctx.log.info("retrained: candidate v%s in Staging, gate %s%s", out["candidate_version"],
                 verdict["verdict"] if verdict else "not recorded",
                 "; promoted to Production" if out["promoted"] else "; awaiting make promote")  # fmt: skip
    ctx.metric("retrained", 1.0)
    return out


def _metric(ctx: TaskContext, key: str, value) -> None:
    if value is not None and math.isfinite(value):
        ctx.metric(key, value)


def _inputs(ctx: TaskContext) -> list[Path]:
    mv = _production(ctx.cfg)
    current = ctx.artifacts.features(ctx.date)
    references = reference_paths(ctx, mv)[0] if mv else []
    return [p for p in [current, *references] if p.exists()]


def _upstream(ctx: TaskContext) -> dict[str, str]:
    mv = _production(ctx.cfg)
    return {"production": f"{mv.version}:{mv.run_id}" if mv else "none"}


SPEC = TaskSpec(
    name="monitor",
    run=run,
    inputs=_inputs,
    outputs=lambda ctx: [html_path(ctx), summary_path(ctx)],
    config_keys=("data_format", "registry"),
    upstream=_upstream,
)


def run_monitor(cfg: DictConfig) -> TaskOutcome | None:
    """Monitor the newest day (or monitor.date); None, with a message, when nothing is in
    Production."""
    if _production(cfg) is None:
        import logging

        message = (f"monitor: no '{cfg.registry.model_name}' version in Production: nothing to "
                   "monitor, skipped (train, evaluate and `make promote` one first)")  # fmt: skip
        logging.getLogger("pipeline.monitor").warning(message)
        print(message)
        return None
    return execute(SPEC, cfg, monitored_date(cfg))


def main(cfg: DictConfig) -> None:
    outcome = run_monitor(cfg)
    if outcome is None:
        return
    summary = json.loads(outcome.outputs[1].read_text())
    decision = summary["decision"]
    print(f"monitor {summary['date']}: Production v{summary['model']['version']}, IV RMSE "
          f"{summary['rmse']:.5f} vs reference {summary['reference_rmse']:.5f}; drift share "
          f"{summary['drift_share']:.0%}; {'RETRAIN' if decision['retrain'] else 'no retrain'}")  # fmt: skip
    for reason in decision["reasons"]:
        print(f"  {reason}")
    print(f"  report: {outcome.outputs[0]}")


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
