"""The Airflow DAG (orchestration/airflow) in Airflow's own environment: it imports, its edges are
the project's task graph, and `dag.test()` runs a synthetic day through the project's CLI: every
task's outputs on disk, holidays short-circuited, the scheduler's lock a skip, a failure one alert.

The Airflow environment is built here if missing (`make airflow-env`); the tests skip, with the
reason, only when it cannot be built. Each Airflow call runs in a subprocess of that environment
(orchestration/airflow/dag_check.py) with AIRFLOW_HOME in tmp_path."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitoring.alerts import read_alerts
from orchestration.task_graph import GRAPH_FILE, dumps, graph
from tests.conftest import NO_SERVICE, TINY_MARKET

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "orchestration" / "airflow"
AIRFLOW = PROJECT / ".venv" / "bin" / "airflow"
DAY = "2026-12-01"  # a Tuesday session
HOLIDAY = "2026-11-26"  # Thanksgiving: no session


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """Environment variables for Airflow subprocesses: the env built, a migrated sqlite
    metadata database in a temporary AIRFLOW_HOME, the DAG folder, no examples."""
    if not AIRFLOW.exists():
        built = subprocess.run(["make", "airflow-env"], cwd=REPO, capture_output=True, text=True)
        if built.returncode != 0 or not AIRFLOW.exists():
            pytest.skip(f"the Airflow environment cannot be built: {built.stderr.strip()[-500:]}")
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_TRACKING"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "OPTIONS_MLOPS_PYTHON": sys.executable,  # the project's interpreter: this test's
    }
    migrated = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    return env


def dag_check(env: dict[str, str], *args: str) -> dict:
    """orchestration/airflow/dag_check.py in Airflow's environment → its JSON result."""
    python = PROJECT / ".venv" / "bin" / "python"
    out = subprocess.run([str(python), str(PROJECT / "dag_check.py"), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("DAG_CHECK ")]
    assert out.returncode == 0 and lines, (out.stdout[-3000:], out.stderr[-3000:])
    return json.loads(lines[-1].removeprefix("DAG_CHECK "))


def overrides(root: Path, *extra: str) -> list[str]:
    return [f"paths.root={root}", NO_SERVICE, *TINY_MARKET, *extra]


def test_committed_graph_is_the_code_graph():
    assert GRAPH_FILE.read_text() == dumps(graph()), (
        "run: python -m orchestration.task_graph --write"
    )


def test_dagbag_imports_and_its_edges_are_the_task_graph(airflow_env):
    result = dag_check(airflow_env, "import")
    assert result["import_errors"] == {}
    expected = {t["name"]: sorted(t["upstream"] or ["trading_session"]) for t in graph()["tasks"]}
    assert result["edges"] == expected | {"trading_session": []}


def test_dag_test_runs_a_synthetic_day_through_the_project_cli(airflow_env, tmp_path):
    started = time.perf_counter()
    result = dag_check(airflow_env, "test", DAY, *overrides(tmp_path))
    seconds = time.perf_counter() - started
    print(f"dag.test of one synthetic day: {seconds:.1f}s (dag.test itself {result['seconds']}s)")
    assert result["run_state"] == "success"
    # monitor needs a Production model: none in a fresh store, so the flow skips it (exit 99)
    assert result["states"] == {"trading_session": "success", "data_fetch": "success",
                                "data_validate": "success", "feature_engineer": "success",
                                "monitor": "skipped", "generate_report": "success"}  # fmt: skip
    stamp = DAY.replace("-", "")
    for path in (f"data/raw/options_data_{stamp}.parquet",
                 f"data/processed/validated_data_{stamp}.parquet",
                 f"data/quarantine/quarantine_{stamp}.parquet",
                 f"reports/validation/validation_report_{stamp}.json",
                 f"data/processed/features_{stamp}.parquet",
                 f"data/checkpoints/feature_engineer_{stamp}.json",
                 "reports/stakeholder_report.md", "reports/stakeholder_report.html"):  # fmt: skip
        assert (tmp_path / path).is_file(), path


def test_a_holiday_short_circuits_the_day(airflow_env, tmp_path):
    result = dag_check(airflow_env, "test", HOLIDAY, *overrides(tmp_path))
    states = result["states"]
    assert states.pop("trading_session") == "success"
    assert set(states.values()) == {"skipped"}
    assert not (tmp_path / "data").exists()


def test_the_scheduler_lock_held_elsewhere_skips_the_day(airflow_env, tmp_path):
    lock = tmp_path / ".locks" / "daily_flow.lock"
    lock.parent.mkdir()
    with lock.open("a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another daily run (make daily, APScheduler)
        result = dag_check(airflow_env, "test", DAY, *overrides(tmp_path))
    states = result["states"]
    assert states.pop("trading_session") == "success"
    assert states == dict.fromkeys(states, "skipped")
    assert not (tmp_path / "data" / "raw").exists()


def test_a_failure_outside_the_runtime_sends_one_alert_from_the_callback(airflow_env, tmp_path):
    # a holiday as data_fetch's own date: the task's CLI refuses it (exit 2) before the runtime,
    # so only Airflow's failure callback can raise the alert
    result = dag_check(airflow_env, "test", DAY, *overrides(tmp_path, f"data_fetch.date={HOLIDAY}"))
    assert result["states"]["data_fetch"] == "failed"
    assert result["states"]["data_validate"] == "upstream_failed"
    alerts = read_alerts(tmp_path / "logs" / "alerts.jsonl")
    assert [(a["kind"], a["task"], a["date"]) for a in alerts] == [
        ("task_failed", "data_fetch", DAY)
    ]
    assert alerts[0]["details"]["source"] == "airflow"
