"""Hagan SABR smiles with sticky-strike dynamics: the implied side of the `sabr_jumps` family.

Each expiry T is a SABR slice (Hagan, Kumar, Lesniewski & Woodward 2002, "Managing smile risk",
the lognormal implied-vol expansion, eq. 2.17a) with backbone exponent β, correlation ρ(T),
vol-of-vol ν(T) and level α(T):

    σ_B(F, K) = α / ((FK)^((1−β)/2) [1 + (1−β)²/24 ℓ² + (1−β)⁴/1920 ℓ⁴]) · z / x(z)
                · [1 + ((1−β)²/24 α²/(FK)^(1−β) + ρβνα/(4 (FK)^((1−β)/2)) + (2−3ρ²)ν²/24) T]
    ℓ = ln(F/K),  z = ν/α (FK)^((1−β)/2) ℓ,  x(z) = ln((√(1 − 2ρz + z²) + z − ρ) / (1 − ρ))

Conventions of `SabrSmileState`:
- **Sticky strike.** F in the formula is the *anchor* forward F_a(T) = anchor · e^{carry·T},
  where `anchor` is a slow EWMA of the spot (`synthetic_path.anchor_spot`) and carry = r − q.
  The vol of a strike therefore does not move when the spot moves with the state held fixed;
  the smile re-centres only as the anchor catches up (and moves with the variance state).
- **Level.** α(T) is solved so that the vol at the anchor forward equals the ATM term structure
  √(θ(T)/T) of `synthetic_path.atm_total_variance` (short vol from variance, realised variance
  and jump variance plus the premium, reverting to a long-run level).
- **Wings.** ν(T) = ν · √(NU_T_REF / max(T, NU_T_MIN)) keeps ν²T (the smile's curvature budget)
  constant beyond a week: short smiles are strongly curved, long ones flat. Jump risk steepens
  short expiries: with jump_share = λ(μ_J² + σ_J²) / (that + short diffusive variance) and
  d(T) = e^{−T/JUMP_HORIZON}, ρ(T) = ρ − JUMP_RHO_LOAD·jump_share·d(T) and
  ν(T) ×(1 + JUMP_NU_LOAD·jump_share·d(T)).
- **Regime.** From a shock on, `skew` makes each slice's ATM skew that many times as steep (to
  leading order): ρ(T)ν(T) is scaled by `rho_nu_factor`, |ρ| taking the square root of it
  (capped at RHO_MAX), ν the rest (`steepen_sabr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.market.synthetic_path import (
    RHO_MAX,
    Path,
    PathSpec,
    anchor_spot,
    atm_total_variance,
    diffusive_short_vol,
    implied_kappa,
    long_implied_vol,
    short_implied_vol,
)

NU_T_REF = 0.25  # ν is the vol-of-vol of the 3-month slice
NU_T_MIN = 7.0 / 365.0  # below a week ν stops growing
JUMP_HORIZON = 0.25  # years over which jump risk steepens the smile (e-folding)
JUMP_RHO_LOAD = 1.0  # ρ(T) falls by this × jump_share at T → 0
JUMP_NU_LOAD = 1.0  # ν(T) rises by this × jump_share at T → 0
SMALL_Z = 1e-7  # below this |z|, z/x(z) ≈ 1 − ρz/2 (the removable singularity at z = 0)


@dataclass(frozen=True)
class SabrShape:
    """The family's base smile shape (from config): backbone β, 3-month ρ and ν."""

    beta: float
    rho: float
    nu: float


def hagan_vol(forward, strike, t, alpha, beta, rho, nu):
    """Hagan's lognormal SABR implied vol (eq. 2.17a), vectorised; arguments broadcast."""
    f, k, t, a, b, r, n = (np.asarray(x, float) for x in (forward, strike, t, alpha, beta, rho, nu))
    omb = 1.0 - b
    fk = f * k
    fk_half = fk ** (0.5 * omb)
    ell = np.log(f / k)
    denom = fk_half * (1.0 + omb**2 / 24.0 * ell**2 + omb**4 / 1920.0 * ell**4)
    z = n / a * fk_half * ell
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log((np.sqrt(1.0 - 2.0 * r * z + z * z) + z - r) / (1.0 - r))
        ratio = np.where(np.abs(z) < SMALL_Z, 1.0 - 0.5 * r * z, z / x)
    correction = (
        1.0
        + (
            omb**2 / 24.0 * a * a / fk**omb
            + r * b * n * a / (4.0 * fk_half)
            + (2.0 - 3.0 * r * r) / 24.0 * n * n
        )
        * t
    )
    return a / denom * ratio * correction


def alpha_for_atm_vol(forward, t, atm_vol, beta, rho, nu, iterations: int = 30):
    """α such that `hagan_vol(F, F, …)` = atm_vol: Newton on the ATM cubic in a = α/F^(1−β),
    c3 a³ + c2 a² + c1 a = σ with c3 = (1−β)²T/24, c2 = ρβνT/4, c1 = 1 + (2−3ρ²)ν²T/24,
    started at a = σ/c1 (exact when β = 1)."""
    f, t, s, b, r, n = (np.asarray(x, float) for x in (forward, t, atm_vol, beta, rho, nu))
    c3 = (1.0 - b) ** 2 * t / 24.0
    c2 = r * b * n * t / 4.0
    c1 = 1.0 + (2.0 - 3.0 * r * r) * n * n * t / 24.0
    a = s / c1
    for _ in range(iterations):
        a = a - (((c3 * a + c2) * a + c1) * a - s) / ((3.0 * c3 * a + 2.0 * c2) * a + c1)
    return a * f ** (1.0 - b)


