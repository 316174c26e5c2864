"""Vectorised implied-vol solver: round trips, reference solver, reason codes, shapes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy.optimize import brentq

from pipeline.quant import implied_vol as iv_mod
from pipeline.quant.black_scholes import black_price, black_vega
from pipeline.quant.implied_vol import REASONS, IVResult, implied_vol

TOL = 1e-9  # |d sigma| required wherever vega is not negligible
MIN_REL_VEGA = 1e-6  # vega / (D max(F, K)) below this: sigma is not determined by a float64 price


def _contracts(n, seed, t_range=(1e-4, 3.0), vol_range=(0.02, 2.5), z_max=6.0):
    """Random contracts; log-moneyness ln(K/F) = z sigma sqrt(t) with |z| up to z_max sd."""
    rng = np.random.default_rng(seed)
    forward = 100.0 * np.exp(rng.normal(0.0, 0.5, n))
    t = np.exp(rng.uniform(*np.log(t_range), n))
    sigma = rng.uniform(*vol_range, n)
    z = rng.uniform(-z_max, z_max, n)
    strike = forward * np.exp(z * sigma * np.sqrt(t))
    discount = np.exp(-rng.uniform(-0.01, 0.08, n) * t)
    is_call = rng.random(n) < 0.5
    price = black_price(forward, strike, t, discount, sigma, is_call)
    rel_vega = black_vega(forward, strike, t, discount, sigma) / (
        discount * np.maximum(forward, strike)
    )
    return (
        dict(price=price, forward=forward, strike=strike, t=t, discount=discount, is_call=is_call),
        sigma,
        rel_vega,
    )


def _solve(c):
    return implied_vol(c["price"], c["forward"], c["strike"], c["t"], c["discount"], c["is_call"])


@pytest.mark.parametrize(
    "label, kwargs",
    [
        ("mixed", dict()),
        ("tiny_t", dict(t_range=(1e-4, 1e-2))),
        ("long_t", dict(t_range=(1.0, 3.0))),
        ("deep_wings", dict(z_max=12.0)),
        ("low_vol", dict(vol_range=(0.01, 0.05))),
        ("high_vol", dict(vol_range=(1.5, 3.0))),
    ],
)
def test_round_trip_accuracy(label, kwargs):
    c, sigma, rel_vega = _contracts(60_000, seed=zlib.crc32(label.encode()), **kwargs)
    res = _solve(c)
    priced = rel_vega > MIN_REL_VEGA
    assert priced.mean() > 0.3, "the sample should mostly be solvable"
    assert np.all(res.reason[priced] == "ok")
    err = np.abs(res.iv[priced] - sigma[priced])
    assert err.max() <= TOL, f"{label}: max |d sigma| {err.max():.3g}"
    # everything reported "ok" reprices the input (backward error at rounding level)
    ok = res.reason == "ok"
    assert np.all(np.isfinite(res.iv[ok])) and np.all(res.iv[ok] > 0)
    repriced = black_price(c["forward"], c["strike"], c["t"], c["discount"], res.iv, c["is_call"])
    scale = c["discount"] * np.maximum(c["forward"], c["strike"])
    assert np.all(np.abs(repriced - c["price"])[ok] <= 1e-13 * scale[ok])
    # what is not "ok" is a price with no time value left (deep ITM, or tiny wings underflowing)
    # (or a deep in-the-money call whose price rounds to the bound D F)
    assert set(np.unique(res.reason[~ok])) <= {
        "below_intrinsic",
        "non_positive_price",
        "above_upper_bound",
    }


def test_agrees_with_brentq_reference():
    c, sigma, rel_vega = _contracts(20_000, seed=2024)
    pick = np.flatnonzero(rel_vega > MIN_REL_VEGA)[:300]
    res = _solve({k: v[pick] for k, v in c.items()})
    ref = np.empty(pick.size)
    for j, i in enumerate(pick):
        args = (c["forward"][i], c["strike"][i], c["t"][i], c["discount"][i])

        def objective(s, i=i, args=args):
            return black_price(*args, s, c["is_call"][i]) - c["price"][i]

        ref[j] = brentq(
            objective, 1e-4, 10.0, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500
        )
    assert np.all(res.reason == "ok")
    np.testing.assert_allclose(res.iv, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(res.iv, sigma[pick], rtol=0, atol=TOL)


def test_calls_and_puts_agree_through_parity():
    c, sigma, rel_vega = _contracts(50_000, seed=5)
    f, k, d = c["forward"], c["strike"], c["discount"]
    call = black_price(f, k, c["t"], d, sigma, True)
    put = call - d * (f - k)  # parity, not the put formula
    iv_call = implied_vol(call, f, k, c["t"], d, True)
    iv_put = implied_vol(put, f, k, c["t"], d, False)
    priced = rel_vega > MIN_REL_VEGA
    assert np.all(iv_call.reason[priced] == "ok") and np.all(iv_put.reason[priced] == "ok")
    np.testing.assert_allclose(iv_put.iv[priced], iv_call.iv[priced], rtol=0, atol=2 * TOL)


def test_textbook_example():
    # Hull: S=100, K=100, T=1, r=5%, sigma=20% -> call 10.4506, put 5.5735 (4 decimals).
    f, d = 100.0 * np.exp(0.05), np.exp(-0.05)
    res = implied_vol([10.4506, 5.5735], f, 100.0, 1.0, d, [True, False])
    np.testing.assert_allclose(res.iv, 0.2, atol=5e-6)


@pytest.mark.parametrize(
    "price, forward, strike, t, discount, is_call, reason",
    [
        (17.0, 120.0, 100.0, 1.0, 0.9, True, "below_intrinsic"),  # intrinsic 0.9 * 20 = 18
        (18.0, 120.0, 100.0, 1.0, 0.9, True, "below_intrinsic"),  # exactly at intrinsic
        (26.9, 80.0, 110.0, 1.0, 0.9, False, "below_intrinsic"),  # put intrinsic 27
        (108.0, 120.0, 100.0, 1.0, 0.9, True, "above_upper_bound"),  # = D F
        (150.0, 120.0, 100.0, 1.0, 0.9, True, "above_upper_bound"),
        (90.0, 120.0, 100.0, 1.0, 0.9, False, "above_upper_bound"),  # = D K
        (95.0, 120.0, 100.0, 1.0, 0.9, False, "above_upper_bound"),
        (0.0, 100.0, 100.0, 1.0, 0.9, True, "non_positive_price"),
        (-1.0, 100.0, 100.0, 1.0, 0.9, False, "non_positive_price"),
        (5.0, 100.0, 100.0, 0.0, 0.9, True, "bad_input"),  # t = 0
        (5.0, 100.0, 100.0, -0.5, 0.9, True, "bad_input"),
        (5.0, 100.0, -100.0, 1.0, 0.9, True, "bad_input"),  # strike < 0
        (5.0, 100.0, 0.0, 1.0, 0.9, True, "bad_input"),
        (5.0, 0.0, 100.0, 1.0, 0.9, True, "bad_input"),
        (5.0, -3.0, 100.0, 1.0, 0.9, True, "bad_input"),
        (5.0, 100.0, 100.0, 1.0, 0.0, True, "bad_input"),  # discount <= 0
        (np.nan, 100.0, 100.0, 1.0, 0.9, True, "bad_input"),
        (5.0, np.nan, 100.0, 1.0, 0.9, True, "bad_input"),
        (5.0, 100.0, np.inf, 1.0, 0.9, True, "bad_input"),
        (5.0, 100.0, 100.0, np.nan, 0.9, True, "bad_input"),
        (5.0, 100.0, 100.0, 1.0, np.nan, True, "bad_input"),
        (np.inf, 100.0, 100.0, 1.0, 0.9, True, "bad_input"),
    ],
)
def test_reason_codes(price, forward, strike, t, discount, is_call, reason):
    res = implied_vol(price, forward, strike, t, discount, is_call)
    assert res.reason == reason
    assert np.isnan(res.iv)


def test_reason_codes_in_a_mixed_batch_leave_valid_contracts_alone():
    price = np.array([10.0, 0.0, 200.0, 10.0, 10.0, 5.0])
    strike = np.array([100.0, 100.0, 100.0, -1.0, 100.0, 80.0])
    t = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    res = implied_vol(price, 100.0, strike, t, 1.0, np.array([True, True, True, True, True, False]))
    expected = ["ok", "non_positive_price", "above_upper_bound", "bad_input", "bad_input", "ok"]
    assert res.reason.tolist() == expected
    assert np.isnan(res.iv).tolist() == [r != "ok" for r in expected]
    back = black_price(100.0, strike[[0, 5]], 1.0, 1.0, res.iv[[0, 5]], np.array([True, False]))
    np.testing.assert_allclose(back, price[[0, 5]], rtol=1e-13)


def test_just_above_intrinsic_and_just_below_the_bound_still_solve():
    # large but finite vol: price close to (but clearly below) the upper bound D F
    f, k, t, d = 100.0, 100.0, 1.0, 0.95
    price = black_price(f, k, t, d, 6.0, True)
    res = implied_vol(price, f, k, t, d, True)
    assert res.reason == "ok" and abs(res.iv - 6.0) < 1e-6  # price is within 3e-3 of D F
    # in-the-money calls with little time value: 4e-6 and 2.5e-12 of the price
    price = black_price(110.0, 100.0, 0.01, d, np.array([0.25, 0.15]), True)
    res = implied_vol(price, 110.0, 100.0, 0.01, d, True)
    assert res.reason.tolist() == ["ok", "ok"]
    assert abs(res.iv[0] - 0.25) <= TOL
    assert abs(res.iv[1] - 0.15) <= 1e-5  # rel. vega 7e-11: sigma only as good as the price


def test_no_convergence_is_reported(monkeypatch):
    monkeypatch.setattr(iv_mod, "_MAX_ITER", 0)
    res = implied_vol([10.0, 0.0], 100.0, 100.0, 1.0, 1.0, True)
    assert res.reason.tolist() == ["no_convergence", "non_positive_price"]
    assert np.isnan(res.iv).all()


def test_bracketed_fallback_recovers_from_bad_guesses(monkeypatch):
    """With absurd initial guesses the bracket + bisection must still find the root."""
    c, sigma, rel_vega = _contracts(5_000, seed=9)
    monkeypatch.setattr(iv_mod, "_lower_guess", lambda x, *_: np.full_like(x, 1e-12))
    monkeypatch.setattr(iv_mod, "_upper_guess", lambda x, *_: np.full_like(x, 1e6))
    res = _solve(c)
    priced = rel_vega > MIN_REL_VEGA
    assert np.all(res.reason[priced] == "ok")
    assert np.abs(res.iv[priced] - sigma[priced]).max() <= TOL


def test_scalar_inputs_broadcast_and_shapes_are_preserved():
    strikes = np.linspace(70.0, 140.0, 12).reshape(3, 4)
    sigma = np.linspace(0.1, 0.9, 4)  # broadcast along the last axis
    is_call = np.array([[True], [False], [True]])  # and along the first
    price = black_price(100.0, strikes, 0.5, 0.98, sigma, is_call)
    res = implied_vol(price, 100.0, strikes, 0.5, 0.98, is_call)
    assert isinstance(res, IVResult)
    assert res.iv.shape == (3, 4) and res.reason.shape == (3, 4)
    assert res.iv.dtype == np.float64 and res.reason.dtype == object
    np.testing.assert_allclose(res.iv, np.broadcast_to(sigma, (3, 4)), atol=TOL)

    scalar = implied_vol(float(price[0, 0]), 100.0, 70.0, 0.5, 0.98, True)
    assert scalar.iv.shape == () and scalar.reason.shape == ()
    assert scalar.iv == pytest.approx(0.1, abs=TOL) and scalar.reason == "ok"

    empty = implied_vol(np.array([]), 100.0, 100.0, 1.0, 1.0, True)
    assert empty.iv.shape == (0,) and empty.reason.shape == (0,)


def test_reasons_tuple_is_the_public_contract():
    assert REASONS == (
        "ok",
        "bad_input",
        "non_positive_price",
        "below_intrinsic",
        "above_upper_bound",
        "no_convergence",
    )


def test_large_batch_spans_several_blocks():
    n = 3 * iv_mod._BLOCK + 17
    c, sigma, rel_vega = _contracts(n, seed=77, z_max=3.0)
    res = _solve(c)
    priced = rel_vega > MIN_REL_VEGA
    assert res.iv.shape == (n,)
    assert np.abs(res.iv[priced] - sigma[priced]).max() <= TOL
