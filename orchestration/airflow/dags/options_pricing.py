"""The daily flow as an Airflow 3 DAG, generated from the project's task graph (task_graph.json).

The graph comes from `python -m orchestration.task_graph --write` (the project's environment):
this file runs in Airflow's own environment (orchestration/airflow) and imports nothing of the
project. Each pipeline task is one BashOperator running the project's CLI in the project's
environment for the run's `{{ ds }}`: `<repo>/.venv/bin/python -m orchestration.airflow_task run
<task> date=<ds>`, which is `python -m pipeline.<task>` under the scheduler's lock.

What maps to what:
- schedule: configs/schedule (18:00 New York, mon-fri) as a cron trigger; `catchup=True` runs
  the missed days from the graph's start date (the APScheduler catch-up), one day at a time
  (`max_active_runs=1`), in order;
- holidays: the `trading_session` short-circuit asks the project's NYSE calendar and skips the
  whole day;
- the scheduler's lock (exit 3: another daily run holds it) and monitor without a Production
  model (exit 99) end as skips (`skip_on_exit_code`);
- feature_engineer reads the previous day's features: `depends_on_past=True`;
- retries: tenacity owns them inside each task (configs/retry); Airflow's are 0;
- a failed task: `on_failure_callback` sends a `task_failed` alert to the project's sink
  (monitoring.alerts), unless the task already alerted by itself.

Run parameter `overrides`: Hydra overrides appended to every task's command line (a list), e.g.
`["paths.root=/some/dir", "data_fetch.symbols=[SPY,_SPX]"]`.
Environment: OPTIONS_MLOPS_PYTHON (the project's interpreter), OPTIONS_AIRFLOW_START_DATE.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
GRAPH = json.loads((HERE / "task_graph.json").read_text())
PYTHON = os.environ.get("OPTIONS_MLOPS_PYTHON", str(REPO / ".venv" / "bin" / "python"))
SESSION_TASK = "trading_session"


def project(*args: str) -> list[str]:
    """A command of the project's `orchestration.airflow_task` in the project's environment."""
    return [PYTHON, "-m", "orchestration.airflow_task", *args]


def is_session(ds: str) -> bool:
    """True on a trading day (the project's NYSE calendar); False skips the day."""
    out = subprocess.run(project("session", ds), cwd=REPO, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"calendar check failed ({out.returncode}): {out.stderr.strip()}")
    print(out.stdout.strip())
    return out.returncode == 0


def alert_failure(context) -> None:
    """on_failure_callback: a task_failed alert through the project's alert sink."""
    ti = context["ti"]
    started = getattr(ti, "start_date", None) or dt.datetime.now(dt.UTC)
    message = (f"{ti.task_id} failed in Airflow (dag {ti.dag_id}, run {ti.run_id}, try "
               f"{ti.try_number}): {context.get('exception')}")  # fmt: skip
    overrides = list(context["params"].get("overrides") or [])
    cmd = project("alert", ti.task_id, "--since", started.isoformat(), "--message", message,
                  f"date={context['ds']}", *overrides)  # fmt: skip
    subprocess.run(cmd, cwd=REPO, check=False, timeout=120)


def _start_date() -> dt.datetime:
    day = os.environ.get("OPTIONS_AIRFLOW_START_DATE", GRAPH["start_date"])
    return dt.datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(GRAPH["schedule"]["timezone"]))


def _task_doc(task: dict) -> str:
    policy = task["tenacity_retry"]
    return (f"`python -m pipeline.{task['name']}` for `{{{{ ds }}}}` under the daily lock. "
            f"In-task retries (tenacity, configs/retry): {policy}; Airflow retries: "
            f"{task['airflow_retries']}.")  # fmt: skip


with DAG(
    dag_id=GRAPH["dag_id"],
    description="fetch → validate → features → monitor (→ retrain) → report, every trading day",
    schedule=CronTriggerTimetable(
        GRAPH["schedule"]["cron"], timezone=GRAPH["schedule"]["timezone"]
    ),
    start_date=_start_date(),
    catchup=True,
    max_active_runs=1,
    params={"overrides": Param([], type="array", description="Hydra overrides for every task")},
    user_defined_filters={"shell_join": lambda args: shlex.join(str(a) for a in args or [])},
    default_args={"retries": 0, "on_failure_callback": alert_failure},
    doc_md=__doc__,
    tags=["options-mlops"],
) as dag:
    session = ShortCircuitOperator(
        task_id=SESSION_TASK, python_callable=is_session, op_kwargs={"ds": "{{ ds }}"}
    )
    skip_codes = sorted(GRAPH["skip_exit_codes"].values())
    tasks = {}
    for spec in GRAPH["tasks"]:
        command = shlex.join(project("run", spec["name"]))
        tasks[spec["name"]] = BashOperator(
            task_id=spec["name"],
            bash_command=f"{command} date={{{{ ds }}}} {{{{ params.overrides | shell_join }}}}",
            cwd=str(REPO),
            skip_on_exit_code=skip_codes,
            retries=spec["airflow_retries"],
            depends_on_past=spec["depends_on_past"],
            trigger_rule=spec["trigger_rule"],
            doc_md=_task_doc(spec),
        )
    for spec in GRAPH["tasks"]:
        for upstream in spec["upstream"]:
            tasks[upstream] >> tasks[spec["name"]]
        if not spec["upstream"]:
            session >> tasks[spec["name"]]
