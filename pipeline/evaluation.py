"""Holdout scoring of IV predictors: metrics, buckets, bootstrap CIs over dates, baselines (pure).

A predictor is a DataFrame with `iv` and `price` columns, one row per holdout contract (positional).
The holdout is a feature table (see feature_engineer): quote_date, iv (target), mid, bid, ask,
forward, discount, strike, t_years, is_call, std_moneyness, rv_20d, prev_iv, prev_surface_iv, ...

Units: IVs are decimals (0.012 = 1.2 vol points); prices in the underlying's currency; MAPE and
shares are fractions. Every predictor is scored on the same rows (those where all predictors and
the target are finite); `coverage` says which share of the holdout each predictor could price.

Buckets (right-closed): std_moneyness = ln(K/F)/√T in (-inf,-0.5], (-0.5,-0.1], (-0.1,0.1],
(0.1,0.5], (0.5,inf) (low strikes first: OTM puts on the left) × t_years in (0,1m], (1m,3m],
(3m,1y], (1y,inf) with 1m = 1/12 year.

Every figure is computed from per-group sums (`group_stats`: counts, sums of errors, squared and
absolute errors, means and squared deviations of the actuals, ...): a set of rows made of whole
groups, each counted some number of times, scores exactly as re-scoring those rows would. So the
whole holdout, one bucket, or one bootstrap resample of dates (a few dates drawn with replacement)
is a weighted sum over ~10 dates, not a pass over the holdout's rows (`metrics_from_stats`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from pipeline.market_state import ATM_BAND, MONEYNESS_CLASSES, moneyness_class
from pipeline.quant.black_scholes import black_price
from pipeline.quant.checks import run_checks

# k/√T ≈ (standard deviations from the forward) × σ: with σ ≈ 20%, ±0.1 is ±0.5 sd, ±0.5 is ±2.5 sd
MONEYNESS_EDGES = (-np.inf, -0.5, -0.1, 0.1, 0.5, np.inf)
MONEYNESS_LABELS = ("(-inf,-0.5]", "(-0.5,-0.1]", "(-0.1,0.1]", "(0.1,0.5]", "(0.5,inf)")
MATURITY_EDGES = (-np.inf, 1 / 12, 0.25, 1.0, np.inf)
MATURITY_LABELS = ("<=1m", "1m-3m", "3m-1y", ">1y")
BASELINES = ("baseline_hist_vol", "baseline_prev_iv")
METRIC_KEYS = ("n", "iv_rmse", "iv_mae", "iv_bias", "iv_r2", "price_rmse", "price_mae",
               "price_mape", "price_r2", "inside_spread_share")  # fmt: skip
IV_FLOOR, IV_CAP = 0.01, 5.0  # a baseline vol outside this range is an artefact, not a forecast


def group_stats(
    actual_iv, pred_iv, actual_price, pred_price, bid, ask, min_mid: float,
    groups=None, n_groups: int = 1,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per group, the sums regression_metrics' figures are functions of (arrays of n_groups).

    `groups` gives each row's group code in 0..n_groups-1 (None: one group; a negative code
    leaves the row out). Keys: n; iv_sse, iv_sae, iv_se (sums of squared, absolute and signed
    errors pred − actual); iv_mean, iv_m2 (mean of the actuals and the sum of squared deviations
    from it, two-pass); the same for price (px_*); mape_sum, mape_n (|error| / mid and count on
    mids ≥ min_mid); inside (count of bid ≤ pred price ≤ ask)."""
    cols = [np.asarray(x, float) for x in (actual_iv, pred_iv, actual_price, pred_price, bid, ask)]
    codes = np.zeros(len(cols[0]), np.intp) if groups is None else np.asarray(groups, np.intp)
    keep = codes >= 0
    if not keep.all():
        codes, cols = codes[keep], [c[keep] for c in cols]
    a_iv, p_iv, a_px, p_px, b, a = cols

    def total(values=None) -> np.ndarray:
        return np.bincount(codes, weights=values, minlength=n_groups).astype(float)

    n = total()
    out = {"n": n}
    for kind, actual, pred in (("iv", a_iv, p_iv), ("px", a_px, p_px)):
        err = pred - actual
        mean = np.divide(total(actual), n, out=np.zeros(n_groups), where=n > 0)
        out |= {f"{kind}_sse": total(err**2), f"{kind}_sae": total(np.abs(err)),
                f"{kind}_se": total(err), f"{kind}_mean": mean,
                f"{kind}_m2": total((actual - mean[codes]) ** 2)}  # fmt: skip
    big = a_px >= min_mid
    out["mape_sum"] = np.bincount(codes[big], np.abs(p_px - a_px)[big] / a_px[big], n_groups)
    out["mape_n"] = np.bincount(codes[big], minlength=n_groups).astype(float)
    out["inside"] = total(((p_px >= b) & (p_px <= a)).astype(float))
    return out


