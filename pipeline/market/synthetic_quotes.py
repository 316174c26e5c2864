"""One underlying's option chain on one day of the synthetic market, as columns of NumPy arrays.

`build_chain(market, rng)` lists the contracts (expiries from the calendar, round strike grids
about ±strike_std_devs σ√T around each forward), prices them with the true vol of the day's smile
(`market.smile.strike_vol`: SSVI in the default family), and quotes them the way a market maker
would: mid = true price + a little noise, half-spread set in vol
space and mapped to price through vega (wider in the wings and in stress, floored at half a tick),
bid/ask on the tick grid, zero bid when the mid is below one tick. Volume and open interest are
heavy-tailed, largest near the money and near expiry, with bumps at round strikes. The pieces
(`contract_grid`, `price_contracts`, `quote_from_mid`, `finish_chain`) are shared with the
`sabr_jumps` family's own quote rules (`synthetic_jump_quotes`).

Column conventions (what the payload prints): vega and rho per 1 vol/rate point, theta per
calendar day, t = calendar days / 365 from close to expiry close.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from pipeline.market.calendar import is_monthly_expiry, standard_expiries
from pipeline.market.synthetic_path import SmileState
from pipeline.quant.black_scholes import black_price, black_vega

ROOTS = {
    "_SPX": ("SPX", "SPXW"),
    "_NDX": ("NDX", "NDXP"),
    "_RUT": ("RUT", "RUTW"),
}  # (monthly, weekly)
STRIKES_PER_EXPIRY = 90  # target strikes across ±strike_std_devs; snapping to round grids trims it
CALL_WING = 0.75  # upside strikes stop sooner: the call wing's low vol leaves them worthless
NICE_INCREMENTS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000)  # SPY-like $1/$5, SPX-like $5/$25..
# ATM half-spread in vol (0.001 = 0.1 point); single stocks quote wider than index products
HALF_SPREAD_VOL = {"etf": 0.001, "index": 0.0012, "stock": 0.003}
HALF_SPREAD_REL = 0.0015  # plus this share of the price: deep in-the-money quotes are not tight
VOLUME_BASE = 300.0  # expected ATM contracts/day at 1 month before the lognormal draw
MISSING_VENDOR_IV = 0.01  # share of contracts whose vendor iv is 0.0 (Cboe's "missing")


@dataclass(frozen=True)
class DayMarket:
    """What one underlying's chain on one day depends on (plain values, no config objects)."""

    symbol: str
    kind: str  # etf | index | stock
    day: dt.date
    spot: float
    rate: float
    dividend_yield: float
    smile: SmileState  # or a SabrSmileState: anything with strike_vol, atm_vol, short/long_vol
    prev_gap_days: int  # calendar days since the previous close (0 on the origin)
    prev_spot: float
    prev_smile: SmileState
    strike_std_devs: float
    max_years: float


def root_for(symbol: str, expiry: dt.date) -> str:
    """OCC root: SPX/NDX/RUT monthlies vs SPXW/NDXP/RUTW weeklies; others use the ticker."""
    monthly, weekly = ROOTS.get(symbol, (symbol.lstrip("_"),) * 2)
    return monthly if is_monthly_expiry(expiry) else weekly


def tick_size(kind: str, price):
    """Minimum price increment: $0.01 for ETFs; $0.05 below $3 and $0.10 above for indices;
    $0.01 below $3 and $0.05 above for single stocks (penny-pilot style)."""
    price = np.asarray(price, float)
    if kind == "index":
        return np.where(price < 3.0, 0.05, 0.10)
    if kind == "stock":
        return np.where(price < 3.0, 0.01, 0.05)
    return np.full(price.shape, 0.01)


def to_tick(x, tick, how: str):
    """Round to the tick grid ('floor', 'ceil' or 'round'); the result is exact to the cent."""
    ratio = np.asarray(x, float) / tick
    ratio = {"floor": np.floor(ratio + 1e-9), "ceil": np.ceil(ratio - 1e-9)}.get(
        how, np.rint(ratio)
    )
    return np.round(ratio * tick, 2)


def strike_grid(
    forward: float, half_width: float, min_increment: float
) -> tuple[np.ndarray, float]:
    """Round strikes from forward·e^{−half_width} to forward·e^{+CALL_WING·half_width}, on the
    smallest nice increment that keeps the count at or below STRIKES_PER_EXPIRY (so longer
    maturities get wider spacing). Returns (strikes, increment)."""
    lo, hi = forward * math.exp(-half_width), forward * math.exp(CALL_WING * half_width)
    raw = max((hi - lo) / STRIKES_PER_EXPIRY, min_increment)
    inc = next((x for x in NICE_INCREMENTS if x >= raw - 1e-12), NICE_INCREMENTS[-1])
    multiples = np.arange(math.ceil(lo / inc), math.floor(hi / inc) + 1)
    return np.round(multiples * inc, 3), inc


