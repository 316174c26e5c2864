"""The pricing service with BentoML's own adaptive batching in place of ours: a benchmark peer only.

    bentoml serve serving.batchable_service:BentoBatchingService --port 3001

benchmarks/serving.py serves it next to serving/service.py and `mlflow models serve` in the same
run (issue 16), so the custom batcher (serving/batching.py, with its inline pricing of a lone
contract) has to earn its place against `@bentoml.api(batchable=True)`. Not for production: it
is not in the Makefile or a Bento.

Everything but the batching is serving/service.py's: the same settings (configs/serving plus the
environment), the same engine on the registry's `@production` model (`build_engine`: load,
self-check, registry poll, the /readyz, /model and /admin/reload routes), the same pricing call
(`serving.engine.price_contracts`: the model's NumPy path, one call per merged batch). The
engine's own batcher is built but never used. What differs is POST /price:

- BentoML's CorkDispatcher queues each request's contracts, waits while its latency model says
  waiting pays, then hands the concatenated list (at most `batch_max_contracts` contracts; a
  bigger request is split) to `price` on a worker thread and splits the answers back;
- the body is BentoML's own reading of {"contracts": [...]} (pydantic, serving/schemas.Contract)
  and the answer a JSON list of {"iv", "price", "model_version"}, one per contract;
- errors are per merged batch, not per request: a contract the model refuses fails every
  request merged with it (400 from BentoML, no per-contract problems), a reason the custom
  batcher re-prices a failed merge request by request. No model loaded yet: 503.
"""

from __future__ import annotations

import bentoml
from bentoml.exceptions import InvalidArgument, ServiceUnavailable

from pipeline.public_text import public_text
from serving.errors import NotLoaded
from serving.http_api import PREDICTIONS, PricingRoutes, operations
from serving.schemas import Contract, PriceResult, Rejection
from serving.service import SETTINGS, build_engine


def price_batch(engine, contracts: list[Contract]) -> list[PriceResult]:
    """One model call for a merged batch, through the engine's pricing (no queue of its own):
    one result per contract, in order, all priced by the version served now."""
    from serving.engine import price_contracts  # the model stack: in the worker only

    try:
        model = engine.model()
        iv, price = price_contracts(model, contracts)
    except NotLoaded as exc:
        raise ServiceUnavailable(public_text(str(exc))) from None
    except Rejection as rejection:
        raise InvalidArgument(public_text(str(rejection))) from None
    PREDICTIONS.labels(model_version=model.version).inc(len(iv))
    return [PriceResult(iv=i, price=p, model_version=model.version)
            for i, p in zip(iv.tolist(), price.tolist(), strict=True)]  # fmt: skip


@bentoml.asgi_app(operations, path="/")
@bentoml.service(
    name="options_pricing_bentoml_batching",
    workers=1,  # one process, as serving/service.py: BentoML batches within a worker
    http={"host": SETTINGS.host, "port": SETTINGS.port},
    traffic={"timeout": SETTINGS.timeout_s},
)
class BentoBatchingService(PricingRoutes):
    """serving/service.py's service with POST /price batched by BentoML (benchmark peer)."""

    def __init__(self) -> None:
        self.engine = build_engine(SETTINGS)

    @bentoml.api(
        route="/price",
        batchable=True,
        max_batch_size=SETTINGS.batch_max_contracts,  # contracts per model call, as ours
        # a request waiting longer is dropped (503): our service's per-request timeout
        max_latency_ms=int(SETTINGS.timeout_s * 1000),
    )
    def price(self, contracts: list[Contract]) -> list[PriceResult]:
        """Price the contracts of the requests BentoML merged; results in their order."""
        return price_batch(self.engine, contracts)
