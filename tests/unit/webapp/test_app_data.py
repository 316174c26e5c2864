"""webapp/app_data.py, the app's reads, without a service or a registry: configuration from the
environment, the pricing client's error messages (fake HTTP session, and one real refused
connection), the market tables (a hand-built feature frame), the baseline, and the registry panel's
tables through a fake MLflow client."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests

from pipeline.quant.black_scholes import black_price, bsm_price
from serving.schemas import parse_price_request
from tests.serving_helpers import free_port
from webapp import app_data as data

URL = "http://127.0.0.1:3999"
TODAY = dt.date(2026, 3, 31)


# -- configuration ----------------------------------------------------------------------------
def test_config_defaults_come_from_the_project_config():
    cfg = data.load_config({})
    assert cfg.pricing_url == "http://127.0.0.1:3000"
    assert cfg.tracking_uri.startswith("sqlite:///") and cfg.tracking_uri.endswith("/mlflow.db")
    assert cfg.model_name == "options-pricer"
    assert cfg.processed_dir.name == "processed" and cfg.rate == pytest.approx(0.04)
    assert cfg.dividend_yield("SPY") == pytest.approx(0.013) and cfg.dividend_yield("XYZ") == 0.0


def test_environment_overrides_the_config(tmp_path):
    cfg = data.load_config({"PRICING_URL": "http://10.0.0.1:3100/", "APP_DATA_ROOT": str(tmp_path)})
    assert cfg.pricing_url == "http://10.0.0.1:3100"
    assert cfg.processed_dir == tmp_path / "data" / "processed"
    assert cfg.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"  # follows the data root
    explicit = data.load_config({"APP_DATA_ROOT": str(tmp_path), "MLFLOW_TRACKING_URI": "http://m"})
    assert explicit.tracking_uri == "http://m"


# -- the pricing client -----------------------------------------------------------------------
class FakeSession:
    """requests.Session.request answering with a canned response, or raising `error`."""

    def __init__(self, status: int = 200, body=None, text: str | None = None, error=None):
        self.status, self.body, self.text, self.error = status, body, text, error
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, timeout=None, **kwargs):
        self.calls.append((method, url, kwargs))
        if self.error:
            raise self.error
        response = requests.Response()
        response.status_code = self.status
        response._content = (self.text if self.text is not None else json.dumps(self.body)).encode()
        return response


def client(**fake) -> data.PricingClient:
    return data.PricingClient(URL, session=FakeSession(**fake))


CONTRACT = data.Contract("SPY", "C", 600.0, dt.date(2026, 6, 19), TODAY, 640.0)


def test_price_returns_ivs_prices_and_the_version():
    body = {"model_version": "3", "results": [{"iv": 0.2, "price": 41.5, "model_version": "3"}]}
    c = client(body=body)
    priced = c.price([CONTRACT.as_json()])
    assert priced.version == "3" and priced.iv.tolist() == [0.2] and priced.price.tolist() == [41.5]
    method, url, kwargs = c.session.calls[0]
    assert (method, url) == ("POST", URL + "/price")
    assert kwargs["json"] == {"contracts": [CONTRACT.as_json()]}


def test_an_unreachable_service_names_the_url_and_how_to_start_it():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a real refused connection
    with pytest.raises(data.ServiceError) as caught:
        data.PricingClient(url, timeout_s=5).price([CONTRACT.as_json()])
    message = str(caught.value)
    assert url in message and "not reachable" in message and "`make serve`" in message
    assert "Traceback" not in message and len(message) < 300


def test_a_timeout_says_so():
    with pytest.raises(data.ServiceError, match="did not answer /model within 30 s"):
        client(error=requests.ReadTimeout("read timed out")).model_info()


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (503, {"error": "no model loaded yet"}, ["no model loaded yet", "make promote"]),
        (422, {"error": "1 invalid contract(s), nothing priced: contract 0 strike: must be > 0",
               "problems": []}, ["refused the contract (422)", "strike: must be > 0"]),
        (404, {"detail": "Not Found"}, ["does not exist (404)", "make serve"]),
        (500, {"error": "boom"}, ["failed (500): boom"]),
    ],
)  # fmt: skip
def test_refusals_carry_the_services_sentence(status, body, words):
    with pytest.raises(data.ServiceError) as caught:
        client(status=status, body=body).price([CONTRACT.as_json()])
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    "fake", [{"text": "<html>hello</html>"}, {"body": {"something": "else"}}], ids=["html", "json"]
)
def test_an_answer_that_is_not_the_services_says_so(fake):
    with pytest.raises(data.ServiceError, match="PRICING_URL the pricing service"):
        client(**fake).price([CONTRACT.as_json()])


def test_contract_json_is_what_the_service_accepts():
    body = {**CONTRACT.__dict__, "rate": 0.05}
    contract = data.Contract(**body)
    parsed = parse_price_request(json.dumps({"contracts": [contract.as_json()]}).encode())
    assert parsed.contracts[0].rate == 0.05 and parsed.contracts[0].dividend_yield is None
    assert parsed.contracts[0].expiry == dt.date(2026, 6, 19)


# -- the market -------------------------------------------------------------------------------
def market_frame() -> pd.DataFrame:
    """Two expiries of SPY (calls and puts at 5 strikes) and one of _SPX, in feature-table form."""
    rows = []
    for underlying, spot_, expiry in (("SPY", 100.0, "2026-04-30"), ("SPY", 100.0, "2026-06-19"),
                                      ("_SPX", 5000.0, "2026-04-30")):  # fmt: skip
        t = (pd.Timestamp(expiry) - pd.Timestamp(TODAY)).days / 365
        forward = spot_ * np.exp(0.03 * t)
        for k in np.linspace(0.9, 1.1, 5) * spot_:
            for kind in "CP":
                rows.append({
                    "quote_date": pd.Timestamp(TODAY), "underlying": underlying, "spot": spot_,
                    "option": f"{underlying}{kind}{k:g}", "expiry": pd.Timestamp(expiry),
                    "option_type": kind, "strike": k, "rate": 0.04, "dividend_yield": 0.01,
                    "t_years": t, "forward": forward, "discount": np.exp(-0.04 * t),
                    "is_call": int(kind == "C"), "mid": 1.0, "bid": 0.9, "ask": 1.1,
                    "iv": 0.2 + (0.01 if kind == "C" else 0.0), "iv_reliable": True,
                    "rv_20d": 0.15 if underlying == "SPY" else 0.12, "prev_iv": np.nan,
                    "prev_surface_iv": 0.2,
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_latest_features_is_the_newest_file(tmp_path):
    assert data.latest_features(tmp_path / "missing") is None
    for name in ("features_20260330.parquet", "features_20260331.csv",
                 "features_20260331.parquet", "validated_data_20260401.parquet"):  # fmt: skip
        (tmp_path / name).touch()
    assert data.latest_features(tmp_path).name == "features_20260331.parquet"


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_read_market_parses_dates(tmp_path, suffix):
    path = tmp_path / f"features_20260331.{suffix}"
    frame = market_frame()
    frame.to_parquet(path) if suffix == "parquet" else frame.to_csv(path, index=False)
    market = data.read_market(path)
    assert pd.api.types.is_datetime64_dtype(market["expiry"]) and len(market) == len(frame)
    assert data.market_date(market) == TODAY


def test_market_lookups():
    market = market_frame()
    assert data.underlyings(market) == ["SPY", "_SPX"]
    assert data.expiries(market, "SPY") == [dt.date(2026, 4, 30), dt.date(2026, 6, 19)]
    assert data.spot(market, "_SPX") == 5000.0 and data.hist_vol(market, "SPY") == 0.15
    assert data.hist_vol(market.assign(rv_20d=np.nan), "SPY") is None
    unreliable = market.assign(iv_reliable=market["underlying"] == "SPY")
    assert data.underlyings(unreliable) == ["SPY"]


def test_default_contract_is_a_call_near_spot_about_a_month_out():
    contract = data.default_contract(market_frame(), "SPY")
    assert contract == data.Contract("SPY", "C", 100.0, dt.date(2026, 4, 30), TODAY, 100.0)


def test_market_quote_finds_the_listed_contract_only():
    market = market_frame()
    listed = data.market_quote(market, data.default_contract(market, "SPY"))
    assert listed == {"bid": 0.9, "ask": 1.1, "mid": 1.0, "iv": pytest.approx(0.21)}
    assert data.market_quote(market, data.Contract("SPY", "C", 101.0, dt.date(2026, 4, 30),
                                                   TODAY, 100.0)) is None  # fmt: skip


def test_baseline_is_black_scholes_at_the_clipped_vol():
    cfg = data.load_config({})
    iv, price = data.baseline_quote(CONTRACT, 0.15, cfg)
    t = (CONTRACT.expiry - TODAY).days / 365
    assert iv == 0.15
    assert price == pytest.approx(float(bsm_price(640.0, 600.0, t, 0.04, 0.013, 0.15, True)))
    assert data.baseline_quote(CONTRACT, 0.0001, cfg)[0] == 0.01  # the evaluation's floor
    own = data.Contract(**{**CONTRACT.__dict__, "rate": 0.0, "dividend_yield": 0.0})
    assert data.baseline_quote(own, 0.15, cfg)[1] == pytest.approx(
        float(bsm_price(640.0, 600.0, t, 0.0, 0.0, 0.15, True))
    )


def test_smile_takes_the_out_of_the_money_side_with_the_baseline():
    rows = data.smile(market_frame(), "SPY", dt.date(2026, 4, 30))
    assert rows["strike"].is_monotonic_increasing and rows["strike"].is_unique and len(rows) == 5
    otm_calls = rows["strike"] >= rows["forward"]
    assert (rows["option_type"] == np.where(otm_calls, "C", "P")).all()
    assert (rows["baseline_iv"] == 0.15).all()
    expected = black_price(rows["forward"], rows["strike"], rows["t_years"], rows["discount"],
                           0.15, rows["is_call"].astype(bool))  # fmt: skip
    np.testing.assert_allclose(rows["baseline_price"], expected)


def test_smile_skips_unreliable_ivs_and_falls_back_to_the_other_side():
    market = market_frame()
    put_90 = (market["strike"] == 90.0) & (market["option_type"] == "P")
    market.loc[put_90 & (market["underlying"] == "SPY"), "iv_reliable"] = False
    rows = data.smile(market, "SPY", dt.date(2026, 4, 30))
    assert rows.loc[rows["strike"] == 90.0, "option_type"].tolist() == ["C"]


def test_smile_contracts_are_what_the_service_accepts():
    rows = data.smile(market_frame(), "SPY", dt.date(2026, 4, 30))
    contracts = data.smile_contracts(rows)
    parsed = parse_price_request(json.dumps({"contracts": contracts}).encode())
    assert len(parsed.contracts) == 5 and parsed.contracts[0].option == "SPYP90"
    assert parsed.contracts[0].rate == 0.04 and parsed.contracts[0].dividend_yield == 0.01


def test_with_model_adds_the_services_figures():
    rows = data.smile(market_frame(), "SPY", dt.date(2026, 4, 30))
    results = [{"iv": 0.3, "price": float(i), "model_version": "2"} for i in range(5)]
    priced, version = data.with_model(rows, client(body={"model_version": "2", "results": results}))
    assert version == "2" and priced["model_iv"].tolist() == [0.3] * 5
    lines = data.smile_lines(priced)
    assert set(lines["series"]) == {"market mid", "model", "BS, 20-day hist vol"}
    assert len(lines) == 15 and lines.loc[lines["series"] == "model", "iv"].tolist() == [30.0] * 5


def test_a_short_answer_is_an_error():
    rows = data.smile(market_frame(), "SPY", dt.date(2026, 4, 30))
    one = {"model_version": "2", "results": [{"iv": 0.3, "price": 1.0, "model_version": "2"}]}
    with pytest.raises(data.ServiceError, match="priced 1 of 5"):
        data.with_model(rows, client(body=one))


# -- the registry -----------------------------------------------------------------------------
class FakeMlflow:
    """The MlflowClient calls pipeline.registry.Registry and read_registry make."""

    tracking_uri = "http://registry.test"

    def __init__(self, versions: list[dict] | None = None, model_tags=None, aliases=None):
        self.versions = [SimpleNamespace(status="READY", **v) for v in versions or []]
        self.model = SimpleNamespace(tags=model_tags or {}, aliases=aliases or {})
        self.exists = versions is not None

    def get_registered_model(self, name):
        if not self.exists:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

            raise MlflowException("not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return self.model

    def search_model_versions(self, where):
        return self.versions

    def get_model_version(self, name, version):
        return next(v for v in self.versions if v.version == version)

    def get_run(self, run_id):
        if run_id == "gone":
            raise RuntimeError("run deleted")
        return SimpleNamespace(data=SimpleNamespace(metrics={
            "holdout.iv_rmse": 0.0076, "holdout.price_r2": 0.99, "holdout.other": 1.0}))  # fmt: skip


def history_tag(n: int, **entry) -> tuple[str, str]:
    return f"history.{n:06d}", json.dumps(entry)


def test_registry_view_lists_versions_verdicts_and_history():
    verdict = {"gate.verdict": "passed", "gate.reasons": json.dumps(["beats the baseline"]),
               "gate.metrics": json.dumps({"candidate.iv_rmse": 0.007}),
               "gate.evaluated_at": "2026-03-31T22:00:00+00:00"}  # fmt: skip
    fake = FakeMlflow(
        versions=[
            {"version": "1", "current_stage": "Production", "tags": {}, "run_id": "r1",
             "creation_timestamp": 1_774_994_400_000},
            {"version": "2", "current_stage": "Staging", "tags": verdict, "run_id": "gone",
             "creation_timestamp": 1_774_998_000_000},
        ],
        aliases={"production": "1", "staging": "2"},
        model_tags=dict([history_tag(1, action="register", at="2026-03-31T20:00:00+00:00",
                                     to_version="1", user="ci", forced=False),
                         history_tag(2, action="promote", at="2026-03-31T21:00:00+00:00",
                                     from_version=None, to_version="1", user="ann",
                                     reason="first", forced=True)]),
    )  # fmt: skip
    view = data.read_registry("http://registry.test", "options-pricer", client=fake)
    assert not view.empty and view.problems == []
    versions = view.versions.set_index("version")
    assert versions.loc["1", "stage"] == "Production" and versions.loc["2", "aliases"] == "staging"
    assert versions["gate verdict"].tolist() == ["passed", "none"]  # newest first
    assert versions.loc["1", "IV RMSE (vol pts)"] == pytest.approx(0.76)  # vol points
    assert versions.loc["1", "price R²"] == 0.99 and np.isnan(versions.loc["2", "price R²"])
    assert versions.loc["1", "created"] == "2026-03-31 22:00 UTC"
    assert list(view.verdicts) == ["2"] and view.verdicts["2"]["reasons"] == ["beats the baseline"]
    assert view.history["action"].tolist() == ["promote", "register"]
    assert view.history.iloc[0][["from", "to", "user", "forced"]].tolist() == ["", "1", "ann", True]


def test_stage_alias_disagreements_are_reported():
    fake = FakeMlflow(versions=[{"version": "1", "current_stage": "Production", "tags": {},
                                 "run_id": "r1", "creation_timestamp": 0}])  # fmt: skip
    view = data.read_registry("http://registry.test", "options-pricer", client=fake)
    assert any("alias 'production'" in p for p in view.problems)


def test_an_unregistered_model_is_an_empty_view():
    view = data.read_registry("http://registry.test", "options-pricer", client=FakeMlflow())
    assert view.empty and view.history.empty


def test_an_unreachable_registry_is_one_sentence():
    class Down(FakeMlflow):
        def get_registered_model(self, name):
            raise requests.ConnectionError("Connection refused")

    with pytest.raises(data.RegistryError) as caught:
        data.read_registry("http://registry.test", "options-pricer", client=Down())
    message = str(caught.value)
    assert message.startswith("cannot read the model registry at http://registry.test: ")
    assert "Connection refused" in message and "MLFLOW_TRACKING_URI" in message


def test_a_missing_sqlite_store_is_not_created(tmp_path):
    store = tmp_path / "mlflow.db"
    with pytest.raises(data.RegistryError, match="no MLflow store at .*make run"):
        data.read_registry(f"sqlite:///{store}", "options-pricer")
    assert not store.exists()


def test_when_shortens_timestamps():
    assert data.when("2026-03-31T21:05:09+00:00") == "2026-03-31 21:05 UTC"
    assert data.when(None) == "" and data.when("not a time") == "not a time"


def test_display_uri_writes_the_project_folder_as_dot():
    from pipeline.config import REPO_ROOT

    assert data.display_uri(f"sqlite:///{REPO_ROOT}/mlflow.db") == "sqlite:///./mlflow.db"
    assert data.display_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
