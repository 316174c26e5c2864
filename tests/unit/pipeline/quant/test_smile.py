"""SSVI smiles: formula, arbitrage constraints, fit and fallbacks, evaluation and extrapolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.quant import smile as smile_mod
from pipeline.quant.smile import (
    SLICE_COLUMNS,
    atm_vol_and_skew,
    fit_smiles,
    smile_iv,
    ssvi_density,
    ssvi_from_unconstrained,
    ssvi_total_variance,
)

DAY = np.datetime64("2026-06-01")
GRID = np.linspace(-3.0, 3.0, 1201)


def textbook_w(theta, rho, psi, k):
    """GJ 2014's SSVI slice as written in the paper (the module expands it differently)."""
    x = psi * k / theta
    return theta / 2.0 * (1.0 + rho * x + np.sqrt((x + rho) ** 2 + 1.0 - rho**2))


def sabr_iv(k, t, alpha, rho, nu):
    """Hagan's lognormal SABR vol (beta = 1): a smooth smile that is not an SSVI slice."""
    z = -(nu / alpha) * k
    xz = np.log((np.sqrt(1.0 - 2.0 * rho * z + z * z) + z - rho) / (1.0 - rho))
    ratio = np.where(np.abs(z) < 1e-9, 1.0, z / np.where(np.abs(z) < 1e-9, 1.0, xz))
    return (
        alpha * ratio * (1.0 + (rho * nu * alpha / 4.0 + (2.0 - 3.0 * rho**2) * nu**2 / 24.0) * t)
    )


def quotes(underlying, days, k, iv, weight=None, informative=None):
    k = np.asarray(k, float)
    return pd.DataFrame({
        "underlying": underlying,
        "expiry": DAY + np.timedelta64(days, "D"),
        "t_years": days / 365.0,
        "log_moneyness": k,
        "iv": iv,
        "weight": np.ones_like(k) if weight is None else weight,
        "informative": np.ones(k.size, bool) if informative is None else informative,
    })  # fmt: skip


def ssvi_quotes(underlying, days, theta, rho, psi, n=60, sd=(-3.0, 2.0), noise=0.0, seed=0):
    t = days / 365.0
    k = np.linspace(*sd, n) * np.sqrt(theta)
    iv = np.sqrt(textbook_w(theta, rho, psi, k) / t)
    iv = iv + np.random.default_rng(seed).normal(0.0, noise, n)
    return quotes(underlying, days, k, iv)


def assert_gj(sl):
    th, rh, ps = sl["theta"].to_numpy(), sl["rho"].to_numpy(), sl["psi"].to_numpy()
    assert np.all(th > 0) and np.all(np.abs(rh) < 1) and np.all(ps > 0)
    assert np.all(ps * (1 + np.abs(rh)) < 4)
    assert np.all(ps**2 * (1 + np.abs(rh)) <= 4 * th * (1 + 1e-12))
    assert np.all(ps * (1 + np.abs(rh)) / 2 <= 2)  # both wing slopes psi (1 +- rho)/2
    for a, b, c in zip(th, rh, ps, strict=True):
        assert ssvi_density(a, b, c, GRID).min() >= -1e-12


# --- the slice ------------------------------------------------------------------------------


def test_total_variance_is_gj_formula_and_has_linear_wings():
    theta, rho, psi = 0.02, -0.7, 0.15
    np.testing.assert_allclose(
        ssvi_total_variance(theta, rho, psi, GRID), textbook_w(theta, rho, psi, GRID), rtol=1e-12
    )
    assert ssvi_total_variance(theta, rho, psi, 0.0) == pytest.approx(theta)
    k = np.array([1e4, 2e4, -1e4, -2e4])
    w = ssvi_total_variance(theta, rho, psi, k)
    assert (w[1] - w[0]) / 1e4 == pytest.approx(psi * (1 + rho) / 2, rel=1e-6)
    assert (w[3] - w[2]) / -1e4 == pytest.approx(-psi * (1 - rho) / 2, rel=1e-6)


def test_density_is_negative_for_a_slice_breaking_the_conditions():
    # psi^2 (1 + |rho|) = 0.72 > 4 theta = 0.08: butterfly arbitrage the density must show
    assert ssvi_density(0.02, -0.5, 0.7, GRID).min() < 0
    assert ssvi_density(0.02, -0.5, 0.15, GRID).min() > 0


