"""model_deploy: the deployment gate of the automated flow.

The original plan keeps deployment manual: a candidate that passed model_evaluate's gate waits in
Staging ("awaiting approval") until someone runs `make promote`; with
`model_deploy.auto_promote=true` a passing candidate is promoted here instead. A failed verdict
blocks deployment (plan, failure point 3). Writes `reports/deployment/deployment_status_D.json`
and logs to `logs/deployment_D.log` (the plan's name).
"""

from __future__ import annotations

import json

from omegaconf import DictConfig

from pipeline.artifacts import write_json
from pipeline.registry import Registry
from pipeline.runtime import TaskContext, TaskSpec, execute, resolve_date

NEXT_STEPS = "make ui (compare runs) · make promote (Staging → Production) · make history"


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
        ctx.log.warning(
            "deployment blocked: candidate v%s failed the gate: %s",
            staging.version,
            "; ".join(
                json.loads(verdict.get("reasons", "[]"))
                if isinstance(verdict.get("reasons"), str)
                else verdict.get("reasons", [])
            ),
        )
    summary = {
        "date": str(ctx.date),
        "status": status,
        "next_action": action,
        "candidate_version": staging.version if staging else None,
        "production_version": production.version if production else None,
        "verdict": verdict,
        "promotion": record,
    }
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
