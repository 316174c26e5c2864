"""Checks of the DAG in Airflow's environment; prints JSON (used by tests/integration/test_airflow.py).

    python dag_check.py import                     DagBag of dags/: import errors, each task's upstream
    python dag_check.py test YYYY-MM-DD [OVERRIDE ...]
        dag.test() of that day with the Hydra overrides as the run's `overrides`: each task's state

AIRFLOW_HOME must point at an initialised metadata database (`airflow db migrate`) for `test`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

DAGS = Path(__file__).resolve().parent / "dags"
DAG_ID = json.loads((DAGS / "task_graph.json").read_text())["dag_id"]


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def check_import() -> dict:
    bag = dagbag()
    dag = bag.dags.get(DAG_ID)
    edges = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} if dag else {}
    return {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "edges": edges}


def test_day(day: str, overrides: list[str]) -> dict:
    dag = dagbag().dags[DAG_ID]
    zone = ZoneInfo(json.loads((DAGS / "task_graph.json").read_text())["schedule"]["timezone"])
    logical = dt.datetime.fromisoformat(day).replace(hour=18, tzinfo=zone)
    started = time.perf_counter()
    run = dag.test(logical_date=logical, run_conf={"overrides": overrides})
    seconds = time.perf_counter() - started
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return {"run_state": str(run.state), "states": states, "seconds": round(seconds, 1)}


def main(argv: list[str]) -> None:
    result = check_import() if argv[0] == "import" else test_day(argv[1], argv[2:])
    print("DAG_CHECK " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