def test_any_unconstrained_point_is_arbitrage_free():
    u = np.random.default_rng(1).normal(0.0, 8.0, (2000, 3))
    theta, rho, psi = ssvi_from_unconstrained(u)
    assert_gj(pd.DataFrame({"theta": theta, "rho": rho, "psi": psi}).iloc[::20])
    assert np.all(psi * (1 + np.abs(rho)) < 4)
    assert np.all(psi**2 * (1 + np.abs(rho)) <= 4 * theta * (1 + 1e-12))


def test_model_jacobian_matches_finite_differences():
    u = np.array([[np.log(0.03), -0.8, 0.4], [np.log(2.0), 0.3, 1.5], [np.log(0.01), 0.5, -1.0]])
    k = np.tile(np.linspace(-0.6, 0.4, 7), (3, 1))
    t = np.array([0.1, 1.5, 0.05])
    _, jac = smile_mod._model(u, k, t)
    for i in range(3):
        h = np.zeros(3)
        h[i] = 1e-6
        fd = (smile_mod._model(u + h, k, t)[0] - smile_mod._model(u - h, k, t)[0]) / 2e-6
        np.testing.assert_allclose(jac[..., i], fd, rtol=1e-5, atol=1e-9)


# --- fit ------------------------------------------------------------------------------------

TRUTH = [("AAA", 30, 0.006, -0.7, 0.10), ("AAA", 120, 0.02, -0.6, 0.2),
         ("AAA", 400, 0.09, -0.4, 0.35), ("BBB", 60, 0.015, -0.2, 0.15)]  # fmt: skip


def test_recovers_known_parameters_from_noiseless_quotes():
    frame = pd.concat([ssvi_quotes(u, d, *p, n=40 + 10 * i) for i, (u, d, *p) in enumerate(TRUTH)])
    slices, fallbacks = fit_smiles(frame)
    assert fallbacks == [] and list(slices.columns) == SLICE_COLUMNS
    assert list(zip(slices["underlying"], slices["t"] * 365, strict=True)) == [
        (u, pytest.approx(d)) for u, d, *_ in TRUTH
    ]
    np.testing.assert_allclose(
        slices[["theta", "rho", "psi"]], [x[2:] for x in TRUTH], rtol=1e-6, atol=1e-8
    )
    assert slices["fit_rmse"].max() < 1e-8
    assert (slices["source"] == "informative").all()
    assert slices["n_quotes"].tolist() == [40, 50, 60, 70]


def test_recovers_known_parameters_from_noisy_quotes():
    frame = pd.concat([ssvi_quotes(u, d, *p, n=80, noise=0.003, seed=i)
                       for i, (u, d, *p) in enumerate(TRUTH)])  # fmt: skip
    slices, _ = fit_smiles(frame)
    truth = np.array([x[2:] for x in TRUTH])
    np.testing.assert_allclose(slices["theta"], truth[:, 0], rtol=0.03)
    np.testing.assert_allclose(slices["rho"], truth[:, 1], atol=0.08)
    np.testing.assert_allclose(slices["psi"], truth[:, 2], rtol=0.12)
    np.testing.assert_allclose(slices["fit_rmse"], 0.003, rtol=0.3)  # the noise, not misfit


def test_fits_a_non_ssvi_smile_closely():
    frames, truth = [], []
    for i, (days, alpha, rho, nu) in enumerate(
        [(14, 0.2, -0.7, 0.8), (45, 0.25, -0.5, 0.7), (180, 0.22, -0.6, 0.5), (365, 0.3, -0.3, 0.4)]
    ):
        t = days / 365
        k = np.linspace(-2.5, 1.5, 60) * alpha * np.sqrt(t)
        truth.append(sabr_iv(k, t, alpha, rho, nu))
        frames.append(quotes(f"S{i}", days, k, truth[-1]))
    slices, _ = fit_smiles(pd.concat(frames))
    assert slices["fit_rmse"].max() < 0.001  # measured: 0.00002 to 0.0004 vol
    assert_gj(slices)


