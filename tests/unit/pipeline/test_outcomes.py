"""The task outcome records: appended whole, read back, turned into each task-day's outcome; and
written by the real runtime (MLflow on sqlite in tmp_path) for a task that fails."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pytest

from pipeline import data_fetch, data_validate
from pipeline.artifacts import Artifacts
from pipeline.errors import DataError, PipelineError
from pipeline.generate_report import md_path, write_report
from pipeline.outcomes import (
    OutcomeRecord,
    append_outcome,
    outcomes_path,
    read_outcomes,
    task_statuses,
)
from pipeline.runtime import execute

AT = "2026-03-03T18:00:00+00:00"
DAY = dt.date(2026, 3, 3)


def _record(status: str, run_id: str = "r1", task: str = "t", date: str = "2026-03-03"):
    return OutcomeRecord(task, date, status, run_id, AT, 0.5 if status != "running" else None,
                         1 if status != "running" else None,
                         "boom" if status == "failed" else None)  # fmt: skip


def test_records_round_trip_one_line_each(tmp_path):
    path = tmp_path / "logs" / "task_outcomes.jsonl"
    records = [_record("running"), _record("failed")]
    for r in records:
        append_outcome(path, r)
    assert read_outcomes(path) == records
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["error"] == "boom"
    assert read_outcomes(tmp_path / "none.jsonl") == []


def _append_many(path, worker: int) -> None:
    for i in range(200):  # task names long enough that a torn write would show
        append_outcome(path, _record("succeeded", f"w{worker}-{i}", task="t" * 300))


@pytest.mark.integration  # four writer processes
def test_parallel_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "task_outcomes.jsonl"
    procs = [multiprocessing.Process(target=_append_many, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(read_outcomes(path)) == 800  # every line whole: each parses


def test_a_torn_last_line_is_ignored_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / "task_outcomes.jsonl"
    append_outcome(path, _record("succeeded"))
    with path.open("a") as fh:
        fh.write('{"task": "t", "da')  # a writer killed mid-write
    assert read_outcomes(path) == [_record("succeeded")]
    with path.open("a") as fh:
        fh.write("\n")  # now a whole line that is not a record
    with pytest.raises(DataError, match=r"task_outcomes.jsonl:2: not a task outcome record"):
        read_outcomes(path)


def test_an_unknown_status_or_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="status 'done'"):
        _record("done")
    path = tmp_path / "task_outcomes.jsonl"
    line = {"task": "t", "date": "2026-03-03", "status": "failed", "run_id": "r", "at": AT,
            "colour": "red"}  # fmt: skip
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=r":1: .*unknown keys \['colour'\]"):
        read_outcomes(path)


def test_statuses_keep_the_latest_real_outcome_of_each_task_day():
    records = [
        _record("running", "r1"), _record("failed", "r1"),  # day 3: failed, then...
        _record("running", "r2"), _record("succeeded", "r2"),  # ...succeeded
        _record("running", "r3"), _record("skipped", "r3"),  # a reuse: not an outcome
        _record("running", "r4", date="2026-03-04"),  # never ended: killed
        _record("running", "r5", date="2026-03-05"), _record("failed", "r5", date="2026-03-05"),
        _record("running", "r6", task="generate_report"), _record("failed", "r6", task="generate_report"),
    ]  # fmt: skip
    statuses = task_statuses(records, until="2026-03-04", exclude=("generate_report",))
    assert statuses == {
        "t": {
            "2026-03-03": {"status": "succeeded", "attempts": 2},
            "2026-03-04": {"status": "incomplete", "attempts": 1},
        }
    }
    assert task_statuses(records[:6]) == task_statuses(records[:4])  # reuses change nothing


@pytest.mark.slow  # a tracking store and three task runs: ~15 s
def test_the_runtime_records_a_failed_task_with_its_error_and_the_report_shows_it(
    make_cfg, tracking
):
    cfg = make_cfg(f"data_fetch.date={DAY}")
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    fetched = execute(data_fetch.SPEC, cfg, DAY)
    with pytest.raises(PipelineError):
        execute(data_validate.SPEC, cfg, DAY - dt.timedelta(days=1))  # no raw quotes that day
    assert execute(data_fetch.SPEC, cfg, DAY).status == "skipped"

    records = read_outcomes(outcomes_path(artifacts.logs_dir))
    assert [(r.task, r.status) for r in records] == [
        ("data_fetch", "running"), ("data_fetch", "succeeded"),
        ("data_validate", "running"), ("data_validate", "failed"),
        ("data_fetch", "running"), ("data_fetch", "skipped"),
    ]  # fmt: skip
    ok, failed = records[1], records[3]
    assert ok.run_id == fetched.run_id and ok.attempts == 1 and ok.duration_s > 0
    assert ok.error is None and failed.date == "2026-03-02" and failed.run_id == records[2].run_id
    assert "raw" in failed.error and failed.attempts == 1  # DataError: not retried

    write_report(artifacts, DAY, None, "Report", 60)
    md = md_path(artifacts).read_text()
    assert "| data_validate | 1 | 0 | 1 | 0 | 2026-03-02 | failed |" in md
    assert "| data_fetch | 1 | 1 | 0 | 0 | 2026-03-03 | succeeded |" in md
    assert "re-run data_validate for 2026-03-02 (latest attempt failed" in md
