"""Data test: the validator against the synthetic market's ground-truth bad-row labels."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipeline.data_validate import validate_quotes
from pipeline.market.parse import chain_to_frame, frames_to_raw
from pipeline.market.synthetic import generate_chain
from tests.conftest import compose_config

DAY = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def labelled_day():
    cfg = compose_config(["data_fetch.synthetic.bad_row_rate=0.05"])
    chains = [
        generate_chain(s, DAY, cfg.data_fetch.synthetic, cfg.market) for s in ("SPY", "_SPX", "IWM")
    ]
    raw = frames_to_raw([chain_to_frame(payload) for payload, _ in chains])
    truth = pd.concat([t.sort_values("row") for _, t in chains], ignore_index=True)
    assert len(truth) == len(raw) and (truth["option"] == raw["option"]).all()
    result = validate_quotes(raw.assign(_row=range(len(raw))), cfg.data_validate, cfg.market, DAY)
    labels = truth.assign(quarantined=False, reason="")
    labels.loc[result.quarantine["_row"], "quarantined"] = True
    labels.loc[result.quarantine["_row"], "reason"] = result.quarantine["reason"].to_numpy()
    return labels


def test_every_kind_of_injected_bad_row_is_quarantined(labelled_day):
    bad = labelled_day[labelled_day["is_bad"]]
    assert len(bad) > 200
    recall = bad.groupby("bad_reason")["quarantined"].mean()
    assert set(recall.index) == {
        "crossed",
        "negative_price",
        "nan_price",
        "duplicate",
        "expired",
        "stale",
        "arbitrage",
    }
    assert (recall == 1.0).all(), recall


def test_good_rows_are_kept_except_zero_bid_wings(labelled_day):
    good = labelled_day[~labelled_day["is_bad"]]
    wrongly = good[good["quarantined"] & (good["bad_reason"] != "zero_bid")]
    assert len(wrongly) / len(good) < 0.001, wrongly[["option", "reason"]].head()
    zero_bid = good[good["bad_reason"] == "zero_bid"]
    assert zero_bid["quarantined"].all()
    assert zero_bid["reason"].str.contains("bid_quoted").all()