def test_a_full_day_of_noisy_quotes_converges_everywhere():
    # 8 underlyings x 20 expiries x 40-90 quotes, ~60% of them informative (OTM/ATM)
    rng = np.random.default_rng(3)
    frames = []
    for u in range(8):
        alpha, rho = rng.uniform(0.15, 0.4), rng.uniform(-0.8, -0.2)
        for j in range(20):
            days = 7 + 35 * j
            t, n = days / 365, int(rng.integers(40, 91))
            k = np.sort(rng.uniform(-2.5, 1.5, n)) * alpha * np.sqrt(t)
            spread = 0.002 + 0.004 * np.abs(k) / (alpha * np.sqrt(t))
            iv = sabr_iv(k, t, alpha, rho, 0.3 / max(t, 0.05) ** 0.5) + rng.normal(0, spread / 4)
            frames.append(quotes(f"U{u}", days, k, iv, 1 / spread, rng.random(n) < 0.6))
    slices, fallbacks = fit_smiles(pd.concat(frames))
    assert len(slices) == 160 and fallbacks == [] and (slices["source"] == "informative").all()
    assert slices["fit_rmse"].max() < 0.003  # the quotes' noise is spread/4, 0.0005 to 0.003
    assert_gj(slices)


def test_every_fitted_slice_is_arbitrage_free_even_where_the_data_are_not():
    rng = np.random.default_rng(7)
    frames = []
    for i in range(12):
        days, alpha = int(rng.integers(7, 700)), rng.uniform(0.1, 0.6)
        k = np.sort(rng.uniform(-3, 2, 50)) * alpha * np.sqrt(days / 365)
        iv = sabr_iv(k, days / 365, alpha, rng.uniform(-0.9, 0.3), rng.uniform(0.3, 2.0))
        frames.append(quotes(f"U{i % 3}", days, k, iv * (1 + rng.normal(0, 0.02, 50))))
    # wings steeper than Lee allows (slope 3 in total variance) and a smile concave in k
    k = np.linspace(-1.0, 1.0, 41)
    frames.append(quotes("STEEP", 90, k, np.sqrt((0.01 + 3.0 * np.abs(k)) / (90 / 365))))
    frames.append(quotes("CONCAVE", 90, k, 0.3 - 0.1 * k**2))
    slices, _ = fit_smiles(pd.concat(frames))
    assert len(slices) == 14 and slices[["theta", "rho", "psi"]].notna().all().all()
    assert_gj(slices)
    steep = slices[slices["underlying"] == "STEEP"].iloc[0]
    # pressed against psi^2 (1 + |rho|) <= 4 theta, not beyond; wings well below the data's 3
    assert steep["psi"] ** 2 * (1 + abs(steep["rho"])) > 0.97 * 4 * steep["theta"]


def test_too_few_informative_quotes_falls_back_to_all():
    frame = ssvi_quotes("AAA", 60, 0.015, -0.5, 0.15, n=30)
    frame["informative"] = np.arange(30) < 4
    slices, fallbacks = fit_smiles(frame, min_quotes=5)
    assert slices["source"].tolist() == ["all"] and slices["n_quotes"].tolist() == [30]
    assert slices["theta"].iloc[0] == pytest.approx(0.015, rel=1e-6)
    assert fallbacks == [
        {
            "underlying": "AAA",
            "expiry": pd.Timestamp(DAY + 60),
            "reason": "4 informative quotes (< 5), 30 in all: fitted on all 30 quotes",
        }
    ]


def test_itm_quotes_and_outlier_weights_do_not_move_the_fit():
    frame = ssvi_quotes("AAA", 60, 0.015, -0.5, 0.15, n=30)
    itm = frame.assign(iv=frame["iv"] + 0.05, informative=False)  # biased high, as ITM mids are
    outliers = frame.iloc[::5].assign(iv=0.9, weight=1e-9)  # wild but (almost) weightless
    slices, fallbacks = fit_smiles(pd.concat([frame, itm, outliers]))
    assert fallbacks == [] and slices["n_quotes"].tolist() == [36]
    np.testing.assert_allclose(slices[["theta", "rho", "psi"]], [[0.015, -0.5, 0.15]], rtol=1e-4)


