"""Issue 13 (reliability), the service in-process (ASGI app under Starlette's TestClient):

- a model that really prices (pipeline.model.pricer.predict_frame with a real XGBoost booster and
  market state): a subnormal or absurd spot/strike is a 422 naming the field, not a 500 from
  XGBoost nor a price at the IV clip;
- a body declared as something other than JSON is a 415 naming Content-Type;
- an `option` symbol with control, invisible or non-ASCII characters is a 422 naming the field;
- 503 and 409 bodies name the problem without a stack trace or a path of this machine (a real
  XGBoost error's text, a registry's absolute sqlite path); the details go to the server log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import schemathesis
import xgboost as xgb
from hypothesis import given, settings

from pipeline.features import MODEL_FEATURES
from pipeline.model.plausibility import MIN_LEVEL
from pipeline.model.pricer import StateMissing, predict_frame
from serving.engine import PricingEngine
from serving.errors import RegistryUnavailable
from tests.unit.pipeline.model.test_pricer import RAW, days, identity_booster, state  # noqa: F401
from tests.unit.serving.fakes import CONTRACT, FakeSource, StubPricer, candidate
from tests.unit.serving.test_service import app  # noqa: F401

with warnings.catch_warnings():  # as tests/unit/serving/test_service.py
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

    import serving.service as service

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pathspec.*"),
    pytest.mark.filterwarnings("ignore:The `__get_pydantic_core_schema__`"),
]

# an absolute path of this machine in a text: "/" + two or more path parts (not a route: "/price")
MACHINE_PATH = re.compile(r"(?<![\w:/.])/[\w.+-]+/[\w.+-]+")


@pytest.fixture
def serve(app, monkeypatch):  # noqa: F811
    """serve(source) → a TestClient of the service on an engine over `source` (poll off), once
    its start-up load has ended (loaded or failed)."""
    with contextlib.ExitStack() as running:

        def start(source: FakeSource) -> TestClient:
            engines = []

            def build_engine(settings):
                engines.append(PricingEngine(source, 0, 10_000).start())
                return engines[-1]

            monkeypatch.setattr(service, "build_engine", build_engine)
            client = running.enter_context(TestClient(app))
            engines[0].poller.stop()  # with the poll off, its thread ends after the start-up load
            return client

        yield start


# -- a model that really prices --------------------------------------------------------------
class BoosterPricer:
    """What OptionsPricer.predict does: pipeline.model.pricer.predict_frame, here with the unit
    tests' identity booster and yesterday's market state (SPY; quote date 2026-03-02)."""

    def __init__(self, booster, state):  # noqa: F811
        self.booster, self.state = booster, state

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return predict_frame(model_input, self.booster, self.state, MODEL_FEATURES)


@pytest.fixture
def pricing(serve, days, state, identity_booster):  # noqa: F811
    """(client, one good contract as JSON) on a service whose v1 is a BoosterPricer."""
    _, today, _ = days
    example = today[RAW].head(4).reset_index(drop=True)
    pricer = BoosterPricer(identity_booster, state)
    source = FakeSource()
    source.candidates["1"] = candidate("1", pricer, pricer.predict(None, example), example)
    client = serve(source)
    assert client.get("/readyz").status_code == 200
    row = example.iloc[0]
    good = {"underlying": "SPY", "option_type": row["option_type"], "strike": float(row["strike"]),
            "expiry": f"{row['expiry']:%Y-%m-%d}", "quote_date": f"{row['quote_date']:%Y-%m-%d}",
            "spot": float(row["spot"])}  # fmt: skip
    return client, good


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"spot": 1e-310}, "spot"),
        ({"spot": 1e-308}, "spot"),
        ({"spot": 2.2e-308}, "spot"),
        ({"spot": 5e-324}, "spot"),
        ({"strike": 5e-324}, "strike"),
        ({"strike": 1e-6}, "strike"),
        ({"spot": 1e7}, "strike"),  # strike ~560 against spot 10 million: the moneyness bound
    ],
)
def test_subnormal_and_absurd_levels_are_a_422_naming_the_field(pricing, changes, field):
    client, good = pricing
    assert client.post("/price", json={"contracts": [good]}).status_code == 200
    response = client.post("/price", json={"contracts": [good, {**good, **changes}]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(1, field)]
    assert body["error"].startswith(f"1 invalid contract(s), nothing priced: contract 1 {field}: ")
    assert client.post("/price", json={"contracts": [good]}).status_code == 200  # still answering


# -- Content-Type ----------------------------------------------------------------------------
@pytest.fixture
def client(serve):
    return serve(FakeSource())


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_valid_body_declared_as_something_else_is_a_415(client, content_type):
    body = json.dumps({"contracts": [CONTRACT]})
    response = client.post("/price", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415
    error = response.json()
    assert error["error"].startswith(f"unsupported Content-Type '{content_type}'")
    assert "application/json" in error["error"]
    assert [(p["index"], p["field"]) for p in error["problems"]] == [(None, "Content-Type")]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_a_json_body_is_priced(client, content_type):
    body = json.dumps({"contracts": [CONTRACT]})
    response = client.post("/price", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200


# -- the option symbol -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "option",
    ["SPY260619C00600000\x00", "SPY\u202e260619C00600000", "SPY260619C0060000\u0663", "SPY\n", ""],
    ids=["NUL", "right-to-left override", "arabic-indic digit", "newline", "empty"],
)
def test_an_option_symbol_outside_printable_ascii_is_a_422_naming_the_field(client, option):
    response = client.post("/price", json={"contracts": [CONTRACT, {**CONTRACT, "option": option}]})
    assert response.status_code == 422
    body = response.json()
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(1, "option")]
    assert "contract 1 option: must be an option symbol of ASCII letters" in body["error"]
    assert "\x00" not in response.text and "\u202e" not in response.text  # shown escaped


@pytest.mark.parametrize("option", ["SPY260619C00600000", "SPY   260619C00600000", "BRK.B"])
def test_ascii_option_symbols_are_priced(client, option):
    response = client.post("/price", json={"contracts": [{**CONTRACT, "option": option}]})
    assert response.status_code == 200


# -- error bodies ----------------------------------------------------------------------------
def xgboost_error() -> Exception:
    """A real XGBoost error: its text carries a native stack trace with the library's path."""
    try:
        xgb.DMatrix(np.array([[np.inf]]))
    except xgb.core.XGBoostError as exc:
        return exc
    raise AssertionError("XGBoost took an infinite input")


