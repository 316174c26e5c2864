"""From validated contracts to prices with one loaded model (no HTTP, no registry).

The model is the registered pyfunc's own Python object (`OptionsPricer`, unwrapped): the same
feature code and booster as `mlflow.pyfunc.load_model(...).predict`, without MLflow's per-call
schema enforcement (the request schema has already checked every field). It prices each
contract with the daily market state of the trading day before its quote date; a quote date
without one (or with one older than serving.max_state_age_days), or an underlying that state has
no data for, is refused with a 422 naming the dates, never priced off a stale surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from pipeline.model.pricer import ContractError, StateMissing
from serving.schemas import Contract, Problem, Rejection, summary

FIELDS = ("underlying", "option_type", "strike", "expiry", "quote_date", "spot", "rate",
          "dividend_yield", "option")  # fmt: skip


class Pricer(Protocol):
    """What the service needs of a model: OptionsPricer's predict and its market state."""

    state: object  # MarketState: .underlyings

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame: ...


def contracts_frame(contracts: Sequence[Contract]) -> pd.DataFrame:
    """The model's input frame: one row per contract, dates as datetime64, nulls as NaN/None."""
    columns = {f: [getattr(c, f) for c in contracts] for f in FIELDS}
    frame = pd.DataFrame(columns)
    for col in ("expiry", "quote_date"):
        frame[col] = pd.to_datetime(frame[col])
    for col in ("rate", "dividend_yield"):
        frame[col] = frame[col].astype(float)
    return frame


def predict(pricer: Pricer, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(iv, price) arrays for the rows of `frame`.

    Raises Rejection(422) when the model's own validation refuses rows (pricer.validate_contracts
    names each row index and field: malformed values, the plausibility bounds of
    pipeline.model.plausibility) or when a row has no finite answer."""
    try:
        with np.errstate(all="ignore"):  # extreme-but-valid inputs: checked below, not warned
            out = pricer.predict(None, frame)
    except ContractError as exc:
        # problems the model can place (a contract and a field): listed like the schema's own
        placed = [Problem(index=int(i), field=f, message=m) for i, f, m in exc.problems
                  if f is not None and isinstance(i, int | np.integer)]  # fmt: skip
        if placed and len(placed) == len(exc.problems):
            raise Rejection(422, summary(placed), placed) from None
        problems = []
        if isinstance(exc, StateMissing):  # the message names the quote dates without a state
            problems = [Problem(index=None, field="quote_date", message=str(exc))]
        raise Rejection(422, f"the model refused the contracts: {exc}", problems) from None
    iv, price = out["iv"].to_numpy(float), out["price"].to_numpy(float)
    bad = np.flatnonzero(~(np.isfinite(iv) & np.isfinite(price)))
    if len(bad):
        problems = [Problem(index=int(i), field=None, message="the model has no finite price "
                            "for this contract") for i in bad]  # fmt: skip
        raise Rejection(422, summary(problems), problems)
    return iv, price