def metrics_from_stats(stats: dict[str, np.ndarray], weights) -> dict[str, np.ndarray]:
    """regression_metrics' figures of the rows made of each group counted `weights` times.

    `weights` has shape (..., n_groups) (ones: every row once; a row of bootstrap counts: one
    resample; an identity matrix: each group alone); each figure has shape weights.shape[:-1].
    Empty selections give NaN (n = 0); R² is NaN without variance in the actuals."""
    w = np.asarray(weights, float)
    n = w @ stats["n"]
    with np.errstate(divide="ignore", invalid="ignore"):

        def per_row(key: str) -> np.ndarray:
            return np.where(n > 0, (w @ stats[key]) / n, np.nan)

        def r2(kind: str) -> np.ndarray:
            wn, mean_g = w * stats["n"], stats[f"{kind}_mean"]
            mean = (wn @ mean_g) / n
            # within-group deviations + between-group spread around the combined mean
            sst = w @ stats[f"{kind}_m2"] + (wn * (mean_g - mean[..., None]) ** 2).sum(-1)
            return np.where(sst > 0, 1.0 - (w @ stats[f"{kind}_sse"]) / sst, np.nan)

        mape_n = w @ stats["mape_n"]
        return {
            "n": n,
            "iv_rmse": np.sqrt(per_row("iv_sse")),
            "iv_mae": per_row("iv_sae"),
            "iv_bias": per_row("iv_se"),
            "iv_r2": r2("iv"),
            "price_rmse": np.sqrt(per_row("px_sse")),
            "price_mae": per_row("px_sae"),
            "price_mape": np.where(mape_n > 0, (w @ stats["mape_sum"]) / mape_n, np.nan),
            "price_r2": r2("px"),
            "inside_spread_share": per_row("inside"),
        }


def regression_metrics(
    actual_iv, pred_iv, actual_price, pred_price, bid, ask, min_mid: float
) -> dict[str, float]:
    """IV and price errors of one predictor on finite rows (actual_price = the quoted mid).

    Returns n, iv_rmse, iv_mae, iv_bias (mean pred − actual), iv_r2, price_rmse, price_mae,
    price_mape (on mid ≥ min_mid; NaN if none), price_r2, inside_spread_share (bid ≤ pred ≤ ask)."""
    stats = group_stats(actual_iv, pred_iv, actual_price, pred_price, bid, ask, min_mid)
    return {k: float(v) for k, v in metrics_from_stats(stats, np.ones(1)).items()}


def _frame_stats(frame: pd.DataFrame, iv, price, min_mid: float, groups=None, n_groups: int = 1):
    """group_stats of one predictor (iv, price) against the frame's iv, mid, bid and ask."""
    return group_stats(frame["iv"], iv, frame["mid"], price, frame["bid"], frame["ask"], min_mid,
                       groups, n_groups)  # fmt: skip


