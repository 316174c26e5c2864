"""generate_report: the stakeholder report, from the cached artifacts only (the plan's last task).

Collecting is pipeline.report_data (what the artifacts say, as typed records: the task outcome
records, checkpoints, validation reports, the evaluation summary, drift summaries, deployment
statuses and incidents, and the registry's state and promotion history, snapshotted into
`reports/report/registry_snapshot.json`); the content is pipeline.report_sections; markdown and
HTML are pipeline.report_format; the PNGs pipeline.report_plots. Nothing is re-run and no MLflow
run is read.

Writes `reports/stakeholder_report.md`, the same as `reports/stakeholder_report.html`, and its
plots `reports/report/model_vs_baselines.png` and `reports/report/data_volume.png`; logs to
`logs/reporting_D.log` (the plan's name). The same artifacts give the same bytes: the report is
dated by the business date (no wall-clock time), everything is sorted and the PNGs carry no
software/version metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import Artifacts, atomic_path, write_json
from pipeline.report_data import collect, data_rows, input_files, registry_snapshot, run_statuses
from pipeline.report_format import to_html, to_markdown
from pipeline.report_plots import plot_data, plot_models
from pipeline.report_sections import build
from pipeline.runtime import TaskContext, TaskSpec, execute, resolve_date

LOG_NAME = "reporting"  # logs/reporting_YYYYMMDD.log, the original plan's name
PLOTS = ("model_vs_baselines", "data_volume")


def md_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "stakeholder_report.md"


def html_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "stakeholder_report.html"


def plot_path(artifacts: Artifacts, name: str) -> Path:
    return artifacts.reports_dir / "report" / f"{name}.png"


def snapshot_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "report" / "registry_snapshot.json"


def write_report(artifacts: Artifacts, date: dt.date, registry: dict | None, title: str,
                 dpi: int) -> list[Path]:  # fmt: skip
    """Collect, plot and render; returns the files written (md, html, snapshot, PNGs)."""
    data = collect(artifacts, date, registry)
    written = [write_json(registry, snapshot_path(artifacts))]
    plots: dict[str, str | None] = {name: None for name in PLOTS}
    if data.evaluation is not None and data.evaluation.metrics:
        written.append(plot_models(data.evaluation, plot_path(artifacts, "model_vs_baselines"),
                                   dpi))  # fmt: skip
        plots["model_vs_baselines"] = "report/model_vs_baselines.png"
    rows = data_rows(data)
    if rows:
        written.append(plot_data(rows, plot_path(artifacts, "data_volume"), dpi))
        plots["data_volume"] = "report/data_volume.png"
    for name, rel in plots.items():  # a stale plot must not outlive the data it showed
        if rel is None:
            plot_path(artifacts, name).unlink(missing_ok=True)
    blocks = build(data, title, plots)
    for target, text in ((md_path(artifacts), to_markdown(blocks)),
                         (html_path(artifacts), to_html(blocks, f"{title} — {date}"))):  # fmt: skip
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _upstream(ctx: TaskContext) -> dict[str, str]:
    """What the report shows besides its input files: the registry, and the run outcomes read
    from the outcome records (not the file itself: a reuse appends lines, changes nothing)."""
    return {"registry": _digest(registry_snapshot(ctx.cfg)),
            "run_outcomes": _digest(run_statuses(ctx.artifacts, ctx.date))}  # fmt: skip


def run(ctx: TaskContext) -> None:
    cfg = ctx.task_cfg
    inputs = input_files(ctx.artifacts, ctx.date)
    ctx.log.info("artifacts read: %d files up to %s", len(inputs), ctx.date)
    written = write_report(ctx.artifacts, ctx.date, registry_snapshot(ctx.cfg), str(cfg.title),
                           int(cfg.dpi))  # fmt: skip
    for path in written:
        ctx.log.info("wrote %s", path)
    ctx.reports += written
    ctx.metric("artifacts_read", len(inputs))
    ctx.metric("plots", sum(p.suffix == ".png" for p in written))


def _outputs(ctx: TaskContext) -> list[Path]:
    # the plots exist only when their data does; md and html always
    return [md_path(ctx.artifacts), html_path(ctx.artifacts), snapshot_path(ctx.artifacts)] + [
        p for p in (plot_path(ctx.artifacts, n) for n in PLOTS) if p.exists()
    ]


SPEC = TaskSpec(
    name="generate_report",
    run=run,
    inputs=lambda ctx: input_files(ctx.artifacts, ctx.date),
    outputs=_outputs,
    config_keys=("data_format", "registry"),
    upstream=_upstream,
    log_name=LOG_NAME,
)


def main(cfg: DictConfig) -> None:
    outcome = execute(SPEC, cfg, resolve_date(cfg.generate_report.date, "generate_report.date"))
    verb = "reused (artifacts unchanged)" if outcome.status == "skipped" else "written"
    print(f"generate_report {outcome.date}: {verb}: {outcome.outputs[0]} (and .html)")


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