def assert_public(text: str) -> None:
    assert "Stack trace" not in text and "[bt]" not in text and "Traceback" not in text, text
    assert not MACHINE_PATH.search(text), text


def test_a_503_names_the_problem_without_stack_trace_or_paths(serve, caplog):
    error = xgboost_error()
    assert "Stack trace" in str(error) and MACHINE_PATH.search(str(error))  # what it used to show
    caplog.set_level(logging.WARNING, logger="serving")
    client = serve(FakeSource(broken={"1": error}))
    for response in (client.post("/price", json={"contracts": [CONTRACT]}), client.get("/model")):
        assert response.status_code == 503
        text = response.json()["error"]
        assert_public(text)
        assert "v1 of options-pricer (@production) was not loaded: XGBoostError: " in text
        assert "Input data contains `inf`" in text  # the problem, named
    reload = client.post("/admin/reload", json={})
    assert reload.status_code == 409
    assert_public(reload.json()["error"])
    assert "Stack trace" in caplog.text  # the details are in the server log


def test_a_registry_path_is_not_shown(serve, tmp_path):
    class Unreachable(FakeSource):
        def resolve(self):
            raise RegistryUnavailable(  # as RegistrySource words it, with the store's path
                f"model registry at sqlite:///{tmp_path}/mlflow.db: get_model_version_by_alias("
                f"'options-pricer', 'production') failed: unable to open {tmp_path}/mlflow.db"
            )

    client = serve(Unreachable())
    response = client.post("/price", json={"contracts": [CONTRACT]})
    assert response.status_code == 503
    text = response.json()["error"]
    assert_public(text)
    assert str(tmp_path) not in text
    assert "the registry did not answer for options-pricer@production" in text
    assert "sqlite:///…/mlflow.db" in text and "unable to open …/mlflow.db" in text


# -- the OpenAPI page ------------------------------------------------------------------------
def test_the_openapi_page_is_openapi_3_0_that_schemathesis_generates_requests_from(client):
    """The page says OpenAPI 3.0.2, whose JSON Schema is draft 4: "exclusiveMinimum" is a boolean
    there. Pydantic wrote strike/spot's "> 0" as "exclusiveMinimum": 0 and schemathesis refused
    to generate any /price request (UnsupportedSchema); the page now documents the model's floor."""
    spec = client.get("/docs.json").json()
    assert spec["openapi"].startswith("3.0")
    contract = spec["components"]["schemas"]["Contract"]["properties"]
    for level in ("strike", "spot"):
        assert contract[level]["minimum"] == MIN_LEVEL and "exclusiveMinimum" not in contract[level]
    operation = schemathesis.openapi.from_dict(spec)["/price"]["POST"]
    bodies = []

    @given(case=operation.as_strategy())
    @settings(max_examples=5, deadline=None, derandomize=True)
    def generate(case):
        bodies.append(case.body)

    generate()
    assert bodies and all(body["contracts"] for body in bodies)


def test_a_quote_date_without_a_market_state_names_the_field(serve):
    """The model's StateMissing names dates, not rows: the problem is the quote_date's."""

    class NoState(StubPricer):
        def predict(self, context, model_input, params=None):
            if (model_input["quote_date"] > pd.Timestamp("2026-03-31")).any():
                raise StateMissing("no market state for quote_date 2026-04-02: ... (1 contract(s))")
            return super().predict(context, model_input)

    source = FakeSource()
    source.candidates["1"] = candidate("1", pricer=NoState("1"))
    client = serve(source)
    response = client.post("/price", json={"contracts": [{**CONTRACT, "quote_date": "2026-04-02"}]})
    assert response.status_code == 422
    assert [(p["index"], p["field"]) for p in response.json()["problems"]] == [(None, "quote_date")]


def test_a_fallback_s_reason_on_model_has_no_stack_trace(serve):
    """Start-up fallback (serving/model_holder.py): v1 fails with a real XGBoost error, the
    previous-production v2 serves; GET /model says why, without XGBoost's native stack trace."""

    class WithFallback(FakeSource):
        def resolve_fallback(self):
            return "2", "run-2"

    client = serve(WithFallback(broken={"1": xgboost_error()}))
    info = client.get("/model").json()
    assert info["version"] == "2" and info["fallback"]["instead_of"]["version"] == "1"
    assert (
        "XGBoostError: Check failed: valid: Input data contains `inf`" in info["fallback"]["reason"]
    )
    assert_public(info["fallback"]["reason"])
