"""`make bento` for real (pipeline/bento.py in a subprocess, BENTOML_HOME in tmp_path), then
`bentoml serve <tag>` from an empty folder with no registry and no repository:

- the registry's Production version (tests/serving_helpers.py's tiny registry) becomes a Bento;
  served from an empty folder, with no MLFLOW_TRACKING_URI, no repository on PYTHONPATH and the
  registry's database gone, it answers POST /price exactly as the registered model prices the
  batch offline (as tests/integration/test_serving.py checks the registry-following service),
  and the whole bad-input list with the same statuses and messages; the folder stays empty;
- a version that fails its offline self-check (tests/integration/test_promote_offline.py's broken
  stub), a missing version and a malformed one are refused with one line, and nothing is written
  to the BentoML store.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_module
from tests.integration.test_promote_offline import stage, store  # noqa: F401
from tests.integration.test_serving import BAD_INPUT, GOOD, as_json, batch, offline
from tests.serving_helpers import (  # noqa: F401
    RunningService,
    free_port,
    registry_copy,
    stop,
    tiny_registry,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENTOML = str(Path(sys.executable).parent / "bentoml")


def make_bento(root: Path, home: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.bento` (what `make bento` runs) on the registry at `root`."""
    return run_module("pipeline.bento", f"paths.root={root}", *overrides,
                      env={"BENTOML_HOME": str(home)}, timeout=600)  # fmt: skip


def outside_env(home: Path) -> dict[str, str]:
    """An environment with nothing of the repository or the registry: BentoML's store only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "SERVING_", "PYTHON"))}  # fmt: skip
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", PYTHONUNBUFFERED="1")
    return env


def stored_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file()] if home.exists() else []


def serve_bento(tag: str, home: Path, cwd: Path, log_path: Path):
    """`bentoml serve <tag>` on a free 127.0.0.1 port from `cwd`; the caller stops it."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [BENTOML, "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd, env=outside_env(home), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends all of it
        )  # fmt: skip
    return RunningService(f"http://127.0.0.1:{port}", process, log_path)


def test_a_bento_serves_the_production_version_from_an_empty_folder(registry_copy, tmp_path):  # noqa: F811
    reg, home = registry_copy, tmp_path / "bentoml"
    contracts = batch(reg.root)
    expected = offline(reg.tracking_uri, reg.production, contracts)

    made = make_bento(reg.root, home)
    assert made.returncode == 0, made.stderr[-3000:]
    found = re.search(r"^bento (options_pricing:\w+): options-pricer v(\d+) ", made.stdout, re.M)
    assert found, made.stdout
    tag, version = found.groups()
    assert version == reg.production
    assert f"next: bentoml serve {tag} " in made.stdout

    # nothing of the repository or the registry where it is served
    (reg.root / "mlflow.db").unlink()
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    probe = subprocess.run([sys.executable, "-c", "import pipeline"], cwd=empty,
                           env=outside_env(home), capture_output=True, text=True)  # fmt: skip
    assert probe.returncode != 0 and "No module named 'pipeline'" in probe.stderr

    with tempfile.TemporaryDirectory(prefix="bento_service_") as logs:
        service = serve_bento(tag, home, empty, Path(logs) / "service.log")
        try:
            wait_for(service.url + "/readyz", service.process, service.log_path, 240)
            info = service.get("/model").json()
            assert (info["model_name"], info["version"], info["alias"]) == (
                "options-pricer", reg.production, "bento")  # fmt: skip

            response = service.post("/price", json={"contracts": as_json(contracts)})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_version"] == reg.production
            served = pd.DataFrame(body["results"])
            np.testing.assert_allclose(served["iv"], expected["iv"], rtol=0, atol=1e-9)
            np.testing.assert_allclose(served["price"], expected["price"], rtol=1e-9)

            for case, payload, status, words in BAD_INPUT:  # the same answers as make serve's
                response = service.post(
                    "/price", data=payload, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == status, (case, response.text)
                assert words in response.json()["error"], (case, response.json())
            assert service.post("/price", json={"contracts": [GOOD]}).status_code == 200
            reload = service.post("/admin/reload", json={}).json()
            assert reload == {"previous_version": reg.production, "version": reg.production,
                              "reloaded": False}  # fmt: skip
        finally:
            stop(service.process)
        log = service.log()
    assert "Traceback" not in log, log[-3000:]
    assert f"now serving v{reg.production}" in log
    assert list(empty.iterdir()) == []  # nothing written where it was served


def test_a_version_failing_its_self_check_is_refused_and_nothing_is_stored(store, tmp_path):  # noqa: F811
    stage(store, tmp_path, "flat", "broken")  # v1 prices its example, v2 raises
    home = tmp_path / "bentoml"

    refused = make_bento(tmp_path, home, "registry.version=2")
    assert refused.returncode == 1, refused.stderr[-3000:]
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: v2 of 'options-pricer' is not built into a Bento: offline: v2 failed on its "
        "input example: RuntimeError: deliberately broken model. Nothing was built"
    ], refused.stderr[-3000:]

    missing = make_bento(tmp_path, home, "registry.version=42")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: v42 of 'options-pricer' does not exist: its versions are v1 (Production), "
        "v2 (Staging)"
    )
    malformed = make_bento(tmp_path, home, "registry.version=latest")
    assert malformed.returncode == 2
    assert "registry.version must be a version number, got 'latest'" in malformed.stderr
    assert stored_files(home) == []
