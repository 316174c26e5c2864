"""Spot/variance paths and SSVI smiles for the embedded synthetic market.

Inputs are plain values (`PathSpec`), so this module knows nothing of Hydra. Each underlying
follows a log-variance Ornstein-Uhlenbeck stochastic-volatility model (an exponential-OU cousin of
Heston: the default vol_of_vol breaks Heston's Feller condition, log-variance never hits zero):

    ln v' = ln v + κ (m − ln v) dt + ξ √dt z_v,        m set so that E[v] = vol²
    ln S' = ln S + (μ − v/2) dt + √(v dt) (ρ z_v + √(1−ρ²) z_⊥)

with one step per trading day (dt = 1/252). Every day's shocks come from random streams keyed by
(seed, day) for a market factor shared by all underlyings (a share `market_share` of the shock
variance) and by (seed, symbol, day) for the idiosyncratic part, so a day's values never depend on
what else was generated. On a shock date (or the first trading day after it) variance jumps
×shock_size and the spot gaps by three post-shock daily standard deviations, down when
shock_size ≥ 1, up when shock_size < 1 (a vol crush: relief rally), then both mean-revert at κ.

Optional Merton jumps (`jump_intensity` > 0, per year): N ~ Poisson(λ dt) log-jumps J_j ~
N(jump_mean, jump_std²) a day, from their own (seed, symbol, day) stream, are added to ln S with
the compensator −λ dt (e^{μ_J + σ_J²/2} − 1) so the drift is unchanged; a net down-jump also
raises ln v by JUMP_VAR_LOAD·|J| (variance co-jumps, as on earnings or crash days). With
λ = 0 no jump stream is drawn and the path is exactly the jump-free one.

The implied side (`SmileState`) sets the short ATM vol from the instantaneous vol and an EWMA of
realised variance plus `vol_premium` (plus the jump variance λ(μ_J² + σ_J²) when λ > 0), lets
ATM variance revert towards a long-run implied level, and shapes each slice with SSVI (Gatheral
& Jacquier 2014). From each shock date on, `smile_state(skew=…)` steepens the SSVI skew (a
regime change that persists, unlike the variance jump).
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
RHO_MAX = 0.95  # |ρ| cap when a regime change steepens a smile
SKEW_REF_YEARS = 30 / 365  # maturity at which a regime's skew factor is exact
JUMP_VAR_LOAD = 3.0  # ln v rises by this × |net down-jump| (a −10% jump: vol ×1.16)
ANCHOR_HALF_LIFE_DAYS = 5.0  # sticky-strike smiles re-centre on an EWMA of ln spot (sabr_jumps)
ANCHOR_WINDOW_DAYS = 120  # EWMA window (weights beyond it are < 1e-7)


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
    market_share: float = MARKET_SHARE
    jump_intensity: float = 0.0  # Merton jumps per year
    jump_mean: float = 0.0  # mean log-jump
    jump_std: float = 0.0  # standard deviation of a log-jump

    @property
    def jump_variance(self) -> float:
        """Annualised variance the jumps add to returns: λ (μ_J² + σ_J²)."""
        return self.jump_intensity * (self.jump_mean**2 + self.jump_std**2)


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
    jump: list[float] = field(default_factory=list)  # the day's summed log-jump (0.0: none)
    index: dict[dt.date, int] = field(default_factory=dict)


_CACHE: dict[PathSpec, Path] = {}
_LOCK = threading.Lock()


def _shock_days(spec: PathSpec) -> set[dt.date]:
    """Each shock date, or the first trading day after it when the market is closed."""
    return {d if is_trading_day(d) else shift_trading_days(d, 1) for d in spec.shock_dates}


def shocks_through(spec: PathSpec, day: dt.date) -> int:
    """How many shock days fall on or before `day`: the regime-change knobs (skew, strike width)
    apply their factor once per shock passed, from the shock day on."""
    return sum(d <= day for d in _shock_days(spec))


def regime_factor(spec: PathSpec, day: dt.date, factor: float) -> float:
    """`factor` compounded over the shock days on or before `day` (1.0 before any shock)."""
    n = shocks_through(spec, day)
    return float(factor) ** n if n else 1.0


def day_jump(spec: PathSpec, day: dt.date) -> float:
    """The day's summed Merton log-jump (0.0 without jumps), from its own random stream."""
    if spec.jump_intensity <= 0.0:
        return 0.0
    rng = day_rng(spec.seed, spec.symbol, day, 3)
    n = int(rng.poisson(spec.jump_intensity * DT))
    return float(rng.normal(spec.jump_mean, spec.jump_std, n).sum()) if n else 0.0


