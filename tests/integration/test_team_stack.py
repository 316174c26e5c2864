"""Team mode end to end: `stack.team` brings PostgreSQL, SeaweedFS's S3 gateway and an MLflow
server up on free 127.0.0.1 ports under tmp_path; a short `main`, `promote` and the service's model
load, the monitor and the app's registry panel run against it through MLFLOW_TRACKING_URI alone
(no S3 keys on the client side); the runs and
the registered version are rows in PostgreSQL, the artifacts objects in the bucket; the server's
/metrics counts the requests; a restart keeps them; a server that does not answer leaves nothing
running."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import requests

from pipeline.config import REPO_ROOT
from stack import team
from stack.postgres import connect
from stack.procs import StackError, processes_in
from tests.conftest import NO_SERVICE, TINY_DAYS, TINY_MARKET
from tests.helpers import run_module
from tests.integration.test_main_dag import FAST_MODEL
from tests.unit.test_team_errors import free_ports
from webapp.app_data import read_registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "options-pricer"

SERVICE_LOAD = """
import sys
from serving.model_holder import ModelHolder, RegistrySource

holder = ModelHolder(RegistrySource(sys.argv[1], sys.argv[2], "production", sys.argv[3]))
holder.reload()  # resolve @production, load it through the server, self-check it
print(holder.serving)
"""


def reachable_by_postgres(folder: Path) -> None:
    """As root the server runs as the postgres user, which must traverse every folder above its
    data: pytest's own base folder is private (0700), so give others the x bit on the way."""
    if os.geteuid() != 0:
        return
    for parent in [folder, *folder.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def config_at(root: Path, **changes) -> team.TeamConfig:
    reachable_by_postgres(root.parent)
    return team.TeamConfig(root=root, ports=free_ports(team.default_ports()), **changes)


@pytest.fixture
def stack(tmp_path):
    """A running team stack in tmp_path/team; stopped afterwards, with nothing left running."""
    config = config_at(tmp_path / "team")
    parts = team.up(config)
    try:
        yield config, parts
    finally:
        team.down(config)
        assert processes_in(config.root) == []


def client_env(tracking_uri: str) -> dict[str, str]:
    """A client's environment: the tracking URI and this interpreter first on PATH (for the
    `python` of the MLproject's commands); no S3 keys or endpoint, no MLFLOW_* but the URI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def mlflow_run(entry: str, overrides: list[str], env: dict[str, str]):
    return run_module(
        "mlflow", "run", str(REPO_ROOT), "-e", entry, "--env-manager", "local",
        "--experiment-name", "options-pricing", "-P", f"overrides={shlex.join(overrides)}",
        env=env, timeout=900,
    )  # fmt: skip


def test_main_promote_and_the_service_load_work_through_the_tracking_uri_alone(stack, tiny_root):
    config, parts = stack
    env = client_env(parts.tracking_uri)
    common = [f"paths.root={tiny_root}", NO_SERVICE]
    local = tiny_root / "mlartifacts"  # the tiny market fixture's own sqlite store's artifacts
    local_before = sorted(local.rglob("*"))

    done = mlflow_run("main", [*common, *TINY_MARKET, *TINY_DAYS, *FAST_MODEL], env)
    assert done.returncode == 0, done.stderr[-3000:]
    done = mlflow_run("promote", common, env)
    assert done.returncode == 0, done.stderr[-3000:]
    state = str(tiny_root / "data" / "state")
    done = subprocess.run(
        [sys.executable, "-c", SERVICE_LOAD, parts.tracking_uri, MODEL, state],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    served = done.stdout.strip().splitlines()[-1]
    # the monitor scores Production on the newest feature day, logging its run to the server
    done = mlflow_run("monitor", [*common, "monitor.retrain=false"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    # the app's registry panel reads the server (through its URI alone)
    view = read_registry(parts.tracking_uri, MODEL)
    assert not view.problems, view.problems
    production = view.versions[view.versions["aliases"].str.contains("production")]
    assert production["version"].tolist() == [served]
    assert sorted(local.rglob("*")) == local_before  # no artifact went to a local folder
    experiment = mlflow.MlflowClient(parts.tracking_uri).get_experiment_by_name("options-pricing")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    metrics = requests.get(f"{parts.tracking_uri}/metrics", timeout=10).text  # for Prometheus
    assert 'mlflow_http_request_total{method="POST",status="200"}' in metrics, metrics[:2000]

    with connect(parts.pg) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT a.version FROM registered_model_aliases a "
            "WHERE a.name = %s AND a.alias = 'production'",
            (MODEL,),
        )
        assert [str(v) for (v,) in cur.fetchall()] == [served]
        cur.execute(
            "SELECT t.value, count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'pipeline.task' GROUP BY t.value"
        )
        tasks = dict(cur.fetchall())
    assert {"main", "model_train", "model_evaluate", "model_deploy", "monitor"} <= set(tasks)

    keys = [
        o["Key"]
        for page in parts.s3.client().get_paginator("list_objects_v2").paginate(Bucket="mlflow")
        for o in page.get("Contents", [])
    ]
    assert any(k.endswith("/MLmodel") for k in keys), keys[:20]
    assert any(k.endswith(".log") for k in keys), keys[:20]  # the task logs of the runs

    # down and up again: the registry and the artifacts are still there
    team.down(config)
    assert processes_in(config.root) == []
    parts = team.up(config)
    version = mlflow.MlflowClient(parts.tracking_uri).get_model_version_by_alias(
        MODEL, "production"
    )
    assert str(version.version) == served
    assert team.up(config) == parts  # already running: nothing started, the same stack


def test_a_server_that_does_not_answer_stops_what_was_started(tmp_path):
    config = config_at(tmp_path / "team", timeouts=team.Timeouts(mlflow=0.5))
    with pytest.raises(StackError, match=r"^mlflow did not answer http://127\.0\.0\.1:\d+/health "
                       r"within 0\.5 s \(see .*mlflow\.log\)$"):  # fmt: skip
        team.up(config)
    assert processes_in(config.root) == [] and not config.state_file.exists()
    assert team.status(config) == {"postgres": False, "seaweedfs": False, "mlflow": False}
