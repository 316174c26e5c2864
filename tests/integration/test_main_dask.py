"""main.executor=dask on a real LocalCluster (2 worker processes, 1 thread each): the same files
as the local executor, every run nested under main's, feature_engineer by shards of underlyings
giving the local path's feature frames and states exactly and reusing checkpoints as it does,
workers that allocate memory as main's process does, a failing day halts main at that day, and a
SIGKILLed main leaves no Dask worker running."""

from __future__ import annotations

import os
import signal

import mlflow
import pandas as pd
import pytest

from pipeline.artifacts import Artifacts, read_frame
from pipeline.dask_executor import client_for
from pipeline.errors import DataError
from pipeline.main import run_pipeline
from pipeline.market_state import MarketState
from pipeline.runtime import PID_TAG, configure_tracking
from tests.conftest import compose_config
from tests.integration.test_main_killed import (
    TIMEOUT_S,
    _fetching,
    _main,
    children,
    gone,
    silent_cboe,  # noqa: F401 (a fixture)
    wait_until,
)
from tests.integration.test_main_local import DAYS, _cfg, _data_files, _second_day_missing
from tests.unit.pipeline.test_feature_shards import assert_same_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DASK = ("main.executor=dask", "main.workers=2")
# five underlyings of the synthetic market, short-dated: two shards of 3 and 2
FIVE = ["data_fetch.symbols=[SPY,QQQ,IWM,_SPX,_RUT]", "data_fetch.synthetic.max_expiry_years=0.5",
        "data_fetch.synthetic.strike_std_devs=2.5"]  # fmt: skip


def _run(cfg):
    configure_tracking(cfg)
    outcomes = run_pipeline(cfg)
    runs = mlflow.search_runs(experiment_names=["options-pricing"], output_format="list")
    return outcomes, runs


