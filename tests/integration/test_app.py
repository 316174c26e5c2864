"""The Streamlit app (webapp/app.py) in Streamlit's AppTest, against a real pricing service
(`bentoml serve` on a free 127.0.0.1 port) and a copy of the tiny sqlite registry (v1 Production,
v2 Staging; tests/serving_helpers.py) whose root also holds the tiny market's feature tables.

- the pricer shows the service's price and IV for its contract (exactly what POST /price answers),
  the version that priced it and the baseline; a changed contract is priced again;
- the smile draws the market, the model (priced by the service) and the baseline;
- the registry panel lists v1 Production and v2 Staging with aliases, metrics and the history;
- with nothing listening at PRICING_URL, or no registry, the sections that need them say so in a
  sentence naming the URL and the command, and the others keep working.
"""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.config import REPO_ROOT
from tests.serving_helpers import copy_registry, free_port, prepared_registry, running_service
from webapp import app_data as data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = REPO_ROOT / "webapp" / "app.py"


@pytest.fixture(scope="module")
def registry(tiny_features_root, tmp_path_factory):
    """A private copy of the session's prepared registry (and market), for this module."""
    prepared = prepared_registry(tiny_features_root, tmp_path_factory.getbasetemp())
    return copy_registry(prepared, tmp_path_factory.mktemp("app") / "registry")


@pytest.fixture(scope="module")
def service(registry):
    with running_service(registry.tracking_uri) as running:
        yield running


@pytest.fixture
def app(monkeypatch, registry):
    """app(pricing_url, tracking_uri=the registry's) → the app, run once, reading that setup."""

    def run(pricing_url: str, tracking_uri: str | None = None) -> AppTest:
        monkeypatch.setenv("PRICING_URL", pricing_url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri or registry.tracking_uri)
        monkeypatch.setenv("APP_DATA_ROOT", str(registry.root))
        at = AppTest.from_file(str(APP), default_timeout=120).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def service_quote(service, contract: data.Contract) -> dict:
    response = service.post("/price", json={"contracts": [contract.as_json()]})
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def default_contract(registry) -> data.Contract:
    market = data.read_market(data.latest_features(registry.root / "data" / "processed"))
    return data.default_contract(market, "SPY")


def test_the_pricer_shows_the_services_price_and_version(app, service, registry):
    at = app(service.url)
    assert not at.error, texts(at.error)
    contract = default_contract(registry)
    expected = service_quote(service, contract)
    shown = metrics(at)
    assert shown["Model price"] == f"{expected['price']:,.4f}"
    assert shown["Model IV"] == f"{100 * expected['iv']:.2f}%"
    assert float(shown["BS price (hist vol)"].replace(",", "")) > 0
    assert f"Priced by **options-pricer v{registry.production}**" in texts(at.caption)
    assert "Market on 2026-03-31: bid" in texts(at.caption)  # the default contract is listed

    at.radio(key="type_SPY").set_value("P")
    next(b for b in at.button if b.label == "Price").click().run()
    put = service_quote(service, data.Contract(**{**contract.__dict__, "option_type": "P"}))
    assert metrics(at)["Model price"] == f"{put['price']:,.4f}" != shown["Model price"]


def test_the_smile_shows_market_model_and_baseline(app, service, registry):
    at = app(service.url)
    assert at.get("vega_lite_chart"), "no chart drawn"
    assert f"model: options-pricer v{registry.production}" in texts(at.caption)
    table = next(d.value for d in at.dataframe if "model IV" in d.value.columns)
    assert len(table) >= 5 and table["strike"].is_monotonic_increasing
    assert table[["market IV", "model IV", "BS IV"]].notna().all().all()
    assert table["model IV"].between(0.01, 2).all()


def test_the_registry_panel_lists_versions_stages_and_history(app, service, registry):
    at = app(service.url)
    shown = metrics(at)
    assert shown["Production"] == f"v{registry.production}"
    assert shown["Staging"] == f"v{registry.candidate}"
    versions = next(d.value for d in at.dataframe if "stage" in d.value.columns)
    by_version = versions.set_index("version")
    assert by_version.loc[registry.production, ["stage", "aliases"]].tolist() == [
        "Production", "production"]  # fmt: skip
    assert by_version.loc[registry.candidate, ["stage", "aliases"]].tolist() == [
        "Staging", "staging"]  # fmt: skip
    assert versions["IV RMSE (vol pts)"].between(0, 20).all()  # the training runs' holdout
    history = next(d.value for d in at.dataframe if "action" in d.value.columns)
    assert {"register", "promote"} <= set(history["action"])
    assert "No gate verdicts yet" in texts(at.caption)  # the tiny registry skips the gate


def test_with_the_service_down_the_app_says_how_to_start_it(app, registry):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    at = app(url)
    errors = [e.value for e in at.error]
    assert len(errors) == 3, errors  # sidebar status, pricer, smile
    for error in errors:
        assert url in error and "`make serve`" in error and "Traceback" not in error
    shown = metrics(at)
    assert "Model price" not in shown and "BS price (hist vol)" in shown  # the baseline still is
    assert shown["Production"] == f"v{registry.production}"  # the registry panel still works
    assert f"options-pricer: Production v{registry.production}" in texts(at.success)
    assert at.get("vega_lite_chart"), "the market and baseline are still drawn"


def test_without_a_registry_the_panel_says_so_and_pricing_works(app, service, tmp_path):
    at = app(service.url, tracking_uri=f"sqlite:///{tmp_path}/none/mlflow.db")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "no MLflow store at" in errors[0] and "make run" in errors[0]
    assert "not readable" in texts(at.warning)  # the sidebar's registry status
    assert not (tmp_path / "none").exists()
    assert not math.isnan(float(metrics(at)["Model price"].replace(",", "")))