def jump_compensator(spec: PathSpec) -> float:
    """Daily drift correction λ dt (E[e^J] − 1) that keeps E[S'/S] unchanged by the jumps."""
    return spec.jump_intensity * DT * math.expm1(spec.jump_mean + 0.5 * spec.jump_std**2)


def ln_var_target(spec: PathSpec) -> float:
    """The mean of ln v at stationarity, set so that E[v] = vol²: the level ln v reverts to."""
    xi = spec.vol_of_vol
    return math.log(spec.vol**2) - xi * xi / (4.0 * spec.mean_reversion)


def _append_day(spec: PathSpec, path: Path, day: dt.date, shocks: set[dt.date]) -> None:
    z_mkt = day_rng(spec.seed, "__market__", day, 0).standard_normal(2)
    z_own = day_rng(spec.seed, spec.symbol, day, 0).standard_normal(6)
    a, b = math.sqrt(spec.market_share), math.sqrt(1.0 - spec.market_share)
    z_v, z_perp = a * z_mkt[0] + b * z_own[0], a * z_mkt[1] + b * z_own[1]
    jump = 0.0
    if not path.dates:  # origin: start at the long-run level
        var, spot, ret = spec.vol**2, spec.spot, 0.0
        rv = var
    else:
        kappa, xi = spec.mean_reversion, spec.vol_of_vol
        prev_var, prev_spot = path.var[-1], path.spot[-1]
        target = ln_var_target(spec)
        ln_v = math.log(prev_var)
        ln_v += kappa * (target - ln_v) * DT + xi * math.sqrt(DT) * z_v
        rho = spec.leverage
        shock = rho * z_v + math.sqrt(1.0 - rho * rho) * z_perp
        ret = (DRIFT - 0.5 * prev_var) * DT + math.sqrt(prev_var * DT) * shock
        if day in shocks:
            ln_v += math.log(spec.shock_size)
            gap = SHOCK_GAP_SD * math.sqrt(math.exp(ln_v) * DT)
            ret = ret + gap if spec.shock_size < 1.0 else ret - gap  # a crush gaps up
        if spec.jump_intensity > 0.0:
            jump = day_jump(spec, day)
            ret += jump - jump_compensator(spec)
            ln_v += JUMP_VAR_LOAD * max(-jump, 0.0)
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
                        ("high", high), ("low", low), ("volume", float(int(volume))),
                        ("jump", jump)):  # fmt: skip
        getattr(path, name).append(value)


def knowable_variance(spec: PathSpec, path: Path, i: int) -> float:
    """Day `i`'s close variance as far as it is known at that close without the option quotes:
    from the close before (its variance, spot) and day i's own return, E[√v_i]². The return
    reveals the vol shock's leverage part (E[z_v | shock] = ρ·shock); the rest, a share 1 − ρ²
    of its variance, averages out. benchmarks.skill_floor scores the smile of this variance: what
    a model knowing the market's dynamics could forecast. The origin, a shock day (its variance
    jump is a regime change) and a jump-diffusion path (not modelled here) get the true variance."""
    day = path.dates[i]
    if i == 0 or day in _shock_days(spec) or spec.jump_intensity > 0.0:
        return path.var[i]
    kappa, xi, rho = spec.mean_reversion, spec.vol_of_vol, spec.leverage
    prev_var = path.var[i - 1]
    ln_prev = math.log(prev_var)
    target = ln_var_target(spec)
    ret = math.log(path.spot[i] / path.spot[i - 1])
    shock = (ret - (DRIFT - 0.5 * prev_var) * DT) / math.sqrt(prev_var * DT)
    mean = ln_prev + kappa * (target - ln_prev) * DT + xi * math.sqrt(DT) * rho * shock
    hidden = xi * xi * DT * (1.0 - rho * rho)  # variance of ln v the return does not reveal
    return math.exp(mean + hidden / 4.0)  # (E[√v])² = exp(mean + hidden/4) for a lognormal v


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
    low, volume, jump (the day's log-jump, 0.0 without; one row per trading day from the origin)."""
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
            "jump": path.jump[:n],
        }
    )


