"""main: the pipeline over a range of trading days, every task a nested MLflow run.

    data_fetch → data_validate → feature_engineer      for every trading day of the range, then
    model_train → model_evaluate → model_deploy        once, on the last day (the gate: Staging)
    → generate_report                                  (reports/stakeholder_report.md, .html)

Tasks run in-process (a fresh interpreter per task costs seconds of imports each), in the order of
`main.tasks`. With `main.executor=local` (the default) every task runs in this one process, day
after day in date order, no child process at all; `main.executor=dask` runs the daily tasks as Dask
tasks instead (`pipeline.dask_executor`: a day's fetch and validate, which read nothing of other
days, run ahead on the cluster's workers while each day's features wait for the previous day's).
Every task run nests under main's run either way. Each task's checkpoint makes re-runs cheap: a step
whose inputs, upstream references and config are unchanged is reused; anything downstream of a
change runs again. A reused step gets no nested run of its own: main's run counts them
(`tasks_reused`) and lists them, with the runs whose outputs they reuse, in its artifact
`reused_tasks.json`. A PipelineError (schema change, too many bad rows, fetch failure) halts the
whole run with a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator

import mlflow
from omegaconf import DictConfig
from tqdm import tqdm

from pipeline import (
    dask_executor,
    data_fetch,
    data_validate,
    feature_engineer,
    generate_report,
    model_deploy,
    model_evaluate,
    model_train,
)
from pipeline.cli import set_console_level
from pipeline.config import to_container
from pipeline.errors import ConfigError
from pipeline.market.calendar import shift_trading_days, trading_days
from pipeline.runtime import (
    TaskOutcome,
    digest_memo,
    execute,
    fail_abandoned_runs,
    git_commit,
    log_params,
    parse_date,
    resolve_date,
    resolved,
    start_run,
)

log = logging.getLogger("pipeline.main")  # not __name__: that is "__main__" under python -m
DAILY = (data_fetch.SPEC, data_validate.SPEC, feature_engineer.SPEC)  # once per trading day
# once, on the last day; the report last: it reads what everything before it wrote
FINAL = (model_train.SPEC, model_evaluate.SPEC, model_deploy.SPEC, generate_report.SPEC)
SPECS = {spec.name: spec for spec in (*DAILY, *FINAL)}
REUSED_ARTIFACT = "reused_tasks.json"  # in main's run: what was reused, from which runs
# daily tasks that read only their own day's files: on Dask they may run ahead of the features
RUN_AHEAD = ("data_fetch", "data_validate")


def date_range(cfg: DictConfig) -> list[dt.date]:
    """Trading days from main.start_date (or `days` back from end_date) to main.end_date."""
    end = resolve_date(cfg.end_date, "main.end_date")
    if cfg.start_date is None:
        if cfg.days < 1:
            raise ConfigError(f"main.days={cfg.days}: need at least 1 trading day")
        start = shift_trading_days(end, -(cfg.days - 1))
    else:
        start = parse_date(cfg.start_date, "main.start_date")
    if start > end:
        raise ConfigError(
            f"invalid date range: main.start_date={start} is after main.end_date={end}"
        )
    days = trading_days(start, end)
    if not days:
        raise ConfigError(f"no trading days between {start} and {end}")
    return days


def run_pipeline(cfg: DictConfig) -> list[TaskOutcome]:
    """Run `main.tasks` for every day of the range under one parent MLflow run."""
    unknown = [t for t in cfg.main.tasks if t not in SPECS]
    if unknown:
        raise ConfigError(f"main.tasks has unknown tasks {unknown}; available: {list(SPECS)}")
    dask_executor.check(cfg.main)
    days = date_range(cfg.main)
    cfg = resolved(cfg)
    outcomes: list[TaskOutcome] = []
    started = time.perf_counter()
    tags = {"pipeline.task": "main", "git_commit": git_commit() or "unknown"}
    daily = [s for s in DAILY if s.name in cfg.main.tasks]
    final = [s for s in FINAL if s.name in cfg.main.tasks]
    with start_run(f"main {days[0]}..{days[-1]}", tags) as run, digest_memo():
        for abandoned in fail_abandoned_runs(run.info.experiment_id):
            log.warning(
                "run %s (%s) was left RUNNING by process %s, which is gone: marked FAILED",
                abandoned.info.run_id,
                abandoned.info.run_name,
                abandoned.data.tags["pipeline.pid"],
            )
        log_params(
            {
                "main": to_container(cfg.main) | {"start": str(days[0]), "end": str(days[-1])},
                "data_fetch.source": cfg.data_fetch.source,
                "data_format": cfg.data_format,
            }
        )
        progress = tqdm(
            daily_outcomes(cfg, days, daily), "main", len(days), unit="day", disable=None
        )
        for day, today in zip(days, progress, strict=True):
            outcomes += today
            log.info("%s: %s", day, ", ".join(f"{o.task} {o.status}" for o in today))
        for spec in final:
            outcome = execute(spec, cfg, days[-1], record_skip=False)
            outcomes.append(outcome)
            log.info("%s: %s %s", days[-1], spec.name, outcome.status)
        status = Counter(o.status for o in outcomes)
        mlflow.log_metrics(
            {
                "days": len(days),
                "tasks_succeeded": status["succeeded"],
                "tasks_reused": status["skipped"],
                "duration_s": time.perf_counter() - started,
            }
        )
        mlflow.log_dict(reused_record(outcomes), REUSED_ARTIFACT)
    return outcomes


def daily_outcomes(
    cfg: DictConfig, days: list[dt.date], daily: list
) -> Iterator[list[TaskOutcome]]:
    """Per day, in date order, the outcomes of the `daily` tasks. main.executor=local runs them
    here, one after the other: a failure surfaces at its day and nothing after it starts.
    main.executor=dask runs them on Dask instead (`pipeline.dask_executor`), the RUN_AHEAD tasks
    of a day apart from the ones that read the previous day's."""
    if cfg.main.executor == "dask":
        ahead = [s for s in daily if s.name in RUN_AHEAD]
        yield from dask_executor.daily_outcomes(
            cfg, days, ahead, [s for s in daily if s not in ahead]
        )
        return
    for day in days:
        yield [execute(spec, cfg, day, record_skip=False) for spec in daily]


