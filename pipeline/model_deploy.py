"""model_deploy: the deployment gate of the automated flow, and the deploy of Production.

1. Gate. The original plan keeps deployment manual: a candidate that passed model_evaluate's gate
   waits in Staging ("awaiting approval") until someone runs `make promote`; with
   `model_deploy.auto_promote=true` a passing candidate is promoted here instead. A failed verdict
   blocks deployment (plan, failure point 3).
   A candidate is promoted only if it prices its logged input example offline
   (pipeline.deploy_checks.offline_check); else it stays in Staging (status `refused`).
2. Deploy. The Production version must first price its input example offline, service or not.
   Then, when a pricing service answers at `model_deploy.service_url`, it is made to serve the
   Production version (POST /admin/reload if it serves another) and health-checked
   (pipeline.deploy_checks: readyz, the version it answers with, golden contracts priced as the
   offline model prices them). On a failure the registry is **rolled back automatically** to
   `previous-production`, the restored version checked again (offline, then in the service when
   one runs), the incident recorded (log, `reports/deployment/incident_D.json`, MLflow tags and
   artifact, an alert) and the task fails (exit 1). One file per incident: a second one on the
   same date is `incident_D_2.json`, then `_3`, ... (never overwritten). Its `checks` and
   `cause` name the check that failed and its error. No service running is not a failure once
   the version passes offline: the service loads @production when it starts (`make serve`).

Writes `reports/deployment/deployment_status_D.json`; logs to `logs/deployment_D.log` (the plan's
name). Run it after `make promote` (`make deploy`) to roll the new version out.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from functools import partial
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from monitoring import alerts
from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import read_frame, write_json
from pipeline.deploy_checks import (
    Health,
    PricingService,
    ServiceUnreachable,
    golden_contracts,
    health_check,
    offline_check,
    offline_iv,
    promotion_check,
    public_text,
)
from pipeline.errors import PipelineError
from pipeline.registry import Registry, RegistryRefusal
from pipeline.runtime import TaskContext, TaskSpec, execute, resolve_date


class DeploymentFailed(PipelineError):
    """The Production version failed its health check in the service (after any rollback)."""


INCIDENT_NAME = re.compile(r"incident_(?P<day>\d{8})(?:_(?P<n>[1-9]\d*))?\.json")
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
        try:
            record = registry.promote(version=staging.version, check=_promotion_check(ctx),
                                      reason="auto-promotion (model_deploy.auto_promote=true)")  # fmt: skip
        except RegistryRefusal as exc:  # it cannot price its own example: it stays in Staging
            ctx.log.error("candidate v%s not promoted: %s", staging.version, exc)
            status, action = "refused", f"fix or retrain the candidate: {exc}"
        else:
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


def _promotion_check(ctx: TaskContext):
    return promotion_check(ctx.cfg.registry.model_name, ctx.artifacts.state_dir,
                           ctx.cfg.serving.max_state_age_days)  # fmt: skip


def _offline(ctx: TaskContext, registry: Registry, version) -> Health:
    """The version priced offline, as pipeline.deploy_checks.offline_check does it."""
    uri = f"models:/{registry.name}/{version.version}"
    return offline_check(uri, str(version.version), ctx.artifacts.state_dir,
                         ctx.cfg.serving.max_state_age_days)  # fmt: skip


def deploy(ctx: TaskContext, registry: Registry, production) -> dict:
    """Check `production` offline, make the service serve it and check it there; roll back
    automatically on a failure."""
    cfg = ctx.task_cfg
    if not cfg.health_check:
        return {"status": "not_checked", "reason": "model_deploy.health_check=false"}
    service = PricingService(cfg.service_url, cfg.service_timeout_s)
    offline = _offline(ctx, registry, production)
    if not offline.passed:  # broken whether a service runs or not: it must not stay
        return _incident(ctx, service, registry, production, offline)
    try:
        health = _roll_out(ctx, service, registry, production)
    except ServiceUnreachable as exc:
        ctx.log.warning("%s: nothing to roll out to; the service loads @production (v%s) when it "
                        "starts: make serve", exc, production.version)  # fmt: skip
        return {"status": "service_not_running", "url": cfg.service_url, "checks": offline.checks}
    checks = offline.checks + health.checks
    if health.passed:
        ctx.log.info(
            "v%s is live at %s: %s", production.version, cfg.service_url, "; ".join(checks)
        )
        ctx.metric("health_check_passed", 1.0)
        return {"status": "healthy", "version": production.version, "checks": checks}
    return _incident(ctx, service, registry, production, Health(False, checks, health.figures))


def _roll_out(ctx: TaskContext, service: PricingService, registry: Registry, version) -> Health:
    """Reload the service if it serves another version (or a start-up fallback), then run the
    health checks; a refused reload is the failed check, with the service's reason."""
    model = service.model()
    serving = str(model.get("version"))
    if serving != str(version.version) or model.get("fallback"):
        status, body = service.reload()
        ctx.log.info("service reload (v%s → v%s): %s %s", serving, version.version, status, body)
        if status != 200:
            why = public_text(body.get("error", body))
            return Health(False, [f"reload: the service refused v{version.version} ({status}): {why}"])  # fmt: skip
    uri = f"models:/{registry.name}/{version.version}"
    golden = golden_contracts(
        uri, _newest_features(ctx), ctx.task_cfg.golden_contracts, int(ctx.cfg.seed)
    )
    # computed only if the service gets that far
    expected = partial(offline_iv, uri, golden, ctx.artifacts.state_dir,
                       ctx.cfg.serving.max_state_age_days)  # fmt: skip
    return health_check(service, version.version, golden, expected, ctx.task_cfg.golden_tolerance)


