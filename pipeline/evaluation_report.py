"""Presentation of an evaluation summary (evaluation.summarise's dict): log lines and the plot.

`plot_comparison` writes a PNG (IV RMSE per model with its bootstrap CI, and by moneyness bucket)
on matplotlib's Agg canvas, imported when it is called: no pyplot, no global backend change.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.artifacts import atomic_path
from pipeline.evaluation import MONEYNESS_LABELS


def _num(value) -> float:
    return np.nan if value is None else float(value)


def log_summary(log: logging.Logger, summary: dict) -> None:
    """Performance and bootstrap lines for the task log: IV in vol points, prices, shares."""
    conf = summary["config"]["confidence"]
    for model, figures in summary["metrics"].items():
        m = {k: _num(v) for k, v in figures.items()}
        low, high = summary["ci"].get(model, {}).get("iv_rmse", [None, None])
        ci = f"[{100 * low:.3f}, {100 * high:.3f}]" if low is not None else "[n/a]"
        skills = ", ".join(
            f"{k.removeprefix('iv_skill_vs_')} {v:+.1%}"
            for k, v in m.items()
            if k.startswith("iv_skill_vs_")
        )
        log.info(
            "%-18s IV RMSE %.3f vol pts (%.0f%% CI %s), price RMSE %.4f, MAPE %s, R² price %.4f "
            "IV %.3f, inside spread %.1f%%%s",
            model,
            100 * m["iv_rmse"],
            100 * conf,
            ci,
            m["price_rmse"],
            f"{m['price_mape']:.2%}",
            m["price_r2"],
            m["iv_r2"],
            100 * m["inside_spread_share"],
            f"; IV skill vs {skills}" if skills else "",
        )
    for source, checks in summary["quant"].items():
        log.info(
            "quant %-10s %s",
            source,
            ", ".join(f"{c} {r['share']:.2%} of {int(r['checked'])}" for c, r in checks.items()),
        )


def plot_comparison(summary: dict, target: Path) -> Path:
    """Left: IV RMSE (vol points) with the bootstrap CI per model; right: by moneyness bucket."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = list(summary["metrics"])
    rmse = 100 * np.array([_num(summary["metrics"][m]["iv_rmse"]) for m in models])
    ci = 100 * np.array(
        [[_num(v) for v in summary["ci"].get(m, {}).get("iv_rmse", [None, None])] for m in models]
    )
    err = np.abs(np.vstack([rmse - ci[:, 0], ci[:, 1] - rmse]))
    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)  # Agg explicitly: files only, no pyplot state, no display needed
    left, right = fig.subplots(1, 2)
    left.bar(models, rmse, yerr=np.nan_to_num(err), capsize=4, color="tab:blue")
    left.set_ylabel("IV RMSE (vol points)")
    left.set_title(
        f"Holdout {summary['holdout']['start']}..{summary['holdout']['end']}, "
        f"{summary['config']['confidence']:.0%} CI over dates"
    )
    left.tick_params(axis="x", rotation=20)
    b = pd.DataFrame(summary["buckets"])
    if not b.empty:
        b = b.assign(sse=b["n"] * b["iv_rmse"] ** 2)
        agg = b.groupby(["moneyness", "model"], sort=False)[["sse", "n"]].sum()
        table = (100 * np.sqrt(agg["sse"] / agg["n"])).unstack("model")
        order = [m for m in MONEYNESS_LABELS if m in table.index]
        table = table.reindex(index=order, columns=models)
        _grouped_bars(right, table)
    right.set_xlabel("standardised moneyness ln(K/F)/√T")
    right.set_ylabel("IV RMSE (vol points)")
    right.set_title("By moneyness bucket (all maturities)")
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return target


def _grouped_bars(ax, table: pd.DataFrame) -> None:
    """One group of bars per row of `table` (its index on the x axis), one bar per column, with
    a legend: what DataFrame.plot.bar draws, without importing pyplot."""
    x = np.arange(len(table.index))
    width = 0.8 / max(len(table.columns), 1)
    for i, column in enumerate(table.columns):
        ax.bar(x + (i - (len(table.columns) - 1) / 2) * width, table[column].to_numpy(float),
               width, label=str(column))  # fmt: skip
    ax.set_xticks(x, [str(label) for label in table.index])
    ax.legend(title=table.columns.name)