def reused_record(outcomes: list[TaskOutcome]) -> list[dict[str, str]]:
    """The reused (skipped) tasks: task, date and the run whose outputs were reused. main logs
    it as its own artifact instead of a nested run per reused task-day."""
    return [
        {"task": o.task, "date": str(o.date), "reused_run_id": o.reused_run_id or ""}
        for o in outcomes
        if o.status == "skipped"
    ]


def main(cfg: DictConfig) -> None:
    set_console_level(logging.WARNING, keep=log.name)  # task detail: logs/<task>_YYYYMMDD.log
    outcomes = run_pipeline(cfg)
    status = Counter(o.status for o in outcomes)
    days = sorted({o.date for o in outcomes})
    print(
        f"main: {len(days)} trading days {days[0]}..{days[-1]}; tasks run {status['succeeded']}, "
        f"reused {status['skipped']}."
    )
    deploy = next((o for o in outcomes if o.task == "model_deploy"), None)
    if deploy is not None:
        print(next_steps(deploy))
    else:
        print("Browse the runs: make ui")


def next_steps(deploy: TaskOutcome) -> str:
    """What the user does now, from the deployment status model_deploy wrote."""
    status = json.loads(deploy.outputs[0].read_text())
    verdict = status.get("verdict") or {}
    lines = [
        f"Model: candidate v{status['candidate_version']} in Staging "
        f"(gate: {verdict.get('verdict', 'not evaluated')}); "
        f"Production: {'v' + str(status['production_version']) if status['production_version'] else 'none'}."
    ]
    for reason in verdict.get("reasons") or []:
        lines.append(f"  - {reason}")
    lines.append(f"Next: {status['next_action']}")
    lines.append(f"      {model_deploy.NEXT_STEPS}")
    return "\n".join(lines)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