def test_dask_writes_what_the_local_executor_writes(tmp_path, restore_tracking):
    local_cfg, dask_cfg = _cfg(tmp_path / "local", "main.workers=1"), _cfg(tmp_path / "dask", *DASK)
    local, _ = _run(local_cfg)
    outcomes, runs = _run(dask_cfg)

    assert [(o.task, o.date, o.status) for o in outcomes] == [
        (o.task, o.date, o.status) for o in local
    ]
    (main,) = [r for r in runs if r.data.tags["pipeline.task"] == "main"]
    tasks = [r for r in runs if r is not main]
    assert len(tasks) == 3 * len(DAYS)
    assert {r.data.tags["mlflow.parentRunId"] for r in tasks} == {main.info.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    # the tasks ran in the Dask workers, not in main's process
    assert os.getpid() not in {int(r.data.tags[PID_TAG]) for r in tasks}
    assert main.data.params["main.executor"] == "dask"
    files = _data_files(tmp_path / "dask")
    assert files and files == _data_files(tmp_path / "local")
    for day in DAYS:  # the feature frames themselves, not only their bytes
        local_frame, dask_frame = (
            read_frame(Artifacts(c.paths, c.data_format).features(day))
            for c in (local_cfg, dask_cfg)
        )
        pd.testing.assert_frame_equal(dask_frame, local_frame, check_exact=True)

    again, _ = _run(dask_cfg)  # a re-run reuses every step
    assert {o.status for o in again} == {"skipped"}


def _feature_runs(runs) -> dict:
    return {r.data.tags["pipeline.date"]: r for r in runs
            if r.data.tags["pipeline.task"] == "feature_engineer"}  # fmt: skip


def test_features_by_shards_on_dask_are_the_local_paths_exactly(tmp_path, restore_tracking):
    local_cfg = _cfg(tmp_path / "local", market=FIVE)
    dask_cfg = _cfg(tmp_path / "dask", *DASK, "main.shards=2", market=FIVE)
    _, local_runs = _run(local_cfg)
    outcomes, runs = _run(dask_cfg)  # each root has its own MLflow store

    local, dask = (Artifacts(c.paths, c.data_format) for c in (local_cfg, dask_cfg))
    assert _data_files(tmp_path / "dask") == _data_files(tmp_path / "local")
    local_fe, dask_fe = _feature_runs(local_runs), _feature_runs(runs)
    for day in DAYS:
        pd.testing.assert_frame_equal(
            read_frame(dask.features(day)), read_frame(local.features(day)), check_exact=True
        )
        assert_same_state(
            MarketState.load(dask.market_state(day)), MarketState.load(local.market_state(day))
        )
        # built by the shards, published as feature_engineer with the same params and figures
        log = dask.task_log("feature_engineer", day).read_text()
        assert "features and state computed by 2 shards" in log
        got, want = dask_fe[str(day)].data, local_fe[str(day)].data
        assert got.params == want.params
        del got.metrics["duration_s"], want.metrics["duration_s"]
        assert got.metrics == pytest.approx(want.metrics, rel=0, abs=0, nan_ok=True)
    assert {o.status for o in outcomes} == {"succeeded"}

    again, _ = _run(dask_cfg)  # a re-run reuses every day, as the local path does
    assert {o.status for o in again} == {"skipped"}
    # one day's features lost: that day runs again; the next one, whose inputs come back
    # byte for byte, is reused (computed ahead by its shards, then dropped at its publication)
    dask.features(DAYS[1]).unlink()
    partial, _ = _run(dask_cfg)
    assert [(o.date, o.status) for o in partial if o.task == "feature_engineer"] == [
        (DAYS[0], "skipped"),
        (DAYS[1], "succeeded"),
        *((d, "skipped") for d in DAYS[2:]),
    ]
    assert _data_files(tmp_path / "dask") == _data_files(tmp_path / "local")


def _allocation_environ() -> tuple[str | None, str | None]:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_local_cluster_workers_allocate_as_mains_process_does():
    # distributed's default MALLOC_TRIM_THRESHOLD_ doubles a day's feature time in a worker
    with client_for(compose_config(["main.workers=1"]).main) as client:
        assert set(client.run(_allocation_environ).values()) == {(None, "1")}


def test_a_failing_day_on_dask_halts_main_at_that_day(tmp_path, restore_tracking):
    cfg = _second_day_missing(tmp_path, *DASK)
    configure_tracking(cfg)

    with pytest.raises(DataError, match=f"quotes_{DAYS[1]:%Y%m%d}.csv"):
        run_pipeline(cfg)
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    assert artifacts.features(DAYS[0]).exists()
    assert not artifacts.features(DAYS[1]).exists() and not artifacts.features(DAYS[2]).exists()


def test_killed_main_leaves_no_dask_worker(tmp_path, silent_cboe, restore_tracking):  # noqa: F811
    root = tmp_path / "root"
    configure_tracking(compose_config([f"paths.root={root}"]))
    client = mlflow.MlflowClient()
    main = _main(
        root,
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={silent_cboe}",
        "data_fetch.cboe.symbols=[SPY]",
        "data_fetch.cboe.timeout_s=3600",
        "main.tasks=[data_fetch,data_validate,feature_engineer]",
        "main.end_date=2026-03-05",
        "main.days=4",
        *DASK,
        log=tmp_path / "killed_main.log",
    )
    spawned: set[int] = set()
    try:

        def both_fetching() -> list | None:
            runs = _fetching(client)
            return runs if len(runs) == 2 else None

        busy = wait_until(both_fetching, "two Dask workers fetching")
        workers = {int(r.data.tags[PID_TAG]) for r in busy}
        spawned = children(main.pid)
        assert len(workers) == 2 and workers <= spawned  # the workers are main's children
        main.send_signal(signal.SIGKILL)
        main.wait(TIMEOUT_S)
        wait_until(lambda: all(gone(pid) for pid in spawned), f"processes {sorted(spawned)} to end")
    finally:  # whatever happened, no process of this test outlives it
        spawned |= children(main.pid) if main.poll() is None else set()
        main.kill()
        main.wait(TIMEOUT_S)
        for pid in spawned:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
