"""model_deploy against a real `bentoml serve`: a healthy rollout, then a deliberately broken
version → health check fails → automatic rollback → the previous version answers again."""

from __future__ import annotations

import json

import mlflow
import pytest

from pipeline import model_deploy
from pipeline.runtime import execute
from tests.serving_helpers import (  # noqa: F401 (fixtures)
    registry_config,
    registry_copy,
    running_service,
    tiny_registry,
    tracking_at,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BROKEN_MODEL = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Broken(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        raise RuntimeError("deliberately broken model")


mlflow.models.set_model(Broken())
"""
CONTRACT = {"underlying": "SPY", "option_type": "C", "strike": 600.0, "expiry": "2026-06-19",
            "quote_date": "2026-03-31", "spot": 600.0}  # fmt: skip


def register_broken(cfg, tmp_path) -> str:
    """Log the broken pyfunc, register it (→ Staging) and force it into Production."""
    from pipeline.registry import Registry

    code = tmp_path / "broken_model.py"
    code.write_text(BROKEN_MODEL)
    registry = Registry(cfg.registry.model_name)
    with mlflow.start_run(run_name="broken model") as run:
        mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=["mlflow"])
    mv = registry.register_candidate(f"runs:/{run.info.run_id}/model", run.info.run_id)
    registry.promote(version=str(mv.version), force=True, reason="test: a broken release")
    return str(mv.version)


def deploy(cfg):
    return execute(model_deploy.SPEC, cfg)


def test_rollout_then_automatic_rollback_of_a_broken_version(registry_copy, tmp_path):  # noqa: F811
    reg = registry_copy
    with running_service(reg.tracking_uri) as service:
        cfg = registry_config(reg.root, f"model_deploy.service_url={service.url}")
        with tracking_at(cfg):
            registry = reg.registry()
            assert service.get("/model").json()["version"] == reg.production

            # a healthy rollout: promote the candidate, model_deploy reloads and verifies it
            registry.promote(version=reg.candidate, force=True, reason="test: roll out v2")
            outcome = deploy(cfg)
            serving = json.loads(outcome.outputs[0].read_text())["serving"]
            assert serving["status"] == "healthy", serving
            assert service.get("/model").json()["version"] == reg.candidate

            # a broken release: the service refuses to load it, the deploy check fails,
            # the registry rolls back to the candidate (previous-production) automatically
            broken = register_broken(cfg, tmp_path)
            with pytest.raises(model_deploy.DeploymentFailed) as info:
                deploy(cfg)
            message = str(info.value)
            assert f"v{broken} failed its deploy health check" in message
            assert f"rolled back to v{reg.candidate}, which passes" in message
            assert info.value.exit_code == 1

            assert str(registry.resolve("production").version) == reg.candidate
            assert registry.check_consistency() == []
            last = registry.history()[-1]
            assert last["action"] == "rollback" and last["user"] == "model_deploy"
            assert last["from_version"] == broken and last["to_version"] == reg.candidate

            priced = service.post("/price", json={"contracts": [CONTRACT]})
            assert priced.status_code == 200
            assert priced.json()["results"][0]["model_version"] == reg.candidate

            incident = json.loads(
                (reg.root / "reports" / "deployment" / "incident_20260331.json").read_text()
            )
            assert incident["failed_version"] == broken
            assert incident["after_rollback"]["passed"] is True
            log = (reg.root / "logs" / "deployment_20260331.log").read_text()
            assert "rolled back the registry" in log and "after rollback" in log
