"""main: the pipeline over a range of trading days, every task a nested MLflow run.

Tasks run in-process (a subprocess per task costs seconds of start-up each), day by day, in the
order of `main.tasks`. Each task's checkpoint makes re-runs cheap: a day whose inputs and config
are unchanged is skipped; anything downstream of a change runs again. A PipelineError (schema
change, too many bad rows, fetch failure) halts the whole run with a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter

import mlflow
from omegaconf import DictConfig
from tqdm import tqdm

from pipeline import data_fetch, data_validate, feature_engineer
from pipeline.cli import set_console_level
from pipeline.config import to_container
from pipeline.errors import ConfigError
from pipeline.market.calendar import shift_trading_days, trading_days
from pipeline.runtime import (
    TaskOutcome,
    execute,
    git_commit,
    log_params,
    parse_date,
    resolve_date,
    start_run,
)

log = logging.getLogger("pipeline.main")  # not __name__: that is "__main__" under python -m
SPECS = {spec.name: spec for spec in (data_fetch.SPEC, data_validate.SPEC, feature_engineer.SPEC)}


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
        raise ConfigError(f"invalid date range: main.start_date={start} is after main.end_date={end}")
    days = trading_days(start, end)
    if not days:
        raise ConfigError(f"no trading days between {start} and {end}")
    return days


def run_pipeline(cfg: DictConfig) -> list[TaskOutcome]:
    """Run `main.tasks` for every day of the range under one parent MLflow run."""
    unknown = [t for t in cfg.main.tasks if t not in SPECS]
    if unknown:
        raise ConfigError(f"main.tasks has unknown tasks {unknown}; available: {list(SPECS)}")
    days = date_range(cfg.main)
    outcomes: list[TaskOutcome] = []
    started = time.perf_counter()
    tags = {"pipeline.task": "main", "git_commit": git_commit() or "unknown"}
    with start_run(f"main {days[0]}..{days[-1]}", tags):
        log_params({"main": to_container(cfg.main) | {"start": str(days[0]), "end": str(days[-1])},
                    "data_fetch.source": cfg.data_fetch.source, "data_format": cfg.data_format})
        for day in tqdm(days, desc="main", unit="day", disable=None):
            today = [execute(SPECS[task], cfg, day) for task in cfg.main.tasks]
            outcomes += today
            log.info("%s: %s", day, ", ".join(f"{o.task} {o.status}" for o in today))
        status = Counter(o.status for o in outcomes)
        mlflow.log_metrics({"days": len(days), "tasks_succeeded": status["succeeded"],
                            "tasks_skipped": status["skipped"], "duration_s": time.perf_counter() - started})
    return outcomes


def main(cfg: DictConfig) -> None:
    set_console_level(logging.WARNING, keep=log.name)  # task detail: logs/<task>_YYYYMMDD.log
    outcomes = run_pipeline(cfg)
    status = Counter(o.status for o in outcomes)
    days = sorted({o.date for o in outcomes})
    print(f"main: {len(days)} trading days {days[0]}..{days[-1]}; tasks run {status['succeeded']}, "
          f"reused {status['skipped']}. Browse the runs: make ui")


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