def test_exactly_min_quotes_informative_quotes_are_enough():
    frame = ssvi_quotes("AAA", 60, 0.015, -0.5, 0.15, n=30)
    frame["informative"] = np.arange(30) % 6 == 0
    slices, fallbacks = fit_smiles(frame, min_quotes=5)
    assert slices["source"].tolist() == ["informative"] and slices["n_quotes"].tolist() == [5]
    assert fallbacks == []


def test_all_itm_market_falls_back_and_is_named():
    good = ssvi_quotes("AAA", 60, 0.015, -0.5, 0.15)
    itm = ssvi_quotes("ITM", 90, 0.02, -0.5, 0.15).assign(informative=False)
    slices, fallbacks = fit_smiles(pd.concat([good, itm]))
    assert slices["source"].tolist() == ["informative", "all"]
    assert [(f["underlying"], f["expiry"]) for f in fallbacks] == [("ITM", pd.Timestamp(DAY + 90))]
    assert fallbacks[0]["reason"].startswith("0 informative quotes")


def test_too_few_quotes_gives_no_slice_and_a_fallback():
    few = ssvi_quotes("AAA", 60, 0.015, -0.5, 0.15, n=4)
    bad = ssvi_quotes("AAA", 90, 0.015, -0.5, 0.15, n=8)
    bad.loc[bad.index[:4], "iv"] = np.nan  # unusable rows do not count
    bad.loc[bad.index[4], "weight"] = 0.0
    slices, fallbacks = fit_smiles(pd.concat([few, bad]))
    assert slices.empty and list(slices.columns) == SLICE_COLUMNS
    assert [f["reason"] for f in fallbacks] == [
        "4 informative quotes (< 5), 4 in all: no slice",
        "3 informative quotes (< 5), 3 in all: no slice",
    ]
    assert np.isnan(smile_iv(slices, ["AAA"], [DAY + 60], DAY, [0.0])).all()


def test_a_fit_that_does_not_converge_becomes_a_flat_smile(monkeypatch):
    monkeypatch.setattr(smile_mod, "_MAX_ITER", 0)
    frame = ssvi_quotes("AAA", 73, 0.02, -0.6, 0.2)
    frame["weight"] = np.linspace(1.0, 3.0, len(frame))
    slices, fallbacks = fit_smiles(frame)
    row = slices.iloc[0]
    w_mean = np.average(frame["iv"] ** 2 * 0.2, weights=frame["weight"])
    assert row["source"] == "flat" and row["rho"] == 0.0 and 0 < row["psi"] <= 1e-3
    assert row["theta"] == pytest.approx(w_mean, rel=1e-12)
    assert np.isfinite(row[["theta", "rho", "psi", "fit_rmse"]].astype(float)).all()
    assert fallbacks[0]["reason"].startswith("fit did not converge")


def test_fit_is_deterministic_and_independent_of_row_order():
    frame = pd.concat(
        [ssvi_quotes(u, d, *p, noise=0.003, seed=i) for i, (u, d, *p) in enumerate(TRUTH)]
    )
    a, fa = fit_smiles(frame)
    b, fb = fit_smiles(frame)
    pd.testing.assert_frame_equal(a, b)
    assert fa == fb
    shuffled, _ = fit_smiles(frame.sample(frac=1.0, random_state=3))
    pd.testing.assert_frame_equal(a, shuffled, rtol=1e-8)


def test_a_slices_fit_does_not_depend_on_the_other_slices_bit_for_bit():
    # slices of 9 to 300 noisy quotes: fitted alone, or with any others, the same floats (what
    # feature_engineer by shards of underlyings relies on: pipeline.feature_shards)
    frames = [
        ssvi_quotes(f"U{i}", days, 0.04 * days / 365, -0.6, 0.3, n=n, noise=0.004, seed=i)
        for i, (days, n) in enumerate([(20, 9), (45, 31), (90, 70), (180, 130), (365, 300)])
    ]
    together, _ = fit_smiles(pd.concat(frames))
    for i, frame in enumerate(frames):
        alone, _ = fit_smiles(frame)
        pd.testing.assert_frame_equal(alone, together.iloc[[i]].reset_index(drop=True),
                                      check_exact=True)  # fmt: skip
    pair, _ = fit_smiles(pd.concat([frames[0], frames[4]]))
    pd.testing.assert_frame_equal(pair, together.iloc[[0, 4]].reset_index(drop=True),
                                  check_exact=True)  # fmt: skip


