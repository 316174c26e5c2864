"""The daily flow for one business date: what the scheduler runs after each close.

    data_fetch → data_validate → feature_engineer → monitor (→ model_train → model_evaluate
    on a retrain trigger; monitor runs them itself) → generate_report

Every task runs through `pipeline.runtime.execute` (nested under one MLflow run `daily <date>`),
so a day run twice reuses what it already did (checkpoints). Only trading days have a flow: any
other day logs "no session" and returns. A failed task marks the day failed with the task and the
reason; what depends on it does not run (`not_run`), and the caller carries on with the next day
(a replay of several days is not stopped by one bad day). The data tasks form a chain; monitor
and the report need the day's features; the report runs whatever monitor's outcome (it says so).
monitor without a Production model is skipped, not failed; so is the report while
`pipeline.generate_report` does not exist.

`run_days(cfg, days)` runs the flow for each day in order and records each outcome: one line in
`schedule.log_file` (date, status, per-task status, duration), one JSON line in
`schedule.runs_file`, and the newest successful day in `schedule.state_file` (what the
scheduler's catch-up starts from).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
from omegaconf import DictConfig, open_dict

from pipeline.artifacts import write_json
from pipeline.market.calendar import is_trading_day
from pipeline.runtime import LOG_FORMAT, digest_memo, execute, git_commit, resolved, start_run

log = logging.getLogger("monitoring.daily")
DATA_TASKS = ("data_fetch", "data_validate", "feature_engineer")
TASKS = (*DATA_TASKS, "monitor", "generate_report")
REPORT_MODULE = "pipeline.generate_report"


@dataclass
class TaskResult:
    task: str
    # succeeded | reused (checkpoint unchanged) | skipped (nothing to do) | failed | not_run
    status: str
    duration_s: float = 0.0
    reason: str | None = None  # failed: the error; skipped / not_run: why
    run_id: str | None = None


@dataclass
class DayResult:
    date: dt.date
    status: str  # succeeded | failed | no_session
    tasks: list[TaskResult] = field(default_factory=list)
    duration_s: float = 0.0
    failed_task: str | None = None
    reason: str | None = None
    started_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict:
        out = asdict(self)
        out["date"] = str(self.date)
        out["duration_s"] = round(self.duration_s, 3)
        for task in out["tasks"]:
            task["duration_s"] = round(task["duration_s"], 3)
        return out

    def line(self) -> str:
        """The one-line outcome: date, status, per-task status, duration (and the failure)."""
        tasks = ", ".join(f"{t.task} {t.status}" for t in self.tasks) or "-"
        text = f"daily {self.date}: {self.status.upper()} in {self.duration_s:.1f}s [{tasks}]"
        if self.failed_task:
            text += f"; {self.failed_task} failed: {self.reason}"
        elif self.status == "no_session":
            text += f"; {self.reason}"
        return text


def one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _for_day(cfg: DictConfig) -> DictConfig:
    """`cfg` with every `date` key unset (the flow passes its day to each task), resolved once:
    a task's checkpoint then does not depend on how the day was chosen (the `date` keys are part
    of a task's params), so a day `main` already did is reused."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.date = None
        for key in list(cfg.keys()):
            node = cfg[key]
            if isinstance(node, DictConfig) and "date" in node:
                node.date = None
    return resolved(cfg)