def quote_from_mid(kind: str, mid, half_spread, floor_value):
    """Bid/ask around `mid` on the tick grid: bid 0 below one tick, quoted mid ≥ floor_value."""
    tick = tick_size(kind, mid)
    bid = np.where(mid < tick, 0.0, np.maximum(to_tick(mid - half_spread, tick, "floor"), 0.0))
    ask = np.maximum(to_tick(mid + half_spread, tick, "ceil"), tick)
    # keep (bid + ask) / 2 at or above the discounted intrinsic value, so the mid is solvable
    ask = np.maximum(ask, to_tick(2.0 * floor_value - bid, tick, "ceil"))
    return bid, np.round(ask, 2)


def greeks(spot, strike, t, rate, q, sigma, is_call) -> dict[str, np.ndarray]:
    """Spot delta, gamma, vega (per vol point), theta (per day), rho (per rate point)."""
    sqrt_t = np.sqrt(t)
    d1 = (np.log(spot / strike) + (rate - q + 0.5 * sigma**2) * t) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    sq, kr = spot * np.exp(-q * t), strike * np.exp(-rate * t)
    sign = np.where(is_call, 1.0, -1.0)
    decay = -sq * pdf * sigma / (2.0 * sqrt_t)
    return {
        "delta": sign * np.exp(-q * t) * ndtr(sign * d1),
        "gamma": np.exp(-q * t) * pdf / (spot * sigma * sqrt_t),
        "vega": sq * pdf * sqrt_t / 100.0,
        "theta": (decay - sign * rate * kr * ndtr(sign * d2) + sign * q * sq * ndtr(sign * d1))
        / 365.0,
        "rho": sign * strike * t * np.exp(-rate * t) * ndtr(sign * d2) / 100.0,
    }


def _contracts(m: DayMarket) -> dict[str, np.ndarray]:
    """Expiry × strike × {call, put} grid with maturities, forwards and the strike increment."""
    min_inc = (1.0 if m.spot >= 50 else 0.5) if m.spot < 1000 else 5.0
    return contract_grid(m, lambda expiry, t, forward, hw: strike_grid(forward, hw, min_inc))


def contract_grid(m: DayMarket, strikes_for) -> dict[str, np.ndarray]:
    """Expiry × strike × {call, put} columns (expiry, root, t, forward, increment, strike,
    is_call, discount), calls first within an expiry. `strikes_for(expiry, t, forward,
    half_width)` → (strikes, increment: a scalar or one per strike) lists an expiry's strikes;
    half_width = strike_std_devs σ_ATM(t) √t in log-moneyness."""
    rows: list[tuple] = []
    for expiry in standard_expiries(m.day, m.max_years):
        t = (expiry - m.day).days / 365.0
        forward = m.spot * math.exp((m.rate - m.dividend_yield) * t)
        half_width = m.strike_std_devs * float(m.smile.atm_vol(t)) * math.sqrt(t)
        strikes, inc = strikes_for(expiry, t, forward, half_width)
        rows.append((expiry, t, forward, np.broadcast_to(inc, np.shape(strikes)), strikes))
    n = [2 * len(r[4]) for r in rows]
    c = {
        "expiry": np.repeat(np.array([r[0] for r in rows], dtype="datetime64[D]"), n),
        "root": np.repeat(np.array([root_for(m.symbol, r[0]) for r in rows], dtype=object), n),
        "t": np.repeat([r[1] for r in rows], n),
        "forward": np.repeat([r[2] for r in rows], n),
        "increment": np.concatenate([np.tile(r[3], 2) for r in rows]).astype(float),
        "strike": np.concatenate([np.tile(r[4], 2) for r in rows]),
        "is_call": np.concatenate([np.repeat([True, False], len(r[4])) for r in rows]),
    }
    c["discount"] = np.exp(-m.rate * c["t"])
    return c


def price_contracts(m: DayMarket, c: dict) -> None:
    """Add the truth to contracts `c`: log_m = ln(K/F), z (moneyness in ATM standard
    deviations), true_iv (the smile's `strike_vol`), true_price and intrinsic (discounted)."""
    t, f, k_, d, call = c["t"], c["forward"], c["strike"], c["discount"], c["is_call"]
    log_m = np.log(k_ / f)
    iv = m.smile.strike_vol(k_, f, t)
    c.update(
        log_m=log_m,
        z=log_m / (m.smile.atm_vol(t) * np.sqrt(t)),
        true_iv=iv,
        true_price=black_price(f, k_, t, d, iv, call),
        intrinsic=d * np.where(call, np.maximum(f - k_, 0.0), np.maximum(k_ - f, 0.0)),
    )


def stress_level(m: DayMarket) -> float:
    """Spread multiplier in stress: short over long implied vol, at least 1."""
    return max(1.0, m.smile.short_vol / m.smile.long_vol)


