"""pipeline.model.training: the date split, the shortfall message and the leakage guard."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.errors import ConfigError, DataError
from pipeline.features import MODEL_FEATURES
from pipeline.model.training import check_features, split_dates

CFG = OmegaConf.create({"holdout_days": 3, "validation_days": 2, "min_train_days": 4})
DAYS = list(pd.bdate_range("2026-03-02", periods=12).date)


def test_split_is_by_whole_dates_oldest_first():
    split = split_dates(reversed(DAYS), CFG)
    assert split.train == tuple(DAYS[:7])
    assert split.validation == tuple(DAYS[7:9])
    assert split.holdout == tuple(DAYS[9:])
    assert split.tags() == {
        "train_start": "2026-03-02", "train_end": "2026-03-10",
        "validation_start": "2026-03-11", "validation_end": "2026-03-12",
        "holdout_start": "2026-03-13", "holdout_end": "2026-03-17",
    }  # fmt: skip


def test_too_few_dates_name_the_shortfall_and_the_window():
    window = (dt.date(2026, 1, 5), dt.date(2026, 3, 17))
    with pytest.raises(DataError) as err:
        split_dates(DAYS[:8], CFG, window=window)
    assert str(err.value).startswith(
        "need at least 9 trading days of features (train ≥ min_train_days + validation + holdout"
        " = 4 + 2 + 3), found 8 between 2026-01-05 and 2026-03-17; short by 1"
    )
    with pytest.raises(DataError, match="found 0 between"):
        split_dates([], CFG)


@pytest.mark.parametrize("bad", [["iv"], ["t_years", "mid"], [], ["t_years", "t_years"]])
def test_only_known_pre_close_features_are_accepted(bad):
    with pytest.raises(ConfigError, match="allowed \\(no same-day information\\)"):
        check_features(bad)
    assert check_features(MODEL_FEATURES) == list(MODEL_FEATURES)
