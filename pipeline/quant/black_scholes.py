"""Black-Scholes-Merton on forwards, vectorised over NumPy arrays.

Everything is written in forward terms: price = D * Black(F, K, sigma, T), with D = exp(-rT) and
F = S exp((r - q) T). Inputs broadcast; `is_call` is a boolean array (True = call).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

SQRT_2PI = np.sqrt(2.0 * np.pi)


def forward_price(spot, t, rate, dividend_yield):
    """Forward of the underlying for maturity `t` years under continuous r and q."""
    return np.asarray(spot, float) * np.exp(
        (np.asarray(rate, float) - dividend_yield) * np.asarray(t, float)
    )


def black_price(forward, strike, t, discount, sigma, is_call):
    """Discounted Black price. sigma <= 0 or t <= 0 gives the discounted intrinsic value."""
    f, k, t, d, s = (np.asarray(x, float) for x in (forward, strike, t, discount, sigma))
    is_call = np.asarray(is_call, bool)
    sd = s * np.sqrt(np.maximum(t, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.log(f / k) / sd + 0.5 * sd
    d2 = d1 - sd
    call = f * ndtr(d1) - k * ndtr(d2)
    put = k * ndtr(-d2) - f * ndtr(-d1)
    price = np.where(is_call, call, put)
    intrinsic = np.where(is_call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    return d * np.where(sd > 0, price, intrinsic)


def black_vega(forward, strike, t, discount, sigma):
    """dPrice/dSigma of the discounted Black price (same for calls and puts)."""
    f, k, t, d, s = (np.asarray(x, float) for x in (forward, strike, t, discount, sigma))
    sqrt_t = np.sqrt(np.maximum(t, 0.0))
    sd = s * sqrt_t
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.log(f / k) / sd + 0.5 * sd
        vega = d * f * np.exp(-0.5 * d1 * d1) / SQRT_2PI * sqrt_t
    return np.where(sd > 0, vega, 0.0)


def bsm_price(spot, strike, t, rate, dividend_yield, sigma, is_call):
    """Black-Scholes-Merton price from spot, continuous rate and dividend yield."""
    t = np.asarray(t, float)
    discount = np.exp(-np.asarray(rate, float) * t)
    return black_price(
        forward_price(spot, t, rate, dividend_yield), strike, t, discount, sigma, is_call
    )


def bsm_vega(spot, strike, t, rate, dividend_yield, sigma):
    t = np.asarray(t, float)
    discount = np.exp(-np.asarray(rate, float) * t)
    return black_vega(forward_price(spot, t, rate, dividend_yield), strike, t, discount, sigma)
