"""Quote rules of the `sabr_jumps` family: a single-stock-like chain, unlike the default's.

`build_jump_chain(market, stale_spots, rng, grid_key)` returns the same columns as
`synthetic_quotes.build_chain` (so bad rows, the payload and the truth work unchanged) plus
`stale_itm` (bool; internal, never in the payload or the truth). Differences from the default
family's rules:

- **Fixed-dollar strike grids, uneven wings.** The increment comes from a dollar ladder
  (DOLLAR_LADDER) by spot band (`listing_rung`), one rung coarser beyond 10 weeks and two beyond
  a year; within an expiry it is that rung near the money (|ln K/F| ≤ INNER_ZONE × half-width),
  one rung coarser in the middle zone (≤ MIDDLE_ZONE) and two in the wings, so spacing jumps at
  the zone edges. Puts reach F·e^{−w}, calls only F·e^{+CALL_WING·w} (w = strike_std_devs σ√T).
- **Missing strikes.** A share MISSING_STRIKE_SHARE of strikes (never the ATM_KEEP nearest the
  forward) is not listed; which ones is a hash of (grid_key, expiry, strike), so a strike missing
  today is missing every day.
- **Noisier mids, wider ITM spreads.** mid = true price + half-spread × clip(0.7 N(0,1), ±0.95)
  (the default: 0.3, ±0.6); the vol-space half-spread widens by ITM_SPREAD_LOAD per ITM standard
  deviation and ITM_REL_SPREAD of the intrinsic value is added in price.
- **Stale ITM quotes.** A share STALE_ITM_SHARE of deep ITM contracts (more than STALE_ITM_DEPTH
  ATM standard deviations in the money) is quoted off the close 1–len(stale_spots) trading days
  earlier (the contract's true vol, the old forward). Nobody offers below intrinsic, so the ask
  is floored at today's discounted intrinsic value; when the stale price is below intrinsic the
  mid is too and has no implied vol (such mids drop out on real chains), otherwise the stale
  price errs either way and the surviving mid IVs are biased high, as on real chains.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from pipeline.market.synthetic_path import stable_hash
from pipeline.market.synthetic_quotes import (
    HALF_SPREAD_REL,
    HALF_SPREAD_VOL,
    DayMarket,
    contract_grid,
    finish_chain,
    price_contracts,
    quote_from_mid,
    stress_level,
    tick_size,
    to_tick,
)
from pipeline.quant.black_scholes import black_price, black_vega

DOLLAR_LADDER = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0)
SPOT_BANDS = (25.0, 150.0, 500.0, 1500.0)  # spot below band j lists on rung j near the money
INNER_ZONE, MIDDLE_ZONE = 0.3, 0.65  # zone edges, as shares of the half-width
CALL_WING = 0.6  # calls stop at this share of the put wing's reach
MAX_INNER_STRIKES = 40  # coarser rungs until the inner zone lists at most this many
MISSING_STRIKE_SHARE = 0.05
ATM_KEEP = 4  # strikes nearest the forward are always listed
MID_NOISE, MID_NOISE_CLIP = 0.7, 0.95  # mid noise in half-spreads (default family: 0.3, 0.6)
ITM_SPREAD_LOAD = 0.5  # vol half-spread × (1 + this × ITM standard deviations, capped at 4)
ITM_REL_SPREAD = 0.004  # plus this share of the intrinsic value in price
STALE_ITM_DEPTH = 1.0  # ATM standard deviations in the money
STALE_ITM_SHARE = 0.35


def listing_rung(spot: float, t: float) -> int:
    """Ladder rung near the money: by spot band, +1 beyond 10 weeks, +2 beyond a year."""
    rung = sum(spot >= band for band in SPOT_BANDS)
    return rung + (t > 70 / 365) + (t > 1.0)


def _multiples(lo: float, hi: float, inc: float) -> np.ndarray:
    return np.arange(math.ceil(lo / inc - 1e-9), math.floor(hi / inc + 1e-9) + 1) * inc


def strike_hash(key: int, expiry: dt.date, strikes: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per strike from (key, expiry, strike in mills): splitmix64, vectorised."""
    x = np.rint(np.asarray(strikes, float) * 1000).astype(np.uint64)
    x = x ^ np.uint64((int(key) ^ (expiry.toordinal() * 0x9E3779B1)) % 2**64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**53


def dollar_strike_grid(
    forward: float, half_width: float, spot: float, t: float, expiry, key: int
) -> tuple[np.ndarray, np.ndarray]:
    """(strikes, increment of each strike's zone): see the module docstring."""
    lo, hi = forward * math.exp(-half_width), forward * math.exp(CALL_WING * half_width)
    rung = listing_rung(spot, t)
    inner = (
        forward * math.exp(-INNER_ZONE * half_width),
        forward * math.exp(INNER_ZONE * half_width),
    )
    while (
        rung < len(DOLLAR_LADDER) - 3
        and (inner[1] - inner[0]) / DOLLAR_LADDER[rung] > MAX_INNER_STRIKES
    ):
        rung += 1
    mid_lo, mid_hi = (
        forward * math.exp(-MIDDLE_ZONE * half_width),
        forward * math.exp(MIDDLE_ZONE * half_width),
    )
    zones = (
        (max(inner[0], lo), min(inner[1], hi), DOLLAR_LADDER[rung]),
        (max(mid_lo, lo), min(mid_hi, hi), DOLLAR_LADDER[rung + 1]),
        (lo, hi, DOLLAR_LADDER[rung + 2]),
    )
    strikes, incs = [], []
    for z_lo, z_hi, inc in zones:
        s = _multiples(z_lo, z_hi, inc)
        strikes.append(s)
        incs.append(np.full(len(s), inc))
    strikes, incs = np.concatenate(strikes), np.concatenate(incs)
    strikes = np.round(strikes, 3)
    strikes, first = np.unique(strikes, return_index=True)  # finest zone first: keeps its increment
    incs = incs[first]
    keep = strikes > 0
    nearest = np.argsort(np.abs(np.log(np.maximum(strikes, 1e-9) / forward)))[:ATM_KEEP]
    listed = strike_hash(key, expiry, strikes) >= MISSING_STRIKE_SHARE
    listed[nearest] = True
    keep &= listed
    return strikes[keep], incs[keep]


def jump_contracts(m: DayMarket, key: int) -> dict[str, np.ndarray]:
    """The family's contract grid (`synthetic_quotes.contract_grid` with `dollar_strike_grid`)."""
    return contract_grid(
        m, lambda expiry, t, forward, hw: dollar_strike_grid(forward, hw, m.spot, t, expiry, key)
    )


def itm_depth(c: dict) -> np.ndarray:
    """ATM standard deviations in the money (negative out of the money)."""
    return np.where(c["is_call"], -c["z"], c["z"])


def stale_mids(m: DayMarket, c: dict, rows: np.ndarray, old_spots: np.ndarray) -> np.ndarray:
    """Prices of contracts `rows` at their true vol off older spots (one per row)."""
    t = c["t"][rows]
    f_old = old_spots * np.exp((m.rate - m.dividend_yield) * t)
    return black_price(
        f_old, c["strike"][rows], t, c["discount"][rows], c["true_iv"][rows], c["is_call"][rows]
    )


def build_jump_chain(
    m: DayMarket, stale_spots: tuple[float, ...], rng: np.random.Generator, key: int
) -> dict[str, np.ndarray]:
    """All good contracts of the day under the family's quote rules (module docstring).
    `stale_spots`: earlier closes, most recent first (empty: no stale quotes); `key`: the
    (seed, symbol) hash that fixes which strikes are missing."""
    c = jump_contracts(m, key)
    price_contracts(m, c)
    n = len(c["strike"])
    t, f, k_, d = c["t"], c["forward"], c["strike"], c["discount"]
    iv, price, intrinsic, z = c["true_iv"], c["true_price"], c["intrinsic"], c["z"]
    depth = itm_depth(c)
    itm = 1.0 + ITM_SPREAD_LOAD * np.clip(depth, 0.0, 4.0)
    hs_vol = HALF_SPREAD_VOL[m.kind] * (1.0 + 0.4 * np.minimum(z * z, 16.0)) * itm
    hs_vol = hs_vol * stress_level(m)
    half = hs_vol * black_vega(f, k_, t, d, iv) + HALF_SPREAD_REL * price
    half = np.maximum(half + ITM_REL_SPREAD * intrinsic, 0.5 * tick_size(m.kind, price))
    noise = half * np.clip(MID_NOISE * rng.standard_normal(n), -MID_NOISE_CLIP, MID_NOISE_CLIP)
    mid = np.maximum(price + noise, intrinsic + 0.1 * (price - intrinsic))
    bid, ask = quote_from_mid(m.kind, mid, half, intrinsic)

    draw, lag = rng.random(n), rng.integers(1, max(len(stale_spots), 1) + 1, n)
    stale = (draw < STALE_ITM_SHARE) & (depth > STALE_ITM_DEPTH) & (len(stale_spots) > 0)
    rows = np.flatnonzero(stale)
    if len(rows):
        old = np.asarray(stale_spots, float)[lag[rows] - 1]
        s_mid = np.maximum(stale_mids(m, c, rows, old) + noise[rows], 0.0)
        s_bid, s_ask = quote_from_mid(m.kind, s_mid, half[rows], 0.0)
        tick = tick_size(m.kind, s_ask)
        bid[rows] = s_bid
        ask[rows] = np.maximum(s_ask, to_tick(intrinsic[rows], tick, "ceil"))
        mid[rows] = s_mid
    c.update(half_spread=half, bid=bid, ask=ask, stale_itm=stale)
    finish_chain(m, c, mid, hs_vol, rng)
    return c


def grid_key(seed: int, symbol: str) -> int:
    """The (seed, symbol) key of `dollar_strike_grid`'s missing strikes."""
    return stable_hash(f"{int(seed)}|{symbol}|strikes")