def _report_spec(cfg: DictConfig):
    """generate_report's TaskSpec, or (None, why) while the task does not exist yet."""
    try:
        module = importlib.import_module(REPORT_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != REPORT_MODULE:
            raise
        return None, f"{REPORT_MODULE} is not available"
    if getattr(module, "SPEC", None) is None or "generate_report" not in cfg:
        return None, f"{REPORT_MODULE} has no SPEC or no `generate_report` config"
    return module.SPEC, None


def _monitor_skip_reason(cfg: DictConfig) -> str | None:
    from pipeline import monitor

    if monitor._production(cfg) is None:
        return f"no '{cfg.registry.model_name}' version in Production: nothing to monitor"
    return None


def _specs() -> dict:
    from pipeline import data_fetch, data_validate, feature_engineer, monitor

    return {s.name: s for s in (data_fetch.SPEC, data_validate.SPEC, feature_engineer.SPEC,
                                monitor.SPEC)}  # fmt: skip


def daily_flow(cfg: DictConfig, date: dt.date) -> DayResult:
    """Run the day's tasks for `date`; never raises for a task's failure (the result says it)."""
    started, wall = time.perf_counter(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if not is_trading_day(date):
        reason = f"no session on {date} ({date:%A} or an NYSE holiday): nothing to run"
        log.info("daily %s: %s", date, reason)
        return DayResult(date, "no_session", reason=reason, started_at=wall)
    cfg = _for_day(cfg)
    specs = _specs()
    result = DayResult(date, "succeeded", started_at=wall)
    tags = {"pipeline.task": "daily", "pipeline.date": str(date), "git_commit": git_commit() or "unknown"}  # fmt: skip
    with start_run(f"daily {date}", tags), digest_memo():
        for task in TASKS:
            result.tasks.append(_run_task(task, cfg, date, specs, result))
        result.duration_s = time.perf_counter() - started
        mlflow.set_tag("pipeline.status", result.status)
        if result.failed_task:
            mlflow.set_tags({"pipeline.failed_task": result.failed_task,
                             "pipeline.error": (result.reason or "")[:5000]})  # fmt: skip
        mlflow.log_metric("duration_s", result.duration_s)
        mlflow.log_dict(result.to_json(), "daily_result.json")
    return result


def _run_task(task: str, cfg: DictConfig, date: dt.date, specs: dict, day: DayResult) -> TaskResult:
    """One task of the day: run, reuse, skip or (after an upstream failure) not run."""
    failed = {t.task for t in day.tasks if t.status in ("failed", "not_run")}
    if failed & set(DATA_TASKS):  # everything needs the day's features
        return TaskResult(task, "not_run", reason=f"{day.failed_task} failed")
    started = time.perf_counter()
    try:
        if task == "generate_report":
            spec, why = _report_spec(cfg)
        else:
            spec = specs[task]
            why = _monitor_skip_reason(cfg) if task == "monitor" else None
        if spec is None or why:
            log.info("daily %s: %s skipped: %s", date, task, why)
            return TaskResult(task, "skipped", reason=why)
        outcome = execute(spec, cfg, date, record_skip=False)
    except Exception as exc:  # noqa: BLE001 - any failure of a task fails the day, not the loop
        reason = one_line(exc)
        log.error("daily %s: %s failed: %s", date, task, reason)
        if day.failed_task is None:
            day.status, day.failed_task, day.reason = "failed", task, reason
        return TaskResult(task, "failed", time.perf_counter() - started, reason)
    status = "reused" if outcome.status == "skipped" else outcome.status
    return TaskResult(task, status, time.perf_counter() - started,
                      run_id=outcome.run_id or outcome.reused_run_id)  # fmt: skip


# -- records -------------------------------------------------------------------------------------
def last_success(cfg: DictConfig) -> dt.date | None:
    """The newest day whose flow succeeded (schedule.state_file), None if none is recorded."""
    path = Path(cfg.schedule.state_file)
    try:
        return dt.date.fromisoformat(json.loads(path.read_text())["last_success"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record(cfg: DictConfig, result: DayResult) -> None:
    """The outcome: one log line, one line of runs.jsonl, and the state file on a success."""
    (log.info if result.ok else log.error)("%s", result.line())
    runs = Path(cfg.schedule.runs_file)
    runs.parent.mkdir(parents=True, exist_ok=True)
    with runs.open("a") as fh:  # one short line per append: O_APPEND keeps lines whole
        fh.write(json.dumps(result.to_json()) + "\n")
    if result.status == "succeeded":
        previous = last_success(cfg)
        if previous is None or result.date > previous:
            write_json(
                {"last_success": str(result.date),
                 "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
                Path(cfg.schedule.state_file),
            )  # fmt: skip


def attach_log(path: str | Path) -> logging.FileHandler | None:
    """A file handler for `path` on the `monitoring` logger, unless one is there already."""
    path = Path(path).absolute()
    logger = logging.getLogger("monitoring")
    if any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    return handler


@contextmanager
def schedule_log(cfg: DictConfig) -> Iterator[None]:
    """`monitoring` logs at INFO into schedule.log_file for the duration of the block."""
    logger = logging.getLogger("monitoring")
    handler, level = attach_log(cfg.schedule.log_file), logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


def run_days(cfg: DictConfig, days: list[dt.date]) -> list[DayResult]:
    """The flow for each day in order, each recorded; a failed day does not stop the next."""
    results = []
    with schedule_log(cfg):
        for day in days:
            result = daily_flow(cfg, day)
            record(cfg, result)
            results.append(result)
    return results
