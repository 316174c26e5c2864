"""Per-expiry implied-vol smiles that are free of butterfly arbitrage and cannot explode.

Model
-----
Each (underlying, expiry) slice is an SSVI slice (Gatheral & Jacquier 2014) in total variance
w = sigma^2 t of the log-moneyness k = ln(K/F):

    w(k) = theta/2 (1 + rho psi k/theta + sqrt((psi k/theta + rho)^2 + 1 - rho^2))
         = (theta + rho psi k + sqrt((psi k + rho theta)^2 + theta^2 (1 - rho^2))) / 2

theta > 0 is the ATM total variance, rho in (-1, 1) the skew, psi = theta phi > 0 the curvature
scale; the wings are linear with slopes psi (1 + rho)/2 (right) and -psi (1 - rho)/2 (left).
The slice has no butterfly arbitrage (Gatheral's density g(k) >= 0, :func:`ssvi_density`) when
psi (1 + |rho|) < 4 and psi^2 (1 + |rho|) <= 4 theta (GJ 2014, Theorem 4.2); the first also keeps
both wing slopes below 2, Roger Lee's moment bound. Both hold by construction: the fit runs over
unconstrained u with theta = exp(u0), rho = 0.999 tanh(u1), psi = psi_max(theta, rho) expit(u2),
psi_max taking |rho| as sqrt(rho^2 + 0.01^2) so that it is smooth at rho = 0 (at most 1% tighter).
The second condition caps the ATM curvature; very curved long-dated smiles (SABR with vol-of-vol
above ~1 at T >= 1) are fitted with the bound active, not matched.

Fit (:func:`fit_smiles`): per slice, least squares in implied vol weighted by `weight`, on the
informative (OTM/ATM) quotes, else on all quotes, else no slice. The slices of a day are solved
together, in a few batches of equal padded width (a slice's own count rounded up to a power of
two, so that a slice's fit never depends on the other slices: `_fit_by_width`), by a
vectorised Levenberg-Marquardt with analytic Jacobians, warm-started from a closed-form guess (a
quadratic in k matched to SSVI's expansion at the money). A slice that does not converge
within _MAX_ITER iterations becomes a flat smile (rho = 0, psi <= 1e-3) at its weighted mean
total variance; parameters are never NaN.

Evaluation (:func:`smile_iv`, :func:`atm_vol_and_skew`), sticky-moneyness: at a slice's expiry,
the slice's vol at k, sqrt(w(k)/t_slice); strictly between two slices, total variance linear in
time to expiry at fixed k, each neighbour's taken as sigma_slice(k)^2 tau, tau = (expiry - quote
date)/365; before the first / after the last slice (or before the first not yet expired), that
slice's vol. Outside a slice's fitted range [k_min, k_max], w continues linearly from the edge
with the edge slope, clipped to [0, 2] on the right and [-2, 0] on the left (never the SSVI
formula out there): vols grow at most like sqrt(2 |k| / t), and never fall outward.

Conventions: vols as decimals (0.2 = 20%), times in years ACT/365, k = ln(K/F).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

SLICE_COLUMNS = ["underlying", "expiry", "t", "theta", "rho", "psi", "k_min", "k_max",
                 "n_quotes", "fit_rmse", "source"]  # fmt: skip
DAYS_PER_YEAR = 365.0
_RHO_MAX = 0.999
_MARGIN = 1.0 - 1e-9  # keeps psi (1+|rho|) < 4 strict and psi^2 (1+|rho|) <= 4 theta in floats
_ABS_EPS = 0.01  # sqrt(rho^2 + eps^2) >= |rho|: psi_max smooth at rho = 0, at most 1% tighter
_LEE_SLOPE = 2.0
_MAX_ITER = 400
_FTOL, _XTOL = 1e-10, 1e-9
_NS_PER_DAY = 86_400e9
_NOT_CONVERGED = "fit did not converge: flat smile at the weighted mean total variance"


def ssvi_total_variance(theta, rho, psi, k):
    """w(k) of an SSVI slice (broadcasting): the second form of the module docstring."""
    r = np.sqrt((psi * k + rho * theta) ** 2 + theta**2 * (1.0 - rho**2))
    return 0.5 * (theta + rho * psi * k + r)


def _ssvi_slope(theta, rho, psi, k):
    r = np.sqrt((psi * k + rho * theta) ** 2 + theta**2 * (1.0 - rho**2))
    return 0.5 * psi * (rho + (psi * k + rho * theta) / r)


def _ssvi_derivatives(theta, rho, psi, k):
    """w, dw/dk, d2w/dk2, and dw/d(theta, rho, psi) stacked on a last axis."""
    w = ssvi_total_variance(theta, rho, psi, k)
    r = np.sqrt((psi * k + rho * theta) ** 2 + theta**2 * (1.0 - rho**2))
    dkk = 0.5 * psi**2 * theta**2 * (1.0 - rho**2) / r**3
    dp = np.stack([0.5 * (1.0 + (rho * psi * k + theta) / r),
                   0.5 * psi * k * (1.0 + theta / r),
                   0.5 * k * (rho + (psi * k + rho * theta) / r)], axis=-1)  # fmt: skip
    return w, _ssvi_slope(theta, rho, psi, k), dkk, dp


def ssvi_density(theta, rho, psi, k):
    """Gatheral's g(k) = (1 - k w'/2w)^2 - w'^2/4 (1/w + 1/4) + w''/2; >= 0 iff no butterfly."""
    w, dk, dkk, _ = _ssvi_derivatives(theta, rho, psi, np.asarray(k, float))
    return (1.0 - k * dk / (2.0 * w)) ** 2 - dk**2 / 4.0 * (1.0 / w + 0.25) + dkk / 2.0


