"""The scheduler's parts: trigger from config (DST-correct), the lock, catch-up, the day run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitoring import daily, scheduler
from monitoring.scheduler import LockBusy, catch_up_days, closed_day, daily_lock, next_fire
from pipeline.config import REPO_ROOT

NY = ZoneInfo("America/New_York")


def test_the_trigger_fires_at_18_new_york_on_weekdays_across_dst(make_cfg):
    cfg = make_cfg()
    # Thursday noon, winter time (EST): the same day at 18:00 = 23:00 UTC
    fire = next_fire(cfg, dt.datetime(2026, 3, 5, 12, 0, tzinfo=NY))
    assert fire == dt.datetime(2026, 3, 5, 18, 0, tzinfo=NY)
    assert fire.astimezone(dt.UTC).hour == 23
    # Friday after the run: skips the weekend (DST starts Sunday 8 March) → Monday 18:00 EDT
    fire = next_fire(cfg, dt.datetime(2026, 3, 6, 18, 30, tzinfo=NY))
    assert (fire.date(), fire.hour, fire.minute) == (dt.date(2026, 3, 9), 18, 0)
    assert fire.utcoffset() == dt.timedelta(hours=-4) and fire.astimezone(dt.UTC).hour == 22
    # a clock in another zone asks the same question
    fire = next_fire(cfg, dt.datetime(2026, 11, 6, 12, 0, tzinfo=dt.UTC))  # Fri, EST again
    assert fire.astimezone(dt.UTC) == dt.datetime(2026, 11, 6, 23, 0, tzinfo=dt.UTC)


def test_the_trigger_and_the_job_follow_the_config(make_cfg):
    cfg = make_cfg(
        "schedule.hour=6",
        "schedule.minute=30",
        "schedule.timezone=Europe/London",
        "schedule.day_of_week=sat",
        "schedule.misfire_grace_time_s=120",
        "schedule.coalesce=false",
    )
    fire = next_fire(cfg, dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC))
    assert fire == dt.datetime(2026, 3, 7, 6, 30, tzinfo=ZoneInfo("Europe/London"))
    (job,) = scheduler.build_scheduler(cfg).get_jobs()
    assert (job.misfire_grace_time, job.coalesce, job.max_instances) == (120, False, 1)
    (job,) = scheduler.build_scheduler(make_cfg()).get_jobs()
    assert (job.misfire_grace_time, job.coalesce) == (3600, True)


def test_the_day_run_is_the_latest_closed_session():
    assert closed_day(dt.datetime(2026, 3, 9, 15, 59, tzinfo=NY)) == dt.date(2026, 3, 6)
    assert closed_day(dt.datetime(2026, 3, 9, 18, 0, tzinfo=NY)) == dt.date(2026, 3, 9)
    assert closed_day(dt.datetime(2026, 4, 4, 18, 0, tzinfo=NY)) == dt.date(2026, 4, 2)  # Good Fri
    # the day after Thanksgiving closes at 13:00: by 14:00 its session is over
    assert closed_day(dt.datetime(2026, 11, 27, 14, 0, tzinfo=NY)) == dt.date(2026, 11, 27)
    assert closed_day(dt.datetime(2026, 11, 27, 12, 30, tzinfo=NY)) == dt.date(2026, 11, 25)


def _holder(path, seconds: float) -> subprocess.Popen:
    """Another process holding the lock for `seconds`; returns once it holds it."""
    code = (
        "import sys, time\n"
        "from monitoring.scheduler import daily_lock\n"
        "with daily_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(seconds)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_refuses_while_another_process_holds_the_lock(tmp_path):
    path = tmp_path / ".locks" / "daily_flow.lock"
    holder = _holder(path, 30)
    try:
        expected = rf"another daily run holds the lock \(pid {holder.pid} since \d{{4}}-"
        with pytest.raises(LockBusy, match=expected) as err, daily_lock(path):
            pytest.fail("acquired a lock another process holds")
        assert err.value.exit_code == 3
    finally:
        holder.kill()
        holder.wait()
    with daily_lock(path):  # the holder died: its lock went with it, nothing to clean up
        assert json.loads(path.read_text())["pid"] != holder.pid


def test_a_second_run_waits_when_lock_wait_is_set(tmp_path):
    path = tmp_path / "daily_flow.lock"
    holder = _holder(path, 1.0)
    try:
        started = time.monotonic()
        with daily_lock(path, wait_s=30):
            waited = time.monotonic() - started
        assert 0.3 < waited < 30
        assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()
    holder = _holder(path, 30)
    try:
        with pytest.raises(LockBusy, match=r"waited 0\.5s"), daily_lock(path, wait_s=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_excludes_within_one_process_too(tmp_path):
    path = tmp_path / "daily_flow.lock"
    with daily_lock(path), pytest.raises(LockBusy), daily_lock(path):
        pass
    with daily_lock(path):  # released
        pass


def _record_success(cfg, day: str) -> None:
    path = Path(cfg.schedule.state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"last_success": day}))


def test_catch_up_picks_the_missed_trading_days(make_cfg):
    cfg = make_cfg("schedule.max_catch_up_days=10")
    monday = dt.date(2026, 4, 6)
    assert catch_up_days(cfg, monday) == []  # no success recorded: nothing to catch up
    _record_success(cfg, "2026-03-26")
    # the weekends and Good Friday (2026-04-03) are not missed days
    assert catch_up_days(cfg, monday) == [
        dt.date(2026, 3, 27),
        dt.date(2026, 3, 30),
        dt.date(2026, 3, 31),
        dt.date(2026, 4, 1),
        dt.date(2026, 4, 2),
        dt.date(2026, 4, 6),
    ]
    cfg = make_cfg("schedule.max_catch_up_days=3")  # the most recent ones
    assert catch_up_days(cfg, monday) == [dt.date(2026, 4, 1), dt.date(2026, 4, 2), monday]
    _record_success(cfg, "2026-04-06")
    assert catch_up_days(cfg, monday) == []


def test_only_a_success_moves_the_state_and_every_run_is_logged(make_cfg):
    cfg = make_cfg()
    ok = daily.DayResult(dt.date(2026, 3, 31), "succeeded", [daily.TaskResult("data_fetch", "reused", 0.5)], 1.25)  # fmt: skip
    bad = daily.DayResult(dt.date(2026, 4, 1), "failed", [daily.TaskResult("data_fetch", "failed", 0.1, "DataError: boom")],
                          0.5, failed_task="data_fetch", reason="DataError: boom")  # fmt: skip
    daily.record(cfg, ok)
    daily.record(cfg, bad)
    assert daily.last_success(cfg) == dt.date(2026, 3, 31)
    lines = [json.loads(x) for x in Path(cfg.schedule.runs_file).read_text().splitlines()]
    assert [(x["date"], x["status"]) for x in lines] == [("2026-03-31", "succeeded"), ("2026-04-01", "failed")]  # fmt: skip
    assert bad.line() == (
        "daily 2026-04-01: FAILED in 0.5s [data_fetch failed]; data_fetch failed: DataError: boom"
    )


def test_a_day_without_a_session_runs_nothing(make_cfg, tmp_path):
    result = daily.daily_flow(make_cfg(), dt.date(2026, 4, 3))  # Good Friday
    assert result.status == "no_session" and result.ok and result.tasks == []
    assert "no session" in result.line()
    assert not (tmp_path / "data").exists()
