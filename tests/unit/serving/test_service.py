"""The BentoML service in-process (its ASGI app under Starlette's TestClient) with an injected
engine: stub models from a fake registry. The HTTP contract: typed /price answers, every bad
input a 4xx with the contract's body (and the service still answering), 503 before a model is
loaded, /readyz, /model, /admin/reload 200/409, the per-version counter, the OpenAPI page."""

from __future__ import annotations

import threading
import time
import warnings

import pandas as pd
import pytest

from pipeline.model.pricer import StateMissing
from serving.engine import PricingEngine
from tests.unit.serving.fakes import CONTRACT, FakeSource, StubPricer, candidate, iv_of, stub_iv

with warnings.catch_warnings():  # deprecation notices inside BentoML (pathspec, a pydantic
    warnings.simplefilter("ignore")  # hook) and Starlette (prefers httpx2; httpx works)
    from starlette.testclient import TestClient

    import serving.service as service

# BentoML's own deprecation notices (pathspec patterns, a pydantic hook), not ours
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pathspec.*"),
    pytest.mark.filterwarnings("ignore:The `__get_pydantic_core_schema__`"),
]


@pytest.fixture(scope="module")
def app():
    return service.OptionsPricingService.to_asgi()


@pytest.fixture
def source():
    return FakeSource()


@pytest.fixture
def client(app, source, monkeypatch):
    """The service with an engine on the fake registry, its model loaded (poll off)."""
    monkeypatch.setattr(service, "build_engine", lambda settings: PricingEngine(source, 0, 10_000).start())  # fmt: skip
    with TestClient(app) as client:
        wait_ready(client, source)
        yield client


def wait_ready(client, source, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while client.get("/readyz").status_code != 200:
        if source.holder_of_alias is None or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def post(client, *contracts, **top):
    return client.post("/price", json={"contracts": list(contracts), **top})


def test_price_answers_per_contract_in_request_order(client):
    put = {**CONTRACT, "option_type": "P", "strike": 550.0, "spot": 560.0}
    response = post(client, CONTRACT, put)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1"
    assert [r["model_version"] for r in body["results"]] == ["1", "1"]
    assert list(iv_of(body["results"])) == [stub_iv("1", 600, 600), stub_iv("1", 550, 560)]
    assert [r["price"] for r in body["results"]] == [6.0, 6.5]


def test_the_predictions_counter_counts_contracts_by_version(client):
    counter = service.PREDICTIONS.labels(model_version="1")
    before = counter._value.get()
    post(client, CONTRACT, CONTRACT, CONTRACT)
    assert counter._value.get() == before + 3


BAD_BODIES = [
    ("malformed JSON", b'{"contracts": [', 400, "malformed JSON"),
    ("not an object", b"[]", 400, "must be a JSON object"),
    ("empty body", b"", 400, "empty request body"),
    ("empty batch", b'{"contracts": []}', 422, "at least one contract"),
    ("NaN spot", b'{"contracts": [{"underlying": "SPY", "option_type": "C", "strike": 600, '
                 b'"expiry": "2026-06-19", "quote_date": "2026-03-31", "spot": NaN}]}', 422,
     "finite number"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "raw", "status", "words"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])  # fmt: skip
def test_bad_bodies_get_the_contract_error_body(client, case, raw, status, words):
    response = client.post("/price", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "problems"} and words in body["error"]


def test_one_bad_contract_rejects_the_batch_naming_every_bad_index(client, source):
    qqq, iwm = {**CONTRACT, "underlying": "QQQ"}, {**CONTRACT, "underlying": "IWM"}
    bad = [CONTRACT, {**CONTRACT, "strike": -1}, CONTRACT, qqq, iwm]
    response = post(client, *bad)
    assert response.status_code == 422
    assert [(p["index"], p["field"]) for p in response.json()["problems"]] == [(1, "strike")]
    # the schema's problems come first; once they are fixed, the model itself refuses the
    # underlyings its market state has no data for, naming each (positions in this request)
    response = post(client, *[c for c in bad if c["strike"] > 0])
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "problems"}
    error = body["error"]
    assert error.startswith("the model refused the contracts: 2 invalid contract row(s)")
    assert "row 2: unknown underlying 'QQQ'" in error and "row 3: unknown underlying 'IWM'" in error
    assert "['SPY', '_SPX']" in error  # what the state does have
    assert post(client, CONTRACT).status_code == 200  # and the service still answers


