"""Helpers for tests that run the pricing service for real.

- `prepared_registry(features_root, base)`: a root holding the tiny market's features and a sqlite
  MLflow registry with two trained `options-pricer` versions: v1 in **Production** (promoted with
  force and a reason: tests skip model_evaluate's gate) and v2, a different model, in **Staging**,
  ready to promote. Built once per test session (memoised), ~1 min on top of tiny_features_root.
- `copy_registry(prepared, dest)`: a private copy for a test that changes the registry (promote,
  rollback, register). The copy shares the prepared root's `mlartifacts` folder: the store records
  absolute artifact URIs, so the copy reads the same model files; runs logged into a copy add new
  folders there and never change existing ones.
- `running_service(tracking_uri, ...)`: `bentoml serve serving.service:OptionsPricingService` on a
  free 127.0.0.1 port, waited for until /readyz answers 200 (or /livez, for tests of a service
  without a model), stopped (its whole process group) at the end; its output goes to a log file.

Fixtures `tiny_registry` (session: the prepared registry) and `registry_copy` (per test) wrap
them; import them into a test module (`from tests.serving_helpers import registry_copy`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pytest
import requests

from pipeline.config import REPO_ROOT
from pipeline.registry import Registry
from tests.conftest import TINY_MARKET, compose_config

MODEL_NAME = "options-pricer"
LAST_DAY = "date=2026-03-31"  # the tiny market's last feature day
FAST_TRAIN = ("model_train.n_estimators=40", "model_train.days=25")
# v2 differs from v1 (shallower trees), so the two versions price contracts differently
CANDIDATE_TRAIN = ("model_train.max_depth=3",)
SERVICE = "serving.service:OptionsPricingService"
FORCE_REASON = "tests: a tiny model trained without model_evaluate's gate"


@dataclass(frozen=True)
class TinyRegistry:
    """A root with the tiny market's features and a registry: `production` (v1) in Production,
    `candidate` (v2) in Staging (None once promoted)."""

    root: Path
    production: str
    candidate: str | None
    model_name: str = MODEL_NAME

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root}/mlflow.db"

    def registry(self) -> Registry:
        return Registry(self.model_name, mlflow.MlflowClient(self.tracking_uri))


def registry_config(root: Path, *overrides: str):
    """The composed config of the tiny market rooted at `root`, with the fast training settings."""
    return compose_config([f"paths.root={root}", *TINY_MARKET, LAST_DAY, *FAST_TRAIN, *overrides])


@contextlib.contextmanager
def tracking_at(cfg) -> Iterator[None]:
    """MLflow in this process points at cfg's store for the duration (then back)."""
    from pipeline.runtime import configure_tracking

    previous = mlflow.get_tracking_uri()
    configure_tracking(cfg)
    try:
        yield
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def train_version(root: Path, *overrides: str) -> str:
    """Train (model_train, fast settings) into `root`'s registry; returns the new Staging version."""
    from pipeline import model_train
    from pipeline.runtime import execute

    cfg = registry_config(root, *overrides)
    with tracking_at(cfg):
        execute(model_train.SPEC, cfg)
    staging = Registry(cfg.registry.model_name, mlflow.MlflowClient(cfg.mlflow.tracking_uri))
    return str(staging.resolve("staging").version)


def build_registry(features_root: Path, root: Path) -> TinyRegistry:
    """Copy `features_root` to `root`; train v1 and promote it (force + reason); train v2."""
    shutil.copytree(features_root, root)
    (root / "mlflow.db").unlink(missing_ok=True)
    first = train_version(root)
    prepared = TinyRegistry(root, production=first, candidate=None)
    prepared.registry().promote(version=first, force=True, reason=FORCE_REASON, user="tests")
    second = train_version(root, *CANDIDATE_TRAIN)
    return replace(prepared, candidate=second)


_PREPARED: dict[Path, TinyRegistry] = {}


def prepared_registry(features_root: Path, base: Path) -> TinyRegistry:
    """The session's prepared registry under `base` (built on first use, then reused)."""
    if base not in _PREPARED:
        _PREPARED[base] = build_registry(features_root, base / "serving_registry")
    return _PREPARED[base]


def copy_registry(prepared: TinyRegistry, dest: Path) -> TinyRegistry:
    """A copy of `prepared` at `dest` (mlartifacts shared, see the module docstring)."""
    shutil.copytree(prepared.root, dest, ignore=shutil.ignore_patterns("mlartifacts"))
    return replace(prepared, root=dest)


@pytest.fixture
def tiny_registry(tiny_features_root, tmp_path_factory) -> TinyRegistry:
    """The session's prepared registry; read-only (use registry_copy to change it)."""
    return prepared_registry(tiny_features_root, tmp_path_factory.getbasetemp())


@pytest.fixture
def registry_copy(tiny_registry, tmp_path) -> TinyRegistry:
    """A private copy of the prepared registry for one test."""
    return copy_registry(tiny_registry, tmp_path / "registry")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningService:
    """A `bentoml serve` process started by running_service."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=kwargs.pop("timeout", 60), **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=kwargs.pop("timeout", 60), **kwargs)


def service_env(tracking_uri: str, poll_s: float = 0, **extra: str) -> dict[str, str]:
    """The environment of a test service: our store, the daily market states of its root, our
    poll interval, no usage tracking."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SERVING_"))}
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):  # the tests' roots: <root>/mlflow.db, <root>/data/state
        env["SERVING_STATE_DIR"] = str(Path(tracking_uri[len(prefix) :]).parent / "data" / "state")
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        SERVING_POLL_S=str(poll_s),
        BENTOML_DO_NOT_TRACK="True",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_for(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Poll `url` until it answers 200; fail with the service's log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited ({process.returncode}):\n"
                               f"{log_path.read_text(errors='replace')[-3000:]}")  # fmt: skip
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not 200 after {timeout_s:.0f} s; the service's log:\n"
                               f"{log_path.read_text(errors='replace')[-3000:]}")  # fmt: skip
        time.sleep(0.25)


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """Stop the service's process group (the arbiter and its workers): SIGTERM, then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)


@contextlib.contextmanager
def running_service(
    tracking_uri: str,
    *,
    poll_s: float = 0,
    wait: str = "/readyz",
    timeout_s: float = 180,
    env: dict[str, str] | None = None,
) -> Iterator[RunningService]:
    """`bentoml serve` the pricing service against `tracking_uri` on a free 127.0.0.1 port, from
    the repository root; yields once `wait` answers 200 ("/livez" for a service that cannot load
    a model); stops it at the end. `env` adds variables (SERVING_ALIAS, ...)."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "bentoml"), "serve", SERVICE,
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pricing_service_") as tmp:
        log_path = Path(tmp) / "service.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=service_env(tracking_uri, poll_s, **(env or {})),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        service = RunningService(f"http://127.0.0.1:{port}", process, log_path)
        try:
            wait_for(service.url + wait, process, log_path, timeout_s)
            yield service
        finally:
            stop(process)
