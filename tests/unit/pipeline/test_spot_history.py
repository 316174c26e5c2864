"""Spot summaries: what data_validate writes per day and feature_engineer reads as its history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.artifacts import read_frame, write_frame
from pipeline.features import realised_vols
from pipeline.spot_history import SPOT_COLUMNS, read_spots, spot_summary
from tests.factories import good_quotes


def quotes_on(day: str, spot: float) -> pd.DataFrame:
    q = good_quotes(n=6)
    spy = q.assign(quote_date=pd.Timestamp(day), spot=spot)
    qqq = q.assign(quote_date=pd.Timestamp(day), underlying="QQQ", spot=spot / 2)
    return pd.concat([spy, qqq], ignore_index=True)


def test_spot_summary_is_one_row_per_day_and_underlying_with_the_first_spot():
    q = quotes_on("2026-03-02", 600.0)
    q.loc[0, "spot"] = np.nan  # the first non-null spot counts, as in realised_vols' pivot
    q.loc[1, "spot"] = 601.0
    summary = spot_summary(q)
    assert list(summary.columns) == SPOT_COLUMNS
    assert summary.to_dict("records") == [
        {"quote_date": pd.Timestamp("2026-03-02"), "underlying": "SPY", "spot": 601.0},
        {"quote_date": pd.Timestamp("2026-03-02"), "underlying": "QQQ", "spot": 300.0},
    ]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_read_spots_equals_reading_each_file(tmp_path, suffix):
    days = [quotes_on(f"2026-03-0{d}", 600.0 + d) for d in (2, 3, 4)]
    paths = [
        write_frame(spot_summary(days[0]), tmp_path / f"spots_0{suffix}"),
        write_frame(days[1], tmp_path / f"validated_1{suffix}"),  # a day from before summaries
        write_frame(spot_summary(days[2]), tmp_path / f"spots_2{suffix}"),
    ]
    if suffix == ".parquet":  # an empty day's text column is typed null in parquet
        paths.append(write_frame(spot_summary(days[2].iloc[:0]), tmp_path / "spots_empty.parquet"))
    expected = pd.concat([read_frame(p, SPOT_COLUMNS) for p in paths], ignore_index=True)
    pd.testing.assert_frame_equal(read_spots(paths), expected)
    assert read_spots([]).empty and list(read_spots([]).columns) == SPOT_COLUMNS


def test_realised_vols_are_the_same_from_summaries_and_from_every_quote():
    rng = np.random.default_rng(3)
    days = pd.bdate_range(end="2026-03-02", periods=12)
    spots = 600 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    full = pd.concat([quotes_on(str(d.date()), s) for d, s in zip(days, spots, strict=True)])
    summaries = pd.concat([spot_summary(full[full["quote_date"] == d]) for d in days])

    def rv(spot_rows: pd.DataFrame) -> pd.DataFrame:
        return realised_vols(spot_rows.assign(date=spot_rows["quote_date"]), days[-1], [5, 10], 3)

    pd.testing.assert_frame_equal(rv(summaries), rv(full))
