"""pipeline.model.training.split_dates with `holdout_start`: the holdout after a change point."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.errors import ConfigError, DataError
from pipeline.model.training import holdout_length, split_dates

DAYS = list(pd.bdate_range("2026-03-02", periods=12).date)  # 2026-03-02 .. 2026-03-17


def cfg(start=None, holdout_days=3):
    return OmegaConf.create({"holdout_days": holdout_days, "validation_days": 2,
                             "min_train_days": 4, "holdout_start": start})  # fmt: skip


def test_the_holdout_is_the_days_from_holdout_start_with_validation_just_before():
    split = split_dates(DAYS, cfg(str(DAYS[10])))
    assert split.holdout == tuple(DAYS[10:])  # 2 days, fewer than holdout_days
    assert split.validation == tuple(DAYS[8:10])
    assert split.train == tuple(DAYS[:8])
    assert split.tags()["holdout_start"] == "2026-03-16"


def test_exactly_one_day_when_the_change_is_the_last_day():
    split = split_dates(DAYS, cfg(str(DAYS[-1])))
    assert split.holdout == (DAYS[-1],) and split.validation == tuple(DAYS[9:11])
    assert split.train == tuple(DAYS[:9])


def test_more_days_since_the_change_than_holdout_days_keep_the_last_of_them():
    split = split_dates(DAYS, cfg(str(DAYS[5])))
    assert split.holdout == tuple(DAYS[9:]) and split.validation == tuple(DAYS[7:9])
    assert split == split_dates(DAYS, cfg(None))  # the same as without holdout_start


def test_a_start_on_a_day_without_features_takes_the_next_one():
    weekend = dt.date(2026, 3, 14)  # a Saturday: Monday 2026-03-16 is the first holdout day
    assert split_dates(DAYS, cfg(str(weekend))).holdout == tuple(DAYS[10:])


def test_holdout_start_after_the_last_day_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"holdout_start=2026-03-18 is after the last feature "
                       r"day \(2026-03-17\): the holdout would be empty"):  # fmt: skip
        split_dates(DAYS, cfg("2026-03-18"))
    with pytest.raises(ConfigError, match="is not a date"):
        split_dates(DAYS, cfg("yesterday"))


def test_a_short_holdout_needs_fewer_days_and_a_shortfall_names_holdout_start():
    # 4 train + 2 validation + 1 holdout = 7 days hold the split; 10 holdout days would need 16
    assert split_dates(DAYS[:7], cfg(str(DAYS[6]), holdout_days=10)).holdout == (DAYS[6],)
    with pytest.raises(DataError, match=r"holdout from 2026-03-05 = 4 \+ 2 \+ 4\), found 7"):
        split_dates(DAYS[:7], cfg(str(DAYS[3]), holdout_days=10))


def test_without_holdout_start_the_split_is_unchanged():
    no_key = OmegaConf.create({"holdout_days": 3, "validation_days": 2, "min_train_days": 4})
    assert split_dates(DAYS, no_key) == split_dates(DAYS, cfg(None))
    assert split_dates(DAYS, no_key).holdout == tuple(DAYS[9:])
    assert holdout_length(DAYS, None, 3) == 3 and holdout_length(DAYS, DAYS[0], 3) == 3
