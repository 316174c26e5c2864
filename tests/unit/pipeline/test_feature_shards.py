"""feature_engineer by shards of underlyings (pipeline.feature_shards): which shard builds which
underlyings, and days built by shards, each on its own previous state, merged into exactly the
days built whole (features bit for bit, states field by field and as their JSON)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.artifacts import json_text
from pipeline.config import CONFIG_DIR
from pipeline.feature_engineer import SPEC, DayInputs, day_features
from pipeline.feature_shards import assign, members, merged
from pipeline.market.parse import chain_to_frame
from pipeline.market.synthetic import generate_day
from pipeline.market_state import MarketState
from pipeline.runtime import task_context
from pipeline.spot_history import spot_summary
from tests.conftest import compose_config

SYMBOLS = ["SPY", "QQQ", "IWM", "_SPX", "_RUT"]
DAYS = (dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4))


def test_underlyings_are_dealt_round_robin_in_sorted_order():
    assert assign({}, ["c", "a", "e", "b", "d", "a"], 2) == {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0}
    assert assign({}, ["b", "a"], 3) == {"a": 0, "b": 1}
    assert assign({}, ["x"], 1) == {"x": 0}


def test_underlyings_keep_their_shard_and_new_ones_go_to_the_smallest_shards():
    before = {"a": 0, "b": 1, "c": 0}
    after = assign(before, ["c", "z", "y", "x"], 2)  # a and b gone today: they keep their shard
    assert {k: after[k] for k in before} == before
    assert [after[k] for k in ("x", "y", "z")] == [1, 0, 1]  # sizes 2/1 → 2/2 → 3/2 → 3/3
    assert members(after, 0) == {"a", "c", "y"} and members(after, 1) == {"b", "x", "z"}


def assert_same_state(got: MarketState, want: MarketState) -> None:
    """Every field equal: tables and series exactly (values, types, order), the rest by ==."""
    for f in dataclasses.fields(MarketState):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=f.name)
        elif isinstance(b, pd.Series):
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=f.name)
        else:
            assert a == b, f.name


@pytest.fixture(scope="module")
def quotes() -> dict[dt.date, pd.DataFrame]:
    """Synthetic quotes of SYMBOLS per day; one slice of QQQ thinned out (a smile fallback) and
    IWM not quoted on the last day (its realised vols come from the history alone)."""
    cfg = OmegaConf.load(CONFIG_DIR / "data_fetch" / "synthetic.yaml").synthetic
    cfg.seed, cfg.bad_row_rate, cfg.max_expiry_years = 7, 0.0, 0.5
    market = OmegaConf.load(CONFIG_DIR / "market" / "default.yaml")
    out = {}
    for day in DAYS:
        payloads, _ = generate_day(day, cfg, market, symbols=SYMBOLS)
        q = pd.concat([chain_to_frame(p) for p in payloads.values()], ignore_index=True)
        qqq = q.index[(q["underlying"] == "QQQ") & (q["expiry"] == q["expiry"].max())]
        q = q.drop(qqq[4:]).reset_index(drop=True)
        if day == DAYS[-1]:
            q = q[q["underlying"] != "IWM"].reset_index(drop=True)
        out[day] = q
    return out


@pytest.mark.parametrize("shards", [2, 3, 6])  # 6: a shard with no underlying at all
def test_days_built_by_shards_are_the_days_built_whole(quotes, shards):
    cfg = compose_config([])
    whole_before, shards_before, assignment, history = None, [None] * shards, {}, []
    for day in DAYS:
        ctx = task_context(SPEC, cfg, day)
        history.append(spot_summary(quotes[day]))
        spots = pd.concat(history, ignore_index=True)
        spots = spots.assign(date=pd.to_datetime(spots["quote_date"]).dt.normalize())
        inputs = DayInputs(quotes[day], spots, len(history) - 1)

        whole = day_features(ctx, inputs, whole_before, "the previous state")
        assignment = assign(assignment, spots["underlying"], shards)
        parts = [
            day_features(
                ctx, inputs, shards_before[k], "the previous state", members(assignment, k)
            )
            for k in range(shards)
        ]
        got = merged(parts)

        pd.testing.assert_frame_equal(got.features, whole.features, check_exact=True)
        assert_same_state(got.state, whole.state)
        assert json_text(got.state.to_dict()) == json_text(whole.state.to_dict())
        assert (got.rows_in, got.history_days) == (whole.rows_in, whole.history_days)
        # the next day builds on the state as the local path reads it back from its file
        whole_before = whole.state.as_read()
        shards_before = [p.state.as_read() for p in parts]
    assert whole.state.fallbacks and "IWM" in set(whole.state.realised["underlying"])
    assert "IWM" not in whole.state.spots.index
