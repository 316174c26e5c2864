"""The scheduler: the daily flow (monitoring.daily) after every close, one run at a time.

    python -m monitoring.scheduler [key=value ...]          foreground; Ctrl-C stops (make schedule)
    python -m monitoring.scheduler --once [date=YYYY-MM-DD]  the latest closed trading day (or
                                                             `date`) now, then exit (make daily)

APScheduler's BlockingScheduler fires a cron trigger at `schedule.hour:schedule.minute` in
`schedule.timezone` (default 18:00 America/New_York, DST-aware) on `schedule.day_of_week`
(mon-fri; an NYSE holiday fires and ends in "no session"). The day run is the latest trading day
whose session has closed by that day's real close (16:00 New York, 13:00 on early-close days such
as the day after Thanksgiving: `pipeline.market.calendar.session_close`).

Missed runs: a run the scheduler could not start on time (machine suspended, previous run still
going) still starts within `schedule.misfire_grace_time_s`, and several missed runs coalesce into
one (`schedule.coalesce`). A scheduler that was not running at all cannot see what it missed, so
at start-up, with `schedule.catch_up`, it runs the trading days after the last successful one
(`schedule.state_file`) up to the latest closed day, in order, at most
`schedule.max_catch_up_days` (the most recent).

Lock: every run holds an exclusive flock on `schedule.lock_file` for its whole length; a second
run (another scheduler, `make daily` by hand) refuses with "another daily run holds the lock (pid
N since T)" and exit code 3, or waits up to `schedule.lock_wait_s` when > 0. The lock dies with
its process: a crash leaves nothing to clean up.

Log: each day's outcome as one line in `schedule.log_file` (and on the console) and one JSON line
in `schedule.runs_file`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from omegaconf import DictConfig

from monitoring.daily import DayResult, attach_log, last_success, run_days
from pipeline.errors import PipelineError
from pipeline.market.calendar import latest_closed_session, trading_days
from pipeline.runtime import parse_date

log = logging.getLogger("monitoring.scheduler")
EXIT_LOCKED = 3


class LockBusy(PipelineError):
    """Another daily run holds the lock."""

    exit_code = EXIT_LOCKED


# -- the lock ------------------------------------------------------------------------------------
def lock_holder(path: Path) -> str:
    """'pid N since T' from the lock file (written by the holder), or what is known."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    return f"pid {info.get('pid', '?')} since {info.get('since', '?')}"


@contextlib.contextmanager
def daily_lock(path: str | Path, wait_s: float = 0.0, poll_s: float = 0.2) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block; LockBusy if another process holds it
    (after waiting up to `wait_s` seconds). The holder's pid and start time go into the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(float(wait_s), 0.0)
    with path.open("a+") as fh:  # never truncate before holding the lock
        announced = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = lock_holder(path)
                if time.monotonic() >= deadline:
                    waited = f" (waited {float(wait_s):g}s)" if wait_s > 0 else ""
                    raise LockBusy(
                        f"another daily run holds the lock ({holder}){waited}: refused; "
                        f"lock file {path}"
                    ) from None
                if not announced:
                    log.info("another daily run holds the lock (%s): waiting up to %gs",
                             holder, wait_s)  # fmt: skip
                    announced = True
                time.sleep(poll_s)
        try:
            fh.seek(0)
            fh.truncate()
            now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            fh.write(json.dumps({"pid": os.getpid(), "since": now}))
            fh.flush()
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- which days ----------------------------------------------------------------------------------
def closed_day(now: dt.datetime | None = None) -> dt.date:
    """The latest trading day whose session has closed at `now` (its real close: 16:00 New York,
    earlier on early-close days)."""
    return latest_closed_session(now)


def catch_up_days(cfg: DictConfig, today: dt.date) -> list[dt.date]:
    """Trading days after the last successful one up to `today`, the most recent
    `schedule.max_catch_up_days` of them; none when no success is recorded."""
    last = last_success(cfg)
    if last is None or last >= today:
        return []
    days = trading_days(last + dt.timedelta(days=1), today)
    limit = max(int(cfg.schedule.max_catch_up_days), 0)
    if len(days) > limit:
        dropped = days[: len(days) - limit]
        log.warning("catch-up: %d trading days missed since %s; running the last %d "
                    "(schedule.max_catch_up_days), not %s..%s", len(days), last, limit,
                    dropped[0], dropped[-1])  # fmt: skip
        days = days[len(days) - limit :] if limit else []
    return days