def build_chain(m: DayMarket, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All good contracts of the day: contract terms, truth, quotes and payload fields."""
    c = _contracts(m)
    price_contracts(m, c)
    n = len(c["strike"])
    t, f, k_, d = c["t"], c["forward"], c["strike"], c["discount"]
    iv, price, intrinsic, z = c["true_iv"], c["true_price"], c["intrinsic"], c["z"]
    hs_vol = HALF_SPREAD_VOL[m.kind] * (1.0 + 0.4 * np.minimum(z * z, 16.0)) * stress_level(m)
    half = hs_vol * black_vega(f, k_, t, d, iv) + HALF_SPREAD_REL * price
    half = np.maximum(half, 0.5 * tick_size(m.kind, price))
    noise = half * np.clip(0.3 * rng.standard_normal(n), -0.6, 0.6)
    mid = np.maximum(price + noise, intrinsic + 0.1 * (price - intrinsic))
    bid, ask = quote_from_mid(m.kind, mid, half, intrinsic)
    c.update(half_spread=half, bid=bid, ask=ask)
    finish_chain(m, c, mid, hs_vol, rng)
    return c


def finish_chain(
    m: DayMarket, c: dict, mid: np.ndarray, hs_vol: np.ndarray, rng: np.random.Generator
) -> None:
    """Greeks and theo, sizes, volume and open interest, the vendor iv and the trade fields of a
    quoted chain (`c` has its truth, half_spread, bid and ask; `mid` is the quoted mid)."""
    n = len(mid)
    t, k_, iv, z, bid = c["t"], c["strike"], c["true_iv"], c["z"], c["bid"]
    c.update(greeks(m.spot, k_, t, m.rate, m.dividend_yield, iv, c["is_call"]))
    c["theo"] = c["true_price"]

    size = 8.0 if m.kind == "index" else 20.0
    c["bid_size"] = np.where(bid > 0, 1.0 + np.floor(rng.lognormal(math.log(size), 0.9, n)), 0.0)
    c["ask_size"] = 1.0 + np.floor(rng.lognormal(math.log(size), 0.9, n))
    multiple = np.rint(k_ / c["increment"]).astype(np.int64)
    bump = 1.0 + (multiple % 5 == 0) + 1.5 * (multiple % 10 == 0)  # traders like round strikes
    lam = VOLUME_BASE * np.exp(-0.5 * (z / 1.2) ** 2) * np.sqrt(0.08 / (t + 0.02)) * bump
    lam *= rng.lognormal(-0.5, 1.0, n)  # heavy tail, mean one
    c["volume"] = rng.poisson(lam).astype(float)
    c["open_interest"] = rng.poisson(
        lam * (5.0 + 40.0 * np.sqrt(t)) * rng.lognormal(0, 0.5, n)
    ).astype(float)

    vendor = iv + rng.normal(0.0, 1.0, n) * (0.3 * hs_vol + 0.002)
    c["iv"] = np.where(rng.random(n) < MISSING_VENDOR_IV, 0.0, np.maximum(vendor, 0.005))
    _trade_fields(m, c, mid, rng)


def _trade_fields(m: DayMarket, c: dict, mid: np.ndarray, rng: np.random.Generator) -> None:
    """Yesterday's close (yesterday's spot and surface), last trade, open/high/low, change."""
    n = len(mid)
    t_prev = c["t"] + m.prev_gap_days / 365.0
    f_prev = m.prev_spot * np.exp((m.rate - m.dividend_yield) * t_prev)
    iv_prev = m.prev_smile.strike_vol(c["strike"], f_prev, t_prev)
    prev = black_price(f_prev, c["strike"], t_prev, np.exp(-m.rate * t_prev), iv_prev, c["is_call"])
    c["prev_day_close"] = to_tick(prev, tick_size(m.kind, prev), "round")
    traded = c["volume"] > 0
    tick = tick_size(m.kind, mid)
    last = np.clip(mid + rng.uniform(-0.8, 0.8, n) * c["half_spread"], c["bid"], c["ask"])
    last = np.where(traded, np.maximum(to_tick(last, tick, "round"), tick), 0.0)
    opening = np.maximum(to_tick(last * np.exp(0.1 * rng.standard_normal(n)), tick, "round"), tick)
    high = to_tick(
        np.maximum(opening, last) * (1 + 0.05 * np.abs(rng.standard_normal(n))), tick, "ceil"
    )
    low = to_tick(
        np.minimum(opening, last) * (1 - 0.05 * np.abs(rng.standard_normal(n))), tick, "floor"
    )
    change = np.where(traded, last - c["prev_day_close"], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(
            traded & (c["prev_day_close"] > 0), 100.0 * change / c["prev_day_close"], 0.0
        )
    c.update(
        last_trade_price=last,
        open=np.where(traded, opening, 0.0),
        high=np.where(traded, high, 0.0),
        low=np.where(traded, np.maximum(low, tick), 0.0),
        change=np.round(change, 2),
        percent_change=pct,
        tick=np.where(
            ~traded,
            "no_change",
            np.where(change > 0, "up", np.where(change < 0, "down", "no_change")),
        ).astype(object),
    )
    # trades cluster towards the close: 09:30 .. 16:15, as seconds after midnight
    seconds = (34200 + (58500 - 34200) * np.sqrt(rng.random(n))).astype("timedelta64[s]")
    stamps = np.datetime_as_string(np.datetime64(m.day, "s") + seconds, unit="s").astype(object)
    c["last_trade_time"] = np.where(traded, stamps, None)
