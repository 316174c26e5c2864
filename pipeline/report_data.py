"""What the stakeholder report shows, gathered from the artifacts into typed records (no rendering).

Reads, up to the business date: the task outcome records (`logs/task_outcomes.jsonl`,
pipeline.outcomes: each task-day's latest outcome), checkpoint manifests
`data/checkpoints/<task>_D.json` (successes, their figures and durations; a day with a
checkpoint and no outcome record succeeded), `reports/validation/validation_report_D.json`,
`reports/evaluation_metrics.json` (an EvaluationSummary), `reports/drift/summary_D.json`,
`reports/deployment/deployment_status_D.json`, the deploy incidents (`incident_D.json`, then
`incident_D_2.json`, ...) and the registry's state and history (`registry_snapshot`).
Nothing is re-run and no MLflow run is read.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.artifacts import Artifacts
from pipeline.errors import PipelineError
from pipeline.evaluation_summary import EvaluationSummary, read_summary
from pipeline.model_deploy import incident_files
from pipeline.outcomes import outcomes_path, read_outcomes, task_statuses

REPORT_TASK = "generate_report"  # the report does not report on itself
_STAMP = re.compile(r"^(?P<stem>.+)_(?P<day>\d{8})$")


@dataclass(frozen=True)
class TaskDay:
    """One task on one business day: its latest outcome and its checkpointed figures."""

    status: str  # succeeded | failed | incomplete
    attempts: int  # runs that really ran it (a reuse is not one)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows (plain records, sorted)."""

    date: str
    runs: dict[str, dict[str, TaskDay]]  # {task: {day: TaskDay}}
    validation: dict[str, dict]  # {day: validation report}
    evaluation: EvaluationSummary | None
    evaluation_error: str | None  # why reports/evaluation_metrics.json could not be read
    drift: list[dict]  # monitor summaries, oldest first
    deployments: list[dict]  # deployment statuses, oldest first
    incidents: list[dict]  # deploy incidents (+ date, file), oldest first
    registry: dict | None  # registry_snapshot's

    def latest(self, kind: str) -> dict | None:
        """The newest drift summary or deployment status (`kind`: drift | deployments)."""
        items = getattr(self, kind)
        return items[-1] if items else None


def _day(path: Path) -> tuple[str, dt.date] | None:
    """`name_YYYYMMDD.ext` → (name, date), else None."""
    m = _STAMP.match(path.stem)
    if not m:
        return None
    try:
        return m["stem"], dt.datetime.strptime(m["day"], "%Y%m%d").date()
    except ValueError:
        return None


def _dated(folder: Path, pattern: str, date: dt.date) -> list[tuple[str, dt.date, Path]]:
    """(name, day, path) of the files in `folder` matching `pattern` dated up to `date`, sorted."""
    found = []
    for path in folder.glob(pattern) if folder.is_dir() else []:
        named = _day(path)
        if named and named[1] <= date and not path.name.startswith("."):
            found.append((named[0], named[1], path))
    return sorted(found, key=lambda t: (t[1], t[0], str(t[2])))


def evaluation_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "evaluation_metrics.json"


def input_files(artifacts: Artifacts, date: dt.date) -> list[Path]:
    """Every artifact file the report reads (its checkpoint's inputs), sorted. The outcome
    records are not one: a reuse appends lines and changes nothing (see run_statuses)."""
    reports = artifacts.reports_dir
    groups = [
        [p for name, _, p in _dated(artifacts.checkpoints_dir, "*.json", date)
         if name != REPORT_TASK],
        [p for _, _, p in _dated(reports / "validation", "validation_report_*.json", date)],
        [p for _, _, p in _dated(reports / "drift", "summary_*.json", date)],
        [p for _, _, p in _dated(reports / "deployment", "*.json", date)],
        [p for _, p in _incidents(artifacts, date)],
        [p for p in [evaluation_path(artifacts)] if p.exists()],
    ]  # fmt: skip
    return sorted({p for group in groups for p in group})


def _incidents(artifacts: Artifacts, date: dt.date) -> list[tuple[dt.date, Path]]:
    """(day, path) of the deploy incident files dated up to `date`, oldest first (one file per
    incident: incident_YYYYMMDD.json, then _2, _3, ... on the same day)."""
    found = incident_files(artifacts.reports_dir / "deployment")
    return [(day, path) for day, _, path in found if day <= date]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_statuses(artifacts: Artifacts, date: dt.date) -> dict[str, dict[str, dict]]:
    """{task: {date: {status, attempts}}} from the outcome records up to `date` (the report's
    own runs left out): pipeline.outcomes.task_statuses."""
    records = read_outcomes(outcomes_path(artifacts.logs_dir))
    return task_statuses(records, until=str(date), exclude=(REPORT_TASK,))


