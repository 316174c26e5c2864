"""serving/batchable_service.py, the benchmark's BentoML-batching peer: its POST /price is declared
batchable with our settings' limits, and a merged batch is priced exactly as the engine prices a
request (same model call, same version, same order), with refusals and the no-model case mapped to
BentoML's 400 and 503. The HTTP round trip itself runs in benchmarks/serving.py (one ASGI app per
test session: tests/unit/serving/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
import warnings

import numpy as np
import pytest
from bentoml.exceptions import InvalidArgument, ServiceUnavailable

from serving.engine import PricingEngine
from serving.schemas import Contract
from tests.unit.serving.fakes import CONTRACT, FakeSource, StubPricer, candidate, stub_iv

with warnings.catch_warnings():  # BentoML's own deprecation notices (see test_service.py)
    warnings.simplefilter("ignore")
    import serving.batchable_service as batchable

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pathspec.*"),
    pytest.mark.filterwarnings("ignore:The `__get_pydantic_core_schema__`"),
]


class ArrayPricer(StubPricer):
    """StubPricer with the NumPy path the engine prefers (price_columns), counting its calls."""

    def __init__(self, version: str):
        super().__init__(version)
        self.column_calls: list[int] = []

    def price_columns(self, columns: dict) -> tuple[np.ndarray, np.ndarray]:
        strike, spot = columns["strike"], columns["spot"]
        self.column_calls.append(len(strike))
        iv = np.array([stub_iv(self.version, k, s) for k, s in zip(strike, spot, strict=True)])
        return iv, strike / 100 + (columns["option_type"] == "P")


def engine_on(pricer=None, holder_of_alias: str | None = "1") -> PricingEngine:
    """An engine on the fake registry serving `pricer` (or none: holder_of_alias=None), loaded."""
    if pricer is not None:
        holder_of_alias = pricer.version
    source = FakeSource(holder_of_alias=holder_of_alias)
    if pricer is not None:
        source.candidates[pricer.version] = candidate(pricer.version, pricer)
    engine = PricingEngine(source, 0, 10_000).start()
    deadline = time.monotonic() + 10
    while holder_of_alias is not None and not engine.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    return engine


def contracts(*rows: dict) -> list[Contract]:
    """Validated as a request body is (JSON: dates as YYYY-MM-DD strings)."""
    return [Contract.model_validate_json(json.dumps(row)) for row in rows]


CALL = {**CONTRACT}
PUT = {**CONTRACT, "option_type": "P", "strike": 550.0, "spot": 560.0}
OTHER = {**CONTRACT, "underlying": "_SPX", "strike": 5500.0, "spot": 5600.0}


def test_price_is_a_batchable_api_on_our_route_with_our_limits():
    method = batchable.BentoBatchingService.apis["price"]
    assert method.batchable
    assert method.route == "/price"
    assert method.max_batch_size == batchable.SETTINGS.batch_max_contracts
    assert method.max_latency_ms == int(batchable.SETTINGS.timeout_s * 1000)


@pytest.mark.parametrize("pricer", [StubPricer("3"), ArrayPricer("3")], ids=["frame", "numpy"])
def test_a_merged_batch_is_priced_as_the_engine_prices_it(pricer):
    engine = engine_on(pricer)
    try:
        batch = contracts(CALL, PUT, OTHER, PUT)
        results = batchable.price_batch(engine, batch)
        calls = list(getattr(pricer, "column_calls", []))
        expected = asyncio.run(engine.price(batch))
    finally:
        engine.stop()
    assert [r.model_version for r in results] == ["3"] * 4
    assert [r.iv for r in results] == list(expected.iv)
    assert [r.price for r in results] == list(expected.price)
    assert [r.iv for r in results] == [stub_iv("3", 600, 600), stub_iv("3", 550, 560),
                                       stub_iv("3", 5500, 5600), stub_iv("3", 550, 560)]  # fmt: skip
    if isinstance(pricer, ArrayPricer):  # one model call for the whole merged batch
        assert calls[-1] == 4


def test_the_predictions_counter_counts_the_batch_by_version():
    engine = engine_on(StubPricer("4"))
    counter = batchable.PREDICTIONS.labels(model_version="4")
    before = counter._value.get()
    try:
        batchable.price_batch(engine, contracts(CALL, PUT, CALL))
    finally:
        engine.stop()
    assert counter._value.get() == before + 3


def test_a_refused_contract_fails_the_merged_batch_with_a_400_naming_it():
    engine = engine_on(StubPricer("1"))
    try:
        with pytest.raises(InvalidArgument, match="unknown underlying 'QQQ'"):
            batchable.price_batch(engine, contracts(CALL, {**CONTRACT, "underlying": "QQQ"}))
    finally:
        engine.stop()


def test_no_model_loaded_is_a_503():
    engine = engine_on(holder_of_alias=None)
    try:
        with pytest.raises(ServiceUnavailable, match="no model loaded"):
            batchable.price_batch(engine, contracts(CALL))
    finally:
        engine.stop()