def steepen_sabr(rho, nu, factor):
    """(ρ', ν') with ρ'ν' = factor × ρν: |ρ| takes √factor (up to RHO_MAX), ν the rest; factor
    ≤ 1 scales ρ alone (a negative factor as 0). Vectorised over ρ, ν and factor."""
    rho, nu, f = np.broadcast_arrays(*(np.asarray(x, float) for x in (rho, nu, factor)))
    up = f > 1.0
    new_abs = np.where(
        up,
        np.minimum(np.abs(rho) * np.sqrt(np.maximum(f, 1.0)), RHO_MAX),
        np.abs(rho) * np.maximum(f, 0.0),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(up & (rho != 0.0), f * np.abs(rho) / new_abs, 1.0)
    return np.sign(rho) * new_abs, nu * scale


def rho_nu_factor(factor: float, beta, atm_vol, rho, nu):
    """Multiplier on ρν that makes the ATM skew `factor` times as steep. To leading order the
    SABR ATM skew is ∂σ/∂ln K = B + R with backbone B = −(1−β)σ_ATM/2 and R = ρν/2 (Hagan et
    al. 2002, eq. 3.1b), and only R scales: g = factor + (factor − 1)·B/R (factor where R = 0)."""
    backbone = -0.5 * (1.0 - np.asarray(beta, float)) * np.asarray(atm_vol, float)
    r = 0.5 * np.asarray(rho, float) * np.asarray(nu, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r != 0.0, factor + (factor - 1.0) * backbone / r, factor)


@dataclass(frozen=True)
class SabrSmileState:
    """The sticky-strike SABR surface of one underlying at one close (module docstring)."""

    short_vol: float  # σ0: instantaneous ATM implied vol (at the anchor)
    long_vol: float  # √L
    kappa: float  # implied mean reversion per year
    anchor: float  # spot the smile is struck around
    carry: float  # r − q: the anchor forward is anchor · e^{carry T}
    beta: float
    rho: float  # 3-month correlation before jump steepening
    nu: float  # 3-month vol-of-vol before jump steepening
    jump_share: float  # share of short-dated variance from jumps
    skew: float = 1.0  # regime multiplier on ρν

    def atm_total_variance(self, t):
        return atm_total_variance(self.short_vol, self.long_vol, self.kappa, t)

    def atm_vol(self, t):
        """Vol at the anchor forward (the smile's reference level; the spot's own ATM vol
        differs from it by the skew times ln(spot/anchor))."""
        t = np.asarray(t, float)
        return np.sqrt(self.atm_total_variance(t) / t)

    def anchor_forward(self, t):
        return self.anchor * np.exp(self.carry * np.asarray(t, float))

    def params(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-maturity SABR parameters (α, β, ρ, ν), each shaped like `t`."""
        t = np.asarray(t, float)
        decay = self.jump_share * np.exp(-t / JUMP_HORIZON)
        rho = np.maximum(self.rho - JUMP_RHO_LOAD * decay, -RHO_MAX)
        nu = self.nu * np.sqrt(NU_T_REF / np.maximum(t, NU_T_MIN)) * (1.0 + JUMP_NU_LOAD * decay)
        beta = np.full(t.shape, self.beta)
        if self.skew != 1.0:
            g = rho_nu_factor(self.skew, beta, self.atm_vol(t), rho, nu)
            rho, nu = steepen_sabr(rho, nu, g)
        alpha = alpha_for_atm_vol(self.anchor_forward(t), t, self.atm_vol(t), beta, rho, nu)
        return alpha, beta, rho, nu

    def strike_vol(self, strike, forward, t):
        """Implied vol of strike K at maturity t. Sticky strike: `forward` (today's) is not
        used; the slice is evaluated at the anchor forward."""
        del forward
        return hagan_vol(self.anchor_forward(t), strike, t, *self.params(t))


def jump_share(spec: PathSpec, path: Path, i: int) -> float:
    """Share of short-dated variance from jumps: λ(μ_J² + σ_J²) over that plus the diffusive
    short variance (0.0 without jumps)."""
    if spec.jump_intensity <= 0.0:
        return 0.0
    diffusive = diffusive_short_vol(path, i)
    jv = spec.jump_variance
    return jv / (jv + diffusive * diffusive)


def sabr_smile_state(
    spec: PathSpec,
    path: Path,
    i: int,
    vol_premium: float,
    carry: float,
    shape: SabrShape,
    skew: float = 1.0,
) -> SabrSmileState:
    """SABR surface at path day `i`, anchored at the EWMA spot, with the day's ATM levels."""
    return SabrSmileState(
        short_vol=short_implied_vol(spec, path, i, vol_premium),
        long_vol=long_implied_vol(spec, vol_premium),
        kappa=implied_kappa(spec),
        anchor=anchor_spot(path, i),
        carry=float(carry),
        beta=float(shape.beta),
        rho=float(shape.rho),
        nu=float(shape.nu),
        jump_share=jump_share(spec, path, i),
        skew=float(skew),
    )
