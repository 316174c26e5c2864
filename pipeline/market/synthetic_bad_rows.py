"""Deliberately bad rows for the synthetic market, labelled in the ground truth only.

`inject_bad_rows(chain, market, stale_spot, rate, rng)` picks about `rate` of the rows and gives
each exactly one defect (`BAD_KINDS`, in equal shares):

- crossed:        bid > ask (bid = old ask + 1–3 ticks, ask = old bid)
- negative_price: bid < 0 (and, for half of them, ask < 0 too)
- nan_price:      bid, ask or both missing (null in JSON)
- duplicate:      an exact copy of a good contract (same OCC symbol); the later copy is the bad one
- expired:        an extra contract on the last Friday expiry before the date, quoted at intrinsic
- stale:          bid_size = ask_size = 0 and quotes priced off the spot of a few days earlier
- arbitrage:      outside no-arbitrage bounds: ask ≥ 3% below the discounted intrinsic value for
                  in-the-money contracts, otherwise bid ≥ 5% above the upper bound (D·F or D·K)

Duplicates and expired contracts are added rows (their originals stay good); the others are
modified in place. Good rows quoting a zero bid are legitimate far wings, not defects: they keep
is_bad False with bad_reason "zero_bid" (the validator quarantines them for its own reason).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from pipeline.market.calendar import shift_trading_days, to_date
from pipeline.market.synthetic_quotes import DayMarket, quote_from_mid, root_for, tick_size, to_tick
from pipeline.quant.black_scholes import black_price

BAD_KINDS = ("crossed", "negative_price", "nan_price", "duplicate", "expired", "stale", "arbitrage")
ZERO_BID = "zero_bid"


def last_expired_friday(day: dt.date) -> dt.date:
    """The Friday expiry strictly before `day` (moved earlier when that Friday was a holiday)."""
    friday = day - dt.timedelta(days=(day.weekday() - 4) % 7 or 7)
    return shift_trading_days(friday, 0)


def _append(c: dict, rows: np.ndarray) -> None:
    for key, values in c.items():
        c[key] = np.concatenate([values, values[rows]])


def inject_bad_rows(
    c: dict, m: DayMarket, stale_spot: float, rate: float, rng: np.random.Generator
) -> dict:
    """Add `is_bad`, `bad_reason` and `copy` columns, corrupt ~`rate` of rows; returns `c`."""
    n = len(c["strike"])
    c["is_bad"] = np.zeros(n, bool)
    c["bad_reason"] = np.full(n, None, dtype=object)
    c["copy"] = np.zeros(n, np.int8)  # sorts a duplicate right after its original
    n_bad = int(rng.binomial(n, rate)) if rate > 0 else 0
    picks = rng.choice(n, size=n_bad, replace=False)
    kinds = np.array(BAD_KINDS, dtype=object)[rng.permutation(np.arange(n_bad) % len(BAD_KINDS))]
    by_kind = {k: np.sort(picks[kinds == k]) for k in BAD_KINDS}
    bid, ask = c["bid"], c["ask"]
    tick = tick_size(m.kind, np.where(np.isfinite(ask), ask, 0.0))

    rows = by_kind["crossed"]
    bid[rows], ask[rows] = (
        np.round(ask[rows] + tick[rows] * rng.integers(1, 4, len(rows)), 2),
        bid[rows],
    )

    rows = by_kind["negative_price"]
    bid[rows] = -np.maximum(bid[rows], tick[rows])
    both = rows[rng.random(len(rows)) < 0.5]
    ask[both] = -tick[both]

    rows = by_kind["nan_price"]
    side = rng.integers(0, 3, len(rows))
    bid[rows[side != 1]] = np.nan
    ask[rows[side != 0]] = np.nan

    rows = by_kind["stale"]
    t, strike, call = c["t"][rows], c["strike"][rows], c["is_call"][rows]
    f_old = stale_spot * np.exp((m.rate - m.dividend_yield) * t)
    d = c["discount"][rows]
    old = black_price(f_old, strike, t, d, c["true_iv"][rows], call)
    old_intr = d * np.where(call, np.maximum(f_old - strike, 0), np.maximum(strike - f_old, 0))
    bid[rows], ask[rows] = quote_from_mid(m.kind, old, c["half_spread"][rows], old_intr)
    c["bid_size"][rows] = c["ask_size"][rows] = 0.0

    rows = by_kind["arbitrage"]
    intr, width = c["intrinsic"][rows], np.maximum(ask[rows] - bid[rows], tick[rows])
    below = intr > np.maximum(1.0, 20 * tick[rows])
    upper = c["discount"][rows] * np.where(
        c["is_call"][rows], c["forward"][rows], c["strike"][rows]
    )
    low_ask = to_tick(0.97 * intr - 5 * tick[rows], tick[rows], "floor")
    high_bid = to_tick(1.05 * upper, tick[rows], "ceil")
    bid[rows] = np.where(below, np.maximum(np.round(low_ask - width, 2), 0.0), high_bid)
    ask[rows] = np.where(below, low_ask, np.round(high_bid + width, 2))

    for kind in ("crossed", "negative_price", "nan_price", "stale", "arbitrage"):
        c["is_bad"][by_kind[kind]] = True
        c["bad_reason"][by_kind[kind]] = kind

    dup = by_kind["duplicate"]
    _append(c, dup)
    c["is_bad"][n:] = True
    c["bad_reason"][n:] = "duplicate"
    c["copy"][n:] = 1

    _append_expired(c, m, by_kind["expired"])
    zero = ~c["is_bad"] & (c["bid"] == 0)
    c["bad_reason"][zero] = ZERO_BID
    return c


def _append_expired(c: dict, m: DayMarket, templates: np.ndarray) -> None:
    """Copies of `templates` re-dated to the last expired Friday, quoted at today's intrinsic."""
    start = len(c["strike"])
    _append(c, templates)
    rows = np.arange(start, len(c["strike"]))
    expiry = last_expired_friday(to_date(m.day))
    t = (expiry - m.day).days / 365.0
    call, strike = c["is_call"][rows], c["strike"][rows]
    value = np.where(call, np.maximum(m.spot - strike, 0.0), np.maximum(strike - m.spot, 0.0))
    tick = tick_size(m.kind, value)
    c["expiry"][rows] = np.datetime64(expiry, "D")
    c["root"][rows] = root_for(m.symbol, expiry)
    c["t"][rows] = t
    c["forward"][rows] = m.spot * np.exp((m.rate - m.dividend_yield) * t)
    c["discount"][rows] = np.exp(-m.rate * t)
    c["bid"][rows] = np.maximum(to_tick(value - 2 * tick, tick, "floor"), 0.0)
    c["ask"][rows] = to_tick(value + 2 * tick, tick, "ceil")
    c["theo"][rows] = value
    c["delta"][rows] = np.where(value > 0, np.where(call, 1.0, -1.0), 0.0)
    for key in ("gamma", "vega", "theta", "rho", "iv", "volume", "open", "high", "low", "change",
                "percent_change", "true_iv", "true_price"):  # fmt: skip
        c[key][rows] = np.nan if key.startswith("true_") else 0.0
    c["last_trade_price"][rows] = 0.0
    c["last_trade_time"][rows] = None
    c["tick"][rows] = "no_change"
    c["is_bad"][rows] = True
    c["bad_reason"][rows] = "expired"
