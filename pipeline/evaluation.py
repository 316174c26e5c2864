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
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

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


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err**2))) if len(err) else np.nan


def _r2(actual: np.ndarray, pred: np.ndarray) -> float:
    sst = float(np.sum((actual - actual.mean()) ** 2)) if len(actual) else 0.0
    return 1.0 - float(np.sum((pred - actual) ** 2)) / sst if sst > 0 else np.nan


def regression_metrics(
    actual_iv, pred_iv, actual_price, pred_price, bid, ask, min_mid: float
) -> dict[str, float]:
    """IV and price errors of one predictor on finite rows (actual_price = the quoted mid).

    Returns n, iv_rmse, iv_mae, iv_bias (mean pred − actual), iv_r2, price_rmse, price_mae,
    price_mape (on mid ≥ min_mid; NaN if none), price_r2, inside_spread_share (bid ≤ pred ≤ ask)."""
    a_iv, p_iv, a_px, p_px, b, a = (
        np.asarray(x, float) for x in (actual_iv, pred_iv, actual_price, pred_price, bid, ask)
    )
    iv_err, px_err = p_iv - a_iv, p_px - a_px
    big = a_px >= min_mid
    return {
        "n": float(len(a_iv)),
        "iv_rmse": _rmse(iv_err),
        "iv_mae": float(np.mean(np.abs(iv_err))) if len(iv_err) else np.nan,
        "iv_bias": float(np.mean(iv_err)) if len(iv_err) else np.nan,
        "iv_r2": _r2(a_iv, p_iv),
        "price_rmse": _rmse(px_err),
        "price_mae": float(np.mean(np.abs(px_err))) if len(px_err) else np.nan,
        "price_mape": float(np.mean(np.abs(px_err[big]) / a_px[big])) if big.any() else np.nan,
        "price_r2": _r2(a_px, p_px),
        "inside_spread_share": float(np.mean((p_px >= b) & (p_px <= a))) if len(p_px) else np.nan,
    }


def _score(frame: pd.DataFrame, iv, price, min_mid: float) -> dict[str, float]:
    return regression_metrics(
        frame["iv"], iv, frame["mid"], price, frame["bid"], frame["ask"], min_mid
    )


