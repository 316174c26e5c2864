"""What the pricing service does, without HTTP: the served model, its hot swap and the pricing.

`PricingEngine` puts together
- a `ModelHolder` (serving/model_holder.py): the model served, replaced only after a full load
  and self-check;
- a `RegistryPoller`: start-up load, then a registry poll every `poll_s` seconds;
- a `Batcher` (serving/batching.py): one worker thread pricing whatever requests queued up.

Pricing goes through the model's NumPy path (`OptionsPricer.price_columns`, pipeline.model.
array_path): no DataFrame. A single contract that arrives while the batcher is idle is priced at
once on the caller's thread (no queue round-trip); under concurrent load requests queue and are
merged as before. A refused or non-finite answer is re-priced through serving/pricing.py's frame
path, which turns it into the 422 naming the contract and field (the two paths give the same
errors: tests/unit/pipeline/model/test_array_path.py).

serving/service.py maps HTTP onto it; unit tests drive it (and the service) with a fake source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.model.pricer import ContractError
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
from serving.pricing import FIELDS, contracts_frame, predict
from serving.schemas import Contract


@dataclass(frozen=True)
class Priced:
    """The answer to one request: the version that priced it and one iv/price per contract."""

    version: str
    iv: np.ndarray
    price: np.ndarray


DATE_FIELDS = ("expiry", "quote_date")
FLOAT_FIELDS = ("strike", "spot", "rate", "dividend_yield")


def contract_columns(contracts: Sequence[Contract]) -> dict[str, np.ndarray]:
    """The model's raw fields as arrays: dates as datetime64, missing numbers as NaN."""
    columns = {}
    for f in FIELDS:
        values = [getattr(c, f) for c in contracts]
        if f in DATE_FIELDS:
            columns[f] = np.array(values, "datetime64[D]").astype("datetime64[ns]")
        elif f in FLOAT_FIELDS:
            columns[f] = np.array([np.nan if v is None else v for v in values], float)
        else:
            columns[f] = np.array(values, object)
    return columns


def price_contracts(model: LoadedModel, contracts: Sequence[Contract]):
    """One model call for `contracts` (the batcher's unit of work) → (iv, price)."""
    fast = getattr(model.pricer, "price_columns", None)
    if fast is not None:
        try:
            with np.errstate(all="ignore"):  # extreme-but-valid inputs: checked below
                iv, price = fast(contract_columns(contracts))
            if np.isfinite(iv).all() and np.isfinite(price).all():
                return iv, price
        except ContractError:
            pass  # the frame path below refuses them again, as a 422 naming each contract
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
        if len(contracts) == 1 and self.batcher.idle and hasattr(model.pricer, "price_columns"):
            iv, price = price_contracts(model, contracts)  # ~1 ms: no queue round-trip
        else:
            iv, price = await self.batcher.price(model, contracts)
        return Priced(model.version, iv, price)

    def reload(self) -> Reloaded:
        """Serve the alias's version now (ReloadFailed: why not; the old model keeps serving)."""
        return self.holder.reload()