# --- evaluation -----------------------------------------------------------------------------


def fitted(theta=0.01, rho=-0.7, psi=0.12, days=30, x_range=(-1.2, 0.6)):
    """Yesterday's slice fitted on k/sqrt(T) in x_range, from an index-like SSVI smile."""
    t = days / 365
    k = np.linspace(*x_range, 40) * np.sqrt(t)
    slices, _ = fit_smiles(quotes("SPX", days, k, np.sqrt(textbook_w(theta, rho, psi, k) / t)))
    return slices


def test_shock_day_strikes_beyond_the_fitted_range_stay_bounded_and_linear():
    slices = fitted()
    row = slices.iloc[0]
    t, lo, hi = row["t"], row["k_min"], row["k_max"]
    assert lo == pytest.approx(-1.2 * np.sqrt(t)) and hi == pytest.approx(0.6 * np.sqrt(t))
    today, expiry = DAY + 1, DAY + 30  # sticky-moneyness: the slice's vol at today's k
    k = np.linspace(2 * lo, 2 * hi, 2001)  # twice yesterday's range on both sides
    iv = smile_iv(slices, np.full(k.size, "SPX"), expiry, today, k)
    assert np.isfinite(iv).all() and (iv > 0).all()
    edge = smile_iv(slices, ["SPX"] * 2, expiry, today, [lo, hi])
    assert iv[0] < 2 * edge[0] and iv[-1] < 2 * edge[1]
    x22 = smile_iv(slices, ["SPX"], expiry, today, [-2.2 * np.sqrt(t)])[0]
    assert edge[0] < x22 < 1.5 * edge[0]
    w = iv**2 * t
    for side in (k < lo - 1e-9, k > hi + 1e-9):
        assert np.abs(np.diff(w[side], 2)).max() < 1e-14  # linear in total variance
        slope = np.diff(w[side]) / np.diff(k[side])
        assert np.all(np.abs(slope) <= 2.0)
    assert np.all(np.diff(w[k < lo]) <= 0) and np.all(np.diff(w[k > hi]) >= 0)
    # continuous at the edge, and below the SSVI formula (tangent of a convex function)
    near = smile_iv(slices, ["SPX"] * 2, expiry, today, [lo - 1e-7, lo + 1e-7])
    assert near[0] == pytest.approx(near[1], rel=1e-6)
    ssvi = ssvi_total_variance(row["theta"], row["rho"], row["psi"], k)
    assert np.all(w <= ssvi * (1 + 1e-12))


def test_wing_slope_is_made_outward_non_decreasing():
    # fitted on puts only, far left of the smile's minimum: the edge slope at k_max is negative
    slices = fitted(x_range=(-3.0, -1.0))
    row = slices.iloc[0]
    k = row["k_max"] + np.array([0.0, 0.1, 0.5, 1.0])
    iv = smile_iv(slices, ["SPX"] * 4, DAY + 30, DAY, k)
    np.testing.assert_allclose(iv, iv[0], rtol=1e-12)  # flat, never decreasing outward


def test_wings_of_any_slice_table_respect_lee_even_if_the_slice_does_not():
    # hand-made slices breaking GJ: one wing steeper than 2 at the edge |k| = 3, capped there
    theta, rho, psi = 4.0, 0.5, 3.6
    bad = pd.DataFrame(
        {
            "underlying": ["X", "Y"],
            "expiry": pd.Timestamp(DAY + 365),
            "t": 1.0,
            "theta": theta,
            "rho": [rho, -rho],
            "psi": psi,
            "k_min": -3.0,
            "k_max": 3.0,
        }
    )
    w_edge = ssvi_total_variance(theta, rho, psi, np.array([3.0, 3.0 + 1e-6, -3.0, -3.0 - 1e-6]))
    steep, gentle = (w_edge[1] - w_edge[0]) / 1e-6, (w_edge[3] - w_edge[2]) / -1e-6
    assert steep > 2.4 and -2 < gentle < 0
    k = np.array([4.0, 8.0, -4.0, -8.0])
    wx, wy = (smile_iv(bad, [u] * 4, DAY + 365, DAY, k) ** 2 for u in ("X", "Y"))
    assert (wx[1] - wx[0]) / 4.0 == pytest.approx(2.0, rel=1e-12)  # capped
    assert (wx[3] - wx[2]) / -4.0 == pytest.approx(gentle, rel=1e-6)  # the edge's own slope
    assert (wy[3] - wy[2]) / -4.0 == pytest.approx(-2.0, rel=1e-12)  # the mirror image
    assert (wy[1] - wy[0]) / 4.0 == pytest.approx(-gentle, rel=1e-6)


