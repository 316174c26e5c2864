"""The record of task outcomes: one JSON line per task run, appended by the runtime.

`logs/task_outcomes.jsonl` (under paths.logs) gets a `running` line when a task's MLflow run
starts and its final line when it ends: succeeded, failed (with the error) or skipped (its
checkpointed outputs reused), with the run id, the body's duration and how many attempts its
retry policy made. The stakeholder report reads it (`task_statuses`) instead of parsing log
text: a task-day's outcome is its latest run's; a reuse is not an outcome (the day keeps the one
that produced the outputs); a run whose last line is `running` never ended (killed): incomplete.

Appends are atomic: each record is one `write` of one line on a file opened with O_APPEND, under
an exclusive lock, so parallel task processes never interleave. A process killed in the middle
of a write leaves at most a last line without its newline, which readers ignore.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.errors import DataError

FILE_NAME = "task_outcomes.jsonl"
STATUSES = ("running", "succeeded", "failed", "skipped")
ERROR_CHARS = 2000  # an error's first characters: enough to say what broke


@dataclass(frozen=True)
class OutcomeRecord:
    """One line of the outcomes log."""

    task: str
    date: str  # the business date, YYYY-MM-DD
    status: str  # STATUSES
    run_id: str | None
    at: str  # when the line was written (UTC, ISO seconds)
    duration_s: float | None = None  # the task body's, when it ran
    attempts: int | None = None  # calls of the body its retry policy made (0: it never ran)
    error: str | None = None  # failed: what it raised

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")


def outcomes_path(logs_dir: Path) -> Path:
    return Path(logs_dir) / FILE_NAME


def append_outcome(path: Path, record: OutcomeRecord) -> None:
    """Append `record` as one line (one write, O_APPEND, exclusive lock)."""
    line = (json.dumps(asdict(record), sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:  # a regular file takes it in one write; a short write is finished here
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)  # releases the lock


def read_outcomes(path: Path) -> list[OutcomeRecord]:
    """Every record of `path`, oldest first ([] without the file). A last line without its
    newline (a writer killed mid-write) is left out; any other line that is not a record is a
    DataError naming the file, the line and the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    names = {f.name for f in fields(OutcomeRecord)}
    records = []
    for number, line in enumerate(lines[:-1], 1):  # lines[-1]: "" or an unfinished line
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            unknown = set(raw) - names
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            records.append(OutcomeRecord(**raw))
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}:{number}: not a task outcome record: {exc}") from None
    return records


def task_statuses(records: list[OutcomeRecord], until: str | None = None,
                  exclude: tuple[str, ...] = ()) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """{task: {date: {status, attempts}}}: each task-day's latest outcome (succeeded, failed, or
    incomplete when its latest run never ended) and how many runs really ran its body. Skipped
    runs change nothing; dates after `until` and tasks in `exclude` are left out."""
    ended = {r.run_id for r in records if r.status != "running" and r.run_id}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r.status == "skipped" or r.task in exclude or (until and r.date > until):
            continue
        day = out.setdefault(r.task, {}).get(r.date, {"status": None, "attempts": 0})
        if r.status == "running":
            if r.run_id in ended:
                continue  # its end line follows
            day = {"status": "incomplete", "attempts": day["attempts"] + 1}
        else:
            day = {"status": r.status, "attempts": day["attempts"] + 1}
        out[r.task][r.date] = day
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextmanager
def recorded(ctx: Any, run_id: str | None) -> Iterator[None]:
    """Around a task's run: a `running` line now and the final one on the way out. `ctx` is the
    runtime's TaskContext (task, date, artifacts.logs_dir, and the tags and metrics its run
    logs): the status is failed when an exception passes through (it propagates), else the
    `pipeline.status` tag (skipped, succeeded); duration_s and task_retries are its metrics."""
    path = outcomes_path(ctx.artifacts.logs_dir)
    append_outcome(path, OutcomeRecord(ctx.task, str(ctx.date), "running", run_id, _now()))
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        status = "failed" if failure else ctx.tags.get("pipeline.status", "succeeded")
        ran = "duration_s" in ctx.metrics
        append_outcome(path, OutcomeRecord(
            ctx.task, str(ctx.date), status, run_id, _now(),
            duration_s=ctx.metrics.get("duration_s"),
            attempts=int(ctx.metrics.get("task_retries", 0)) + 1 if ran else 0,
            error=(str(failure) or type(failure).__name__)[:ERROR_CHARS] if failure else None,
        ))  # fmt: skip
