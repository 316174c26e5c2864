"""Spot/variance paths and SSVI smiles for the embedded synthetic market.

Inputs are plain values (`PathSpec`), so this module knows nothing of Hydra. Each underlying
follows a log-variance Ornstein-Uhlenbeck stochastic-volatility model (an exponential-OU cousin of
Heston: the default vol_of_vol breaks Heston's Feller condition, log-variance never hits zero):

    ln v' = ln v + κ (m − ln v) dt + ξ √dt z_v,        m set so that E[v] = vol²
    ln S' = ln S + (μ − v/2) dt + √(v dt) (ρ z_v + √(1−ρ²) z_⊥)

with one step per trading day (dt = 1/252). Every day's shocks come from random streams keyed by
(seed, day) for a market factor shared by all underlyings and by (seed, symbol, day) for the
idiosyncratic part, so a day's values never depend on what else was generated. On a shock date
(or the first trading day after it) variance jumps ×shock_size and the spot gaps down by three
daily standard deviations, then both mean-revert at κ.

The implied side (`SmileState`) sets the short ATM vol from the instantaneous vol and an EWMA of
realised variance plus `vol_premium`, lets ATM variance revert towards a long-run implied level,
and shapes each slice with SSVI (Gatheral & Jacquier 2014).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.market.calendar import is_trading_day, shift_trading_days, trading_days

DT = 1.0 / 252.0
DRIFT = 0.06  # real-world log drift per year; ≈ equity risk premium + rate − dividends
MARKET_SHARE = 0.75  # share of each day's shock variance common to every underlying
SHOCK_GAP_SD = 3.0  # spot gap on a shock date, in post-shock daily standard deviations
RV_HALF_LIFE_DAYS = 10.0  # EWMA of squared returns that the short implied vol follows
RV_WEIGHT = 0.3  # short implied vol = 0.7 instantaneous vol + 0.3 realised vol + premium
LN_VAR_BOUNDS = (math.log(0.03**2), math.log(1.5**2))  # keep vol within 3%..150%
TERM_PREMIUM = 0.02  # long-run implied vol above spec.vol + vol_premium: calm curves slope up
# SSVI shape by kind: η(1+|ρ|) ≤ 2 keeps every slice free of butterfly arbitrage
SSVI_SHAPE = {"index": (-0.70, 1.10, 0.45), "etf": (-0.65, 1.05, 0.45)}  # (ρ, η, γ)


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process (unlike the salted hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def day_rng(seed: int, key: str, day: dt.date, purpose: int) -> np.random.Generator:
    """Independent random stream for (seed, key, day, purpose); key is a symbol or '__market__'."""
    entropy = [int(seed) % 2**64, stable_hash(key), day.toordinal(), purpose]
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class PathSpec:
    """Everything a spot path depends on (hashable: the cache key)."""

    seed: int
    symbol: str
    kind: str
    origin: dt.date
    spot: float
    vol: float
    vol_of_vol: float
    mean_reversion: float
    leverage: float
    shock_dates: tuple[dt.date, ...]
    shock_size: float


@dataclass
class Path:
    """Daily close values from the origin; extended in place by `get_path`."""

    dates: list[dt.date] = field(default_factory=list)
    spot: list[float] = field(default_factory=list)
    var: list[float] = field(default_factory=list)  # instantaneous variance at the close
    rv: list[float] = field(default_factory=list)  # EWMA realised variance (annualised)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    index: dict[dt.date, int] = field(default_factory=dict)


_CACHE: dict[PathSpec, Path] = {}
_LOCK = threading.Lock()


def _shock_days(spec: PathSpec) -> set[dt.date]:
    """Each shock date, or the first trading day after it when the market is closed."""
    return {d if is_trading_day(d) else shift_trading_days(d, 1) for d in spec.shock_dates}


def _append_day(spec: PathSpec, path: Path, day: dt.date, shocks: set[dt.date]) -> None:
    z_mkt = day_rng(spec.seed, "__market__", day, 0).standard_normal(2)
    z_own = day_rng(spec.seed, spec.symbol, day, 0).standard_normal(6)
    a, b = math.sqrt(MARKET_SHARE), math.sqrt(1.0 - MARKET_SHARE)
    z_v, z_perp = a * z_mkt[0] + b * z_own[0], a * z_mkt[1] + b * z_own[1]
    if not path.dates:  # origin: start at the long-run level
        var, spot, ret = spec.vol**2, spec.spot, 0.0
        rv = var
    else:
        kappa, xi = spec.mean_reversion, spec.vol_of_vol
        prev_var, prev_spot = path.var[-1], path.spot[-1]
        target = math.log(spec.vol**2) - xi * xi / (4.0 * kappa)  # mean of ln v at stationarity
        ln_v = math.log(prev_var)
        ln_v += kappa * (target - ln_v) * DT + xi * math.sqrt(DT) * z_v
        rho = spec.leverage
        shock = rho * z_v + math.sqrt(1.0 - rho * rho) * z_perp
        ret = (DRIFT - 0.5 * prev_var) * DT + math.sqrt(prev_var * DT) * shock
        if day in shocks:
            ln_v += math.log(spec.shock_size)
            ret -= SHOCK_GAP_SD * math.sqrt(math.exp(ln_v) * DT)
        var = math.exp(min(max(ln_v, LN_VAR_BOUNDS[0]), LN_VAR_BOUNDS[1]))
        spot = prev_spot * math.exp(ret)
        lam = 0.5 ** (1.0 / RV_HALF_LIFE_DAYS)
        rv = lam * path.rv[-1] + (1.0 - lam) * ret * ret / DT
    daily_sd = math.sqrt(var * DT)
    prev_close = path.spot[-1] if path.dates else spot
    opening = prev_close * math.exp(0.3 * daily_sd * z_own[2])
    high = max(opening, spot) * math.exp(0.5 * daily_sd * abs(z_own[3]))
    low = min(opening, spot) * math.exp(-0.5 * daily_sd * abs(z_own[4]))
    # ETF share volume rises with volatility; Cboe reports 0 for indices
    volume = (
        0.0 if spec.kind == "index" else 4e7 * math.sqrt(var) / spec.vol * math.exp(0.3 * z_own[5])
    )
    path.index[day] = len(path.dates)
    path.dates.append(day)
    for name, value in (("spot", spot), ("var", var), ("rv", rv), ("open", opening),
                        ("high", high), ("low", low), ("volume", float(int(volume)))):  # fmt: skip
        getattr(path, name).append(value)


def get_path(spec: PathSpec, end: dt.date) -> Path:
    """The cached path for `spec`, extended (never recomputed) through trading day `end`."""
    with _LOCK:
        path = _CACHE.setdefault(spec, Path())
        if path.dates and path.dates[-1] >= end:
            return path
        start = shift_trading_days(path.dates[-1], 1) if path.dates else spec.origin
        shocks = _shock_days(spec)
        for day in trading_days(start, end):
            _append_day(spec, path, day, shocks)
        return path


def clear_path_cache() -> None:
    """Forget every cached path (tests use it to prove results do not depend on the cache)."""
    with _LOCK:
        _CACHE.clear()


def path_frame(spec: PathSpec, end: dt.date) -> pd.DataFrame:
    """Path through `end` as a DataFrame: date, spot, variance, realised_variance, open, high,
    low, volume (one row per trading day from the origin)."""
    path = get_path(spec, end)
    n = int(
        np.searchsorted(
            np.array(path.dates, dtype="datetime64[D]"), np.datetime64(end, "D"), "right"
        )
    )
    return pd.DataFrame(
        {
            "date": pd.to_datetime(path.dates[:n]),
            "spot": path.spot[:n],
            "variance": path.var[:n],
            "realised_variance": path.rv[:n],
            "open": path.open[:n],
            "high": path.high[:n],
            "low": path.low[:n],
            "volume": path.volume[:n],
        }
    )


@dataclass(frozen=True)
class SmileState:
    """The implied-vol surface of one underlying at one close.

    ATM total variance θ(T) = L T + (σ0² − L)(1 − e^{−κT})/κ: the expected integrated variance
    when σ0² reverts to L; its slope L(1 − e^{−κT}) + σ0² e^{−κT} is positive, so θ is increasing.
    """

    short_vol: float  # σ0: instantaneous ATM implied vol
    long_vol: float  # √L
    kappa: float  # implied mean reversion per year
    rho: float
    eta: float
    gamma: float

    def atm_total_variance(self, t):
        t = np.asarray(t, float)
        lv, sv = self.long_vol**2, self.short_vol**2
        return lv * t + (sv - lv) * (-np.expm1(-self.kappa * t)) / self.kappa

    def atm_vol(self, t):
        t = np.asarray(t, float)
        return np.sqrt(self.atm_total_variance(t) / t)

    def implied_vol(self, k, t):
        """SSVI implied vol at log-moneyness k = ln(K/F) and maturity t (years)."""
        k, t = np.asarray(k, float), np.asarray(t, float)
        theta = self.atm_total_variance(t)
        phi = self.eta / (theta**self.gamma * (1.0 + theta) ** (1.0 - self.gamma))
        rho = self.rho
        w = 0.5 * theta * (1.0 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1.0 - rho * rho))
        return np.sqrt(w / t)


def smile_state(spec: PathSpec, path: Path, i: int, vol_premium: float) -> SmileState:
    """Surface at path day `i`: short vol = blend of instantaneous and realised vol + premium."""
    short = (
        (1 - RV_WEIGHT) * math.sqrt(path.var[i]) + RV_WEIGHT * math.sqrt(path.rv[i]) + vol_premium
    )
    rho, eta, gamma = SSVI_SHAPE.get(spec.kind, SSVI_SHAPE["etf"])
    # implied variance reverts more slowly than realised: long-dated vols move less than short
    return SmileState(
        short_vol=short,
        long_vol=spec.vol + vol_premium + TERM_PREMIUM,
        kappa=max(0.5 * spec.mean_reversion, 0.25),
        rho=rho,
        eta=eta,
        gamma=gamma,
    )
