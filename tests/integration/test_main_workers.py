"""main's days ahead in worker processes (main.workers): the same files as a run in one process,
every run nested under main's, and a failing day halts main at that day."""

from __future__ import annotations

import datetime as dt

import mlflow
import pytest

from pipeline import data_fetch
from pipeline.artifacts import Artifacts, file_digest, read_frame, write_frame
from pipeline.errors import DataError
from pipeline.main import run_pipeline
from pipeline.market.calendar import trading_days
from pipeline.runtime import configure_tracking, execute
from tests.conftest import TINY_MARKET, compose_config

pytestmark = pytest.mark.integration
DATA_TASKS = "main.tasks=[data_fetch,data_validate,feature_engineer]"
DAYS = trading_days(dt.date(2026, 3, 2), dt.date(2026, 3, 5))


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


def test_workers_write_what_one_process_writes_and_nest_their_runs(tmp_path, restore_tracking):
    results = {}
    for workers in (1, 2):
        root = tmp_path / f"workers{workers}"
        cfg = _cfg(root, f"main.workers={workers}")
        configure_tracking(cfg)
        outcomes = run_pipeline(cfg)
        assert [(o.task, o.date) for o in outcomes] == [
            (task, day)
            for day in DAYS
            for task in ("data_fetch", "data_validate", "feature_engineer")
        ]
        assert {o.status for o in outcomes} == {"succeeded"}
        runs = mlflow.search_runs(experiment_names=["options-pricing"], output_format="list")
        (main,) = [r for r in runs if r.data.tags["pipeline.task"] == "main"]
        tasks = [r for r in runs if r is not main]
        assert len(tasks) == 3 * len(DAYS)
        assert {r.data.tags["mlflow.parentRunId"] for r in tasks} == {main.info.run_id}
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert {r.data.tags["pipeline.status"] for r in tasks} == {"succeeded"}
        results[workers] = _data_files(root)
    assert results[1] and results[1] == results[2]


def test_a_failing_day_in_a_worker_halts_main_at_that_day(tmp_path, restore_tracking):
    # a file source holding every day's quotes but the second day's
    scratch = _cfg(tmp_path / "scratch")
    configure_tracking(scratch)
    external = tmp_path / "root" / "data" / "external"
    external.mkdir(parents=True)
    for day in DAYS:
        outcome = execute(data_fetch.SPEC, scratch, day)
        if day != DAYS[1]:
            write_frame(read_frame(outcome.outputs[0]), external / f"quotes_{day:%Y%m%d}.csv")
    cfg = _cfg(tmp_path / "root", "data_fetch=file", "main.workers=2", market=[])
    configure_tracking(cfg)

    with pytest.raises(DataError, match=f"quotes_{DAYS[1]:%Y%m%d}.csv"):
        run_pipeline(cfg)
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    assert artifacts.features(DAYS[0]).exists()
    assert not any(artifacts.features(day).exists() for day in DAYS[1:])
    runs = mlflow.search_runs(experiment_names=["options-pricing"], output_format="list")
    (main,) = [r for r in runs if r.data.tags["pipeline.task"] == "main"]
    failed = [r for r in runs if r.data.tags.get("pipeline.status") == "failed"]
    assert [(r.data.tags["pipeline.task"], r.data.tags["pipeline.date"]) for r in failed] == [
        ("data_fetch", str(DAYS[1]))
    ]
    assert failed[0].data.tags["mlflow.parentRunId"] == main.info.run_id
    assert main.info.status == "FAILED"
