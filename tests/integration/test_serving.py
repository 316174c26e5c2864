"""The pricing service for real: `bentoml serve` on a free 127.0.0.1 port against a sqlite MLflow
registry in tmp_path holding two tiny trained versions (v1 Production, v2 Staging; see
tests/serving_helpers.py).

- one service, poll off: health and metrics routes, a batch priced exactly as the registered
  model prices it offline, the issue's whole bad-input list (all 4xx with a message, the service
  still answering), the OpenAPI page, hot swaps via POST /admin/reload after a promotion and a
  rollback with requests in flight, and a quiet log;
- one service polling the registry every second: promotion and rollback picked up unasked;
- one service whose alias holds no version yet: live but not ready, 503 on /price, ready once
  the alias appears.
"""

from __future__ import annotations

import json
import re
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from tests.serving_helpers import registry_copy, running_service, tiny_registry  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIELDS = ["underlying", "option_type", "strike", "expiry", "quote_date", "spot", "option", "rate",
          "dividend_yield"]  # fmt: skip
GOOD = {"underlying": "SPY", "option_type": "C", "strike": 600.0, "expiry": "2026-06-19",
        "quote_date": "2026-03-31", "spot": 640.0}  # fmt: skip


def batch(root, n: int = 200) -> pd.DataFrame:
    """`n` contracts of the tiny market's last day (both underlyings, calls and puts)."""
    features = pd.read_parquet(root / "data" / "processed" / "features_20260331.parquet")
    return features.sample(n, random_state=1)[FIELDS].reset_index(drop=True)


def as_json(frame: pd.DataFrame) -> list[dict]:
    rows = frame.assign(expiry=frame["expiry"].dt.strftime("%Y-%m-%d"),
                        quote_date=frame["quote_date"].dt.strftime("%Y-%m-%d"))  # fmt: skip
    return json.loads(rows.to_json(orient="records"))


def offline(tracking_uri: str, version: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The registered version's own prediction, in this process (MLflow's pyfunc path), with the
    root's daily market states (as the service reads them)."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        state_dir = tracking_uri.removeprefix("sqlite:///").removesuffix("mlflow.db") + "data/state"
        model = mlflow.pyfunc.load_model(f"models:/options-pricer/{version}",
                                         model_config={"state_dir": state_dir})  # fmt: skip
        return model.predict(frame)
    finally:
        mlflow.set_tracking_uri(previous)


def price(service, contracts: list[dict]) -> requests.Response:
    return service.post("/price", json={"contracts": contracts})


def counter(service, version: str) -> float:
    text = service.get("/metrics").text
    found = re.search(rf'^options_pricer_predictions_total{{model_version="{version}"}} (\S+)$',
                      text, re.M)  # fmt: skip
    return float(found.group(1)) if found else 0.0


def with_(**changes) -> dict:
    return {**GOOD, **changes}


def raw(contract_json: str) -> bytes:
    return ('{"contracts": [' + contract_json + "]}").encode()