# -- runs ----------------------------------------------------------------------------------------
def run_locked(cfg: DictConfig, days: list[dt.date]) -> list[DayResult]:
    """run_days under the lock; LockBusy (logged) when another run holds it."""
    try:
        with daily_lock(cfg.schedule.lock_file, cfg.schedule.lock_wait_s):
            return run_days(cfg, days)
    except LockBusy as exc:
        log.warning("%s", exc)
        raise


def scheduled_job(cfg: DictConfig) -> None:
    """What the trigger runs: the latest closed day. Never raises (the scheduler carries on)."""
    day = closed_day()
    log.info("scheduled run for %s", day)
    try:
        run_locked(cfg, [day])
    except LockBusy:
        pass  # logged: the other run does the work
    except Exception:  # noqa: BLE001 - keep the scheduler alive; the trace goes to the log
        log.exception("daily run for %s crashed", day)


def catch_up(cfg: DictConfig, now: dt.datetime | None = None) -> list[DayResult]:
    """At start-up: the missed trading days (see catch_up_days), under the lock."""
    today = closed_day(now)
    days = catch_up_days(cfg, today)
    if not days:
        last = last_success(cfg)
        log.info("catch-up: nothing missed (last successful day: %s)", last or "none recorded")
        return []
    log.info("catch-up: %d missed trading day(s) %s..%s", len(days), days[0], days[-1])
    try:
        return run_locked(cfg, days)
    except LockBusy:
        return []


def build_trigger(cfg: DictConfig) -> CronTrigger:
    s = cfg.schedule
    return CronTrigger(day_of_week=s.day_of_week, hour=s.hour, minute=s.minute,
                       timezone=ZoneInfo(s.timezone))  # fmt: skip


def _on_event(event: JobEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning("missed the run due at %s (beyond schedule.misfire_grace_time_s): skipped; "
                    "the next start-up catch-up or run covers it", event.scheduled_run_time)  # fmt: skip
    elif event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning("the run due at %s did not start: the previous run is still going",
                    event.scheduled_run_time)  # fmt: skip
    elif event.code == EVENT_JOB_ERROR:
        log.error("the run due at %s raised %r", event.scheduled_run_time, event.exception)


def build_scheduler(cfg: DictConfig) -> BlockingScheduler:
    s = cfg.schedule
    scheduler = BlockingScheduler(timezone=ZoneInfo(s.timezone))
    scheduler.add_job(
        scheduled_job,
        build_trigger(cfg),
        args=[cfg],
        id="daily_flow",
        name="daily flow",
        misfire_grace_time=int(s.misfire_grace_time_s),
        coalesce=bool(s.coalesce),
        max_instances=1,
    )
    scheduler.add_listener(_on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
    return scheduler


def next_fire(cfg: DictConfig, now: dt.datetime | None = None) -> dt.datetime:
    zone = ZoneInfo(cfg.schedule.timezone)
    return build_trigger(cfg).get_next_fire_time(None, now or dt.datetime.now(zone))


# -- entry point ---------------------------------------------------------------------------------
def _log_to_file(cfg: DictConfig) -> None:
    """For the process: `monitoring` (INFO) and APScheduler's warnings into schedule.log_file."""
    handler = attach_log(cfg.schedule.log_file)
    logging.getLogger("monitoring").setLevel(logging.INFO)
    if handler is not None:
        logging.getLogger("apscheduler").addHandler(handler)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def serve(cfg: DictConfig) -> None:
    """Catch up, then run the daily flow on the trigger until interrupted."""
    s = cfg.schedule
    log.info("scheduler (pid %d): daily flow at %02d:%02d %s (%s); next run %s; Ctrl-C stops",
             os.getpid(), s.hour, s.minute, s.timezone, s.day_of_week,
             next_fire(cfg).isoformat(timespec="minutes"))  # fmt: skip
    if s.catch_up:
        catch_up(cfg)
    scheduler = build_scheduler(cfg)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("scheduler stopped")


def main(cfg: DictConfig, once: bool = False) -> None:
    from pipeline.cli import set_console_level

    set_console_level(logging.WARNING, keep="monitoring")  # task detail: logs/<task>_*.log
    _log_to_file(cfg)
    if not once:
        serve(cfg)
        return
    day = parse_date(cfg.date) if cfg.date is not None else closed_day()
    results = run_locked(cfg, [day])
    sys.exit(0 if all(r.ok for r in results) else 1)


def cli(argv: list[str] | None = None) -> None:
    """`--once` is ours; everything else is Hydra's (overrides, --help, --cfg job)."""
    argv = sys.argv[1:] if argv is None else argv
    once = "--once" in argv
    sys.argv = [sys.argv[0], *(a for a in argv if a != "--once")]
    from pipeline.cli import run_cli

    run_cli(functools.partial(main, once=once))


if __name__ == "__main__":
    cli()
