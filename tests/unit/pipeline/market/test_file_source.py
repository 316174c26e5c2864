"""pipeline.market.file_source: csv/parquet raw quotes, read through the raw contract."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.errors import ConfigError, DataError, SchemaChangeError
from pipeline.market.file_source import read_quotes_file
from pipeline.market.parse import RAW_COLUMNS


@pytest.mark.parametrize("name", ["quotes.csv", "quotes.parquet", "quotes.pq", "QUOTES.CSV"])
def test_reads_csv_and_parquet_back_to_the_contract(spy_raw, tmp_path, name):
    path = tmp_path / name
    if name.lower().endswith(".csv"):
        spy_raw.to_csv(path, index=False)
    else:
        spy_raw.to_parquet(path, index=False)
    out = read_quotes_file(path)
    assert out.dtypes.astype(str).to_dict() == RAW_COLUMNS
    pd.testing.assert_frame_equal(out, spy_raw)


def test_text_columns_stay_text_in_csv(spy_raw, tmp_path):
    # a numeric-looking root and the symbol "NA" must survive a csv trip as strings
    df = spy_raw.copy()
    df["root"] = "1234"
    df["underlying"] = "NA"
    path = tmp_path / "quotes.csv"
    df.to_csv(path, index=False)
    out = read_quotes_file(path)
    assert (out["root"] == "1234").all()
    assert (out["underlying"] == "NA").all()
    assert out["last_trade_time"].isna().sum() == spy_raw["last_trade_time"].isna().sum()


def test_extra_columns_pass_through(spy_raw, tmp_path):
    path = tmp_path / "quotes.parquet"
    spy_raw.assign(vendor="acme").to_parquet(path, index=False)
    out = read_quotes_file(path)
    assert list(out.columns) == [*RAW_COLUMNS, "vendor"]


@pytest.mark.parametrize("name", ["quotes.json", "quotes.xlsx", "quotes"])
def test_unsupported_suffix_is_a_config_error_naming_it(tmp_path, name):
    path = tmp_path / name
    path.write_text("{}")
    with pytest.raises(ConfigError) as info:
        read_quotes_file(path)
    assert repr(path.suffix) in str(info.value)


def test_missing_file_is_a_data_error_naming_the_path(tmp_path):
    path = tmp_path / "nowhere" / "options_data_20251121.csv"
    with pytest.raises(DataError, match="not found") as info:
        read_quotes_file(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    "name,content", [("bad.parquet", b"not parquet at all"), ("empty.csv", b"")]
)
def test_unreadable_file_is_a_data_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot read quotes file") as info:
        read_quotes_file(path)
    assert str(path) in str(info.value)


def test_schema_change_names_the_path_and_column(spy_raw, tmp_path):
    path = tmp_path / "quotes.csv"
    spy_raw.assign(strike="abc").to_csv(path, index=False)
    with pytest.raises(SchemaChangeError, match="strike") as info:
        read_quotes_file(path)
    assert str(path) in str(info.value)
    path = tmp_path / "quotes.parquet"
    spy_raw.drop(columns=["bid"]).to_parquet(path, index=False)
    with pytest.raises(SchemaChangeError, match=r"\['bid'\]"):
        read_quotes_file(path)
