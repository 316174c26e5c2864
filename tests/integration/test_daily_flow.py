"""The daily flow on the tiny market (25 featured days to 2026-03-31; nothing in Production, so
monitor skips cleanly): reuse, a failed day that does not stop the next, and `--once`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from monitoring import daily
from monitoring.scheduler import daily_lock
from pipeline.artifacts import write_frame
from pipeline.data_fetch import FetchLog, fetch_quotes
from tests.conftest import NO_SERVICE, TINY_MARKET, compose_config
from tests.helpers import run_module
from tests.serving_helpers import tracking_at

pytestmark = pytest.mark.slow
DATA = ["data_fetch", "data_validate", "feature_engineer"]


@pytest.fixture
def root(tiny_features_root, tmp_path) -> Path:
    dest = tmp_path / "root"
    shutil.copytree(tiny_features_root, dest)
    return dest


def _cfg(root: Path, *overrides: str, market: tuple[str, ...] = tuple(TINY_MARKET)):
    return compose_config([f"paths.root={root}", NO_SERVICE, *market, *overrides])


def _statuses(result: daily.DayResult) -> dict[str, str]:
    return {t.task: t.status for t in result.tasks}


def _runs(cfg) -> list[dict]:
    return [json.loads(line) for line in Path(cfg.schedule.runs_file).read_text().splitlines()]


def test_a_fetched_day_is_reused_and_a_new_day_runs(root):
    cfg = _cfg(root)
    with tracking_at(cfg):
        old, new = daily.run_days(cfg, [dt.date(2026, 3, 31), dt.date(2026, 4, 1)])
    assert [_statuses(old)[t] for t in DATA] == ["reused"] * 3
    assert [_statuses(new)[t] for t in DATA] == ["succeeded"] * 3
    for result in (old, new):
        assert result.status == "succeeded", result.line()
        assert _statuses(result)["monitor"] == "skipped"  # nothing in Production
        assert "Production" in next(t.reason for t in result.tasks if t.task == "monitor")
    assert (root / "data" / "processed" / "features_20260401.parquet").exists()
    assert [(r["date"], r["status"]) for r in _runs(cfg)] == [
        ("2026-03-31", "succeeded"),
        ("2026-04-01", "succeeded"),
    ]
    assert daily.last_success(cfg) == dt.date(2026, 4, 1)
    log = Path(cfg.schedule.log_file).read_text()
    assert "daily 2026-04-01: SUCCEEDED in " in log and "data_fetch succeeded" in log


def test_a_failed_fetch_fails_its_day_and_the_next_day_still_runs(root):
    # the file source: 2026-04-01 has no file (the fetch fails), 2026-04-02 has one
    template = root / "data" / "external" / "quotes_{date}.parquet"
    synthetic = _cfg(root)
    quotes = fetch_quotes(synthetic.data_fetch, synthetic.market, None, dt.date(2026, 4, 2), FetchLog())  # fmt: skip
    write_frame(quotes, Path(str(template).replace("{date}", "20260402")))
    cfg = _cfg(root, "data_fetch=file", f"data_fetch.file.path='{template}'", market=())
    with tracking_at(cfg):
        failed, next_day = daily.run_days(cfg, [dt.date(2026, 4, 1), dt.date(2026, 4, 2)])
    assert failed.status == "failed" and not failed.ok
    assert failed.failed_task == "data_fetch"
    assert "quotes_20260401.parquet does not exist" in failed.reason
    assert _statuses(failed) == {
        "data_fetch": "failed",
        "data_validate": "not_run",
        "feature_engineer": "not_run",
        "monitor": "not_run",
        "generate_report": "not_run",
    }
    assert next_day.status == "succeeded", next_day.line()
    assert [_statuses(next_day)[t] for t in DATA] == ["succeeded"] * 3
    runs = _runs(cfg)
    assert [(r["date"], r["status"], r["failed_task"]) for r in runs] == [
        ("2026-04-01", "failed", "data_fetch"),
        ("2026-04-02", "succeeded", None),
    ]
    assert "does not exist" in runs[0]["reason"]
    assert daily.last_success(cfg) == dt.date(2026, 4, 2)
    log = Path(cfg.schedule.log_file).read_text()
    assert "daily 2026-04-01: FAILED in " in log and "data_fetch failed: DataError" in log


def test_once_runs_the_day_and_a_second_run_refuses_while_one_holds_the_lock(root):
    args = ("--once", f"paths.root={root}", NO_SERVICE, *TINY_MARKET, "date=2026-03-31")
    result = run_module("monitoring.scheduler", *args, timeout=300)
    assert result.returncode == 0, result.stderr
    cfg = _cfg(root)
    (run,) = _runs(cfg)
    assert run["date"] == "2026-03-31" and run["status"] == "succeeded"
    assert [t["status"] for t in run["tasks"]][:3] == ["reused"] * 3
    assert "daily 2026-03-31: SUCCEEDED" in result.stderr  # the outcome line on the console
    with daily_lock(cfg.schedule.lock_file):  # a run in progress
        refused = run_module("monitoring.scheduler", *args, timeout=300)
    assert refused.returncode == 3, refused.stderr
    assert "another daily run holds the lock (pid" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(_runs(cfg)) == 1  # the refused run ran nothing
    assert "another daily run holds the lock" in Path(cfg.schedule.log_file).read_text()
