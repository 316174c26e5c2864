"""main: the pipeline over a range of trading days, every task a nested MLflow run.

    data_fetch → data_validate → feature_engineer      for every trading day of the range, then
    model_train → model_evaluate → model_deploy        once, on the last day (the gate: Staging)
    → generate_report                                  (reports/stakeholder_report.md, .html)

Tasks run in-process (a fresh interpreter per task costs seconds of imports each), in the order
of `main.tasks`, except that a day's fetch and validate, which read nothing of other days, run
ahead on `main.workers` forked processes while this one builds each day's features in date order
(features read the previous day's); `main.executor=dask` runs the daily tasks as Dask tasks
instead (`pipeline.dask_executor`). Every run is nested under main's run either way. Each task's checkpoint makes re-runs cheap: a step whose inputs, upstream references
and config are unchanged is reused; anything downstream of a change runs again. A reused step gets
no nested run of its own: main's run counts them (`tasks_reused`) and lists them, with the runs
whose outputs they reuse, in its artifact `reused_tasks.json`. A PipelineError (schema change,
too many bad rows, fetch failure) halts the whole run with a non-zero exit.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

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
    nested_under,
    parse_date,
    resolve_date,
    resolved,
    reusable,
    start_run,
)

log = logging.getLogger("pipeline.main")  # not __name__: that is "__main__" under python -m
DAILY = (data_fetch.SPEC, data_validate.SPEC, feature_engineer.SPEC)  # once per trading day
# once, on the last day; the report last: it reads what everything before it wrote
FINAL = (model_train.SPEC, model_evaluate.SPEC, model_deploy.SPEC, generate_report.SPEC)
SPECS = {spec.name: spec for spec in (*DAILY, *FINAL)}
REUSED_ARTIFACT = "reused_tasks.json"  # in main's run: what was reused, from which runs
# daily tasks that read only their own day's files: they may run ahead, in worker processes
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
    """Per day, in date order, the outcomes of the `daily` tasks. With main.workers > 1, the
    RUN_AHEAD tasks of days with work to do go to forked worker processes at once; the other
    tasks (features: they read the previous day's) run here, each day once its own fetch and
    validate are done. A failure surfaces at its day, as in a sequential run; the days not yet
    started are cancelled (ones already running finish, and are reused by the next run).
    With main.executor=dask, every daily task runs on Dask instead (`pipeline.dask_executor`)."""
    ahead = [s for s in daily if s.name in RUN_AHEAD]
    here = [s for s in daily if s not in ahead]
    if cfg.main.executor == "dask":
        yield from dask_executor.daily_outcomes(cfg, days, ahead, here)
        return

    def in_process(day: dt.date, specs: list) -> list[TaskOutcome]:
        return [execute(spec, cfg, day, record_skip=False) for spec in specs]

    todo = [d for d in days if not all(reusable(s, cfg, d) for s in ahead)] if ahead else []
    if cfg.main.workers <= 1 or len(todo) < 2:
        for day in days:
            yield in_process(day, daily)
        return
    with _worker_pool(min(cfg.main.workers, len(todo)), cfg) as pool:
        names = [s.name for s in ahead]
        futures = {day: pool.submit(_run_ahead, names, day) for day in todo}
        for day in days:
            first = futures[day].result() if day in futures else in_process(day, ahead)
            yield first + in_process(day, here)


_WORKER: tuple[DictConfig, str] | None = None  # in a worker process: config, main's run id
PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>


@contextmanager
def _worker_pool(workers: int, cfg: DictConfig) -> Iterator[ProcessPoolExecutor]:
    """Forked workers: no second start-up (imports alone take seconds). Their task runs nest
    under main's run, as the ones run here do. They die with this process (`_die_with_parent`)."""
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(cfg, mlflow.active_run().info.run_id, os.getpid()),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(cfg: DictConfig, parent_run_id: str, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    global _WORKER
    _WORKER = cfg, parent_run_id
    # SQLite connections must not cross a fork: the worker's tracking store gets a new, empty
    # connection pool (the parent's connections stay open, and the parent's alone)
    from mlflow.tracking._tracking_service.utils import _get_store

    engine = getattr(_get_store(), "engine", None)
    if engine is not None:
        engine.dispose(close=False)


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, have the kernel SIGKILL this worker when main dies. A killed main cleans nothing
    up, and its workers would wait on the task queue forever. The parent may have died before
    the request: then this worker has a new parent already, and exits now.

    The kernel watches the thread that forked the worker: the pool forks its workers from the
    thread that submits to it, the one iterating `daily_outcomes`, alive while the pool is."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        os._exit(1)


def _run_ahead(names: list[str], day: dt.date) -> list[TaskOutcome]:
    assert _WORKER is not None, "runs in a worker started by _worker_pool"
    cfg, parent_run_id = _WORKER
    with digest_memo(), nested_under(parent_run_id):
        return [execute(SPECS[name], cfg, day, record_skip=False) for name in names]


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