def atm_total_variance(short_vol: float, long_vol: float, kappa: float, t):
    """ATM total variance θ(T) = L T + (σ0² − L)(1 − e^{−κT})/κ with σ0 = short_vol and
    L = long_vol²: the expected integrated variance when σ0² reverts to L at rate κ. Its slope
    L(1 − e^{−κT}) + σ0² e^{−κT} is positive, so θ is increasing in T."""
    t = np.asarray(t, float)
    lv, sv = long_vol**2, short_vol**2
    return lv * t + (sv - lv) * (-np.expm1(-kappa * t)) / kappa


@dataclass(frozen=True)
class SmileState:
    """The SSVI implied-vol surface of one underlying at one close (sticky moneyness: the smile
    is a function of k = ln(K/F), so it moves with the forward).

    ATM total variance θ(T) from `atm_total_variance`; each slice
    w(k, θ) = θ/2 (1 + ρφk + √((φk + ρ)² + 1 − ρ²)), φ(θ) = η / (θ^γ (1+θ)^(1−γ)).
    """

    short_vol: float  # σ0: instantaneous ATM implied vol
    long_vol: float  # √L
    kappa: float  # implied mean reversion per year
    rho: float
    eta: float
    gamma: float

    def atm_total_variance(self, t):
        return atm_total_variance(self.short_vol, self.long_vol, self.kappa, t)

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

    def strike_vol(self, strike, forward, t):
        """Implied vol of strike K for the forward F (the interface every family's smile has)."""
        return self.implied_vol(np.log(np.asarray(strike, float) / forward), t)


def steepen_ssvi(
    rho: float, eta: float, gamma: float, factor: float, theta_ref: float
) -> tuple[float, float, float]:
    """(ρ', η', γ') that make the SSVI ATM skew `factor` times as steep at the maturity whose
    ATM total variance is `theta_ref`, within the no-arbitrage conditions η(1+|ρ|) ≤ 2, γ ≤ 1/2
    (with them the power-law SSVI surface is free of static arbitrage: θφ(θ)(1+|ρ|) < 4 and
    θφ(θ)²(1+|ρ|) ≤ 4 for every θ) and |ρ| ≤ RHO_MAX.

    SSVI's ATM skew ∂w/∂k = θφ(θ)ρ, and the ATM level θ does not depend on ρ, η or γ, so:
    1. the product ρη takes the factor first: |ρ| gets √factor, η the rest; when that breaks
       η(1+|ρ|) ≤ 2, |ρ| rises (to p/(2−p), p = |ρ'η'|) so η can stay at the bound; the product
       saturates at 2·RHO_MAX/(1+RHO_MAX) ≈ 0.974 (SPX-like ρη = 0.77: ×1.27, ETF-like 0.68:
       ×1.43);
    2. what is left goes into γ: φ(θ) ∝ (θ/(1+θ))^−γ, so γ' = γ + ln(rest)/ln((1+θ_ref)/θ_ref),
       capped at 1/2 (at a 30-day θ_ref ≈ 0.002 that is another ×1.3 or so). γ steepens short
       maturities more than long ones, so beyond step 1 the factor is exact at θ_ref only.
    factor ≤ 1 flattens through ρ alone (exact at every maturity).
    """
    if factor == 1.0 or rho == 0.0:
        return rho, eta, gamma
    sign = -1.0 if rho < 0 else 1.0
    if factor < 1.0:
        return rho * max(factor, 0.0), eta, gamma
    p = factor * abs(rho) * eta
    r = min(RHO_MAX, abs(rho) * math.sqrt(factor))
    if p / r * (1.0 + r) > 2.0:
        r = RHO_MAX if p >= 2.0 * RHO_MAX / (1.0 + RHO_MAX) else max(r, p / (2.0 - p))
    new_eta = min(p / r, 2.0 / (1.0 + r))
    rest = p / (r * new_eta)
    if rest > 1.0 + 1e-12 and gamma < 0.5:
        gamma = min(0.5, gamma + math.log(rest) / math.log((1.0 + theta_ref) / theta_ref))
    return sign * r, new_eta, gamma


