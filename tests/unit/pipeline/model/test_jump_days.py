"""Jump days: the days yesterday's state does not describe are kept out of the monitor's
reference (pipeline.model.training.jump_days, model_train.typical_scores)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.model.training import day_weights, jump_days, previous_day_rmse
from pipeline.model_train import typical_scores

DAYS = list(pd.bdate_range("2026-03-02", periods=8).date)


def day(move: float, n: int = 50, seed: int = 0, date=None) -> pd.DataFrame:
    """n OTM quotes whose IV moved by ~`move` (vol points / 100) since yesterday."""
    rng = np.random.default_rng(seed)
    prev = np.full(n, 0.2)
    return pd.DataFrame({
        "prev_iv": prev, "prev_smile_iv": prev, "iv": prev + move * rng.standard_normal(n),
        "iv_reliable": True, "moneyness_class": "OTM",
        "quote_date": pd.Timestamp(date or DAYS[0]),
    })  # fmt: skip


def test_a_shock_day_is_a_jump_and_calm_or_volatile_days_are_not():
    moves = [0.004, 0.005, 0.003, 0.006, 0.09, 0.005, 0.012, 0.004]  # a 2.4x day and a ~20x day
    frames = {d: day(m, seed=i) for i, (d, m) in enumerate(zip(DAYS, moves, strict=True))}
    assert jump_days(frames, 5.0) == (DAYS[4],)
    assert jump_days(frames, None) == () and jump_days(frames, 0) == ()


def test_the_previous_day_rmse_reads_yesterdays_smile_for_a_new_contract_and_skips_itm():
    frame = day(0.0).assign(iv=0.25)
    frame.loc[0, "prev_iv"] = np.nan  # a new contract: yesterday's smile (0.2) stands in
    frame.loc[1, "moneyness_class"] = "ITM"
    frame.loc[1, "iv"] = 5.0  # ITM is not informative: not counted
    assert np.isclose(previous_day_rmse(frame), 0.05)


def test_the_reference_leaves_the_holdouts_jump_days_out():
    calm, shock = day(0.0, date=DAYS[0]), day(0.0, date=DAYS[1])
    holdout = pd.concat([calm, shock], ignore_index=True)
    pred = pd.DataFrame({"iv": np.r_[calm["iv"] + 0.002, shock["iv"] + 0.08]})
    scores = typical_scores(holdout, pred, [DAYS[1]])
    assert np.isclose(scores["holdout.typical_iv_rmse"], 0.002)
    assert scores["holdout.jump_days"] == 1
    assert typical_scores(holdout, pred, DAYS[:2]) == {}  # every day jumped: no typical figure


def test_day_weights_count_each_day_by_its_error_relative_to_the_days_move():
    calm, shock = day(0.005, date=DAYS[0]), day(0.05, seed=1, date=DAYS[1])
    first = day(0.0, date=DAYS[2]).assign(prev_iv=np.nan, prev_smile_iv=np.nan)  # no yesterday
    frame = pd.concat([calm, shock, first], ignore_index=True)
    w = day_weights(frame)
    by_day = pd.Series(w).groupby(frame["quote_date"]).first()
    assert np.isclose(w.mean(), 1.0) and (w > 0).all()
    # 1 / the day's baseline MSE: the shock day (10x the move) weighs ~1/100 of the calm day
    ratio = by_day[pd.Timestamp(DAYS[1])] / by_day[pd.Timestamp(DAYS[0])]
    expected = (previous_day_rmse(calm) / previous_day_rmse(shock)) ** 2
    assert np.isclose(ratio, expected) and 0.005 < ratio < 0.02
    # a day without a previous-day baseline gets the median day's weight, not NaN or infinity
    assert np.isclose(by_day[pd.Timestamp(DAYS[2])], by_day.iloc[:2].median())
    assert day_weights(frame.iloc[:0]).size == 0
