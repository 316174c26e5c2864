"""The registered model works outside the repository: it ships its pricing core as code_paths.

- In a fresh `python -I` process whose working directory is an empty folder and whose sys.path
  holds no folder with the project's packages (checked in the child), `mlflow.pyfunc.load_model`
  of `models:/options-pricer@production` loads the model and prices contracts, with the model's
  own copy of `pipeline` (no task, runtime or monitoring module loaded), and the same prices as
  this process gets from the repository's code.
- `mlflow models serve -m models:/options-pricer@production --env-manager local`, started from an
  empty folder on a free 127.0.0.1 port, answers POST /invocations with those prices.

Both use the session's prepared registry (tests.serving_helpers: tiny market, v1 in Production)
and price the model's input example: contracts of the trading day after its training, priced
with the market state bundled with the model (no state folder, no repository).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from pipeline.config import REPO_ROOT
from pipeline.model.packaging import quiet_artifact_transfers
from tests.serving_helpers import free_port, stop, tiny_registry, wait_for  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_URI = "models:/options-pricer@production"

# Run by `python -I -c` in an empty folder: argv[1] the repository, argv[2] the model URI.
# Prints one JSON line: the contracts priced, the prices, the project modules it loaded.
CHILD = """
import importlib.util, json, os, sys
from pathlib import Path

repo = Path(sys.argv[1])
project_folders = [p for p in sys.path if (Path(p or ".") / "pipeline" / "__init__.py").exists()
                   or (Path(p or ".") / "monitoring").is_dir()]
assert not project_folders, f"sys.path holds the project's packages: {project_folders}"
assert "" not in sys.path and "." not in sys.path, sys.path
assert not os.environ.get("PYTHONPATH"), os.environ.get("PYTHONPATH")
assert importlib.util.find_spec("pipeline") is None, "pipeline importable before the model loads"

import mlflow

model = mlflow.pyfunc.load_model(sys.argv[2])
contracts = model.input_example
out = model.predict(contracts)
import pipeline

print(json.dumps({
    "pipeline_file": pipeline.__file__,
    "contracts": json.loads(contracts.to_json(orient="records", date_format="iso")),
    "iv": out["iv"].tolist(),
    "price": out["price"].tolist(),
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("pipeline", "monitoring")),
}))
"""


def outside_env(tracking_uri: str) -> dict[str, str]:
    """This environment without PYTHON* and MLFLOW_* variables, pointed at `tracking_uri`, with
    the interpreter's bin folder first on PATH, as in an activated virtual environment (`mlflow
    models serve` runs `uvicorn` by name)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_DISABLE_TELEMETRY="true")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def repo_prices(tracking_uri: str, contracts: pd.DataFrame) -> pd.DataFrame:
    """The same model's prices in this process (the repository's code)."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(MODEL_URI).predict(contracts)
    finally:
        mlflow.set_tracking_uri(previous)


def test_loads_and_prices_in_a_process_without_the_repository(tiny_registry, tmp_path):  # noqa: F811
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    child = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(REPO_ROOT), MODEL_URI],
        cwd=empty,
        env=outside_env(tiny_registry.tracking_uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])

    # the model's own copy of the core, and only the core
    assert not Path(result["pipeline_file"]).is_relative_to(REPO_ROOT)
    loaded = set(result["modules"])
    assert "pipeline.model.pricer" in loaded and "pipeline.features" in loaded
    for outsider in ("monitoring", "pipeline.runtime", "pipeline.feature_engineer",
                     "pipeline.config", "pipeline.task_hooks"):  # fmt: skip
        assert outsider not in loaded, f"the model loaded {outsider}"

    contracts = pd.DataFrame(result["contracts"])
    assert len(contracts) >= 3
    iv, price = np.array(result["iv"]), np.array(result["price"])
    assert np.isfinite(iv).all() and ((iv > 0.01) & (iv < 5)).all()
    assert np.isfinite(price).all() and (price > 0).all()
    expected = repo_prices(tiny_registry.tracking_uri, contracts)
    np.testing.assert_allclose(iv, expected["iv"], rtol=1e-9)
    np.testing.assert_allclose(price, expected["price"], rtol=1e-9)


def test_mlflow_models_serve_answers_from_an_empty_folder(tiny_registry, tmp_path):  # noqa: F811
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = outside_env(tiny_registry.tracking_uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tiny_registry.tracking_uri)
    try:
        with quiet_artifact_transfers():
            model_dir = Path(
                mlflow.artifacts.download_artifacts(MODEL_URI, dst_path=tmp_path / "m")
            )
    finally:
        mlflow.set_tracking_uri(previous)
    body = (model_dir / "serving_input_example.json").read_text()

    port = free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_cli), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, cwd=empty, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/ping", process, log_path, timeout_s=180)
        answer = requests.post(
            url + "/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        served = pd.DataFrame(answer.json()["predictions"])
    finally:
        stop(process)
    assert process.returncode is not None

    split = json.loads(body)["dataframe_split"]
    contracts = pd.DataFrame(split["data"], columns=split["columns"])
    expected = repo_prices(tiny_registry.tracking_uri, contracts)
    assert len(served) == len(contracts) >= 3
    np.testing.assert_allclose(served["iv"], expected["iv"], rtol=1e-9)
    np.testing.assert_allclose(served["price"], expected["price"], rtol=1e-9)


def test_loading_in_this_process_leaves_sys_path_as_it_was(tiny_registry):  # noqa: F811
    """MLflow prepends the model's code_paths copy of `pipeline` (the pricing core only) to
    sys.path on a load; served_model (model_evaluate, monitor, the deploy checks) takes it off
    again, or processes started later by this one (a second main's Dask workers) would import the
    copy and miss the task modules."""
    from pipeline.model.packaging import served_model

    previous, before = mlflow.get_tracking_uri(), list(sys.path)
    mlflow.set_tracking_uri(tiny_registry.tracking_uri)
    try:
        model = served_model(MODEL_URI, "", 5)
        assert sys.path == before
        assert np.isfinite(model.predict(model.input_example)["iv"]).all()
        mlflow.pyfunc.load_model(MODEL_URI)  # MLflow alone does leave its copy there
        assert sys.path != before and any("code" in p for p in sys.path[:3])
    finally:
        sys.path[:] = before
        mlflow.set_tracking_uri(previous)
