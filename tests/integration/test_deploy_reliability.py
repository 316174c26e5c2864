"""A broken version in Production never stays there silently: model_deploy checks it offline
whether a pricing service runs or not (rollback, incident, alert), each incident gets its own
file naming the check that failed, and a real `bentoml serve` starting on a broken Production
serves `previous-production` instead, alerts, and says so on /model.

The broken version gets into Production through Registry.promote without a check, as a version
promoted before the offline check existed (or by hand in the MLflow UI) would have."""

from __future__ import annotations

import contextlib
import json
import time

import mlflow
import pandas as pd
import pytest
import requests

from monitoring.alerts import read_alerts
from pipeline import model_deploy
from pipeline.model.packaging import signature
from pipeline.registry import Registry
from pipeline.runtime import execute
from tests.integration.test_deploy_health import BROKEN_MODEL, CONTRACT
from tests.serving_helpers import (  # noqa: F401 (fixtures)
    RunningService,
    free_port,
    registry_config,
    registry_copy,
    running_service,
    tiny_registry,
    tracking_at,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAUSE = "failed on its input example: RuntimeError: deliberately broken model"


def force_broken(cfg, tmp_path) -> str:
    """Log the broken pyfunc with a contract as input example, register it and move it into
    Production with no check (see the module docstring); returns its version."""
    code = tmp_path / "broken_model.py"
    code.write_text(BROKEN_MODEL)
    example = pd.DataFrame([CONTRACT]).astype({"expiry": "datetime64[ns]",
                                               "quote_date": "datetime64[ns]"})  # fmt: skip
    registry = Registry(cfg.registry.model_name)
    with mlflow.start_run(run_name="broken model") as run:
        mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=["mlflow"],
                                input_example=example, signature=signature())  # fmt: skip
    mv = registry.register_candidate(f"runs:/{run.info.run_id}/model", run.info.run_id)
    registry.promote(version=str(mv.version), force=True, reason="test: a broken release")
    return str(mv.version)


def test_with_no_service_a_broken_production_is_rolled_back_and_every_incident_kept(
    registry_copy,  # noqa: F811
    tmp_path,
):
    reg = registry_copy
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    cfg = registry_config(reg.root, f"model_deploy.service_url={nothing_listens}")
    failed = []
    with tracking_at(cfg):
        registry = reg.registry()
        registry.promote(version=reg.candidate, force=True, reason="test: roll out v2")
        for _ in range(2):  # two incidents on the same business date
            failed.append(force_broken(cfg, tmp_path))
            with pytest.raises(model_deploy.DeploymentFailed) as info:
                execute(model_deploy.SPEC, cfg)
            message = str(info.value)
            assert f"v{failed[-1]} failed its deploy health check (offline: v{failed[-1]} {CAUSE})" in message  # fmt: skip
            assert f"rolled back to v{reg.candidate}, which passes its health check" in message
            assert str(reg.root) not in message
            assert str(registry.resolve("production").version) == reg.candidate
            assert registry.check_consistency() == []

    folder = reg.root / "reports" / "deployment"
    names = ["incident_20260331.json", "incident_20260331_2.json"]
    assert sorted(p.name for p in folder.glob("incident_*")) == names
    assert f"incident: reports/deployment/{names[-1]}" in message
    for name, version in zip(names, failed, strict=True):
        text = (folder / name).read_text()
        assert str(reg.root) not in text and "Traceback" not in text
        incident = json.loads(text)
        assert incident["failed_version"] == version
        assert incident["cause"] == {"check": "offline", "error": f"v{version} {CAUSE}"}
        assert incident["checks"] == [f"offline: v{version} {CAUSE}"]
        restored = incident["after_rollback"]
        assert restored["version"] == reg.candidate and restored["passed"] is True
        assert restored["checks"][0].startswith(f"offline: v{reg.candidate} priced its")
        assert restored["checks"][-1].startswith(f"service: pricing service at {nothing_listens}")

    sent = [a for a in read_alerts(cfg.alerts.log_path) if a["kind"] == "deploy_rollback"]
    assert [a["details"]["failed_version"] for a in sent] == failed
    assert all(CAUSE in a["message"] for a in sent)
    assert [a["details"]["incident"] for a in sent] == [f"reports/deployment/{n}" for n in names]


def settled(service: RunningService, timeout_s: float = 180) -> requests.Response:
    """GET /model once the service's start-up load is over (it no longer says "loading")."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(requests.RequestException):
            response = service.get("/model", timeout=5)
            if response.status_code == 200 or "(loading " not in response.json().get("error", ""):
                return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service still loads after {timeout_s:.0f} s:\n{service.log()[-3000:]}")  # fmt: skip
        time.sleep(0.25)


def test_a_service_starting_on_a_broken_production_serves_the_previous_one(
    registry_copy,  # noqa: F811
    tmp_path,
):
    reg = registry_copy
    cfg = registry_config(reg.root)
    with tracking_at(cfg):
        broken = force_broken(cfg, tmp_path)  # previous-production: reg.production
    env = {"SERVING_PATHS_ROOT": str(reg.root), "ALERT_WEBHOOK_URL": ""}
    with running_service(reg.tracking_uri, wait="/livez", env=env) as service:
        model = settled(service)
        assert model.status_code == 200, model.text
        info = model.json()
        assert (info["alias"], info["version"]) == ("previous-production", reg.production)
        assert info["fallback"]["instead_of"] == {"alias": "production", "version": broken}
        assert "RuntimeError: deliberately broken model" in info["fallback"]["reason"]
        assert service.get("/readyz").status_code == 200
        priced = service.post("/price", json={"contracts": [CONTRACT]})
        assert priced.status_code == 200, priced.text
        assert priced.json()["model_version"] == reg.production

        (alert,) = [a for a in read_alerts(cfg.alerts.log_path) if a["task"] == "serving"]
        assert alert["kind"] == "deploy_rollback" and alert["severity"] == "error"
        assert f"options-pricer@production v{broken} failed" in alert["message"]
        assert "RuntimeError: deliberately broken model" in alert["message"]
        assert f"serves v{reg.production} (@previous-production)" in alert["message"]
        assert alert["details"] == {"failed_version": broken, "rolled_back_to": reg.production}

        # the on-call engineer rolls back: the fallback's version is Production again
        reg.registry().rollback(reason="test: the broken release")
        assert service.post("/admin/reload", json={}).status_code == 200
        info = service.get("/model").json()
        assert (info["alias"], info["version"], info["fallback"]) == (
            "production",
            reg.production,
            None,
        )