def _psi_max(theta, rho):
    a = 1.0 + np.hypot(rho, _ABS_EPS)
    return _MARGIN * np.minimum(4.0 / a, 2.0 * np.sqrt(theta / a))


def ssvi_from_unconstrained(u):
    """(theta, rho, psi) from any real u[..., 3]; the result always meets the GJ conditions."""
    u = np.asarray(u, float)
    theta = np.exp(np.clip(u[..., 0], -60.0, 60.0))
    rho = _RHO_MAX * np.tanh(u[..., 1])
    psi = _psi_max(theta, rho) * expit(np.clip(u[..., 2], -30.0, 30.0))
    return theta, rho, psi


def _to_unconstrained(theta, rho, psi):
    rho = np.clip(rho, -0.95 * _RHO_MAX, 0.95 * _RHO_MAX)
    frac = np.clip(psi / _psi_max(theta, rho), 1e-6, 0.95)
    return np.stack([np.log(theta), np.arctanh(rho / _RHO_MAX), np.log(frac / (1.0 - frac))], -1)


def _model(u, k, t):
    """Slice vols sigma[s, m] at k[s, m] and d sigma / d u[s, m, 3] (t[s] per slice)."""
    theta, rho, psi = ssvi_from_unconstrained(u)
    s = expit(np.clip(u[:, 2], -30.0, 30.0))
    smooth_abs = np.hypot(rho, _ABS_EPS)
    a = 1.0 + smooth_abs
    sqrt_branch = theta * a < 4.0  # psi_max = 2 sqrt(theta/a), else 4/a
    dpsi_da = np.where(sqrt_branch, -0.5, -1.0) * psi / a
    drho = _RHO_MAX * (1.0 - np.tanh(u[:, 1]) ** 2)
    dpsi_du = np.stack([np.where(sqrt_branch, 0.5 * psi, 0.0),
                        dpsi_da * rho / smooth_abs * drho, psi * (1.0 - s)], -1)  # fmt: skip
    th, rh, ps = theta[:, None], rho[:, None], psi[:, None]
    w, _, _, dw = _ssvi_derivatives(th, rh, ps, k)
    sigma = np.sqrt(w / t[:, None])
    dw_du = np.stack([dw[..., 0] * th + dw[..., 2] * dpsi_du[:, None, 0],
                      dw[..., 1] * drho[:, None] + dw[..., 2] * dpsi_du[:, None, 1],
                      dw[..., 2] * dpsi_du[:, None, 2]], -1)  # fmt: skip
    return sigma, dw_du / (2.0 * sigma * t[:, None])[..., None]