def test_a_quote_date_without_a_market_state_is_a_422_naming_the_dates(client, source):
    class NoState(StubPricer):
        def predict(self, context, model_input, params=None):
            if (model_input["quote_date"] > pd.Timestamp("2026-03-31")).any():
                raise StateMissing(  # as pipeline.market_state.StateStore words it
                    "no market state for quote_date 2026-04-02: it needs a state from "
                    "2026-03-31..2026-04-01 (max_state_age_days=2); the newest state before it "
                    "is 2026-03-30 (3 trading days old) (1 contract(s))"
                )
            return super().predict(context, model_input)

    source.candidates["2"] = candidate("2", pricer=NoState("2"))
    source.point("2")
    assert client.post("/admin/reload", json={}).status_code == 200
    response = post(client, CONTRACT, {**CONTRACT, "quote_date": "2026-04-02"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error.startswith("the model refused the contracts: no market state for quote_date "
                            "2026-04-02")  # fmt: skip
    assert "the newest state before it is 2026-03-30" in error
    response = post(client, CONTRACT)  # and the service still answers, with v2
    assert response.status_code == 200 and response.json()["model_version"] == "2"


def test_an_oversized_batch_is_a_422(client):
    response = post(client, *[CONTRACT] * 10_001)
    assert response.status_code == 422 and "at most 10,000" in response.json()["error"]


def test_a_body_over_the_byte_limit_is_a_413(client):
    response = client.post("/price", content=b" " * (service.MAX_BODY_BYTES + 1))
    assert response.status_code == 413


def test_huge_numbers_are_refused_not_crashed_on(client):
    response = post(client, {**CONTRACT, "strike": 1e308, "spot": 1e300})
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["problems"]} == {"strike", "spot"}


def test_a_model_without_a_finite_answer_is_a_422_not_a_500(client, source):
    class Overflowing(StubPricer):
        def predict(self, context, model_input, params=None):
            out = super().predict(context, model_input)
            return out.assign(price=out["price"].where(model_input["strike"] < 1e6, float("inf")))

    source.candidates["2"] = candidate("2", pricer=Overflowing("2"))
    source.point("2")
    assert client.post("/admin/reload", json={}).status_code == 200
    response = post(client, CONTRACT, {**CONTRACT, "strike": 5e6})
    assert response.status_code == 422
    assert response.json()["problems"][0]["index"] == 1


def test_no_model_yet_is_a_503_and_not_ready(app, monkeypatch):
    source = FakeSource(holder_of_alias=None)
    monkeypatch.setattr(service, "build_engine", lambda settings: PricingEngine(source, 0, 100).start())  # fmt: skip
    with TestClient(app) as client:
        time.sleep(0.1)
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = post(client, CONTRACT)
        assert response.status_code == 503
        assert "no model loaded" in response.json()["error"]
        assert "holds the alias @production" in response.json()["error"]
        assert client.get("/model").status_code == 503
        source.point("1")  # a version gets promoted; an admin reload picks it up
        assert client.post("/admin/reload").json() == {"previous_version": None, "version": "1", "reloaded": True}  # fmt: skip
        assert client.get("/readyz").status_code == 200


def test_model_names_the_version_served(client):
    info = client.get("/model").json()
    assert {k: info[k] for k in ("model_name", "alias", "version", "run_id")} == {
        "model_name": "options-pricer", "alias": "production", "version": "1", "run_id": "run-1"}  # fmt: skip
    assert info["loaded_at"].endswith("+00:00")


def test_admin_reload_swaps_to_the_promoted_version(client, source):
    source.point("2")
    response = client.post("/admin/reload", json={})
    assert response.status_code == 200
    assert response.json() == {"previous_version": "1", "version": "2", "reloaded": True}
    assert post(client, CONTRACT).json()["model_version"] == "2"
    assert client.post("/admin/reload", json={}).json()["reloaded"] is False


def test_a_failed_reload_is_a_409_and_the_old_model_keeps_serving(client, source):
    source.point("2")
    source.broken["2"] = RuntimeError("deliberately broken model")
    response = client.post("/admin/reload", json={})
    assert response.status_code == 409
    body = response.json()
    assert body["version"] == "1"
    assert "v2 of options-pricer (@production) was not loaded" in body["error"]
    assert "deliberately broken model" in body["error"] and "still serving v1" in body["error"]
    assert post(client, CONTRACT).json()["model_version"] == "1"
    assert client.get("/readyz").status_code == 200


def test_a_request_in_flight_during_a_swap_finishes_on_its_model(client, source):
    v1 = service.bentoml.get_current_service().engine.holder.current.pricer
    v1.gate = threading.Event()  # v1's next predict waits until the swap is done
    answers = {}
    thread = threading.Thread(target=lambda: answers.update(slow=post(client, CONTRACT)))
    thread.start()
    assert v1.entered.wait(10)  # the request is now inside v1's predict
    source.point("2")
    assert client.post("/admin/reload", json={}).json()["version"] == "2"
    v1.gate.set()
    thread.join(10)
    assert answers["slow"].status_code == 200
    assert answers["slow"].json()["model_version"] == "1"
    assert post(client, CONTRACT).json()["model_version"] == "2"


def test_the_openapi_page_documents_price(client):
    spec = client.get("/docs.json").json()
    price = spec["paths"]["/price"]["post"]
    request_schema = price["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["title"] == "PriceRequest"
    contract = spec["components"]["schemas"]["Contract"]
    assert set(contract["required"]) == {"underlying", "option_type", "strike", "expiry",
                                         "quote_date", "spot"}  # fmt: skip
    assert "PriceResult" in spec["components"]["schemas"]
    assert "10,000 contracts" in price["description"]
    assert client.get("/").status_code == 200
