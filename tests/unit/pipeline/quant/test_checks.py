"""No-arbitrage checks: clean Black prices pass; each injected breach is caught with the right share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.quant.black_scholes import black_price
from pipeline.quant.checks import (
    bounds_violations,
    infer_ticks,
    parity_residuals,
    run_checks,
    strike_shape_violations,
)

DAY = pd.Timestamp("2026-03-02")
EXPIRIES = (pd.Timestamp("2026-03-20"), pd.Timestamp("2026-06-19"))
STRIKES = np.arange(500.0, 701.0, 10.0)  # 21 strikes


def chain(smile: bool = False, spot: float = 600.0, spread: float = 0.02) -> pd.DataFrame:
    """Calls and puts on every strike of two expiries, priced with Black; r=4%, q=1%."""
    rows = []
    for expiry in EXPIRIES:
        t = (expiry - DAY).days / 365
        fwd, disc = spot * np.exp(0.03 * t), np.exp(-0.04 * t)
        for is_call in (True, False):
            x = np.log(STRIKES / fwd) / np.sqrt(t)
            vol = 0.2 - 0.03 * x + 0.01 * x**2 if smile else np.full_like(STRIKES, 0.2)
            price = black_price(fwd, STRIKES, t, disc, vol, is_call)
            rows.append(
                pd.DataFrame(
                    {
                        "quote_date": DAY,
                        "underlying": "SPY",
                        "expiry": expiry,
                        "strike": STRIKES,
                        "is_call": int(is_call),
                        "option_type": "C" if is_call else "P",
                        "forward": fwd,
                        "discount": disc,
                        "t_years": t,
                        "price": price,
                        "bid": np.maximum(np.round(price - spread / 2, 2), 0.0),
                        "ask": np.round(price + spread / 2, 2),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def _row(df, expiry, strike, is_call) -> int:
    hit = df.index[
        (df["expiry"] == expiry) & (df["strike"] == strike) & (df["is_call"] == int(is_call))
    ]
    assert len(hit) == 1
    return int(hit[0])


@pytest.mark.parametrize("smile", [False, True])
def test_black_prices_pass_every_check(smile):
    df = chain(smile)
    results = run_checks(df, df["price"])
    n_exp, n_k = len(EXPIRIES), len(STRIKES)
    assert results["parity"].checked == n_exp * n_k
    assert results["monotonic"].checked == 2 * n_exp * (n_k - 1)
    assert results["convexity"].checked == 2 * n_exp * (n_k - 2)
    assert results["bounds"].checked == len(df)
    for name, check in results.items():
        assert check.violations == 0 and check.share == 0.0, (name, check.details.head())
    assert results["parity"].stats["max_abs_residual"] < 1e-9


def test_parity_break_is_caught_with_its_share():
    df = chain()
    prices = df["price"].to_numpy().copy()
    i = _row(df, EXPIRIES[0], 600.0, True)
    prices[i] += 0.5
    check = parity_residuals(df, prices)
    assert check.violations == 1
    assert check.share == pytest.approx(1 / (len(EXPIRIES) * len(STRIKES)))
    assert check.details["residual"].iloc[0] == pytest.approx(0.5, abs=1e-9)
    assert check.details["strike"].iloc[0] == 600.0


def test_parity_within_a_tick_is_not_a_breach():
    df = chain()
    prices = df["price"].to_numpy() + np.where(df["is_call"] == 1, 0.004, 0.0)  # 0.4 cent
    assert parity_residuals(df, prices).violations == 0
    assert parity_residuals(df, prices, tick=0.001).violations == len(EXPIRIES) * len(STRIKES)


def test_non_monotone_call_is_caught():
    df = chain()
    prices = df["price"].to_numpy().copy()
    lo, hi = _row(df, EXPIRIES[1], 600.0, True), _row(df, EXPIRIES[1], 610.0, True)
    prices[hi] = prices[lo] + 0.5  # a higher strike call worth more than the lower one
    shape = strike_shape_violations(df, prices)
    assert shape["monotonic"].violations == 1
    assert shape["monotonic"].share == pytest.approx(1 / shape["monotonic"].checked)
    bad = shape["monotonic"].details.iloc[0]
    assert (bad["k_prev"], bad["strike"]) == (600.0, 610.0)
    assert bad["excess"] == pytest.approx(0.5)


def test_non_monotone_put_is_caught():
    df = chain()
    prices = df["price"].to_numpy().copy()
    lo, hi = _row(df, EXPIRIES[0], 550.0, False), _row(df, EXPIRIES[0], 560.0, False)
    prices[lo] = prices[hi] + 0.3  # a lower strike put worth more than the higher one
    assert strike_shape_violations(df, prices)["monotonic"].violations == 1


def test_non_convex_put_is_caught_while_still_monotone():
    df = chain()
    prices = df["price"].to_numpy().copy()
    i_prev, i, i_next = (_row(df, EXPIRIES[1], k, False) for k in (590.0, 600.0, 610.0))
    butterfly = 0.5 * (prices[i_prev] + prices[i_next]) - prices[i]  # > 0 for convex prices
    bump = butterfly + 0.5
    assert prices[i] + bump < prices[i_next]  # the bump keeps puts increasing in strike
    prices[i] += bump
    shape = strike_shape_violations(df, prices)
    assert shape["monotonic"].violations == 0
    assert shape["convexity"].violations == 1
    assert shape["convexity"].share == pytest.approx(1 / (2 * len(EXPIRIES) * (len(STRIKES) - 2)))
    assert shape["convexity"].details["excess"].iloc[0] == pytest.approx(0.5)


def test_out_of_bounds_and_missing_prices_are_caught():
    df = chain()
    prices = df["price"].to_numpy().copy()
    call = _row(df, EXPIRIES[0], 500.0, True)
    put = _row(df, EXPIRIES[0], 700.0, False)
    prices[call] = df.loc[call, "discount"] * df.loc[call, "forward"] + 1.0  # above D·F
    prices[put] = (
        df.loc[put, "discount"] * (700.0 - df.loc[put, "forward"]) - 1.0
    )  # below intrinsic
    prices[_row(df, EXPIRIES[1], 600.0, True)] = np.nan
    check = bounds_violations(df, prices)
    assert check.violations == 3 and check.share == pytest.approx(3 / len(df))
    assert check.stats["non_finite"] == 1


def test_tick_is_inferred_per_underlying_from_spreads():
    spy = chain(spread=0.02)
    spx = chain(spread=0.20).assign(underlying="SPX")
    spx["ask"] = spx["bid"] + np.where(spx["price"] < 3, 0.05, 0.10)
    ticks = infer_ticks(pd.concat([spy, spx], ignore_index=True))
    assert set(ticks[: len(spy)]) == {0.01}
    assert set(ticks[len(spy) :]) == {0.05}


def test_prices_must_align_with_the_frame():
    df = chain()
    with pytest.raises(ValueError, match="prices for"):
        run_checks(df, df["price"].to_numpy()[:-1])


def test_breaches_inside_the_quoted_spread_are_reported_apart():
    df = chain(spread=0.20)
    prices = df["price"].to_numpy().copy()
    i = _row(df, EXPIRIES[0], 600.0, True)
    prices[i] += 0.05  # beyond a 1-cent tick, inside the 10-cent half-spread
    check = parity_residuals(df, prices, tick=0.01)
    assert check.violations == 1 and check.stats["share_beyond_spread"] == 0.0
    prices[i] += 0.5
    assert parity_residuals(df, prices, tick=0.01).stats["share_beyond_spread"] > 0