def _initial_guess(k, iv, wt, t):
    """Closed form: weighted quadratic c0 + c1 k + c2 k^2 of w, matched to SSVI's expansion
    theta + rho psi k + psi^2 (1 - rho^2) k^2 / (4 theta) at k = 0."""
    w = iv**2 * t[:, None]
    x = np.stack([np.ones_like(k), k, k * k], -1) * wt[..., None]
    ata = np.einsum("smi,smj->sij", x, np.stack([np.ones_like(k), k, k * k], -1))
    ata += 1e-10 * np.eye(3) * (np.trace(ata, axis1=1, axis2=2)[:, None, None] + 1e-300)
    c = _solve(ata, np.einsum("smi,sm->si", x, w))
    w_mean = (wt * w).sum(1) / wt.sum(1)
    theta = np.where(c[:, 0] > 0.05 * w_mean, c[:, 0], w_mean)
    psi = np.sqrt(4.0 * theta * np.maximum(c[:, 2], 0.0) + c[:, 1] ** 2)
    rho = np.divide(c[:, 1], psi, out=np.zeros_like(psi), where=psi > 0)
    psi = np.maximum(psi, 0.05 * _psi_max(theta, rho))
    return _to_unconstrained(theta, rho, psi)


def _slice_vols(theta, rho, psi, k, t):
    """Vols [s, m] of slices s (parameter arrays) at k[s, m]."""
    w = ssvi_total_variance(theta[:, None], rho[:, None], psi[:, None], k)
    return np.sqrt(w / t[:, None])


def _vols(u, k, t):
    return _slice_vols(*ssvi_from_unconstrained(u), k, t)


def _solve(a, b):
    return np.linalg.solve(a, b[..., None])[..., 0]


def _levenberg_marquardt(u, k, iv, sw, t):
    """Minimise sum (sw (sigma(u) - iv))^2 per slice; returns (u, converged). Nielsen's damping
    update (1999) and geodesic acceleration (Transtrum & Sethna 2012), which keeps fits on
    one-sided or narrow strike ranges, where the parameters trade off along a curved valley,
    from crawling."""
    u, done = u.copy(), np.zeros(len(u), bool)
    lam, nu = np.full(len(u), 1e-3), np.full(len(u), 2.0)
    sigma, jac = _model(u, k, t)
    r, jac = sw * (sigma - iv), jac * sw[..., None]
    cost = 0.5 * (r * r).sum(1)
    for _ in range(_MAX_ITER):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        ja, ra, ua, ka, ta, swa, iva = jac[act], r[act], u[act], k[act], t[act], sw[act], iv[act]
        grad, a = np.einsum("smi,sm->si", ja, ra), np.einsum("smi,smj->sij", ja, ja)
        diag = np.diagonal(a, axis1=1, axis2=2)
        damp = lam[act, None] * (diag + 1e-12 * diag.max(1, keepdims=True) + 1e-300)
        lhs = a + damp[..., None] * np.eye(3)
        step = -_solve(lhs, grad)
        r_h = swa * (_vols(ua + 0.1 * step, ka, ta) - iva)  # second derivative along the step
        curv = 20.0 * ((r_h - ra) / 0.1 - np.einsum("smi,si->sm", ja, step))
        accel = -_solve(lhs, np.einsum("smi,sm->si", ja, curv))
        keep = np.linalg.norm(accel, axis=1) <= 1.5 * np.linalg.norm(step, axis=1)
        step = step + np.where(keep[:, None], 0.5 * accel, 0.0)
        r_new = swa * (_vols(ua + step, ka, ta) - iva)
        c_new = 0.5 * (r_new * r_new).sum(1)
        gain = (cost[act] - c_new) / (0.5 * (step * (damp * step - grad)).sum(1) + 1e-300)
        ok = np.isfinite(c_new) & (c_new < cost[act])
        small_step = np.linalg.norm(step, axis=1) <= _XTOL * (_XTOL + np.linalg.norm(ua, axis=1))
        flat_cost = ok & (cost[act] - c_new <= _FTOL * cost[act])
        done[act] = small_step | flat_cost | (ok & (c_new <= 1e-28))
        acc = act[ok]
        u[acc], r[acc], cost[acc] = ua[ok] + step[ok], r_new[ok], c_new[ok]
        jac[acc] = _model(u[acc], k[acc], t[acc])[1] * sw[acc][..., None]
        shrink = np.maximum(1.0 / 3.0, 1.0 - (2.0 * np.clip(gain, 0.0, 1.0) - 1.0) ** 3)
        lam[act] = np.where(ok, np.maximum(lam[act] * shrink, 1e-12), lam[act] * nu[act])
        nu[act] = np.where(ok, 2.0, nu[act] * 2.0)
    return u, done & np.isfinite(u).all(1)