def bucket_codes(frame: pd.DataFrame) -> np.ndarray:
    """Each row's moneyness × maturity bucket as moneyness_index × 4 + maturity_index (-1 where
    std_moneyness or t_years is missing)."""
    m = pd.cut(frame["std_moneyness"], MONEYNESS_EDGES, labels=False, right=True).to_numpy()
    t = pd.cut(frame["t_years"], MATURITY_EDGES, labels=False, right=True).to_numpy()
    codes = m * len(MATURITY_LABELS) + t
    return np.where(np.isfinite(codes), codes, -1).astype(np.intp)


N_BUCKETS = len(MONEYNESS_LABELS) * len(MATURITY_LABELS)


def _bucket_rows(stats: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row of metrics per non-empty bucket (moneyness, maturity, then METRIC_KEYS)."""
    per_bucket = metrics_from_stats(stats, np.eye(N_BUCKETS))
    rows = pd.DataFrame({
        "moneyness": np.repeat(MONEYNESS_LABELS, len(MATURITY_LABELS)),
        "maturity": np.tile(MATURITY_LABELS, len(MONEYNESS_LABELS)),
        **{k: per_bucket[k] for k in METRIC_KEYS},
    })  # fmt: skip
    return rows[rows["n"] > 0].reset_index(drop=True)


def bucket_table(frame: pd.DataFrame, preds: pd.DataFrame, min_mid: float = 0.10) -> pd.DataFrame:
    """Metrics per moneyness × maturity bucket (non-empty buckets only) for one predictor.

    `preds` (iv, price) is aligned with `frame` by position; rows with a non-finite prediction
    or target are left out. Columns: moneyness, maturity, then regression_metrics' keys."""
    f = frame.reset_index(drop=True)
    iv, price = np.asarray(preds["iv"], float), np.asarray(preds["price"], float)
    finite = np.isfinite(f[["iv", "mid"]].to_numpy(float)).all(axis=1)
    finite &= np.isfinite(iv) & np.isfinite(price)
    codes = np.where(finite, bucket_codes(f), -1)
    return _bucket_rows(_frame_stats(f, iv, price, min_mid, codes, N_BUCKETS))


def _bootstrap_picks(n_groups: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """`n` resamples of n_groups group indices drawn with replacement (same seed, same draws)."""
    rng = np.random.default_rng(seed)
    for _ in range(n if n_groups else 0):
        yield rng.integers(0, n_groups, n_groups)


def bootstrap_counts(n_groups: int, n: int, seed: int) -> np.ndarray:
    """(n, n_groups): how many times each group is drawn in each resample (_bootstrap_picks)."""
    picks = list(_bootstrap_picks(n_groups, n, seed))
    return np.array([np.bincount(p, minlength=n_groups) for p in picks], float).reshape(
        len(picks), n_groups
    )


def percentile_interval(values, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of the finite values ((NaN, NaN) when there are none)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    q = [(1 - confidence) / 2, 1 - (1 - confidence) / 2]
    return tuple(float(x) for x in np.quantile(v, q)) if len(v) else (np.nan, np.nan)


def bootstrap_ci(
    frame: pd.DataFrame,
    metric_fn: Callable[[pd.DataFrame], float | dict],
    dates,
    n: int,
    confidence: float,
    seed: int,
):
    """Percentile CI of `metric_fn(frame)` resampling whole DATES with replacement `n` times.

    `dates` is a column name or one label per row. Returns (low, high), or {key: (low, high)}
    when metric_fn returns a dict. Same seed → same resampled dates (paired across predictors).
    Any metric_fn works (it re-scores each resample's rows); summarise's figures take the fast
    path, group_stats + bootstrap_counts, with the same draws."""
    labels = frame[dates] if isinstance(dates, str) else np.asarray(dates)
    codes, uniques = pd.factorize(np.asarray(labels))
    rows_of = [np.flatnonzero(codes == i) for i in range(len(uniques))]
    draws = [metric_fn(frame.iloc[np.concatenate([rows_of[i] for i in pick])])
             for pick in _bootstrap_picks(len(uniques), n, seed)]  # fmt: skip
    if draws and isinstance(draws[0], dict):
        return {k: percentile_interval([d[k] for d in draws], confidence) for k in draws[0]}
    return percentile_interval(draws, confidence)


def bsm_from_iv(frame: pd.DataFrame, iv) -> np.ndarray:
    """Black price of each contract at `iv`, from the feature table's forward/discount/strike/t."""
    geometry = (frame[c] for c in ("forward", "strike", "t_years", "discount"))
    return black_price(*geometry, np.asarray(iv, float), frame["is_call"].astype(bool))


def _smile_base(holdout: pd.DataFrame) -> pd.Series:
    surface = holdout["prev_surface_iv"].astype(float)
    return (
        holdout["prev_smile_iv"].astype(float).fillna(surface)
        if "prev_smile_iv" in holdout
        else surface
    )


def baseline_predictions(holdout: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The two baselines, from yesterday's information only (no same-day IV or mid):
    - baseline_hist_vol: IV = the underlying's 20-day realised vol (rv_20d);
    - baseline_prev_iv: IV = the contract's previous-day IV (prev_iv), or yesterday's fitted
      smile re-read at today's moneyness (prev_smile_iv, else the quadratic prev_surface_iv) when
      the contract is new: the random walk in IV, the honest 1-day baseline.
    IVs are clipped to [1%, 500%]; prices are Black with that IV."""
    out = {}
    for name, iv in (
        ("baseline_hist_vol", holdout["rv_20d"]),
        ("baseline_prev_iv", holdout["prev_iv"].fillna(_smile_base(holdout))),
    ):
        iv = iv.astype(float).clip(IV_FLOOR, IV_CAP).to_numpy()
        out[name] = pd.DataFrame({"iv": iv, "price": bsm_from_iv(holdout, iv)})
    return out


def with_skills(res: dict[str, dict]) -> dict[str, dict]:
    """Adds `iv_skill_vs_<ref>` = 1 − iv_rmse / ref's iv_rmse (and price_skill_…) to every
    non-baseline predictor, against each baseline and, for the candidate, against production.
    Figures may be floats or arrays (one value per bootstrap resample)."""
    names = list(res)
    refs = [n for n in names if n in BASELINES or n == "production"]
    for name in names:
        if name in BASELINES:
            continue
        for ref in refs:
            if ref == name or (ref == "production" and name != "candidate"):
                continue
            for kind in ("iv", "price"):
                denom = np.asarray(res[ref][f"{kind}_rmse"], float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    skill = np.where(denom != 0, 1 - res[name][f"{kind}_rmse"] / denom, np.nan)
                res[name][f"{kind}_skill_vs_{ref}"] = skill if skill.ndim else float(skill)
    return res


def summarise(
    holdout: pd.DataFrame, predictions: dict[str, pd.DataFrame], cfg, seed: int = 0
) -> dict:
    """The evaluation's content (reports/evaluation_metrics.json, less the model references).

    `predictions` maps a name (candidate, production, baseline_*) to its (iv, price) frame;
    `cfg` gives min_mid_for_mape, bootstrap_samples, confidence. Keys: holdout, config, coverage,
    metrics {name: {metric: value}}, ci {name: {metric: [low, high]}}, buckets (records with a
    `model` column), bucket_edges, quant {candidate|production|market_mid: {check: summary}}."""
    h, names, min_mid = (
        holdout.reset_index(drop=True),
        list(predictions),
        float(cfg.min_mid_for_mape),
    )
    wide = _widen(h, predictions)
    pred_cols = [c for c in wide.columns if c.startswith(("iv__", "price__"))]
    finite = np.isfinite(wide[["iv", "mid", *pred_cols]].astype(float)).all(axis=1)
    every_row = wide[finite].reset_index(drop=True)
    classes = _classes(every_row)
    # the headline (and the gate): informative quotes, OTM + ATM (pipeline.market_state)
    scored = every_row[classes != "ITM"].reset_index(drop=True)
    day_codes, days = pd.factorize(pd.to_datetime(scored["quote_date"]).dt.normalize())
    by_day = {n: _predictor_stats(scored, n, min_mid, day_codes, len(days)) for n in names}
    every_day = np.ones(len(days))
    metrics = with_skills(
        {n: {k: float(v) for k, v in metrics_from_stats(s, every_day).items()}
         for n, s in by_day.items()}
    )  # fmt: skip
    min_days = int(getattr(cfg, "min_bootstrap_days", 0) or 0)
    unit = "date"
    groups = by_day
    if len(days) < min_days:  # too few dates to resample: (date, underlying) groups instead
        unit = "date x underlying"
        keys = (
            pd.to_datetime(scored["quote_date"]).dt.strftime("%Y-%m-%d")
            + "|"
            + scored["underlying"].astype(str)
        )
        codes, uniq = pd.factorize(keys)
        groups = {n: _predictor_stats(scored, n, min_mid, codes, len(uniq)) for n in names}
    ci = _bootstrap_ci(groups, int(cfg.bootstrap_samples), float(cfg.confidence), seed)
    per_day = _per_day(by_day, days)
    scopes = _scopes(every_row, classes, names, min_mid)
    buckets = bucket_codes(scored)
    tables = [_bucket_rows(_predictor_stats(scored, n, min_mid, buckets, N_BUCKETS)).assign(model=n)
              for n in names]  # fmt: skip
    # market_mid is a reference: how often the quoted mids themselves break the rules
    quant_prices = {
        n: predictions[n]["price"] for n in ("candidate", "production") if n in predictions
    }
    quant_prices["market_mid"] = h["mid"]
    dates = sorted(str(d.date()) for d in pd.to_datetime(h["quote_date"]).dt.normalize().unique())
    return _json_safe({
        "holdout": {"start": dates[0] if dates else None, "end": dates[-1] if dates else None,
                    "days": len(dates), "dates": dates, "rows": len(h), "rows_scored": len(scored),
                    "rows_finite": int(finite.sum())},
        "config": {"min_mid_for_mape": min_mid, "bootstrap_samples": int(cfg.bootstrap_samples),
                   "confidence": float(cfg.confidence), "seed": seed, "bootstrap_unit": unit,
                   "headline_rows": "informative: OTM + ATM (|ln(K/F)|/sqrt(T) <= "
                                    f"{ATM_BAND} is ATM); ITM and all rows under `scopes`"},
        "coverage": {n: float(np.isfinite(_pred(wide, n)).all(axis=1).mean()) if len(h) else 0.0
                     for n in names},
        "metrics": metrics,
        "ci": ci,
        "days": per_day,
        "scopes": scopes,
        "buckets": pd.concat(tables, ignore_index=True).to_dict(orient="records"),
        "bucket_edges": {"std_moneyness": list(MONEYNESS_LABELS), "t_years": list(MATURITY_LABELS)},
        "quant": {src: {k: c.summary() for k, c in run_checks(h, prices).items()}
                  for src, prices in quant_prices.items()},
    })  # fmt: skip


SPREAD_EDGES = (0.0, 0.005, 0.01, 0.02, 0.05, np.inf)  # quoted spread in vol: 0.5, 1, 2, 5 points
SPREAD_LABELS = ("<=0.5", "0.5-1", "1-2", "2-5", ">5")  # vol points


def _classes(frame: pd.DataFrame) -> np.ndarray:
    """Each row's moneyness class (the feature table's, else computed from its geometry)."""
    if "moneyness_class" in frame:
        return frame["moneyness_class"].astype(str).to_numpy()
    return moneyness_class(frame["std_moneyness"], frame["is_call"]).astype(str)


def spread_codes(frame: pd.DataFrame) -> np.ndarray:
    """Each row's spread-in-vol bucket (SPREAD_LABELS; -1 where spread_iv is unknown)."""
    if "spread_iv" not in frame:
        return np.full(len(frame), -1, np.intp)
    codes = pd.cut(frame["spread_iv"].astype(float), SPREAD_EDGES, labels=False, right=True)
    codes = codes.to_numpy(float)
    return np.where(np.isfinite(codes), codes, -1).astype(np.intp)


def _scopes(rows: pd.DataFrame, classes: np.ndarray, names: list[str], min_mid: float) -> dict:
    """{scope: {model: metrics}} for every scored row ("all"), each moneyness class, OTM+ATM,
    and each spread-in-vol bucket ("spread <=0.5" ...), with the skills vs the baselines."""
    spread = spread_codes(rows)
    picks = {"all": np.ones(len(rows), bool), "OTM+ATM": classes != "ITM"}
    picks |= {c: classes == c for c in MONEYNESS_CLASSES}
    picks |= {f"spread {label}": spread == i for i, label in enumerate(SPREAD_LABELS)}
    out: dict[str, dict] = {}
    for label, pick in picks.items():
        if pick.any():
            stats = {n: _predictor_stats(rows[pick], n, min_mid, None, 1) for n in names}
            out[label] = with_skills({n: {k: float(v) for k, v in metrics_from_stats(
                st, np.ones(1)).items()} for n, st in stats.items()})  # fmt: skip
    return out


def _per_day(by_day: dict[str, dict], days) -> list[dict]:
    """Per holdout day: each model's IV RMSE (informative rows) and its ratio to the
    previous-day-IV baseline's (the goal: no day above 1.5)."""
    per = {n: metrics_from_stats(s, np.eye(len(days))) for n, s in by_day.items()}
    rows = []
    for i, day in enumerate(days):
        row = {"date": str(pd.Timestamp(day).date()), "n": float(per[next(iter(per))]["n"][i])}
        for n, m in per.items():
            row[f"{n}.iv_rmse"] = float(m["iv_rmse"][i])
            row[f"{n}.inside_spread_share"] = float(m["inside_spread_share"][i])
        base = row.get("baseline_prev_iv.iv_rmse")
        for n in per:
            if n not in BASELINES and base:
                row[f"{n}.ratio_to_prev_iv"] = row[f"{n}.iv_rmse"] / base
        rows.append(row)
    return sorted(rows, key=lambda r: r["date"])


def _predictor_stats(wide: pd.DataFrame, name: str, min_mid: float, codes, n_groups: int):
    """group_stats of the predictor `name` (columns iv__<name>, price__<name>) by `codes`."""
    return _frame_stats(wide, wide[f"iv__{name}"], wide[f"price__{name}"], min_mid, codes,
                        n_groups)  # fmt: skip


def _bootstrap_ci(by_day: dict[str, dict], n: int, confidence: float, seed: int) -> dict:
    """{name: {metric: [low, high]}} from per-date stats: every resample of dates (the same draws
    for every predictor, so skills are paired) scored as weighted sums of the dates' stats."""
    n_days = len(next(iter(by_day.values()))["n"]) if by_day else 0
    counts = bootstrap_counts(n_days, n, seed)
    if not len(counts):
        return {}
    resampled = with_skills({name: metrics_from_stats(s, counts) for name, s in by_day.items()})
    return {name: {k: list(percentile_interval(v, confidence)) for k, v in m.items() if k != "n"}
            for name, m in resampled.items()}  # fmt: skip


def _widen(h: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The holdout with each predictor's iv__<name>, price__<name> columns (checked aligned)."""
    cols = {}
    for name, pred in predictions.items():
        if len(pred) != len(h):
            raise ValueError(f"{name}: {len(pred)} predictions for {len(h)} holdout rows")
        cols[f"iv__{name}"] = np.asarray(pred["iv"], float)
        cols[f"price__{name}"] = np.asarray(pred["price"], float)
    return pd.concat([h, pd.DataFrame(cols)], axis=1)


def _pred(wide: pd.DataFrame, name: str) -> pd.DataFrame:
    return pd.DataFrame({"iv": wide[f"iv__{name}"], "price": wide[f"price__{name}"]})


def _json_safe(obj):
    """NaN/inf → None (strict JSON), numpy scalars → Python numbers, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    return obj
