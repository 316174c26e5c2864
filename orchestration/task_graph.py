"""The daily flow's task graph as data: what the Airflow DAG is generated from.

    python -m orchestration.task_graph            # print the graph as JSON
    python -m orchestration.task_graph --write    # refresh orchestration/airflow/dags/task_graph.json
    python -m orchestration.task_graph --check    # exit 1 if that file differs from the code
    python -m orchestration.task_graph --crontab  # the phase-1 crontab lines (make crontab)

One source of truth: the tasks and their order are `monitoring.daily.TASKS` (the flow the
APScheduler scheduler runs), the edges are the flow's own rules (the data tasks form a chain;
monitor needs the day's features; the report needs the features and runs after monitor), the retry policies come from configs/retry and the schedule from configs/schedule.
The DAG file runs in Airflow's environment and cannot import the project: it reads the JSON
this module writes, and a test keeps the committed file equal to the code.

Retries: tenacity owns them. Each task retries its transient faults in-process with its policy
from configs/retry (pipeline.retry, a retry count as an MLflow metric); an Airflow retry would
re-run those retries from scratch, so every Airflow task has `retries: 0` and the policy travels
in the JSON for the DAG's documentation only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from omegaconf import OmegaConf

from monitoring.daily import DATA_TASKS, TASKS
from monitoring.scheduler import EXIT_LOCKED

REPO = Path(__file__).resolve().parents[1]
GRAPH_FILE = REPO / "orchestration" / "airflow" / "dags" / "task_graph.json"
DAG_ID = "options_pricing_daily"
# catch-up starts here (overridable in the DAG's environment: OPTIONS_AIRFLOW_START_DATE)
START_DATE = "2026-11-23"
EXIT_NOTHING_TO_DO = 99  # airflow_task: the flow skips the task (monitor without Production)
# the report needs the day's features and runs after monitor, also when monitor is skipped (no
# Production model); after a failed monitor it does not run (the daily flow's report would):
# Airflow has no rule "all done, and this one upstream succeeded", and the failure is alerted
REPORT_TRIGGER = "none_failed_min_one_success"
DAYS_OF_WEEK = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering, 0 = sunday


def edges() -> dict[str, list[str]]:
    """task → its upstream tasks, from the daily flow's rules."""
    upstream: dict[str, list[str]] = {}
    for i, task in enumerate(DATA_TASKS):
        upstream[task] = [DATA_TASKS[i - 1]] if i else []
    for task in TASKS[len(DATA_TASKS) :]:
        upstream[task] = [DATA_TASKS[-1]] + [t for t in TASKS[len(DATA_TASKS) : TASKS.index(task)]]
    return upstream


def cron_days(day_of_week: str) -> str:
    """APScheduler's `mon-fri` / `mon,wed` → cron's `1-5` / `1,3`."""

    def number(name: str) -> str:
        return str(DAYS_OF_WEEK.index(name.strip().lower()[:3]))

    parts = []
    for part in str(day_of_week).split(","):
        ends = part.split("-")
        parts.append("-".join(number(e) for e in ends))
    return ",".join(parts)


def graph(config_dir: Path = REPO / "configs") -> dict:
    """The graph, the schedule and the exit codes the DAG maps, as one JSON-able dict."""
    retry = OmegaConf.load(config_dir / "retry" / "default.yaml")
    schedule = OmegaConf.load(config_dir / "schedule" / "default.yaml")
    upstream = edges()
    tasks = []
    for task in TASKS:
        tasks.append(
            {
                "name": task,
                "upstream": upstream[task],
                # features read the previous day's: a day waits for the one before it
                "depends_on_past": task == "feature_engineer",
                "trigger_rule": REPORT_TRIGGER if task == "generate_report" else "all_success",
                "airflow_retries": 0,
                "tenacity_retry": OmegaConf.to_container(retry[task]) if task in retry else None,
            }
        )
    return {
        "dag_id": DAG_ID,
        "schedule": {
            "cron": f"{schedule.minute} {schedule.hour} * * {cron_days(schedule.day_of_week)}",
            "timezone": schedule.timezone,
        },
        "start_date": START_DATE,
        "skip_exit_codes": {"lock_busy": EXIT_LOCKED, "nothing_to_do": EXIT_NOTHING_TO_DO},
        "tasks": tasks,
    }


def crontab(data: dict) -> str:
    """Phase 1 of the plan: cron runs the daily flow (`make daily`: the latest closed trading day,
    exit 3 when another run holds the lock). CRON_TZ needs cronie or systemd-cron; with Debian's
    cron, set the machine's time zone to the schedule's or shift the hour."""
    return (f"CRON_TZ={data['schedule']['timezone']}\n"
            f"{data['schedule']['cron']} cd {shlex.quote(str(REPO))} && mkdir -p logs && make daily "
            ">> logs/cron.log 2>&1\n")  # fmt: skip


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {GRAPH_FILE.relative_to(REPO)}")
    mode.add_argument("--check", action="store_true", help="exit 1 if that file is out of date")
    mode.add_argument("--crontab", action="store_true", help="print the phase-1 crontab lines")
    args = parser.parse_args(argv)
    text = dumps(graph())
    if args.write:
        GRAPH_FILE.write_text(text)
        print(f"wrote {GRAPH_FILE.relative_to(REPO)}")
    elif args.crontab:
        sys.stdout.write(crontab(graph()))
    elif args.check:
        current = GRAPH_FILE.read_text() if GRAPH_FILE.exists() else ""
        if current != text:
            print(f"{GRAPH_FILE.relative_to(REPO)} is out of date: "
                  "run python -m orchestration.task_graph --write", file=sys.stderr)  # fmt: skip
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
