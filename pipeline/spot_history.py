"""The spot of each underlying on each day, as validated quotes carry it.

Realised vols need about 25 trading days of spots. data_validate writes each day's spots as a
small summary (`Artifacts.spots`, one row per underlying) so that feature_engineer reads 25 tiny
files instead of the `spot` column of 25 full quote tables.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.artifacts import read_frame
from pipeline.market.parse import RAW_COLUMNS

SPOT_COLUMNS = ["quote_date", "underlying", "spot"]


def spot_summary(quotes: pd.DataFrame) -> pd.DataFrame:
    """(quote_date, underlying, spot) with one row per (quote_date, underlying), in order of first
    appearance: the group's first non-null spot (what `realised_vols` takes from the full rows)."""
    return quotes.groupby(SPOT_COLUMNS[:2], sort=False, as_index=False)["spot"].first()


def read_spots(paths: list[Path]) -> pd.DataFrame:
    """The `SPOT_COLUMNS` of tables written by `write_frame` (spot summaries, or validated quotes
    of days from before summaries existed), concatenated in order.

    Parquet files are read as Arrow tables and converted to pandas once: `pd.read_parquet` has
    ~2 ms of fixed cost per file, most of the time a 25-day history of 8-row files takes.
    """
    if not paths:
        return pd.DataFrame({c: pd.Series(dtype=RAW_COLUMNS[c]) for c in SPOT_COLUMNS})
    if all(Path(p).suffix == ".parquet" for p in paths):
        tables = [_read_parquet(p, SPOT_COLUMNS) for p in paths]
        # "default" promotion: an empty day's text column is typed null, not string
        return pa.concat_tables(tables, promote_options="default").to_pandas()
    return pd.concat([read_frame(p, SPOT_COLUMNS) for p in paths], ignore_index=True)


def _read_parquet(path: Path, columns: list[str]) -> pa.Table:
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)
