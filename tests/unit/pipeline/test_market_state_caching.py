"""What the per-call caches of pipeline.market_state keep and drop (issue 16): a state's derived
values are worked out once and live beside it, not in it; a StateStore still sees a rewritten file
at the next lookup."""

from __future__ import annotations

import datetime as dt
import gc

import pandas as pd

from pipeline.market_state import _MEMO, MarketState, StateStore, memo, state_path

FRIDAY, MONDAY = dt.date(2026, 2, 27), dt.date(2026, 3, 2)


def _state(rate: float = 0.04) -> MarketState:
    return MarketState(as_of=FRIDAY, rate=rate, default_dividend_yield=0.0,
                       spots=pd.Series({"SPY": 600.0, "QQQ": 500.0}),
                       surfaces=pd.DataFrame({"underlying": ["SPY"], "c0": [0.2], "c_x": [0.0],
                                              "c_xx": [0.0], "c_s": [0.0], "c_sx": [0.0],
                                              "c_ss": [0.0]}))  # fmt: skip


def test_memo_builds_once_per_state_keeps_fields_clean_and_drops_with_the_state():
    calls = []

    def build(state):
        calls.append(state.as_of)
        return object()

    state, other = _state(), _state()
    first = memo(state, "test", build)
    assert memo(state, "test", build) is first and calls == [FRIDAY]
    assert memo(other, "test", build) is not first and len(calls) == 2
    assert state.underlyings == {"SPY"}  # a close and a surface: QQQ has no surface
    assert set(state.__dict__) == set(MarketState.__dataclass_fields__)  # nothing stored in it
    MarketState(**state.__dict__)  # so a copy through its fields still works
    key = (id(state), "test")
    del state, first
    gc.collect()
    assert key not in _MEMO


def test_a_rewritten_state_file_is_picked_up_at_the_next_lookup(tmp_path):
    store = StateStore(tmp_path, max_age_days=1)
    _state(rate=0.04).save(state_path(tmp_path, FRIDAY))
    assert store.lookup(MONDAY).rate == 0.04
    assert store.lookup(MONDAY) is store.lookup(MONDAY)  # cached while the file is unchanged
    _state(rate=0.0525).save(state_path(tmp_path, FRIDAY))  # the daily run publishes again
    assert store.lookup(MONDAY).rate == 0.0525
