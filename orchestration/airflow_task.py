"""One task of the daily flow for Airflow, run the way the scheduler runs it (project env).

    python -m orchestration.airflow_task run <task> date=YYYY-MM-DD [overrides]
    python -m orchestration.airflow_task session YYYY-MM-DD
    python -m orchestration.airflow_task alert <task> --since ISO --message TEXT date=... [overrides]

`run`: the task's own CLI (`pipeline.<task>`'s main under pipeline.cli.run_cli: the same config,
checks, exit codes and MLflow run) while holding the scheduler's lock (`schedule.lock_file`): when
another daily run holds it (APScheduler, `make daily`), it exits 3, which the DAG maps to a skip.
monitor without a Production model exits 99 (skip), as the daily flow skips it.
`session`: exit 0 on a trading day, 1 on a weekend or NYSE holiday (the DAG's short-circuit).
`alert`: the DAG's failure callback: a `task_failed` alert to the project's sink
(monitoring.alerts: alerts.jsonl, the webhook), unless the task already raised one for that day
since `--since` (a task that fails inside the runtime alerts by itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys

from omegaconf import DictConfig

from orchestration.task_graph import EXIT_NOTHING_TO_DO, TASKS

EXIT_NO_SESSION = 1


def run_task(task: str, cfg: DictConfig) -> None:
    from monitoring.scheduler import daily_lock
    from pipeline.registry import Registry

    with daily_lock(cfg.schedule.lock_file, cfg.schedule.lock_wait_s):
        if task == "monitor" and Registry(cfg.registry.model_name).resolve("production") is None:
            print(f"monitor skipped: no '{cfg.registry.model_name}' version in Production: "
                  "nothing to monitor")  # fmt: skip
            sys.exit(EXIT_NOTHING_TO_DO)
        importlib.import_module(f"pipeline.{task}").main(cfg)


def send_alert(task: str, since: str, message: str, cfg: DictConfig) -> None:
    from monitoring import alerts

    date = None if cfg.date is None else str(cfg.date)
    start = dt.datetime.fromisoformat(since)
    for seen in alerts.read_alerts(cfg.alerts.log_path):
        at = dt.datetime.fromisoformat(seen.get("at", "1970-01-01T00:00:00+00:00"))
        if seen.get("task") == task and seen.get("date") == date and at >= start:
            print(f"{task} {date}: already alerted ({seen['kind']} at {seen['at']})")
            return
    alerts.send(alerts.Alert.of("task_failed", task, date, message, source="airflow"), cfg)
    alerts.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="run one task under the scheduler's lock")
    run.add_argument("task", choices=TASKS)
    session = sub.add_parser("session", help="exit 0 on a trading day, 1 otherwise")
    session.add_argument("date", type=dt.date.fromisoformat)
    alert = sub.add_parser("alert", help="a task_failed alert to the project's sink")
    alert.add_argument("task")
    alert.add_argument("--since", required=True, help="ISO time the failed try started")
    alert.add_argument("--message", required=True)
    args, overrides = parser.parse_known_args(argv)

    if args.mode == "session":
        from pipeline.market.calendar import is_trading_day

        ok = is_trading_day(args.date)
        print(f"{args.date}: {'trading day' if ok else 'no session (weekend or NYSE holiday)'}")
        sys.exit(0 if ok else EXIT_NO_SESSION)

    from pipeline.cli import run_cli

    sys.argv = [sys.argv[0], *overrides]
    if args.mode == "run":
        run_cli(lambda cfg: run_task(args.task, cfg))
    else:
        run_cli(lambda cfg: send_alert(args.task, args.since, args.message, cfg))


if __name__ == "__main__":
    main()