def diffusive_short_vol(path: Path, i: int) -> float:
    """0.7 × instantaneous vol + 0.3 × EWMA realised vol at path day `i` (no premium)."""
    return (1 - RV_WEIGHT) * math.sqrt(path.var[i]) + RV_WEIGHT * math.sqrt(path.rv[i])


def short_implied_vol(spec: PathSpec, path: Path, i: int, vol_premium: float) -> float:
    """Short ATM implied vol at path day `i`: 0.7 instantaneous + 0.3 realised vol, with the jump
    variance λ(μ_J² + σ_J²) added in variance terms when there are jumps, plus the premium."""
    diffusive = diffusive_short_vol(path, i)
    if spec.jump_intensity > 0.0:
        diffusive = math.sqrt(diffusive * diffusive + spec.jump_variance)
    return diffusive + vol_premium


def long_implied_vol(spec: PathSpec, vol_premium: float) -> float:
    """Long-run ATM implied vol: the long-run vol (with jump variance) + premium + term premium."""
    base = spec.vol
    if spec.jump_intensity > 0.0:
        base = math.sqrt(base * base + spec.jump_variance)
    return base + vol_premium + TERM_PREMIUM


def implied_kappa(spec: PathSpec) -> float:
    """Implied variance reverts more slowly than realised: long-dated vols move less than short."""
    return max(0.5 * spec.mean_reversion, 0.25)


def smile_state(
    spec: PathSpec, path: Path, i: int, vol_premium: float, skew: float = 1.0
) -> SmileState:
    """SSVI surface at path day `i` (short vol: `short_implied_vol`); `skew` multiplies the
    ATM skew (`steepen_ssvi`, exact at 30 days), 1.0 = the kind's SSVI_SHAPE."""
    short, long = short_implied_vol(spec, path, i, vol_premium), long_implied_vol(spec, vol_premium)
    kappa = implied_kappa(spec)
    rho, eta, gamma = SSVI_SHAPE.get(spec.kind, SSVI_SHAPE["etf"])
    if skew != 1.0:
        theta_30d = float(atm_total_variance(short, long, kappa, SKEW_REF_YEARS))
        rho, eta, gamma = steepen_ssvi(rho, eta, gamma, skew, theta_30d)
    return SmileState(short_vol=short, long_vol=long, kappa=kappa, rho=rho, eta=eta, gamma=gamma)


def anchor_spot(path: Path, i: int, half_life_days: float = ANCHOR_HALF_LIFE_DAYS) -> float:
    """EWMA of ln spot over the ANCHOR_WINDOW_DAYS closes through day `i` (weights renormalised),
    exponentiated: where a sticky-strike smile is centred. It moves a fraction of a day's spot
    move (≈13% at a 5-day half-life), so the smile mostly stays put in strike space."""
    lo = max(0, i - ANCHOR_WINDOW_DAYS + 1)
    log_spots = np.log(np.asarray(path.spot[lo : i + 1], float))
    weights = 0.5 ** (np.arange(len(log_spots))[::-1] / half_life_days)
    return float(np.exp(np.dot(weights, log_spots) / weights.sum()))