def _empty_slices() -> pd.DataFrame:
    dtypes = {"underlying": object, "expiry": "datetime64[ns]", "n_quotes": int, "source": object}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, float)) for c in SLICE_COLUMNS})


def _padded_width(counts: np.ndarray) -> np.ndarray:
    """The padded row length of slices of `counts` quotes: the next power of two, at least 8."""
    return np.maximum(8, 2 ** np.ceil(np.log2(np.maximum(counts, 1)))).astype(int)


def _fit_by_width(batch, n, k, iv, wt, t):
    """Slices 0..n-1 (rows `batch`) fitted in groups of equal padded width (`_padded_width` of
    their own quote count): per slice (t, theta, rho, psi, k_min, k_max, count, rmse, ok).

    A slice's arithmetic (row sums over its padded row, the LM steps) then depends on its own
    quotes only, not on which other slices are fitted with it: fitting a subset of a day's
    underlyings (pipeline.feature_shards) gives bit-for-bit the slices of fitting the whole day.
    Padding every slice to the day's longest, as one batch, would not: the row sums' rounding
    depends on the row length. Powers of two also waste less padding than the longest."""
    counts = np.bincount(batch, minlength=n)
    widths = _padded_width(counts)
    out = np.empty((9, n))
    for width in np.unique(widths):
        members = np.flatnonzero(widths == width)
        local = np.full(n, -1)
        local[members] = np.arange(members.size)
        rows = np.flatnonzero(local[batch] >= 0)
        (kk, vv, ww, tt), cnt = _pad(
            local[batch[rows]], members.size, k[rows], iv[rows], wt[rows], t[rows], width=width
        )
        ww /= ww.sum(1, keepdims=True) / cnt[:, None]  # mean weight 1: better conditioned
        ts = tt.sum(1) / cnt
        theta, rho, psi, rmse, ok = _fit_padded(kk, vv, ww, ts)
        masked = np.where(ww > 0, kk, np.nan)
        k_min, k_max = np.nanmin(masked, 1), np.nanmax(masked, 1)
        out[:, members] = (ts, theta, rho, psi, k_min, k_max, cnt, rmse, ok)
    ts, theta, rho, psi, k_min, k_max, cnt, rmse, ok = out
    return ts, theta, rho, psi, k_min, k_max, cnt.astype(int), rmse, ok.astype(bool)


def _pad(batch, n, *columns, width=None):
    """Rows grouped by batch id (0..n-1) into zero-padded [n, width] arrays (width: at least
    the largest count; default that count), and the counts."""
    order = np.argsort(batch, kind="stable")
    b = batch[order]
    counts = np.bincount(b, minlength=n)
    pos = np.arange(b.size) - (np.cumsum(counts) - counts)[b]
    padded = [np.zeros((n, counts.max() if width is None else width)) for _ in columns]
    for out, col in zip(padded, columns, strict=True):
        out[b, pos] = col[order]
    return padded, counts


def _fit_padded(kk, vv, ww, ts):
    """SSVI parameters per padded slice (mean weight 1, zero on padding) and a converged flag;
    a slice that did not converge gets the flat smile at its weighted mean total variance."""
    n = (ww > 0).sum(1)
    u, ok = _levenberg_marquardt(_initial_guess(kk, vv, ww, ts), kk, vv, np.sqrt(ww), ts)
    theta, rho, psi = ssvi_from_unconstrained(u)
    flat = (ww * vv**2).sum(1) * ts / n
    theta, rho = np.where(ok, theta, flat), np.where(ok, rho, 0.0)
    psi = np.where(ok, psi, np.minimum(1e-3, 0.5 * _psi_max(flat, 0.0)))
    rmse = np.sqrt((ww * (_slice_vols(theta, rho, psi, kk, ts) - vv) ** 2).sum(1) / n)
    return theta, rho, psi, rmse, ok


