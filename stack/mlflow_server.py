"""The team stack's MLflow tracking server: runs and the registry in PostgreSQL, artifacts in the
S3 bucket behind the server's proxy (clients send artifacts to the server, which alone holds the
S3 keys), Prometheus metrics on /metrics, its job runner off (it costs 7 processes and ~2 GB)."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stack.postgres import Postgres
from stack.procs import HOST, Service, start, wait_until
from stack.seaweed import Seaweed


@dataclass(frozen=True)
class MlflowServer:
    folder: Path  # <root>/mlflow: the working folder and the Prometheus multiprocess files
    port: int
    workers: int = 2

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def server_env(s3: Seaweed, pg: Postgres) -> dict[str, str]:
    """The server's environment: the S3 keys and endpoint, the database password (libpq reads
    PGPASSWORD, so it is on no command line), no telemetry, no job runner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PG"))}
    env.update(
        MLFLOW_S3_ENDPOINT_URL=s3.endpoint,
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        PGPASSWORD=pg.password,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
    )
    return env


def start_server(
    server: MlflowServer,
    pg: Postgres,
    s3: Seaweed,
    log: Path,
    timeout_s: float,
    started: list[Service],
) -> None:
    """Start `mlflow server`, append it to `started`, and wait until /health answers (the first
    start creates the schema in PostgreSQL, which takes a while). `--expose-prometheus` serves
    /metrics (prometheus-flask-exporter, a dependency) from multiprocess files in
    <folder>/prometheus, emptied first (a previous run's files would add to the counts)."""
    metrics = server.folder / "prometheus"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", pg.uri(),
        "--artifacts-destination", f"s3://{s3.bucket}/artifacts",
        "--serve-artifacts",
        "--host", HOST, "--port", str(server.port), "--workers", str(server.workers),
        "--expose-prometheus", str(metrics),
    ]  # fmt: skip
    service = start("mlflow", cmd, log=log, cwd=server.folder, env=server_env(s3, pg))
    started.append(service)
    wait_until(service, lambda: _answers(f"{server.url}/health"), f"{server.url}/health",
               timeout_s)  # fmt: skip


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.status == 200


def ensure_experiment(server: MlflowServer, name: str) -> str:
    """Create the pipeline's experiment when missing, with the server's default artifact root (the
    proxied mlflow-artifacts:/ store: a client creating it would give it a local folder) and
    tagged as model development as pipeline.runtime.configure_tracking tags it; its id."""
    from mlflow import MlflowClient

    from pipeline.runtime import EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT

    client = MlflowClient(server.url)
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT})