# the bad-input list: (case, body bytes, expected status, words in the error sentence)
BAD_INPUT = [
    ("malformed JSON", b'{"contracts": [{"underlying": "SPY",', 400, "malformed JSON"),
    ("not a JSON object", b'[{"underlying": "SPY"}]', 400, "must be a JSON object"),
    ("empty body", b"", 400, "empty request body"),
    ("wrong type: strike as text", json.dumps({"contracts": [with_(strike="600")]}).encode(), 422,
     "contract 0 strike: must be a valid number"),
    ("wrong type: contracts not a list", b'{"contracts": "SPY"}', 422, "contracts"),
    ("missing field", json.dumps({"contracts": [{k: v for k, v in GOOD.items() if k != "spot"}]}).encode(),
     422, "contract 0 spot: is required"),
    ("zero strike", json.dumps({"contracts": [with_(strike=0)]}).encode(), 422, "must be > 0"),
    ("negative spot", json.dumps({"contracts": [with_(spot=-640.0)]}).encode(), 422, "must be > 0"),
    ("expiry before quote date", json.dumps({"contracts": [with_(expiry="2026-03-02")]}).encode(),
     422, "must be after quote_date"),
    ("unknown option type", json.dumps({"contracts": [with_(option_type="X")]}).encode(), 422,
     "must be 'C' or 'P'"),
    ("NaN", raw(json.dumps(with_(spot="NAN")).replace('"NAN"', "NaN")), 422, "finite number"),
    ("infinity", raw(json.dumps(with_(strike="INF")).replace('"INF"', "Infinity")), 422,
     "finite number"),
    ("empty batch", b'{"contracts": []}', 422, "at least one contract"),
    ("oversized batch", json.dumps({"contracts": [GOOD] * 10_001}).encode(), 422,
     "at most 10,000"),
    ("huge numbers", json.dumps({"contracts": [with_(strike=1e308, spot=1e300)]}).encode(), 422,
     "must be ≤ 10000000"),
    ("huge rate", json.dumps({"contracts": [with_(rate=1e300)]}).encode(), 422, "must be ≤ 1"),
    ("unknown underlying", json.dumps({"contracts": [GOOD, with_(underlying="TSLA")]}).encode(),
     422, "contract 1 underlying: unknown underlying 'TSLA'"),
    ("one bad contract in a batch", json.dumps({"contracts": [GOOD, GOOD, with_(strike=-1)]}).encode(),
     422, "contract 2 strike"),
]  # fmt: skip