def fit_smiles(frame: pd.DataFrame, min_quotes: int = 5) -> tuple[pd.DataFrame, list[dict]]:
    """One day's SSVI slices from quotes (columns: underlying, expiry, t_years, log_moneyness,
    iv, weight, informative). Rows with non-finite or non-positive iv/t/weight are ignored.
    Returns (slices with SLICE_COLUMNS sorted by underlying and expiry, fallback entries
    {underlying, expiry, reason} for every slice not fitted on its informative quotes)."""
    keys = frame.groupby(["underlying", "expiry"], sort=True)
    group, index = keys.ngroup().to_numpy(), keys.size().index
    k, iv, t, wt = (frame[c].to_numpy(float) for c in ("log_moneyness", "iv", "t_years", "weight"))
    with np.errstate(invalid="ignore"):
        valid = (group >= 0) & np.isfinite(k * iv * t * wt) & (iv > 0) & (t > 0) & (wt > 0)
    inf = valid & frame["informative"].to_numpy(bool)
    n_inf = np.bincount(group[inf], minlength=len(index))
    n_all = np.bincount(group[valid], minlength=len(index))
    use_inf = n_inf >= min_quotes
    use_all = ~use_inf & (n_all >= min_quotes)
    fallbacks = {}
    for g in np.flatnonzero(~use_inf):
        then = f"fitted on all {n_all[g]} quotes" if use_all[g] else "no slice"
        fallbacks[g] = f"{n_inf[g]} informative quotes (< {min_quotes}), {n_all[g]} in all: {then}"
    g0 = np.maximum(group, 0)  # rows without a key are not valid anyway
    sel = np.flatnonzero(valid & use_all[g0] | inf & use_inf[g0])
    fitted = np.flatnonzero(use_inf | use_all)
    rows = []
    if fitted.size:
        batch = np.full(len(index), -1)
        batch[fitted] = np.arange(fitted.size)
        fits = _fit_by_width(batch[group[sel]], fitted.size, k[sel], iv[sel], wt[sel], t[sel])
        ts, theta, rho, psi, k_min, k_max, counts, rmse, ok = fits
        for i, g in enumerate(fitted):
            source = ("informative" if use_inf[g] else "all") if ok[i] else "flat"
            if not ok[i]:
                fallbacks[g] = "; ".join(filter(None, [fallbacks.get(g), _NOT_CONVERGED]))
            params = (ts[i], theta[i], rho[i], psi[i], k_min[i], k_max[i])
            rows.append((*index[g], *params, int(counts[i]), rmse[i], source))
    slices = pd.DataFrame(rows, columns=SLICE_COLUMNS) if rows else _empty_slices()
    reasons = [
        {"underlying": index[g][0], "expiry": index[g][1], "reason": fallbacks[g]}
        for g in sorted(fallbacks)
    ]
    return slices, reasons


def _slice_variance(p, j, k):
    """Total variance and dw/dk of slices j (arrays of p) at k, linear beyond [k_min, k_max]."""
    lo, hi = p["k_min"][j], p["k_max"][j]
    kc = np.clip(k, lo, hi)
    theta, rho, psi = p["theta"][j], p["rho"][j], p["psi"][j]
    w, dk = ssvi_total_variance(theta, rho, psi, kc), _ssvi_slope(theta, rho, psi, kc)
    slope = np.where(k > hi, np.clip(dk, 0.0, _LEE_SLOPE), dk)
    slope = np.where(k < lo, np.clip(dk, -_LEE_SLOPE, 0.0), slope)
    return w + slope * (k - kc), slope


def _ns(values) -> np.ndarray:
    ts = pd.to_datetime(values)
    if isinstance(ts, pd.Timestamp) or ts is pd.NaT:
        return np.asarray(pd.DatetimeIndex([ts]).as_unit("ns").asi8[0])
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def _years(ns):
    return ns / _NS_PER_DAY / DAYS_PER_YEAR


