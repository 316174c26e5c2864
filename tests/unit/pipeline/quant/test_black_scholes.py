"""Black / Black-Scholes-Merton pricing: literature values, parity, greeks and no-arbitrage."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.quant.black_scholes import (
    black_price,
    black_vega,
    bsm_price,
    bsm_vega,
    forward_price,
)


def _random_contracts(n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    forward = 100.0 * np.exp(rng.normal(0.0, 0.3, n))
    t = np.exp(rng.uniform(np.log(1e-3), np.log(3.0), n))
    sigma = rng.uniform(0.05, 1.5, n)
    strike = forward * np.exp(rng.normal(0.0, 1.5, n) * sigma * np.sqrt(t))
    discount = np.exp(-rng.uniform(-0.01, 0.08, n) * t)
    return forward, strike, t, discount, sigma


def test_textbook_values():
    # Hull: S=100, K=100, T=1, r=5%, q=0, sigma=20%.
    assert bsm_price(100.0, 100.0, 1.0, 0.05, 0.0, 0.2, True) == pytest.approx(10.4506, abs=5e-5)
    assert bsm_price(100.0, 100.0, 1.0, 0.05, 0.0, 0.2, False) == pytest.approx(5.5735, abs=5e-5)
    # Hull example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5 -> c=4.76, p=0.81.
    assert bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.2, True) == pytest.approx(4.7594, abs=5e-4)
    assert bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.2, False) == pytest.approx(0.8086, abs=5e-4)


def test_dividend_yield_enters_through_the_forward():
    assert forward_price(100.0, 2.0, 0.05, 0.02) == pytest.approx(100.0 * np.exp(0.06))
    with_q = bsm_price(100.0, 95.0, 0.75, 0.04, 0.03, 0.25, True)
    fwd = forward_price(100.0, 0.75, 0.04, 0.03)
    assert with_q == pytest.approx(black_price(fwd, 95.0, 0.75, np.exp(-0.03), 0.25, True))
    assert with_q < bsm_price(100.0, 95.0, 0.75, 0.04, 0.0, 0.25, True)


def test_put_call_parity():
    f, k, t, d, s = _random_contracts(5000)
    call = black_price(f, k, t, d, s, True)
    put = black_price(f, k, t, d, s, False)
    np.testing.assert_allclose(
        call - put, d * (f - k), rtol=0, atol=1e-12 * np.max(d * np.maximum(f, k))
    )


def test_vega_matches_central_difference():
    f, k, t, d, s = _random_contracts(2000, seed=3)
    h = 1e-5
    fd = (black_price(f, k, t, d, s + h, True) - black_price(f, k, t, d, s - h, True)) / (2 * h)
    vega = black_vega(f, k, t, d, s)
    np.testing.assert_allclose(vega, fd, rtol=1e-5, atol=1e-7)
    # same vega for puts, and for the spot-based wrapper
    fd_put = (black_price(f, k, t, d, s + h, False) - black_price(f, k, t, d, s - h, False)) / (
        2 * h
    )
    np.testing.assert_allclose(vega, fd_put, rtol=1e-5, atol=1e-7)
    assert bsm_vega(100.0, 100.0, 1.0, 0.05, 0.0, 0.2) == pytest.approx(37.524, abs=1e-3)


def test_monotone_and_convex_in_strike():
    strikes = np.linspace(40.0, 250.0, 400)
    for t, sigma in [(0.01, 0.1), (0.5, 0.3), (3.0, 1.2)]:
        call = black_price(100.0, strikes, t, 0.97, sigma, True)
        put = black_price(100.0, strikes, t, 0.97, sigma, False)
        assert np.all(np.diff(call) < 1e-12)  # calls fall with the strike
        assert np.all(np.diff(put) > -1e-12)  # puts rise with it
        tol = 1e-10
        assert np.all(np.diff(call, 2) > -tol) and np.all(np.diff(put, 2) > -tol)  # convex
        # and the strike derivative of a call lies in [-D, 0] (digital price)
        slope = np.diff(call) / np.diff(strikes)
        assert np.all(slope >= -0.97 - 1e-9) and np.all(slope <= 1e-12)


def test_increasing_in_vol():
    sigmas = np.linspace(0.01, 3.0, 300)
    for k in (50.0, 100.0, 180.0):
        for is_call in (True, False):
            price = black_price(100.0, k, 0.8, 0.95, sigmas, is_call)
            step = np.diff(price)
            # flat (up to rounding) only where the time value is below an ulp of the price
            assert np.all(step >= -4 * np.finfo(float).eps * price[1:])
            assert np.all(step[sigmas[1:] > 0.2] > 0)


def test_no_arbitrage_bounds():
    f, k, t, d, s = _random_contracts(20000, seed=11)
    call = black_price(f, k, t, d, s, True)
    put = black_price(f, k, t, d, s, False)
    tol = 1e-12 * d * np.maximum(f, k)
    assert np.all(call >= d * np.maximum(f - k, 0.0) - tol)
    assert np.all(call <= d * f + tol)
    assert np.all(put >= d * np.maximum(k - f, 0.0) - tol)
    assert np.all(put <= d * k + tol)


def test_zero_vol_or_expiry_gives_discounted_intrinsic():
    f = np.array([120.0, 80.0, 100.0])
    k = np.array([100.0, 100.0, 100.0])
    np.testing.assert_allclose(black_price(f, k, 1.0, 0.9, 0.0, True), [18.0, 0.0, 0.0])
    np.testing.assert_allclose(black_price(f, k, 0.0, 0.9, 0.3, False), [0.0, 18.0, 0.0])
    np.testing.assert_array_equal(black_vega(f, k, 0.0, 0.9, 0.3), 0.0)


def test_broadcasting_shapes():
    strikes = np.linspace(80, 120, 12).reshape(3, 4)
    price = black_price(100.0, strikes, 0.5, 0.99, 0.2, np.array([True, False, True, False]))
    assert price.shape == (3, 4)
    assert black_vega(100.0, strikes, 0.5, 0.99, 0.2).shape == (3, 4)
