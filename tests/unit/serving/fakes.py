"""Fakes for the service's unit tests: a stub pricer per version and a registry-like source.

StubPricer prices deterministically from the contract (so order and version can be checked):
iv = 0.2 + version/100 + strike/spot/1000, price = strike/100 (+1 for puts). It knows the
underlyings SPY and _SPX, like the tiny market's model, and, like OptionsPricer, refuses a frame
with any other with a ContractError naming each row (the service turns it into a 422).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipeline.model.pricer import ContractError
from serving.model_holder import Candidate

UNDERLYINGS = {"SPY", "_SPX"}
CONTRACT = {"underlying": "SPY", "option_type": "C", "strike": 600.0, "expiry": "2026-06-19",
            "quote_date": "2026-03-31", "spot": 600.0}  # fmt: skip
EXAMPLE = pd.DataFrame(
    {"underlying": ["SPY", "_SPX"], "option_type": ["C", "P"], "strike": [600.0, 5500.0],
     "expiry": pd.to_datetime(["2026-06-19"] * 2), "quote_date": pd.to_datetime(["2026-03-31"] * 2),
     "spot": [610.0, 5600.0], "option": ["SPY260619C00600000", None]}
)  # fmt: skip


def stub_iv(version: str, strike: float, spot: float) -> float:
    return 0.2 + int(version) / 100 + strike / spot / 1000


class StubPricer:
    """OptionsPricer's interface: predict(context, frame) → DataFrame(iv, price); `.state`."""

    def __init__(self, version: str, gate: threading.Event | None = None, underlyings=UNDERLYINGS):
        self.version = version
        self.state = SimpleNamespace(underlyings=set(underlyings))
        self.calls: list[int] = []  # rows per call
        self.gate = gate  # when given, predict waits for it (to hold a request in flight)
        self.entered = threading.Event()  # set when a predict starts waiting for the gate

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if self.gate is not None:
            self.entered.set()
            self.gate.wait(10)
        self.calls.append(len(model_input))
        self.refuse_unknown_underlyings(model_input)
        strike = model_input["strike"].to_numpy(float)
        spot = model_input["spot"].to_numpy(float)
        iv = 0.2 + int(self.version) / 100 + strike / spot / 1000
        price = strike / 100 + (model_input["option_type"] == "P").to_numpy(float)
        return pd.DataFrame({"iv": iv, "price": price}, index=model_input.index)

    def refuse_unknown_underlyings(self, model_input: pd.DataFrame) -> None:
        """OptionsPricer's refusal (pipeline.model.pricer.states_for), rows by position."""
        known = sorted(self.state.underlyings)
        bad = [(i, u) for i, u in enumerate(model_input["underlying"]) if u not in known]
        if bad:
            rows = "; ".join(f"row {i}: unknown underlying {u!r}: the market state of 2026-03-30 "
                             f"has no data for it (it has: {known})" for i, u in bad)  # fmt: skip
            raise ContractError(f"{len(bad)} invalid contract row(s): {rows}")


def candidate(version: str, pricer=None, offline=None, example=EXAMPLE) -> Candidate:
    """A loaded version whose offline prediction is its own (so the self-check passes)."""
    pricer = pricer or StubPricer(version)
    if offline is None and example is not None:
        offline = StubPricer(version).predict(None, example)
    return Candidate(version, f"run-{version}", pricer, example, offline)


@dataclass
class FakeSource:
    """A registry with an alias: `point(version)` moves it; `load` returns candidates[version]
    or raises broken[version]."""

    model_name: str = "options-pricer"
    alias: str = "production"
    holder_of_alias: str | None = "1"
    candidates: dict[str, Candidate] = field(default_factory=dict)
    broken: dict[str, Exception] = field(default_factory=dict)
    unreachable: bool = False
    loads: list[str] = field(default_factory=list)

    def point(self, version: str | None) -> None:
        self.holder_of_alias = version

    def resolve(self):
        if self.unreachable:
            raise ConnectionError("registry at sqlite:///nowhere/mlflow.db is unreachable")
        if self.holder_of_alias is None:
            return None
        return self.holder_of_alias, f"run-{self.holder_of_alias}"

    def load(self, version: str) -> Candidate:
        self.loads.append(version)
        if version in self.broken:
            raise self.broken[version]
        return self.candidates.get(version) or candidate(version)


def iv_of(results: list[dict]) -> np.ndarray:
    return np.array([r["iv"] for r in results])
