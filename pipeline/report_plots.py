"""The report's PNGs: the model vs the baselines, and the data volume per day.

Drawn on matplotlib's Agg canvas (no pyplot state, no display) and saved without software
metadata: the same figures give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.artifacts import atomic_path
from pipeline.evaluation_summary import EvaluationSummary
from pipeline.report_data import by_maturity
from pipeline.report_format import num


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)  # Agg explicitly: no pyplot state, no display
    return fig


def _save(fig, target: Path, dpi: int) -> Path:
    fig.tight_layout()
    with atomic_path(target) as tmp:  # no Software metadata: the same figure, the same bytes
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    return target


def plot_models(evaluation: EvaluationSummary, target: Path, dpi: int) -> Path:
    """Left: IV RMSE per model with its CI; right: IV RMSE by maturity bucket, per model."""
    import numpy as np

    models = evaluation.model_names()
    rmse = np.array([100 * (num(evaluation.iv_rmse(m)) or np.nan) for m in models])
    ci = np.array([[100 * (num(x) if num(x) is not None else np.nan)
                    for x in evaluation.interval(m, "iv_rmse")] for m in models])  # fmt: skip
    err = np.nan_to_num(np.abs(np.vstack([rmse - ci[:, 0], ci[:, 1] - rmse])))
    fig = _figure((11, 4.2))
    left, right = fig.subplots(1, 2)
    left.bar(models, rmse, yerr=err, capsize=4, color="tab:blue")
    for x, y in enumerate(rmse):
        if np.isfinite(y):
            left.annotate(f"{y:.3f}", (x, y), ha="center", va="bottom", fontsize=8,
                          xytext=(0, 3), textcoords="offset points")  # fmt: skip
    left.set_ylabel("IV RMSE (vol points)")
    left.set_title(f"Holdout {evaluation.holdout.start}..{evaluation.holdout.end}")
    left.tick_params(axis="x", rotation=15)
    order, table = by_maturity(evaluation)
    shown = [m for m in models if m in table]
    x = np.arange(len(order))
    width = 0.8 / max(len(shown), 1)
    for i, m in enumerate(shown):
        values = [100 * table[m].get(b, np.nan) for b in order]
        right.bar(x + (i - (len(shown) - 1) / 2) * width, values, width, label=m)
    right.set_xticks(x, order)
    right.set_xlabel("maturity")
    right.set_ylabel("IV RMSE (vol points)")
    right.set_title("By maturity (all moneyness)")
    if shown:
        right.set_ylim(0, 1.25 * max(max(t.values()) for t in table.values()) * 100)
        right.legend(fontsize=8, loc="upper center", ncol=len(shown))
    return _save(fig, target, dpi)


def plot_data(rows: list[dict], target: Path, dpi: int) -> Path:
    """Rows valid and quarantined per day, stacked."""
    import numpy as np

    x = np.arange(len(rows))
    valid = np.array([num(r["valid"]) or 0.0 for r in rows])
    quarantined = np.array([num(r["quarantined"]) or 0.0 for r in rows])
    fig = _figure((11, 3.6))
    ax = fig.subplots()
    ax.bar(x, valid, color="tab:green", label="valid")
    ax.bar(x, quarantined, bottom=valid, color="tab:red", label="quarantined")
    step = max(1, math.ceil(len(rows) / 12))
    ax.set_xticks(x[::step], [r["date"] for r in rows][::step], rotation=30, ha="right")
    ax.set_ylabel("rows")
    ax.set_title("Quotes per trading day: valid and quarantined")
    if len(rows) and (valid + quarantined).max() > 0:
        ax.set_ylim(0, 1.2 * (valid + quarantined).max())
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    return _save(fig, target, dpi)
