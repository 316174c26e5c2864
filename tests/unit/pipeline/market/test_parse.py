"""pipeline.market.parse: Cboe payload → raw table, the raw column contract, and coerce_raw."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from monitoring.alerts import kind_of
from pipeline.errors import DataError, SchemaChangeError
from pipeline.market.parse import (
    RAW_COLUMNS,
    EmptyChainError,
    MalformedPayloadError,
    PayloadSchemaChangeError,
    chain_to_frame,
    check_payload,
    coerce_raw,
    empty_raw,
    frames_to_raw,
)


def by_option(df: pd.DataFrame, option: str) -> pd.Series:
    rows = df[df["option"] == option]
    assert len(rows) == 1, option
    return rows.iloc[0]


# --- chain_to_frame ---------------------------------------------------------------------------


def test_columns_and_dtypes_follow_the_contract(spy_raw):
    assert list(spy_raw.columns) == list(RAW_COLUMNS)
    assert spy_raw.dtypes.astype(str).to_dict() == RAW_COLUMNS
    assert len(spy_raw) == 7


def test_chain_level_fields(spy_raw):
    assert (spy_raw["quote_time"] == pd.Timestamp("2025-11-21 16:15:03")).all()
    assert (spy_raw["quote_date"] == pd.Timestamp("2025-11-21")).all()
    assert (spy_raw["underlying"] == "SPY").all()
    assert (spy_raw["spot"] == 659.03).all()


def test_contract_fields(spy_raw):
    row = by_option(spy_raw, "SPY260821P00600000")
    assert (row["root"], row["expiry"], row["option_type"], row["strike"]) == (
        "SPY",
        pd.Timestamp("2026-08-21"),
        "P",
        600.0,
    )
    assert (row["bid"], row["ask"]) == (21.05, 21.32)
    # counts arrive as floats (17.0) and stay float64
    assert (row["bid_size"], row["ask_size"], row["volume"], row["open_interest"]) == (
        17.0,
        112.0,
        501.0,
        33510.0,
    )
    assert row["vendor_iv"] == pytest.approx(0.2388)
    assert (row["delta"], row["gamma"], row["vega"], row["theta"], row["rho"], row["theo"]) == (
        -0.2203,
        0.0039,
        1.9044,
        -0.0412,
        -1.4012,
        21.185,
    )
    assert row["last_trade_price"] == 21.2
    assert row["last_trade_time"] == pd.Timestamp("2025-11-21 15:58:03")
    assert by_option(spy_raw, "SPY251219P00652500")["strike"] == 652.5


def test_iv_zero_means_missing(spy_raw):
    assert np.isnan(by_option(spy_raw, "SPY251205C00900000")["vendor_iv"])
    assert spy_raw["vendor_iv"].isna().sum() == 2  # the wing and the expired contract
    # bid 0 on a worthless contract is a price, not a missing value
    assert by_option(spy_raw, "SPY251205C00900000")["bid"] == 0.0


def test_last_trade_time_null_or_empty_is_nat(spy_raw):
    assert pd.isna(by_option(spy_raw, "SPY251205C00900000")["last_trade_time"])  # null
    assert pd.isna(by_option(spy_raw, "SPY251219P00652500")["last_trade_time"])  # ""


def test_expired_contract_is_kept_for_the_validator(spy_raw):
    row = by_option(spy_raw, "SPY251114C00660000")
    assert row["expiry"] < row["quote_date"]


def test_payload_is_not_mutated(spy_payload):
    before = copy.deepcopy(spy_payload)
    chain_to_frame(spy_payload)
    assert spy_payload == before


def test_numbers_as_strings_parse_and_garbage_becomes_nan(spy_payload):
    spy_payload["data"]["options"][0]["bid"] = "12.5"
    spy_payload["data"]["options"][0]["ask"] = "n/a"
    spy_payload["data"]["options"][1]["volume"] = None
    df = chain_to_frame(spy_payload)
    assert df.loc[0, "bid"] == 12.5
    assert np.isnan(df.loc[0, "ask"])
    assert np.isnan(df.loc[1, "volume"])
    assert df.dtypes.astype(str).to_dict() == RAW_COLUMNS


def test_optional_last_trade_keys_may_be_absent(spy_payload):
    for contract in spy_payload["data"]["options"]:
        del contract["last_trade_price"], contract["last_trade_time"]
    df = chain_to_frame(spy_payload)
    assert df["last_trade_price"].isna().all() and df["last_trade_time"].isna().all()


def test_bad_symbol_row_is_kept_with_missing_contract_terms(spy_payload):
    spy_payload["data"]["options"][0]["option"] = "GARBAGE"
    df = chain_to_frame(spy_payload)
    assert len(df) == 7
    assert df.loc[0, "option"] == "GARBAGE"
    assert df.loc[0, ["root", "expiry", "option_type", "strike"]].isna().all()


def test_index_payload_keeps_cboe_spelling_and_weekly_roots(spy_payload):
    spy_payload["symbol"] = "_SPX"
    spy_payload["data"]["symbol"] = "^SPX"
    spy_payload["data"]["current_price"] = 6602.99
    spy_payload["data"]["options"] = spy_payload["data"]["options"][:2]
    spy_payload["data"]["options"][0]["option"] = "SPXW251205C06600000"
    spy_payload["data"]["options"][1]["option"] = "SPX251219P06500000"
    df = chain_to_frame(spy_payload)
    assert (df["underlying"] == "_SPX").all()
    assert df["root"].tolist() == ["SPXW", "SPX"]
    assert df["strike"].tolist() == [6600.0, 6500.0]


@pytest.mark.parametrize("key", ["timestamp", "symbol", "data"])
def test_missing_top_level_key_is_named(spy_payload, key):
    del spy_payload[key]
    with pytest.raises(MalformedPayloadError, match=key):
        chain_to_frame(spy_payload)


@pytest.mark.parametrize("key", ["options", "current_price"])
def test_missing_data_key_is_named(spy_payload, key):
    del spy_payload["data"][key]
    with pytest.raises(MalformedPayloadError, match=rf"under 'data': missing keys \['{key}'\]"):
        chain_to_frame(spy_payload)


def test_wrong_container_types(spy_payload):
    bad = copy.deepcopy(spy_payload)
    bad["data"]["options"] = {"not": "a list"}
    with pytest.raises(MalformedPayloadError, match="'data.options' is a dict"):
        chain_to_frame(bad)
    bad = copy.deepcopy(spy_payload)
    bad["data"] = []
    with pytest.raises(MalformedPayloadError, match="'data' is a list"):
        chain_to_frame(bad)
    with pytest.raises(MalformedPayloadError, match="is a list, expected a JSON object"):
        check_payload([], "SPY")
    bad = copy.deepcopy(spy_payload)
    bad["data"]["options"][3] = "SPY260821P00600000"
    with pytest.raises(MalformedPayloadError, match=r"options\[3\] is a str"):
        chain_to_frame(bad)


def test_contract_missing_keys_names_keys_symbol_and_contract(spy_payload):
    del spy_payload["data"]["options"][2]["gamma"]
    del spy_payload["data"]["options"][4]["iv"]
    del spy_payload["data"]["options"][4]["gamma"]
    with pytest.raises(MalformedPayloadError) as info:
        chain_to_frame(spy_payload)
    msg = str(info.value)
    assert "'SPY'" in msg
    assert "2 of 7 contracts" in msg
    assert "['gamma', 'iv']" in msg
    assert "SPY260821C00600000" in msg


def test_renamed_contract_key_is_a_schema_change_naming_both_keys(spy_payload):
    for contract in spy_payload["data"]["options"]:
        contract["bid_price"] = contract.pop("bid")
    with pytest.raises(PayloadSchemaChangeError) as info:
        chain_to_frame(spy_payload)
    exc = info.value
    assert str(exc).startswith(
        "Cboe payload for 'SPY': schema change in 7 of 7 contracts: missing keys ['bid'], "
        "new keys ['bid_price'] (first: 'SPY251205C00655000', 'SPY251205P00655000', "
    )
    assert (exc.missing, exc.unknown) == (["bid"], ["bid_price"])
    # a schema change to the alerts (the plan's schema_change), still a malformed payload to callers
    assert isinstance(exc, SchemaChangeError) and isinstance(exc, MalformedPayloadError)
    assert kind_of(exc) == "schema_change"


def test_a_new_contract_key_alone_is_a_schema_change(spy_payload):
    spy_payload["data"]["options"][5]["mark"] = 1.25
    with pytest.raises(PayloadSchemaChangeError, match=r"in 1 of 7 contracts: new keys \['mark'\]"):
        chain_to_frame(spy_payload)


def test_renamed_data_key_is_a_schema_change(spy_payload):
    spy_payload["data"]["option_chain"] = spy_payload["data"].pop("options")
    with pytest.raises(PayloadSchemaChangeError) as info:
        check_payload(spy_payload, "SPY")
    assert str(info.value) == (
        "Cboe payload for 'SPY': schema change under 'data': missing keys ['options'], "
        "new keys ['option_chain']"
    )


def test_numbers_beyond_float_range_are_nan(spy_payload):
    spy_payload["data"]["current_price"] = 10**400
    spy_payload["data"]["options"][0]["bid"] = -(10**400)
    spy_payload["data"]["options"][1]["ask"] = "12.5"  # the slow path, with a huge integer in it
    spy_payload["data"]["options"][2]["ask"] = 10**400
    df = chain_to_frame(spy_payload)
    assert df["spot"].isna().all()
    assert np.isnan(df.loc[0, "bid"]) and np.isnan(df.loc[2, "ask"]) and df.loc[1, "ask"] == 12.5


def test_unparseable_timestamp_is_malformed(spy_payload):
    spy_payload["timestamp"] = "yesterday"
    with pytest.raises(MalformedPayloadError, match="timestamp 'yesterday'"):
        chain_to_frame(spy_payload)


def test_empty_chain(spy_payload):
    spy_payload["data"]["options"] = []
    with pytest.raises(EmptyChainError, match="'SPY'.*no option contracts") as info:
        chain_to_frame(spy_payload)
    assert isinstance(info.value, DataError)


# --- frames_to_raw ----------------------------------------------------------------------------


def test_frames_to_raw_concatenates_in_contract_order(spy_payload):
    spx = copy.deepcopy(spy_payload)
    spx["symbol"] = "_SPX"
    a, b = chain_to_frame(spy_payload), chain_to_frame(spx)
    shuffled = b[list(reversed(b.columns))]
    out = frames_to_raw([a, shuffled])
    assert list(out.columns) == list(RAW_COLUMNS)
    assert out.dtypes.astype(str).to_dict() == RAW_COLUMNS
    assert out.index.tolist() == list(range(14))
    assert out["underlying"].tolist() == ["SPY"] * 7 + ["_SPX"] * 7


@pytest.mark.parametrize("frames", [[], [empty_raw()], [empty_raw(), empty_raw()]])
def test_frames_to_raw_empty_safe(frames):
    out = frames_to_raw(frames)
    assert out.empty
    assert list(out.columns) == list(RAW_COLUMNS)
    assert out.dtypes.astype(str).to_dict() == RAW_COLUMNS


def test_frames_to_raw_rejects_a_frame_without_raw_columns(spy_raw):
    with pytest.raises(SchemaChangeError, match="vendor_iv"):
        frames_to_raw([spy_raw.drop(columns=["vendor_iv"])])


# --- coerce_raw -------------------------------------------------------------------------------


def test_coerce_raw_round_trips_through_csv(spy_raw, tmp_path):
    path = tmp_path / "raw.csv"
    spy_raw.to_csv(path, index=False)
    loaded = pd.read_csv(path)
    assert loaded["quote_time"].dtype == object  # datetimes come back as text
    pd.testing.assert_frame_equal(coerce_raw(loaded), spy_raw)


def test_coerce_raw_round_trips_through_parquet(spy_raw, tmp_path):
    path = tmp_path / "raw.parquet"
    spy_raw.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(coerce_raw(pd.read_parquet(path)), spy_raw)


def test_coerce_raw_reorders_keeps_extras_last_and_does_not_mutate(spy_raw):
    df = spy_raw.assign(source="vendor")[["source", *reversed(list(RAW_COLUMNS))]]
    before = df.copy()
    out = coerce_raw(df)
    assert list(out.columns) == [*RAW_COLUMNS, "source"]
    assert (out["source"] == "vendor").all()
    pd.testing.assert_frame_equal(df, before)


def test_coerce_raw_treats_null_spellings_as_null(spy_raw):
    df = spy_raw.astype({"strike": object, "last_trade_time": object})
    df.loc[0, "strike"] = "NaN"
    df.loc[1, "strike"] = ""
    df.loc[2, "last_trade_time"] = "NaT"
    out = coerce_raw(df)
    assert out.loc[[0, 1], "strike"].isna().all()
    assert pd.isna(out.loc[2, "last_trade_time"])
    assert out.dtypes.astype(str).to_dict() == RAW_COLUMNS


def test_coerce_raw_missing_columns_is_a_schema_change(spy_raw):
    with pytest.raises(SchemaChangeError, match=r"miss columns \['spot', 'theo'\]"):
        coerce_raw(spy_raw.drop(columns=["theo", "spot"]))


def test_coerce_raw_uncastable_values_are_a_schema_change(spy_raw):
    df = spy_raw.astype({"strike": object, "quote_time": object})
    df["strike"] = "abc"
    df.loc[3, "quote_time"] = "yesterday"
    with pytest.raises(SchemaChangeError) as info:
        coerce_raw(df)
    msg = str(info.value)
    assert "strike (7 values not float64, e.g. ['abc'])" in msg
    assert "quote_time (1 values not datetime64[ns]" in msg
    assert "bid" not in msg


def test_coerce_raw_renamed_column_after_csv_is_caught(spy_raw, tmp_path):
    path = tmp_path / "raw.csv"
    spy_raw.rename(columns={"vendor_iv": "iv"}).to_csv(path, index=False)
    with pytest.raises(SchemaChangeError, match="vendor_iv"):
        coerce_raw(pd.read_csv(path))


def test_coerce_raw_duplicated_columns(spy_raw):
    df = pd.concat([spy_raw, spy_raw[["bid"]]], axis=1)
    with pytest.raises(SchemaChangeError, match=r"repeat columns \['bid'\]"):
        coerce_raw(df)


def test_coerce_raw_empty_table(tmp_path):
    path = tmp_path / "empty.csv"
    empty_raw().to_csv(path, index=False)
    out = coerce_raw(pd.read_csv(path))
    assert out.empty
    assert out.dtypes.astype(str).to_dict() == RAW_COLUMNS
