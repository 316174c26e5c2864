"""model_deploy: the deployment gate of the automated flow, and the deploy of Production.

1. Gate. The original plan keeps deployment manual: a candidate that passed model_evaluate's gate
   waits in Staging ("awaiting approval") until someone runs `make promote`; with
   `model_deploy.auto_promote=true` a passing candidate is promoted here instead. A failed verdict
   blocks deployment (plan, failure point 3).
2. Deploy. When a pricing service answers at `model_deploy.service_url`, it is made to serve the
   Production version (POST /admin/reload if it serves another) and health-checked
   (pipeline.deploy_checks: readyz, the version it answers with, golden contracts priced as the
   offline model prices them). On a failure the registry is **rolled back automatically** to
   `previous-production`, the service reloaded and checked again, the incident recorded (log,
   `reports/deployment/incident_D.json`, MLflow tags and artifact) and the task fails (exit 1).
   No service running is not a failure: it loads @production when it starts (`make serve`).

Writes `reports/deployment/deployment_status_D.json`; logs to `logs/deployment_D.log` (the plan's
name). Run it after `make promote` (`make deploy`) to roll the new version out.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import partial

import mlflow
from omegaconf import DictConfig

from monitoring import alerts
from pipeline.artifacts import read_frame, write_json
from pipeline.deploy_checks import (
    PricingService,
    ServiceUnreachable,
    golden_contracts,
    health_check,
    offline_iv,
)
from pipeline.errors import PipelineError
from pipeline.registry import Registry
from pipeline.runtime import TaskContext, TaskSpec, execute, resolve_date


class DeploymentFailed(PipelineError):
    """The Production version failed its health check in the service (after any rollback)."""


NEXT_STEPS = "make ui (compare runs) · make promote (Staging → Production) · make serve (price over HTTP) · make app · make history"


def decide(
    staging_version: str | None, verdict: dict | None, auto_promote: bool
) -> tuple[str, str]:
    """(status, next action) for the candidate; a pure function of what the registry says."""
    if staging_version is None:
        return "nothing_staged", "train a candidate: mlflow run . -e model_train"
    if verdict is None:
        return "not_evaluated", "evaluate it: mlflow run . -e model_evaluate"
    if verdict.get("verdict") != "passed":
        return (
            "blocked",
            "review the gate reasons (make history); retrain, or force: make promote FORCE=1 REASON=...",
        )
    if auto_promote:
        return "promote", "serve it"
    return "awaiting_approval", f"approve: make promote (version {staging_version})"


def _status_path(ctx: TaskContext):
    return ctx.artifacts.reports_dir / "deployment" / f"deployment_status_{ctx.date:%Y%m%d}.json"


def run(ctx: TaskContext) -> None:
    registry = Registry(ctx.cfg.registry.model_name)
    staging = registry.resolve("staging")
    production = registry.resolve("production")
    verdict = registry.verdict(staging.version) if staging else None
    status, action = decide(
        staging.version if staging else None, verdict, ctx.task_cfg.auto_promote
    )
    record = None
    if status == "promote":
        record = registry.promote(
            version=staging.version, reason="auto-promotion (model_deploy.auto_promote=true)"
        )
        status, production = "promoted", registry.resolve("production")
    elif status == "blocked":
        reasons = "; ".join(verdict.get("reasons") or [])
        ctx.log.warning(
            "deployment blocked: candidate v%s failed the gate: %s", staging.version, reasons
        )
    summary = {
        "date": str(ctx.date),
        "status": status,
        "next_action": action,
        "candidate_version": staging.version if staging else None,
        "production_version": production.version if production else None,
        "verdict": verdict,
        "promotion": record,
        "serving": None,
    }
    try:
        summary["serving"] = deploy(ctx, registry, production) if production else None
    except DeploymentFailed as exc:
        summary["serving"] = {"status": "health_check_failed", "error": str(exc)}
        raise
    finally:  # written on a failed deploy too: the status file says what happened
        ctx.reports.append(write_json(summary, _status_path(ctx)))
    ctx.log.info(
        "deployment status: %s (candidate v%s, production v%s); next: %s",
        status,
        summary["candidate_version"],
        summary["production_version"],
        action,
    )
    ctx.metric("promoted", float(status == "promoted"))
    ctx.metric("awaiting_approval", float(status == "awaiting_approval"))


def deploy(ctx: TaskContext, registry: Registry, production) -> dict:
    """Make the service serve `production` and check it; roll back automatically on failure."""
    cfg = ctx.task_cfg
    if not cfg.health_check:
        return {"status": "not_checked", "reason": "model_deploy.health_check=false"}
    service = PricingService(cfg.service_url, cfg.service_timeout_s)
    try:
        health = _roll_out(ctx, service, registry, production)
    except ServiceUnreachable as exc:
        ctx.log.warning("%s: nothing to roll out to; the service loads @production (v%s) when it "
                        "starts: make serve", exc, production.version)  # fmt: skip
        return {"status": "service_not_running", "url": cfg.service_url}
    if health.passed:
        ctx.log.info(
            "v%s is live at %s: %s", production.version, cfg.service_url, "; ".join(health.checks)
        )
        ctx.metric("health_check_passed", 1.0)
        return {"status": "healthy", "version": production.version, "checks": health.checks}
    return _incident(ctx, service, registry, production, health)


def _roll_out(ctx: TaskContext, service: PricingService, registry: Registry, version):
    """Reload the service if it serves another version, then run the health checks."""
    serving = str(service.model().get("version"))
    if serving != str(version.version):
        status, body = service.reload()
        ctx.log.info("service reload (v%s → v%s): %s %s", serving, version.version, status, body)
    uri = f"models:/{registry.name}/{version.version}"
    golden = golden_contracts(
        uri, _newest_features(ctx), ctx.task_cfg.golden_contracts, int(ctx.cfg.seed)
    )
    # computed only if the service gets that far
    expected = partial(offline_iv, uri, golden, ctx.artifacts.state_dir,
                       ctx.cfg.serving.max_state_age_days)  # fmt: skip
    return health_check(service, version.version, golden, expected, ctx.task_cfg.golden_tolerance)


def _incident(ctx: TaskContext, service, registry: Registry, failed, health) -> dict:
    """Roll back to previous-production, reload, verify, record; then fail the task."""
    for line in health.checks:
        ctx.log.error("health check v%s: %s", failed.version, line)
    incident = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "failed_version": str(failed.version),
                "checks": health.checks, "rollback": None, "after_rollback": None}  # fmt: skip
    previous = registry.resolve("previous-production")
    if previous is None:
        ctx.log.error(
            "no previous Production version to roll back to: v%s stays in Production",
            failed.version,
        )
    else:
        reason = f"automatic rollback: v{failed.version} failed the deploy health check ({health.checks[-1]})"
        incident["rollback"] = registry.rollback(reason=reason, user="model_deploy")
        ctx.log.error("rolled back the registry: v%s → v%s", failed.version, previous.version)
        try:
            after = _roll_out(ctx, service, registry, previous)
            incident["after_rollback"] = {
                "version": str(previous.version),
                "passed": after.passed,
                "checks": after.checks,
            }
            log = ctx.log.info if after.passed else ctx.log.error
            log("after rollback, v%s: %s", previous.version, "; ".join(after.checks))
        except ServiceUnreachable as exc:
            incident["after_rollback"] = {
                "version": str(previous.version),
                "passed": False,
                "checks": [str(exc)],
            }
    path = ctx.artifacts.reports_dir / "deployment" / f"incident_{ctx.date:%Y%m%d}.json"
    write_json(incident, path)
    mlflow.log_artifact(str(path), "deployment")
    mlflow.set_tags({"deploy.incident": "health_check_failed", "deploy.failed_version": failed.version,
                     "deploy.rolled_back_to": previous.version if previous else "none"})  # fmt: skip
    alerts.deploy_rollback(ctx, incident, path)  # the task's failure then raises no 2nd alert
    restored = incident["after_rollback"]
    outcome = (f"rolled back to v{previous.version}, which {'passes' if restored['passed'] else 'ALSO FAILS'} "
               "its health check" if previous else "no previous version to roll back to")  # fmt: skip
    raise DeploymentFailed(f"v{failed.version} failed its deploy health check "
                           f"({health.checks[-1]}); {outcome}; incident: {path}")  # fmt: skip


def _newest_features(ctx: TaskContext):
    """The newest feature file up to the task's date (golden contracts), or None."""
    files = sorted(ctx.artifacts.processed_dir.glob("features_*.*"))
    files = [f for f in files if f.stem.split("_")[-1] <= f"{ctx.date:%Y%m%d}"]
    return read_frame(files[-1]) if files else None


def _upstream(ctx: TaskContext) -> dict[str, str]:
    registry = Registry(ctx.cfg.registry.model_name)
    refs = {}
    for alias in ("staging", "production"):
        mv = registry.resolve(alias)
        refs[alias] = f"{mv.version}:{mv.run_id}" if mv else "none"
        if alias == "staging" and mv:
            refs["verdict"] = json.dumps(registry.verdict(mv.version), sort_keys=True, default=str)
    return refs


SPEC = TaskSpec(
    name="model_deploy",
    run=run,
    inputs=lambda ctx: [],
    outputs=lambda ctx: [_status_path(ctx)],
    config_keys=("registry",),
    upstream=_upstream,
    log_name="deployment",
)


def main(cfg: DictConfig) -> None:
    outcome = execute(SPEC, cfg, resolve_date(cfg.model_deploy.date, "model_deploy.date"))
    status = json.loads(outcome.outputs[0].read_text())
    print(f"model_deploy: {status['status']}; next: {status['next_action']}")


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
