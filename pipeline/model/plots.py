"""model_train's figures as PNG files (matplotlib, Agg backend: files only, no display).

- learning_curve: per-iteration train/validation RMSE (IV points) and the best iteration;
- feature_importance: total gain per feature;
- pred_vs_actual: predicted vs market IV on the holdout (hexbin: the holdout has many rows);
- residual_buckets: holdout IV RMSE and mean residual (pred − actual) by moneyness × maturity,
  with pipeline.evaluation's buckets so the figure matches the evaluation report.
Each function takes the data and the target path and returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.artifacts import atomic_path
from pipeline.evaluation import MATURITY_EDGES, MATURITY_LABELS, MONEYNESS_EDGES, MONEYNESS_LABELS


def _figure(ncols: int = 1, size=(7.0, 4.5)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly; no pyplot state, no display needed
    return fig, fig.subplots(1, ncols)


def _save(fig, target: Path) -> Path:
    with atomic_path(Path(target)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(target)


def learning_curve(evals: dict, best_iteration: int, target: Path) -> Path:
    fig, ax = _figure()
    for fold, style in (("train", "-"), ("validation", "--")):
        ax.plot(evals[fold]["rmse"], style, label=fold)
    ax.axvline(best_iteration, color="grey", lw=0.8, label=f"best iteration {best_iteration}")
    ax.set(xlabel="boosting round", ylabel="IV RMSE", yscale="log", title="Learning curve")
    ax.legend()
    return _save(fig, target)


def feature_importance(gain: dict[str, float], features: list[str], target: Path) -> Path:
    values = pd.Series({f: gain.get(f, 0.0) for f in features}).sort_values()
    fig, ax = _figure(size=(7.0, 0.3 * len(values) + 1.5))
    ax.barh(values.index, values.to_numpy())
    ax.set(xlabel="total gain", title="Feature importance (gain)")
    return _save(fig, target)


def pred_vs_actual(actual, predicted, target: Path, label: str = "holdout") -> Path:
    a, p = np.asarray(actual, float), np.asarray(predicted, float)
    fig, ax = _figure(size=(5.5, 5.0))
    lo, hi = np.nanpercentile(np.r_[a, p], [0.5, 99.5]) if len(a) else (0.0, 1.0)
    hb = ax.hexbin(a, p, gridsize=60, bins="log", extent=(lo, hi, lo, hi), mincnt=1)
    ax.plot([lo, hi], [lo, hi], color="red", lw=0.8)
    rmse = float(np.sqrt(np.mean((p - a) ** 2))) if len(a) else np.nan
    ax.set(xlabel="market IV", ylabel="predicted IV",
           title=f"Predicted vs actual IV ({label}, RMSE {rmse:.4f})")  # fmt: skip
    fig.colorbar(hb, ax=ax, label="contracts (log)")
    return _save(fig, target)


def bucket_residuals(frame: pd.DataFrame, predicted) -> pd.DataFrame:
    """IV RMSE, mean residual and count per (moneyness, maturity) bucket."""
    f = frame.assign(resid=np.asarray(predicted, float) - frame["iv"].to_numpy(float))
    m = pd.cut(f["std_moneyness"], MONEYNESS_EDGES, labels=MONEYNESS_LABELS)
    t = pd.cut(f["t_years"], MATURITY_EDGES, labels=MATURITY_LABELS)
    g = f.groupby([m, t], observed=False)["resid"]
    return pd.DataFrame({"rmse": g.apply(lambda r: float(np.sqrt(np.mean(r**2))) if len(r) else np.nan),
                         "bias": g.mean(), "n": g.size()})  # fmt: skip


def residual_buckets(frame: pd.DataFrame, predicted, target: Path) -> Path:
    table = bucket_residuals(frame, predicted)
    fig, axes = _figure(ncols=2, size=(11.0, 4.2))
    for ax, col, cmap, title in ((axes[0], "rmse", "viridis", "IV RMSE"),
                                 (axes[1], "bias", "coolwarm", "mean residual (pred − actual)")):  # fmt: skip
        grid = table[col].unstack().reindex(index=MONEYNESS_LABELS, columns=MATURITY_LABELS)
        vals = grid.to_numpy(float)
        lim = np.nanmax(np.abs(vals)) if np.isfinite(vals).any() else 1.0
        kw = {"vmin": -lim, "vmax": lim} if col == "bias" else {}
        im = ax.imshow(vals, cmap=cmap, aspect="auto", **kw)
        ax.set_xticks(range(len(MATURITY_LABELS)), MATURITY_LABELS)
        ax.set_yticks(range(len(MONEYNESS_LABELS)), MONEYNESS_LABELS)
        ax.set(xlabel="maturity", ylabel="k/√T", title=title)
        counts = table["n"].unstack().reindex(index=MONEYNESS_LABELS, columns=MATURITY_LABELS)
        for (i, j), v in np.ndenumerate(vals):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.4f}\nn={int(counts.iat[i, j])}", ha="center", va="center",
                        fontsize=7, color="white" if col == "rmse" else "black")  # fmt: skip
        fig.colorbar(im, ax=ax)
    return _save(fig, target)