def _incident(ctx: TaskContext, service, registry: Registry, failed, health) -> dict:
    """Roll back to previous-production, verify it, record the incident; then fail the task."""
    checks = [public_text(line) for line in health.checks]
    for line in checks:
        ctx.log.error("health check v%s: %s", failed.version, line)
    failed_check, _, error = checks[-1].partition(": ")
    incident = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "failed_version": str(failed.version),
                "checks": checks, "cause": {"check": failed_check, "error": error},
                "rollback": None, "after_rollback": None}  # fmt: skip
    previous = registry.resolve("previous-production")
    if previous is None:
        ctx.log.error(
            "no previous Production version to roll back to: v%s stays in Production",
            failed.version,
        )
    else:
        reason = (
            f"automatic rollback: v{failed.version} failed the deploy health check ({checks[-1]})"
        )
        incident["rollback"] = registry.rollback(reason=reason, user="model_deploy")
        ctx.log.error("rolled back the registry: v%s → v%s", failed.version, previous.version)
        after = _verify_restored(ctx, service, registry, previous)
        incident["after_rollback"] = {"version": str(previous.version), "passed": after.passed,
                                      "checks": [public_text(line) for line in after.checks]}  # fmt: skip
        log = ctx.log.info if after.passed else ctx.log.error
        log("after rollback, v%s: %s", previous.version, "; ".join(after.checks))
    path = write_incident(incident, ctx.artifacts.reports_dir / "deployment", ctx.date)
    shown = _shown(ctx, path)
    mlflow.log_artifact(str(path), "deployment")
    mlflow.set_tags({"deploy.incident": "health_check_failed", "deploy.failed_version": failed.version,
                     "deploy.failed_check": checks[-1][:500],
                     "deploy.rolled_back_to": previous.version if previous else "none"})  # fmt: skip
    alerts.deploy_rollback(ctx, incident, shown)  # the task's failure then raises no 2nd alert
    restored = incident["after_rollback"]
    outcome = (f"rolled back to v{previous.version}, which {'passes' if restored['passed'] else 'ALSO FAILS'} "
               "its health check" if previous else "no previous version to roll back to")  # fmt: skip
    raise DeploymentFailed(f"v{failed.version} failed its deploy health check "
                           f"({checks[-1]}); {outcome}; incident: {shown}")  # fmt: skip


def _verify_restored(ctx: TaskContext, service, registry: Registry, previous) -> Health:
    """The restored version's checks: offline, then in the service when one answers."""
    offline = _offline(ctx, registry, previous)
    if not offline.passed:
        return offline
    try:
        after = _roll_out(ctx, service, registry, previous)
    except ServiceUnreachable as exc:
        return Health(True, [*offline.checks, f"service: {exc}; it loads @production "
                                              f"(v{previous.version}) when it starts"])  # fmt: skip
    return Health(after.passed, offline.checks + after.checks, after.figures)


def incident_name(date: dt.date, n: int) -> str:
    """The n-th incident file of `date` (1-based): incident_YYYYMMDD.json, then _2, _3, ..."""
    return f"incident_{date:%Y%m%d}.json" if n == 1 else f"incident_{date:%Y%m%d}_{n}.json"


def write_incident(incident: dict, folder: Path, date: dt.date) -> Path:
    """Write `incident` to the first free `incident_name` in `folder`. The file is complete when
    it appears (written and synced under a temporary name, then hard-linked to its name) and the
    link refuses an existing name, so no incident ever overwrites another, even concurrently."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incident_", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(incident, indent=2, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        n = 1
        while True:
            path = folder / incident_name(date, n)
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                n += 1
    finally:
        os.unlink(tmp)


def incident_files(folder: Path) -> list[tuple[dt.date, int, Path]]:
    """(date, number, path) of the incident files in `folder`, oldest first."""
    found = []
    for path in folder.glob("incident_*.json") if folder.is_dir() else []:
        if m := INCIDENT_NAME.fullmatch(path.name):
            try:
                day = dt.datetime.strptime(m["day"], "%Y%m%d").date()
            except ValueError:
                continue
            found.append((day, int(m["n"] or 1), path))
    return sorted(found)


def _shown(ctx: TaskContext, path: Path) -> str:
    """`path` relative to the project root, for messages (no machine paths)."""
    try:
        return str(path.relative_to(ctx.artifacts.root))
    except ValueError:
        return path.name


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