def test_health_pricing_bad_input_and_hot_reload_by_admin_call(registry_copy):  # noqa: F811
    reg = registry_copy
    with running_service(reg.tracking_uri, poll_s=0) as service:
        # health: live, ready, the Production version loaded
        assert service.get("/livez").status_code == 200
        assert service.get("/readyz").status_code == 200
        info = service.get("/model").json()
        assert (info["model_name"], info["alias"], info["version"]) == (
            "options-pricer", "production", reg.production)  # fmt: skip
        assert info["run_id"] == reg.registry().resolve("production").run_id

        # a batch, priced exactly as the registered version prices it offline, in request order
        contracts = batch(reg.root)
        response = price(service, as_json(contracts))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == reg.production
        assert {r["model_version"] for r in body["results"]} == {reg.production}
        expected = offline(reg.tracking_uri, reg.production, contracts)
        served = pd.DataFrame(body["results"])
        np.testing.assert_allclose(served["iv"], expected["iv"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(served["price"], expected["price"], rtol=1e-9)
        assert counter(service, reg.production) == len(contracts)

        # the bad-input list: every one a 4xx with a message; nothing counted
        for case, payload, status, words in BAD_INPUT:
            response = service.post(
                "/price", data=payload, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == status, (case, response.status_code, response.text)
            error = response.json()
            assert set(error) == {"error", "problems"}, case
            assert words in error["error"], (case, error["error"])
        assert counter(service, reg.production) == len(contracts)
        assert price(service, [GOOD]).status_code == 200  # still answering

        # the generated OpenAPI page documents /price with typed request and response
        spec = service.get("/docs.json").json()
        assert "/price" in spec["paths"]
        assert {"PriceRequest", "Contract", "PriceResponse", "PriceResult"} <= set(spec["components"]["schemas"])  # fmt: skip
        assert service.get("/").status_code == 200

        # promotion → admin reload, with requests in flight the whole time: none dropped, each
        # answered by one version
        registry = reg.registry()
        registry.promote(version=reg.candidate, force=True, reason="test: roll out v2")
        answers = load_while(service, lambda: service.post("/admin/reload", json={}))
        reload = answers.pop("reload")
        assert reload.status_code == 200
        assert reload.json() == {"previous_version": reg.production, "version": reg.candidate,
                                 "reloaded": True}  # fmt: skip
        assert answers["statuses"] == {200}
        assert all(len(v) == 1 for v in answers["versions"])
        after = price(service, as_json(contracts)).json()
        assert after["model_version"] == reg.candidate
        expected_v2 = offline(reg.tracking_uri, reg.candidate, contracts)
        np.testing.assert_allclose(pd.DataFrame(after["results"])["iv"], expected_v2["iv"], atol=1e-9)  # fmt: skip
        assert counter(service, reg.candidate) >= len(contracts)

        # rollback → admin reload: v1 answers again
        registry.rollback(reason="test: roll back v2", user="tests")
        reload = service.post("/admin/reload", json={})
        assert reload.json() == {"previous_version": reg.candidate, "version": reg.production,
                                 "reloaded": True}  # fmt: skip
        assert price(service, [GOOD]).json()["model_version"] == reg.production
        assert service.post("/admin/reload").json()["reloaded"] is False

        log = service.log()
    assert "Traceback" not in log and "WARNING" not in log and "Warning" not in log, log[-3000:]
    assert f"now serving v{reg.production}" in log


def load_while(service, action) -> dict:
    """Run `action` while another thread keeps sending single-contract requests; returns the
    action's response, the requests' statuses and the set of versions in each answer."""
    statuses, versions, stop = set(), [], threading.Event()

    def keep_pricing():
        while not stop.is_set():
            response = price(service, [GOOD, with_(option_type="P")])
            statuses.add(response.status_code)
            if response.status_code == 200:
                versions.append({r["model_version"] for r in response.json()["results"]})

    sender = threading.Thread(target=keep_pricing)
    sender.start()
    try:
        while not versions:  # at least one answer before the action
            time.sleep(0.05)
        outcome = action()
        count = len(versions)
        while len(versions) < count + 3:  # and a few after it
            time.sleep(0.05)
    finally:
        stop.set()
        sender.join(60)
    return {"reload": outcome, "statuses": statuses, "versions": versions}


def wait_for_version(service, version: str, timeout_s: float = 120) -> None:
    """Poll GET /model until it names `version` (the registry poll's doing)."""
    deadline = time.monotonic() + timeout_s
    while service.get("/model").json().get("version") != version:
        assert time.monotonic() < deadline, f"still not serving v{version}: {service.log()[-2000:]}"
        time.sleep(0.2)


def test_the_registry_poll_follows_promotion_and_rollback(registry_copy):  # noqa: F811
    reg = registry_copy
    with running_service(reg.tracking_uri, poll_s=1) as service:
        assert service.get("/model").json()["version"] == reg.production
        registry = reg.registry()
        registry.promote(version=reg.candidate, force=True, reason="test: roll out v2")
        wait_for_version(service, reg.candidate)
        assert price(service, [GOOD]).json()["model_version"] == reg.candidate
        registry.rollback(reason="test: roll back v2", user="tests")
        wait_for_version(service, reg.production)
        assert price(service, [GOOD]).json()["model_version"] == reg.production
        log = service.log()
    assert f"now serving v{reg.candidate} (was v{reg.production})" in log
    assert f"now serving v{reg.production} (was v{reg.candidate})" in log


def test_not_ready_until_the_alias_holds_a_version(registry_copy):  # noqa: F811
    reg = registry_copy
    env = {"SERVING_ALIAS": "canary"}
    with running_service(reg.tracking_uri, poll_s=1, wait="/livez", env=env) as service:
        assert service.get("/readyz").status_code == 503
        response = price(service, [GOOD])
        deadline = time.monotonic() + 120  # until the start-up load attempt has ended
        while "(loading options-pricer@canary)" in response.json()["error"]:
            assert response.status_code == 503 and time.monotonic() < deadline
            time.sleep(0.5)
            response = price(service, [GOOD])
        assert response.status_code == 503
        assert "no version of options-pricer holds the alias @canary" in response.json()["error"]
        reload = service.post("/admin/reload", json={})
        assert reload.status_code == 409 and reload.json()["version"] is None
        mlflow.MlflowClient(reg.tracking_uri).set_registered_model_alias(
            "options-pricer", "canary", reg.candidate
        )
        wait_for_version(service, reg.candidate)
        assert service.get("/readyz").status_code == 200
        assert price(service, [GOOD]).json()["model_version"] == reg.candidate