def _buckets(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    m = pd.cut(frame["std_moneyness"], MONEYNESS_EDGES, labels=MONEYNESS_LABELS, right=True)
    t = pd.cut(frame["t_years"], MATURITY_EDGES, labels=MATURITY_LABELS, right=True)
    return m, t


def bucket_table(frame: pd.DataFrame, preds: pd.DataFrame, min_mid: float = 0.10) -> pd.DataFrame:
    """Metrics per moneyness × maturity bucket (non-empty buckets only) for one predictor.

    `preds` (iv, price) is aligned with `frame` by position; rows with a non-finite prediction
    or target are left out. Columns: moneyness, maturity, then regression_metrics' keys."""
    f = frame.reset_index(drop=True).assign(
        pred_iv=np.asarray(preds["iv"], float), pred_price=np.asarray(preds["price"], float)
    )
    f = f[np.isfinite(f[["iv", "mid", "pred_iv", "pred_price"]]).all(axis=1)]
    m, t = _buckets(f)
    rows = [
        {"moneyness": mk, "maturity": tk, **_score(g, g["pred_iv"], g["pred_price"], min_mid)}
        for (mk, tk), g in f.groupby([m, t], observed=True)
    ]
    return pd.DataFrame(rows, columns=["moneyness", "maturity", *METRIC_KEYS])


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
    when metric_fn returns a dict. Same seed → same resampled dates (paired across predictors)."""
    labels = frame[dates] if isinstance(dates, str) else np.asarray(dates)
    codes, uniques = pd.factorize(np.asarray(labels))
    rows_of = [np.flatnonzero(codes == i) for i in range(len(uniques))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n if len(uniques) else 0):
        pick = rng.integers(0, len(uniques), len(uniques))
        draws.append(metric_fn(frame.iloc[np.concatenate([rows_of[i] for i in pick])]))
    q = [(1 - confidence) / 2, 1 - (1 - confidence) / 2]

    def interval(values) -> tuple[float, float]:
        v = np.asarray(values, float)
        v = v[np.isfinite(v)]
        return tuple(float(x) for x in np.quantile(v, q)) if len(v) else (np.nan, np.nan)

    if draws and isinstance(draws[0], dict):
        return {k: interval([d[k] for d in draws]) for k in draws[0]}
    return interval(draws)


def bsm_from_iv(frame: pd.DataFrame, iv) -> np.ndarray:
    """Black price of each contract at `iv`, from the feature table's forward/discount/strike/t."""
    geometry = (frame[c] for c in ("forward", "strike", "t_years", "discount"))
    return black_price(*geometry, np.asarray(iv, float), frame["is_call"].astype(bool))


def baseline_predictions(holdout: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The two baselines, from yesterday's information only (no same-day IV or mid):
    - baseline_hist_vol: IV = the underlying's 20-day realised vol (rv_20d);
    - baseline_prev_iv: IV = the contract's previous-day IV (prev_iv), or yesterday's fitted
      surface at its moneyness/maturity (prev_surface_iv) when the contract is new.
    IVs are clipped to [1%, 500%]; prices are Black with that IV."""
    out = {}
    for name, iv in (
        ("baseline_hist_vol", holdout["rv_20d"]),
        ("baseline_prev_iv", holdout["prev_iv"].fillna(holdout["prev_surface_iv"])),
    ):
        iv = iv.astype(float).clip(IV_FLOOR, IV_CAP).to_numpy()
        out[name] = pd.DataFrame({"iv": iv, "price": bsm_from_iv(holdout, iv)})
    return out


def score_all(frame: pd.DataFrame, names: list[str], min_mid: float) -> dict[str, dict[str, float]]:
    """Metrics of every predictor (columns iv__<name>, price__<name>) plus skills
    `iv_skill_vs_<ref>` = 1 − iv_rmse / ref's iv_rmse (and price_skill_…) against each baseline
    and, for the candidate, against production."""
    res = {n: _score(frame, frame[f"iv__{n}"], frame[f"price__{n}"], min_mid) for n in names}
    refs = [n for n in names if n in BASELINES or n == "production"]
    for name in names:
        if name in BASELINES:
            continue
        for ref in refs:
            if ref == name or (ref == "production" and name != "candidate"):
                continue
            for kind in ("iv", "price"):
                denom = res[ref][f"{kind}_rmse"]
                res[name][f"{kind}_skill_vs_{ref}"] = (
                    1 - res[name][f"{kind}_rmse"] / denom if denom else np.nan
                )
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
    scored = wide[finite].reset_index(drop=True)
    day = pd.to_datetime(scored["quote_date"]).dt.normalize()
    flat_ci = bootstrap_ci(scored, lambda f: _flat(score_all(f, names, min_mid)), day,
                           int(cfg.bootstrap_samples), float(cfg.confidence), seed)  # fmt: skip
    ci: dict[str, dict] = {}
    for key, bounds in flat_ci.items():
        name, metric = key.split("|")
        if metric != "n":
            ci.setdefault(name, {})[metric] = list(bounds)
    tables = [bucket_table(scored, _pred(scored, n), min_mid).assign(model=n) for n in names]
    # market_mid is a reference: how often the quoted mids themselves break the rules
    quant_prices = {
        n: predictions[n]["price"] for n in ("candidate", "production") if n in predictions
    }
    quant_prices["market_mid"] = h["mid"]
    dates = sorted({str(d.date()) for d in pd.to_datetime(h["quote_date"]).dt.normalize()})
    return _json_safe({
        "holdout": {"start": dates[0] if dates else None, "end": dates[-1] if dates else None,
                    "days": len(dates), "dates": dates, "rows": len(h), "rows_scored": int(finite.sum())},
        "config": {"min_mid_for_mape": min_mid, "bootstrap_samples": int(cfg.bootstrap_samples),
                   "confidence": float(cfg.confidence), "seed": seed},
        "coverage": {n: float(np.isfinite(_pred(wide, n)).all(axis=1).mean()) if len(h) else 0.0
                     for n in names},
        "metrics": score_all(scored, names, min_mid),
        "ci": ci,
        "buckets": pd.concat(tables, ignore_index=True).to_dict(orient="records"),
        "bucket_edges": {"std_moneyness": list(MONEYNESS_LABELS), "t_years": list(MATURITY_LABELS)},
        "quant": {src: {k: c.summary() for k, c in run_checks(h, prices).items()}
                  for src, prices in quant_prices.items()},
    })  # fmt: skip


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


def _flat(nested: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{name}|{k}": v for name, m in nested.items() for k, v in m.items()}


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