def _runs(artifacts: Artifacts, date: dt.date) -> dict[str, dict[str, TaskDay]]:
    """Every task-day with an outcome record or a checkpoint; its figures from the checkpoint."""
    checkpoints: dict[str, dict[str, dict]] = defaultdict(dict)
    for name, day, path in _dated(artifacts.checkpoints_dir, "*.json", date):
        manifest = _read_json(path)
        if name != REPORT_TASK and isinstance(manifest, dict):
            checkpoints[manifest.get("task", name)][str(day)] = manifest
    outcomes = defaultdict(dict, run_statuses(artifacts, date))
    runs = {}
    for task in sorted(set(checkpoints) | set(outcomes)):
        runs[task] = {}
        for d in sorted(set(checkpoints[task]) | set(outcomes[task])):
            outcome = outcomes[task].get(d, {"status": "succeeded", "attempts": 1})
            figures = checkpoints[task].get(d, {}).get("metrics", {})
            runs[task][d] = TaskDay(outcome["status"], outcome["attempts"], figures)
    return runs


def _evaluation(artifacts: Artifacts) -> tuple[EvaluationSummary | None, str | None]:
    """(the summary, None), (None, None) without one, or (None, why it could not be read)."""
    try:
        return read_summary(evaluation_path(artifacts)), None
    except PipelineError as exc:
        return None, str(exc)


def collect(artifacts: Artifacts, date: dt.date, registry: dict | None) -> ReportData:
    """Everything the report shows, read from the artifacts."""
    reports = artifacts.reports_dir
    evaluation, evaluation_error = _evaluation(artifacts)
    return ReportData(
        date=str(date),
        runs=_runs(artifacts, date),
        validation={
            str(day): v
            for _, day, p in _dated(reports / "validation", "validation_report_*.json", date)
            if isinstance(v := _read_json(p), dict)
        },
        evaluation=evaluation,
        evaluation_error=evaluation_error,
        drift=[
            v
            for _, _, p in _dated(reports / "drift", "summary_*.json", date)
            if isinstance(v := _read_json(p), dict)
        ],
        deployments=[
            v
            for _, _, p in _dated(reports / "deployment", "deployment_status_*.json", date)
            if isinstance(v := _read_json(p), dict)
        ],
        incidents=[
            {"date": str(day), "file": p.name, **v}
            for day, p in _incidents(artifacts, date)
            if isinstance(v := _read_json(p), dict)
        ],
        registry=registry,
    )


def registry_snapshot(cfg: DictConfig) -> dict:
    """The registry's state and promotion history, or the reason it could not be read."""
    from pipeline.registry import Registry
    from pipeline.registry_rules import disagreements

    name = cfg.registry.model_name
    try:
        registry = Registry(name)
        state = registry.state()
        return {"model": name, "state": state, "history": registry.history(),
                "disagreements": disagreements(state), "error": None}  # fmt: skip
    except PipelineError as exc:
        return {"model": name, "state": [], "history": [], "disagreements": [],
                "error": " ".join(str(exc).split())[:400]}  # fmt: skip


# -- figures derived from the records (shared by the sections and the plots) -------------------
def by_maturity(evaluation: EvaluationSummary) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(maturity buckets in order, {model: {bucket: IV RMSE}}) pooled over moneyness."""
    sse: dict[tuple[str, str], float] = defaultdict(float)
    n: dict[tuple[str, str], float] = defaultdict(float)
    for b in evaluation.buckets:
        if b.n and b.iv_rmse is not None and math.isfinite(b.n) and math.isfinite(b.iv_rmse):
            sse[b.model, b.maturity] += b.n * b.iv_rmse**2
            n[b.model, b.maturity] += b.n
    seen = {m for _, m in n}
    edges = evaluation.bucket_edges.get("t_years") or []
    order = [m for m in edges if m in seen] + sorted(seen - set(edges))
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for (model, maturity), count in n.items():
        table[model][maturity] = math.sqrt(sse[model, maturity] / count)
    return order, table


def data_rows(data: ReportData) -> list[dict]:
    """Per day: rows fetched, valid, quarantined (and share), feature rows, IV-reliable share."""
    fetch = data.runs.get("data_fetch", {})
    features = data.runs.get("feature_engineer", {})
    days = sorted(set(data.validation) | set(fetch))
    out = []
    for day in days:
        v = data.validation.get(day, {})
        featured = features[day].metrics if day in features else {}
        out.append({
            "date": day,
            "fetched": (fetch[day].metrics if day in fetch else {}).get("rows_fetched",
                                                                         v.get("rows_in")),
            "valid": v.get("rows_valid"),
            "quarantined": v.get("rows_quarantined"),
            "bad_share": v.get("bad_row_share"),
            "features": featured.get("rows_out"),
            "iv_reliable": featured.get("iv_reliable_share"),
        })  # fmt: skip
    return out