def two_slices():
    a = ssvi_quotes("AAA", 30, 0.006, -0.7, 0.10)
    b = ssvi_quotes("AAA", 120, 0.03, -0.5, 0.2)
    return fit_smiles(pd.concat([a, b]))[0]


def test_interpolation_between_expiries_is_linear_in_total_variance():
    slices = two_slices()
    today = DAY + 2
    k = np.linspace(-0.8, 0.6, 15)  # inside and beyond both fitted ranges
    s1, s2 = (smile_iv(slices, ["AAA"] * k.size, DAY + d, DAY, k) for d in (30, 120))
    tau1, tau2 = 28 / 365, 118 / 365
    for days in (31, 50, 90, 119):
        tau = (days - 2) / 365
        iv = smile_iv(slices, ["AAA"] * k.size, DAY + days, today, k)
        a = (tau - tau1) / (tau2 - tau1)
        np.testing.assert_allclose(
            iv**2 * tau, (1 - a) * s1**2 * tau1 + a * s2**2 * tau2, rtol=1e-12
        )
    # at a slice's own expiry, any quote date: the slice's vol (sticky moneyness)
    np.testing.assert_array_equal(smile_iv(slices, ["AAA"] * k.size, DAY + 30, today, k), s1)
    near = smile_iv(slices, ["AAA"] * k.size, np.datetime64("2026-07-01T00:01"), today, k)
    np.testing.assert_allclose(near, s1, rtol=1e-4)
    # flat in time outside the slices, and past the first slice's expiry the next one alone
    np.testing.assert_array_equal(smile_iv(slices, ["AAA"] * k.size, DAY + 10, today, k), s1)
    np.testing.assert_array_equal(smile_iv(slices, ["AAA"] * k.size, DAY + 900, today, k), s2)
    np.testing.assert_array_equal(smile_iv(slices, ["AAA"] * k.size, DAY + 60, DAY + 40, k), s2)


def test_unknown_underlying_or_missing_dates_give_nan_and_rows_are_independent():
    slices = two_slices()
    und = np.array(["AAA", "ZZZ", "AAA", "AAA"], dtype=object)
    exp = pd.to_datetime([DAY + 30, DAY + 30, pd.NaT, DAY + 60]).to_numpy()
    iv = smile_iv(slices, und, exp, DAY, np.zeros(4))
    assert np.isfinite(iv[[0, 3]]).all() and np.isnan(iv[[1, 2]]).all()
    alone = [smile_iv(slices, und[i : i + 1], exp[i : i + 1], DAY, [0.0])[0] for i in (0, 3)]
    np.testing.assert_array_equal(iv[[0, 3]], alone)
    assert np.isnan(smile_iv(fit_smiles(quotes("A", 9, [], []))[0], ["A"], DAY + 9, DAY, 0.0))


def test_atm_vol_and_skew_match_the_smile():
    slices = two_slices()
    und, exp = ["AAA"] * 3, [DAY + 30, DAY + 75, DAY + 200]
    atm, skew = atm_vol_and_skew(slices, und, exp, DAY)
    np.testing.assert_array_equal(atm, smile_iv(slices, und, exp, DAY, 0.0))
    h = 1e-6
    fd = (smile_iv(slices, und, exp, DAY, h) - smile_iv(slices, und, exp, DAY, -h)) / (2 * h)
    np.testing.assert_allclose(skew, fd, rtol=1e-6)
    assert atm[0] == pytest.approx(np.sqrt(0.006 / (30 / 365)), rel=1e-6) and (skew < 0).all()
