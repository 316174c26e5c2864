"""The data tasks end to end on a tiny synthetic market, with a real sqlite MLflow store."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pipeline import data_fetch, data_validate, feature_engineer
from pipeline.artifacts import Artifacts, file_digest, read_frame, write_frame
from pipeline.config import REPO_ROOT
from pipeline.errors import SchemaChangeError
from pipeline.main import run_pipeline
from pipeline.runtime import execute
from tests.conftest import TINY_MARKET
from tests.helpers import run_module

pytestmark = pytest.mark.integration
DAY = "2026-03-02"


def _runs(uri: str) -> pd.DataFrame:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=["options-pricing"], output_format="pandas")
    finally:
        mlflow.set_tracking_uri(previous)


def test_one_day_through_every_task_logs_runs_and_writes_artifacts(make_cfg, tracking):
    cfg = make_cfg(f"date={DAY}")
    outcomes = [
        execute(spec, cfg) for spec in (data_fetch.SPEC, data_validate.SPEC, feature_engineer.SPEC)
    ]
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    a = Artifacts(cfg.paths, cfg.data_format)
    day = dt.date.fromisoformat(DAY)
    raw, valid, quarantine = (
        read_frame(p) for p in (a.raw_quotes(day), a.validated_quotes(day), a.quarantine(day))
    )
    feats = read_frame(a.features(day))
    assert set(raw["underlying"]) == {"SPY", "_SPX"} and len(raw) > 1000
    assert len(valid) + len(quarantine) == len(raw) and quarantine["reason"].str.len().gt(0).all()
    assert len(feats) == len(valid) and feats["iv"].notna().mean() > 0.95
    for task in ("data_fetch", "data_validate", "feature_engineer"):
        assert "start" in a.task_log(task, day).read_text()

    runs = _runs(tracking).set_index("tags.pipeline.task")
    assert set(runs.index) == {"data_fetch", "data_validate", "feature_engineer"}
    assert (runs["tags.pipeline.status"] == "succeeded").all()
    assert runs.loc["data_fetch", "metrics.rows_fetched"] == len(raw)
    assert runs.loc["data_validate", "metrics.rows_quarantined"] == len(quarantine)
    assert runs.loc["data_fetch", "params.data_fetch.synthetic.underlyings.0.symbol"] == "SPY"
    assert runs.loc["data_fetch", "params.retry.data_fetch.max_retries"] == "5"
    client = mlflow.MlflowClient(tracking)
    artifacts = {f.path for f in client.list_artifacts(runs.loc["data_validate", "run_id"])}
    assert {"data_validate_20260302.log", "validation_report_20260302.json"} <= artifacts


def test_second_run_is_skipped_and_force_reruns(make_cfg, tracking):
    cfg = make_cfg(f"date={DAY}")
    first = execute(data_fetch.SPEC, cfg)
    target = first.outputs[0]
    stamp = target.stat().st_mtime_ns
    second = execute(data_fetch.SPEC, cfg)
    assert (first.status, second.status) == ("succeeded", "skipped")
    assert target.stat().st_mtime_ns == stamp
    forced = execute(data_fetch.SPEC, make_cfg(f"date={DAY}", "data_fetch.force=true"))
    assert forced.status == "succeeded" and target.stat().st_mtime_ns != stamp
    # a config change is a different input: it re-runs without force
    changed = execute(
        data_fetch.SPEC, make_cfg(f"date={DAY}", "data_fetch.synthetic.bad_row_rate=0.05")
    )
    assert changed.status == "succeeded"
    runs = _runs(tracking)
    assert sorted(runs["tags.pipeline.status"]) == [
        "skipped",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    # a task run on its own records its skip as a run, naming the run it reused
    skipped = runs[runs["tags.pipeline.status"] == "skipped"].iloc[0]
    assert skipped["run_id"] == second.run_id
    assert skipped["tags.pipeline.reused_run_id"] == first.run_id == second.reused_run_id


def test_tampered_output_is_rebuilt(make_cfg, tracking):
    cfg = make_cfg(f"date={DAY}")
    target = execute(data_fetch.SPEC, cfg).outputs[0]
    target.write_bytes(b"garbage")
    assert execute(data_fetch.SPEC, cfg).status == "succeeded"
    assert len(read_frame(target)) > 0


def test_schema_change_halts_and_writes_nothing_downstream(make_cfg, tracking, tmp_path):
    cfg = make_cfg(f"date={DAY}")
    for spec in (data_fetch.SPEC, data_validate.SPEC, feature_engineer.SPEC):
        execute(spec, cfg)
    a = Artifacts(cfg.paths, cfg.data_format)
    day = dt.date.fromisoformat(DAY)
    downstream = [
        a.validated_quotes(day),
        a.quarantine(day),
        a.validation_report(day),
        a.features(day),
    ]
    before = {p: file_digest(p) for p in downstream}
    # upstream renames a column and retypes another
    raw = read_frame(a.raw_quotes(day)).rename(columns={"strike": "strike_price"})
    write_frame(raw.assign(bid=raw["bid"].astype(str)), a.raw_quotes(day))

    with pytest.raises(SchemaChangeError, match="strike"):
        execute(data_validate.SPEC, cfg)
    assert {p: file_digest(p) for p in downstream} == before

    result = run_module(
        "pipeline.data_validate", f"paths.root={tmp_path}", f"date={DAY}", *TINY_MARKET
    )
    assert result.returncode == 1
    assert (
        "schema change: missing columns ['strike']" in result.stderr
        and "strike_price" in result.stderr
    )
    assert {p: file_digest(p) for p in downstream} == before
    failed = _runs(tracking).query("`tags.pipeline.task` == 'data_validate'")[
        "tags.pipeline.status"
    ]
    assert "failed" in set(failed)


DATA_TASKS = "main.tasks=[data_fetch,data_validate,feature_engineer]"  # the model: test_main_dag


def test_main_reuses_unchanged_days_and_reruns_downstream_of_a_change(make_cfg, tracking):
    cfg = make_cfg("main.end_date=2026-03-04", "main.days=3", DATA_TASKS)
    first = run_pipeline(cfg)
    assert len(first) == 9 and {o.status for o in first} == {"succeeded"}
    again = run_pipeline(cfg)
    assert {o.status for o in again} == {"skipped"}
    # reused task-days get no MLflow run of their own: the second main run lists them instead,
    # with the runs whose outputs they reuse
    runs = _runs(tracking)
    assert (runs["tags.pipeline.task"] != "main").sum() == 9
    second = runs[runs["tags.pipeline.task"] == "main"].sort_values("start_time").iloc[-1]
    assert second["metrics.tasks_reused"] == 9 and second["metrics.tasks_succeeded"] == 0
    listed = mlflow.artifacts.load_dict(f"runs:/{second['run_id']}/reused_tasks.json")
    assert {(r["task"], r["date"]): r["reused_run_id"] for r in listed} == {
        (o.task, str(o.date)): o.run_id for o in first
    }
    assert all(o.run_id is None and o.reused_run_id for o in again)
    # change validation config: fetch is reused, validate and features run again
    changed = run_pipeline(
        make_cfg(
            "main.end_date=2026-03-04",
            "main.days=3",
            DATA_TASKS,
            "data_validate.arbitrage_tolerance=0.02",
        )
    )
    by_task = {
        t: {o.status for o in changed if o.task == t} for t in ("data_fetch", "data_validate")
    }
    assert by_task == {"data_fetch": {"skipped"}, "data_validate": {"succeeded"}}


def test_invalid_date_range_is_a_clear_error(tmp_path):
    result = run_module(
        "pipeline.main",
        f"paths.root={tmp_path}",
        "main.start_date=2026-03-10",
        "main.end_date=2026-03-02",
    )
    assert result.returncode == 2
    assert (
        "invalid date range: main.start_date=2026-03-10 is after main.end_date=2026-03-02"
        in result.stderr
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_mlflow_run_main_on_a_tiny_market(tmp_path):
    """`mlflow run . -e main --env-manager local` produces the files and one MLflow run per task."""
    import subprocess

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = " ".join(
        [
            f"paths.root={tmp_path}",
            "main.end_date=2026-03-04",
            "main.days=2",
            DATA_TASKS,
            *TINY_MARKET,
        ]
    )
    # the experiment with its artifacts in tmp_path: left to `mlflow run`, they would land in
    # ./mlruns of the working directory (the repository)
    mlflow.MlflowClient(uri).create_experiment(
        "options-pricing", (tmp_path / "mlartifacts").as_uri()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            ".",
            "-e",
            "main",
            "--env-manager",
            "local",
            "--experiment-name",
            "options-pricing",
            "-P",
            f"overrides={overrides}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for day in ("20260303", "20260304"):
        for path in (
            f"data/raw/options_data_{day}.parquet",
            f"data/processed/validated_data_{day}.parquet",
            f"data/processed/features_{day}.parquet",
            f"logs/feature_engineer_{day}.log",
        ):
            assert (tmp_path / path).exists(), path
    runs = _runs(uri)
    parent = runs[runs["tags.pipeline.task"] == "main"]
    assert len(parent) == 1 and parent["status"].item() == "FINISHED"
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].item()]
    assert sorted(children["tags.pipeline.task"]) == sorted(
        ["data_fetch", "data_validate", "feature_engineer"] * 2
    )
    assert (children["status"] == "FINISHED").all()
