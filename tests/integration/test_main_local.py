"""main's local executor (main.executor=local): every daily task in main's own process, one after
the other in date order, every run nested under main's; a re-run reuses every step, and a failing
day halts main at that day, before any later day starts."""

from __future__ import annotations

import datetime as dt
import os

import mlflow
import pytest

from pipeline import data_fetch
from pipeline.artifacts import Artifacts, file_digest, read_frame, write_frame
from pipeline.errors import DataError
from pipeline.main import run_pipeline
from pipeline.market.calendar import trading_days
from pipeline.runtime import PID_TAG, configure_tracking, execute
from tests.conftest import TINY_MARKET, compose_config

pytestmark = pytest.mark.integration
DATA_TASKS = "main.tasks=[data_fetch,data_validate,feature_engineer]"
DAYS = trading_days(dt.date(2026, 3, 2), dt.date(2026, 3, 5))
ORDER = [
    (task, day) for day in DAYS for task in ("data_fetch", "data_validate", "feature_engineer")
]


def _cfg(root, *overrides, market=TINY_MARKET):
    return compose_config(
        [f"paths.root={root}", *market, DATA_TASKS, f"main.end_date={DAYS[-1]}",
         f"main.days={len(DAYS)}", *overrides]
    )  # fmt: skip


def _data_files(root) -> dict[str, str]:
    """Digests of the data files (not the checkpoints: they hold run ids and times)."""
    return {
        str(p.relative_to(root)): file_digest(p)
        for p in sorted((root / "data").rglob("*"))
        if p.is_file() and p.parent.name != "checkpoints"
    }


def _runs() -> list:
    return mlflow.search_runs(experiment_names=["options-pricing"], output_format="list")


def test_local_runs_every_task_here_in_date_order_and_nests_its_runs(tmp_path, restore_tracking):
    cfg = _cfg(tmp_path / "root", "main.workers=2")  # a Dask setting: the local executor ignores it
    assert cfg.main.executor == "local"
    configure_tracking(cfg)

    outcomes = run_pipeline(cfg)

    assert [(o.task, o.date) for o in outcomes] == ORDER
    assert {o.status for o in outcomes} == {"succeeded"}
    runs = _runs()
    (main,) = [r for r in runs if r.data.tags["pipeline.task"] == "main"]
    tasks = {
        (r.data.tags["pipeline.task"], dt.date.fromisoformat(r.data.tags["pipeline.date"])): r
        for r in runs
        if r is not main
    }
    assert sorted(tasks) == sorted(ORDER)
    assert {r.data.tags["mlflow.parentRunId"] for r in tasks.values()} == {main.info.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    # all in this process, one at a time: each run ended before the next one started
    assert {r.data.tags[PID_TAG] for r in runs} == {str(os.getpid())}
    in_order = [tasks[key] for key in ORDER]
    for run, after in zip(in_order, in_order[1:], strict=False):
        assert run.info.end_time <= after.info.start_time, (run.info.run_name, after.info.run_name)
    assert _data_files(tmp_path / "root")

    again = run_pipeline(cfg)  # a re-run reuses every step
    assert [(o.task, o.date, o.status) for o in again] == [(*key, "skipped") for key in ORDER]


def _second_day_missing(tmp_path, *overrides):
    """A config of main over DAYS whose file source holds every day's quotes but the second
    day's (written from a scratch run of the tiny market)."""
    scratch = _cfg(tmp_path / "scratch")
    configure_tracking(scratch)
    external = tmp_path / "root" / "data" / "external"
    external.mkdir(parents=True)
    for day in DAYS:
        outcome = execute(data_fetch.SPEC, scratch, day)
        if day != DAYS[1]:
            write_frame(read_frame(outcome.outputs[0]), external / f"quotes_{day:%Y%m%d}.csv")
    return _cfg(tmp_path / "root", "data_fetch=file", *overrides, market=[])


def test_a_failing_day_halts_main_at_that_day(tmp_path, restore_tracking):
    cfg = _second_day_missing(tmp_path)
    configure_tracking(cfg)

    with pytest.raises(DataError, match=f"quotes_{DAYS[1]:%Y%m%d}.csv"):
        run_pipeline(cfg)
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    assert artifacts.features(DAYS[0]).exists()
    assert not any(artifacts.features(day).exists() for day in DAYS[1:])
    runs = _runs()
    (main,) = [r for r in runs if r.data.tags["pipeline.task"] == "main"]
    tasks = [r for r in runs if r is not main]
    # the first day's three tasks, then the failed fetch: no later day started
    assert sorted((r.data.tags["pipeline.task"], r.data.tags["pipeline.date"]) for r in tasks) == (
        sorted([*((task, str(day)) for task, day in ORDER[:3]), ("data_fetch", str(DAYS[1]))])
    )
    failed = [r for r in tasks if r.data.tags.get("pipeline.status") == "failed"]
    assert [(r.data.tags["pipeline.task"], r.data.tags["pipeline.date"]) for r in failed] == [
        ("data_fetch", str(DAYS[1]))
    ]
    assert failed[0].data.tags["mlflow.parentRunId"] == main.info.run_id
    assert main.info.status == "FAILED"
