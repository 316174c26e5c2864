"""What the pricing service does, without HTTP: the served model, its hot swap and the pricing.

`PricingEngine` puts together
- a `ModelHolder` (serving/model_holder.py): the model served, replaced only after a full load
  and self-check;
- a `RegistryPoller`: start-up load, then a registry poll every `poll_s` seconds;
- a `Batcher` (serving/batching.py): one worker thread pricing whatever requests queued up.

serving/service.py maps HTTP onto it; unit tests drive it (and the service) with a fake source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.batching import Batcher
from serving.errors import NotLoaded
from serving.model_holder import (
    Candidate,
    LoadedModel,
    ModelHolder,
    ModelSource,
    RegistryPoller,
    Reloaded,
    self_check,
)
from serving.pricing import contracts_frame, predict
from serving.schemas import Contract


@dataclass(frozen=True)
class Priced:
    """The answer to one request: the version that priced it and one iv/price per contract."""

    version: str
    iv: np.ndarray
    price: np.ndarray


def price_contracts(model: LoadedModel, contracts: Sequence[Contract]):
    """One model call for `contracts` (the batcher's unit of work) → (iv, price)."""
    return predict(model.pricer, contracts_frame(contracts))


class PricingEngine:
    """The served model, its reloads and the pricing of validated requests."""

    def __init__(
        self,
        source: ModelSource,
        poll_s: float,
        batch_max_contracts: int,
        check: Callable[[Candidate], None] = self_check,
    ):
        self.holder = ModelHolder(source, check=check)
        self.batcher = Batcher(price_contracts, batch_max_contracts)
        self.poller = RegistryPoller(self.holder, poll_s)

    def start(self) -> PricingEngine:
        """Load the model in the background (readiness follows) and start the registry poll."""
        self.poller.start()
        return self

    def stop(self) -> None:
        self.poller.stop()
        self.batcher.stop()

    @property
    def ready(self) -> bool:
        """A model is loaded: it passed its self-check (nothing else gets in)."""
        return self.holder.current is not None

    def model(self) -> LoadedModel:
        model = self.holder.current
        if model is None:
            source = self.holder.source
            why = self.holder.last_error or f"loading {source.model_name}@{source.alias}"
            raise NotLoaded(f"no model loaded ({why}); GET /readyz answers 200 once one is")
        return model

    async def price(self, contracts: Sequence[Contract]) -> Priced:
        """Price validated contracts with the model served now; it keeps pricing them even if a
        reload swaps in another meanwhile. Raises NotLoaded, or Rejection (422) for contracts
        the model cannot price: a quote date without a recent enough market state, an underlying
        that state has no data for (a merged batch that fails is re-priced request by request,
        so one request's refusal is its own)."""
        model = self.model()
        iv, price = await self.batcher.price(model, contracts)
        return Priced(model.version, iv, price)

    def reload(self) -> Reloaded:
        """Serve the alias's version now (ReloadFailed: why not; the old model keeps serving)."""
        return self.holder.reload()