@dataclass(frozen=True)
class UnderlyingSlices:
    """One underlying's slices as arrays sorted by expiry (`expiry` in ns, `params` the float
    columns t, theta, rho, psi, k_min, k_max): built once, evaluated many times."""

    expiry: np.ndarray
    params: dict[str, np.ndarray]


def underlying_slices(sl: pd.DataFrame) -> UnderlyingSlices:
    """One underlying's rows of `fit_smiles`' slices as UnderlyingSlices."""
    sl = sl.sort_values("expiry")
    p = {col: sl[col].to_numpy(float) for col in ("t", "theta", "rho", "psi", "k_min", "k_max")}
    return UnderlyingSlices(_ns(sl["expiry"].to_numpy()), p)


def underlying_variance(u: UnderlyingSlices, e, d, k):
    """Implied variance sigma^2 and its k-derivative at rows (expiry e, quote date d in ns, k)
    from one underlying's slices `u`: arrays only, no pandas."""
    p, ex = u.params, u.expiry
    idx = np.searchsorted(ex, e, side="left")
    hi, lo = np.minimum(idx, len(ex) - 1), np.maximum(idx - 1, 0)
    # at a slice's expiry, before the first or after the last: that slice's vol (hi)
    w, s = _slice_variance(p, hi, k)
    var, dvar = w / p["t"][hi], s / p["t"][hi]
    # strictly between two slices whose earlier one has not expired on the row's quote date:
    # total variance linear in time to expiry at fixed k
    m = np.flatnonzero((idx > 0) & (idx < len(ex)) & (ex[hi] != e) & (ex[lo] > d))
    if m.size:
        j0, j1 = lo[m], hi[m]
        tau0, tau1, tau = (_years(x - d[m]) for x in (ex[j0], ex[j1], e[m]))
        a = (tau - tau0) / (tau1 - tau0)
        f0, f1 = (1.0 - a) * tau0 / (p["t"][j0] * tau), a * tau1 / (p["t"][j1] * tau)
        w0, s0 = _slice_variance(p, j0, k[m])
        var[m], dvar[m] = f0 * w0 + f1 * w[m], f0 * s0 + f1 * s[m]
    return var, dvar


def _evaluate(slices, underlying, expiry, quote_date, k):
    """(iv, d iv/dk) per row: see the module docstring for the rules."""
    und = np.asarray(underlying, dtype=object)
    und, e, d, k = np.broadcast_arrays(und, _ns(expiry), _ns(quote_date), np.asarray(k, float))
    shape, (und, e, d, k) = k.shape, (x.ravel() for x in (und, e, d, k))
    iv, div = np.full(k.size, np.nan), np.full(k.size, np.nan)
    groups = dict(list(slices.groupby("underlying", sort=False)))
    nat = np.iinfo(np.int64).min
    code = np.where((e != nat) & (d != nat), pd.Index(list(groups)).get_indexer(und), -1)
    for c, sl in enumerate(groups.values()):
        rows = np.flatnonzero(code == c)
        if rows.size:
            var, dvar = underlying_variance(underlying_slices(sl), e[rows], d[rows], k[rows])
            iv[rows] = np.sqrt(var)
            div[rows] = dvar / (2.0 * iv[rows])
    return iv.reshape(shape), div.reshape(shape)


def smile_iv(slices: pd.DataFrame, underlying, expiry, quote_date, k) -> np.ndarray:
    """Implied vol per row from the slices of `fit_smiles` (NaN where the underlying has none).
    `underlying`, `expiry`, `quote_date` and `k` broadcast against each other."""
    return _evaluate(slices, underlying, expiry, quote_date, k)[0]


def atm_vol_and_skew(
    slices: pd.DataFrame, underlying, expiry, quote_date
) -> tuple[np.ndarray, np.ndarray]:
    """(ATM vol, d sigma/dk at k = 0) per row, with the interpolation of `smile_iv`."""
    return _evaluate(slices, underlying, expiry, quote_date, 0.0)
