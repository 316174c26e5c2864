"""The embedded synthetic market: determinism, Cboe shape, quote quality, bad rows, dynamics."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.config import CONFIG_DIR, MarketConfig, SyntheticMarketConfig, UnderlyingSpec
from pipeline.market import synthetic_path
from pipeline.market.calendar import is_monthly_expiry, shift_trading_days
from pipeline.market.occ import format_occ_symbol
from pipeline.market.parse import chain_to_frame
from pipeline.market.synthetic import generate_chain, generate_day, spot_path
from pipeline.market.synthetic_bad_rows import BAD_KINDS
from pipeline.quant.black_scholes import black_price

DAY = dt.date(2024, 6, 11)
SHOCK = dt.date(2024, 9, 16)
TOP_KEYS = {"timestamp", "symbol", "data"}
DATA_KEYS = {
    "symbol", "security_type", "exchange_id", "current_price", "price_change",
    "price_change_percent", "bid", "ask", "bid_size", "ask_size", "open", "high", "low", "close",
    "prev_day_close", "volume", "iv30", "iv30_change", "iv30_change_percent", "seqno",
    "last_trade_time", "tick", "options",
}  # fmt: skip
OPTION_KEYS = {
    "option", "bid", "bid_size", "ask", "ask_size", "iv", "open_interest", "volume", "delta",
    "gamma", "vega", "theta", "rho", "theo", "change", "open", "high", "low", "tick",
    "last_trade_price", "last_trade_time", "percent_change", "prev_day_close",
}  # fmt: skip
MARKET = OmegaConf.load(CONFIG_DIR / "market" / "default.yaml")


def make_cfg(**overrides):
    """The default synthetic config (configs/data_fetch/synthetic.yaml) with seed 7 and overrides."""
    cfg = OmegaConf.load(CONFIG_DIR / "data_fetch" / "synthetic.yaml").synthetic
    cfg.seed = 7
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def dumps(payload: dict) -> str:
    return json.dumps(payload, allow_nan=False)


def quotes(payloads: dict, truth: pd.DataFrame) -> pd.DataFrame:
    """Parsed payloads side by side with the truth (same row order) plus bounds."""
    raw = pd.concat([chain_to_frame(p) for p in payloads.values()], ignore_index=True)
    df = pd.concat(
        [raw, truth.drop(columns=["option", "expiry", "strike", "option_type", "root", "spot"])],
        axis=1,
    )
    call = df["option_type"] == "C"
    df["lower"] = df["discount"] * np.where(
        call,
        np.maximum(df["forward"] - df["strike"], 0),
        np.maximum(df["strike"] - df["forward"], 0),
    )
    df["upper"] = df["discount"] * np.where(call, df["forward"], df["strike"])
    return df


@pytest.fixture(scope="module")
def day():
    payloads, truth = generate_day(DAY, make_cfg(), MARKET)
    return payloads, truth, quotes(payloads, truth)


@pytest.fixture(scope="module")
def noisy_day():
    payloads, truth = generate_day(DAY, make_cfg(bad_row_rate=0.2), MARKET, symbols=["SPY", "_SPX"])
    return payloads, truth, quotes(payloads, truth)


def test_same_seed_and_date_give_the_same_bytes_whatever_ran_before():
    cfg = make_cfg(seed=101)
    synthetic_path.clear_path_cache()
    first, truth = generate_chain("SPY", DAY, cfg, MARKET)
    synthetic_path.clear_path_cache()
    generate_day(shift_trading_days(DAY, 30), cfg, MARKET, symbols=["_SPX", "QQQ"])  # longer path
    later, later_truth = generate_chain("SPY", DAY, cfg, MARKET)
    synthetic_path.clear_path_cache()
    generate_chain("SPY", shift_trading_days(DAY, -7), cfg, MARKET)  # path extended step by step
    stepwise, _ = generate_chain("SPY", DAY, cfg, MARKET)
    assert dumps(first) == dumps(later) == dumps(stepwise)
    pd.testing.assert_frame_equal(truth, later_truth)
    reordered, _ = generate_day(DAY, cfg, MARKET, symbols=["_RUT", "SPY"])
    assert dumps(reordered["SPY"]) == dumps(first)


def test_different_seed_gives_a_different_market():
    a, _ = generate_chain("SPY", DAY, make_cfg(seed=7), MARKET)
    b, _ = generate_chain("SPY", DAY, make_cfg(seed=8), MARKET)
    assert a["data"]["current_price"] != b["data"]["current_price"]
    assert dumps(a) != dumps(b)


def test_dataclass_config_gives_the_same_payload_as_omegaconf():
    node = make_cfg()
    cfg = SyntheticMarketConfig(**{
        **OmegaConf.to_container(node),
        "underlyings": [UnderlyingSpec(**u) for u in OmegaConf.to_container(node.underlyings)],
    })  # fmt: skip
    market = MarketConfig(**OmegaConf.to_container(MARKET))
    assert dumps(generate_chain("_XSP", DAY, cfg, market)[0]) == dumps(
        generate_chain("_XSP", DAY, node, MARKET)[0]
    )


def test_payload_has_exactly_the_cboe_shape(day):
    payloads, _, _ = day
    assert list(payloads) == [u.symbol for u in make_cfg().underlyings]
    for symbol, payload in payloads.items():
        dumps(payload)  # valid JSON: no NaN, only null
        assert set(payload) == TOP_KEYS and payload["symbol"] == symbol
        assert re.fullmatch(r"2024-06-11 16:15:00", payload["timestamp"])
        data = payload["data"]
        assert set(data) == DATA_KEYS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", data["last_trade_time"])
        assert 5.0 < data["iv30"] < 80.0  # percent
        assert (
            data["close"] == data["current_price"] and data["low"] <= data["close"] <= data["high"]
        )
        assert data["symbol"] == ("^" + symbol[1:] if symbol.startswith("_") else symbol)
        for option in data["options"]:
            assert set(option) == OPTION_KEYS
        opts = pd.DataFrame(data["options"])
        for key in ("bid_size", "ask_size", "open_interest", "volume"):
            assert all(type(v) is float for v in opts[key]), key
        assert all(type(v) is float for v in opts["iv"]) and (opts["iv"] < 3).all()  # a fraction
        assert 0.001 < (opts["iv"] == 0.0).mean() < 0.03
        traded = opts["volume"] > 0
        assert opts.loc[traded, "last_trade_time"].str.match(r"2024-06-11T\d\d:\d\d:\d\d$").all()
        assert opts.loc[~traded, "last_trade_time"].isna().all()


def test_payload_parses_and_matches_truth(day):
    payloads, truth, df = day
    assert len(df) == len(truth) == sum(len(p["data"]["options"]) for p in payloads.values())
    assert (df["quote_date"] == pd.Timestamp(DAY)).all()
    assert df["option"].tolist() == truth["option"].tolist()
    for col in ("expiry", "strike", "option_type", "root"):
        assert df[col].tolist() == truth[col].tolist(), col
    assert (df["underlying"] == truth["symbol"]).all() and (df["spot"] == truth["spot"]).all()
    assert (
        truth.groupby("symbol")["row"]
        .apply(lambda r: (r.to_numpy() == np.arange(len(r))).all())
        .all()
    )
    sample = truth.iloc[::7]
    for row in sample.itertuples():
        assert row.option == format_occ_symbol(row.root, row.expiry, row.option_type, row.strike)


def test_chain_size_roots_and_strike_grids(day):
    _, truth, df = day
    sizes = truth.groupby("symbol").size()
    assert sizes.between(1500, 3000).all(), sizes
    assert 15_000 <= len(truth) <= 25_000
    good = df[~df["is_bad"]]
    assert good.groupby("underlying")["expiry"].nunique().between(15, 25).all()
    roots = good.groupby("underlying")["root"].agg(lambda r: set(r))
    assert roots["_SPX"] == {"SPX", "SPXW"} and roots["_NDX"] == {"NDX", "NDXP"}
    assert roots["_RUT"] == {"RUT", "RUTW"} and roots["_XSP"] == {"XSP"} and roots["SPY"] == {"SPY"}
    spx = good[good["underlying"] == "_SPX"]
    monthly = spx["expiry"].map(is_monthly_expiry)
    assert (spx.loc[monthly, "root"] == "SPX").all() and (spx.loc[~monthly, "root"] == "SPXW").all()
    assert (good.loc[good["underlying"] == "SPY", "strike"] % 1 == 0).all()
    assert (spx["strike"] % 5 == 0).all()
    spacing = spx.groupby("expiry")["strike"].agg(lambda s: np.diff(np.unique(s)).min())
    assert spacing.iloc[0] < spacing.iloc[-1]  # wider grids for longer maturities
    assert (
        spx["strike"].min()
        < 0.8 * spx["spot"].iloc[0]
        < 1.2 * spx["spot"].iloc[0]
        < spx["strike"].max()
    )


def test_good_rows_are_clean_and_reproduce_the_truth(day):
    _, _, df = day
    good = df[~df["is_bad"]]
    assert good[["bid", "ask", "bid_size", "ask_size"]].notna().all().all()
    assert (good["bid"] >= 0).all() and (good["bid"] <= good["ask"]).all()
    assert (good["expiry"] > pd.Timestamp(DAY)).all() and (good["ask_size"] > 0).all()
    assert not good["option"].duplicated().any()
    assert (good["ask"] >= good["lower"] - 1e-9).all() and (
        good["bid"] <= good["upper"] + 1e-9
    ).all()
    mid = (good["bid"] + good["ask"]) / 2
    assert (mid >= good["lower"] - 1e-9).all()  # every mid has an implied vol
    assert good["true_price"].between(good["bid"] - 1e-9, good["ask"] + 1e-9).all()
    # the truth is reproducible from the payload's spot, the market config and t = days / 365
    q = good["underlying"].map(
        lambda s: MARKET.dividend_yields.get(s, MARKET.default_dividend_yield)
    )
    t = (good["expiry"] - good["quote_date"]).dt.days / 365
    forward = good["spot"] * np.exp((MARKET.rate - q) * t)
    price = black_price(
        forward,
        good["strike"],
        t,
        np.exp(-MARKET.rate * t),
        good["true_iv"],
        good["option_type"] == "C",
    )
    np.testing.assert_allclose(price, good["true_price"], rtol=1e-9, atol=1e-9)
    # zero bids are legitimate wings, labelled apart from the defects
    zero = good["bid"] == 0
    assert zero.any() and (good.loc[zero, "bad_reason"] == "zero_bid").all()
    assert good.loc[~zero, "bad_reason"].isna().all()
    sd = np.log(good["strike"] / good["forward"]).abs() / (good["true_iv"] * np.sqrt(good["t"]))
    assert sd[zero].min() > 1.5 and (sd[zero] > 2.5).mean() > 0.9  # far wings only
    # spreads: tight near the money, a few percent of price on average
    half = (good["ask"] - good["bid"]) / 2
    assert 0.005 < (half / mid)[~zero].median() < 0.05


def test_put_call_parity_and_greeks(day):
    _, _, df = day
    good = df[~df["is_bad"]]
    pairs = good.pivot_table(
        index=["underlying", "expiry", "strike"], columns="option_type", values="true_price"
    )
    first = good.drop_duplicates(["underlying", "expiry", "strike"]).set_index(
        ["underlying", "expiry", "strike"]
    )
    first = first.loc[pairs.index]
    parity = first["discount"] * (first["forward"] - pairs.index.get_level_values("strike"))
    both = pairs.notna().all(axis=1).to_numpy()
    np.testing.assert_allclose((pairs["C"] - pairs["P"])[both], parity[both], atol=1e-6)
    call = good["option_type"] == "C"
    assert (
        good.loc[call, "delta"].between(0, 1).all()
        and good.loc[~call, "delta"].between(-1, 0).all()
    )
    assert (good["vega"] >= 0).all() and (good["gamma"] >= 0).all()
    near = good["vendor_iv"].notna()
    assert (good.loc[near, "vendor_iv"] - good.loc[near, "true_iv"]).abs().median() < 0.01


def test_bad_row_rate_is_respected(day):
    _, truth, _ = day
    assert 0.015 < truth["is_bad"].mean() < 0.025
    clean_payloads, clean = generate_day(
        DAY, make_cfg(bad_row_rate=0.0), MARKET, symbols=["QQQ", "_NDX"]
    )
    assert not clean["is_bad"].any() and set(clean["bad_reason"].dropna()) == {"zero_bid"}
    df = quotes(clean_payloads, clean)
    assert (df["bid"] <= df["ask"]).all() and not df["option"].duplicated().any()


def test_every_bad_kind_is_present_and_visible_in_the_payload(noisy_day):
    _, truth, df = noisy_day
    bad = df[df["is_bad"]]
    counts = bad["bad_reason"].value_counts()
    assert set(counts.index) == set(BAD_KINDS)
    assert (counts > 0.2 * len(truth) / len(BAD_KINDS) * 0.6).all(), counts
    assert 0.15 < truth["is_bad"].mean() < 0.25
    kind = bad.groupby("bad_reason")
    crossed, neg, nan = (
        kind.get_group("crossed"),
        kind.get_group("negative_price"),
        kind.get_group("nan_price"),
    )
    assert (crossed["bid"] > crossed["ask"]).all()
    assert (neg["bid"] < 0).all()
    assert (nan["bid"].isna() | nan["ask"].isna()).all()
    assert (kind.get_group("expired")["expiry"] < pd.Timestamp(DAY)).all()
    stale = kind.get_group("stale")
    assert ((stale["bid_size"] == 0) & (stale["ask_size"] == 0)).all()
    arb = kind.get_group("arbitrage")
    assert ((arb["ask"] < arb["lower"] - 0.01) | (arb["bid"] > arb["upper"] + 0.01)).all()
    assert (arb["bid"] <= arb["ask"]).all()
    dup = kind.get_group("duplicate")
    originals = df[df["option"].isin(dup["option"]) & ~df["is_bad"]]
    assert len(originals) == len(dup) and originals.index.max() < df.index.max()
    cols = ["option", "bid", "ask", "bid_size", "ask_size"]
    assert originals[cols].to_numpy().tolist() == dup[cols].to_numpy().tolist()  # exact copies
    good = df[~df["is_bad"]]
    assert (good["bid"] <= good["ask"]).all() and (good["bid"] >= 0).all()
    assert not ((good["bid_size"] == 0) & (good["ask_size"] == 0)).any()


def atm_curve(truth: pd.DataFrame, symbol: str) -> pd.Series:
    """True ATM vol per expiry, interpolated in log-moneyness at the forward (calls)."""
    calls = truth[(truth["symbol"] == symbol) & ~truth["is_bad"] & (truth["option_type"] == "C")]
    calls = calls.assign(k=np.log(calls["strike"] / calls["forward"])).sort_values("k")
    return calls.groupby("expiry").apply(
        lambda s: np.interp(0.0, s["k"], s["true_iv"]), include_groups=False
    )


def test_index_smiles_skew_down(day):
    _, truth, _ = day
    for symbol in ("_SPX", "_NDX", "_RUT", "_XSP", "SPY"):
        rows = truth[(truth["symbol"] == symbol) & ~truth["is_bad"]]
        month = rows.loc[(rows["t"] - 30 / 365).abs().idxmin(), "expiry"]
        s = rows[rows["expiry"] == month]
        k = np.log(s["strike"] / s["forward"])
        near = k.abs() < 0.08
        slope = np.polyfit(k[near], s.loc[near, "true_iv"], 1)[0]
        assert slope < -0.2, (symbol, slope)
        put_wing = s.loc[(k + 0.08).abs().idxmin(), "true_iv"]
        assert put_wing > s.loc[k.abs().idxmin(), "true_iv"] + 0.01


def test_term_structure_upward_when_calm_and_inverted_after_a_shock():
    cfg = make_cfg(shock_dates=[SHOCK.isoformat()], vol_of_vol=0.3, bad_row_rate=0.0)
    before = shift_trading_days(SHOCK, -1)
    for symbol in ("_SPX", "SPY"):
        calm = atm_curve(generate_chain(symbol, before, cfg, MARKET)[1], symbol)
        assert (calm.diff().dropna() > -0.002).all() and calm.iloc[-1] > calm.iloc[0] + 0.01
        shocked_payload, shocked = generate_chain(symbol, SHOCK, cfg, MARKET)
        assert shocked_payload["data"]["price_change_percent"] < -2.0
        assert shocked_payload["data"]["iv30_change"] > 5.0  # vol points
        for day in (SHOCK, shift_trading_days(SHOCK, 1)):
            curve = atm_curve(generate_chain(symbol, day, cfg, MARKET)[1], symbol)
            assert (curve.diff().dropna() < 0.002).all() and curve.iloc[0] > 1.5 * calm.iloc[0]
            assert curve.iloc[0] > curve.iloc[-1] + 0.05
    path = spot_path("_SPX", cfg, shift_trading_days(SHOCK, 60)).set_index("date")
    var = path["variance"]
    assert var[pd.Timestamp(SHOCK)] > 2.5 * var[pd.Timestamp(before)]
    assert var.iloc[-1] < 0.5 * var[pd.Timestamp(SHOCK)]  # mean-reverts within weeks


def test_leverage_and_realised_vol_drive_implied_vol():
    cfg = make_cfg()
    end = shift_trading_days(cfg.origin, 250)
    path = spot_path("_SPX", cfg, end)
    assert len(path) == 251 and path["date"].iloc[-1] == pd.Timestamp(end)
    atm = path["iv30"].to_numpy()
    returns = np.diff(np.log(path["spot"].to_numpy()))
    assert np.corrcoef(returns, np.diff(atm))[0, 1] < -0.3
    realised = pd.Series(returns).rolling(20).std().to_numpy() * np.sqrt(252)
    ok = ~np.isnan(realised)
    assert np.corrcoef(realised[ok], atm[1:][ok])[0, 1] > 0.6
    assert 0.0 < np.mean(atm[1:][ok] - realised[ok]) < 0.08  # implied carries a premium
    assert 0.10 < returns.std() * np.sqrt(252) < 0.25
    payload, _ = generate_chain("_SPX", end, cfg, MARKET)  # the chains quote this same path
    assert payload["data"]["iv30"] == pytest.approx(100 * atm[-1], abs=1e-3)
    assert payload["data"]["current_price"] == round(path["spot"].iloc[-1], 2)


def test_volume_and_open_interest_are_heavy_tailed_and_concentrated(day):
    _, _, df = day
    good = df[~df["is_bad"] & (df["underlying"] == "_SPX")]
    k = np.log(good["strike"] / good["forward"]).abs()
    vol = good["volume"]
    assert vol.max() > 20 * vol.mean() and (vol == 0).any()
    assert vol[k < 0.03].mean() > 5 * vol[k > 0.2].mean()
    assert vol[good["t"] < 30 / 365].mean() > 2 * vol[good["t"] > 1].mean()
    near = good[k < 0.05]
    round_strike = (near["strike"] % 100) == 0
    assert near.loc[round_strike, "volume"].mean() > near.loc[~round_strike, "volume"].mean()
    assert (good["open_interest"] >= 0).all() and good["open_interest"].mean() > vol.mean()


def test_next_day_extends_the_cached_path_by_one_step(monkeypatch):
    cfg = make_cfg(seed=202)
    generate_day(DAY, cfg, MARKET, symbols=["SPY", "_SPX"])
    calls = []
    original = synthetic_path._append_day
    monkeypatch.setattr(
        synthetic_path, "_append_day", lambda *a: calls.append(a[0].symbol) or original(*a)
    )
    generate_day(shift_trading_days(DAY, 1), cfg, MARKET, symbols=["SPY", "_SPX"])
    assert sorted(calls) == ["SPY", "_SPX"]


def test_rejects_unknown_symbols_and_closed_or_early_dates():
    cfg = make_cfg()
    first, _ = generate_chain("SPY", "2024-01-02", cfg, MARKET)  # the origin itself is fine
    assert first["data"]["current_price"] == 470.0 and first["data"]["price_change"] == 0.0
    with pytest.raises(ValueError, match="NOPE"):
        generate_chain("NOPE", DAY, cfg, MARKET)
    with pytest.raises(ValueError, match="NOPE"):
        generate_day(DAY, cfg, MARKET, symbols=["SPY", "NOPE"])
    with pytest.raises(ValueError, match="not a trading day"):
        generate_chain("SPY", "2024-06-15", cfg, MARKET)
    with pytest.raises(ValueError, match="origin"):
        generate_chain("SPY", "2023-12-29", cfg, MARKET)
