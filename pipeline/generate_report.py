"""generate_report: the stakeholder report, from the cached artifacts only (the plan's last task).

Reads what the other tasks left behind, up to the business date (`generate_report.date`):
checkpoint manifests `data/checkpoints/<task>_D.json` (successes, their figures and durations),
task logs `logs/<log>_D.log` (the latest outcome of each task-day: succeeded, failed, incomplete; a reuse keeps the outcome),
`reports/validation/validation_report_D.json` (data volume and quality),
`reports/evaluation_metrics.json` (model vs baselines, the gate verdict),
`reports/drift/summary_D.json` (drift and retrain decisions; none yet → said so),
`reports/deployment/deployment_status_D.json`, the deploy incidents (`incident_D.json`, then
`incident_D_2.json`, ... on the same day), and the registry's state and promotion history (the
record of truth), snapshotted into `reports/report/registry_snapshot.json`.
Nothing is re-run and no MLflow run is read.

Writes `reports/stakeholder_report.md`, the same as `reports/stakeholder_report.html`, and its
plots `reports/report/model_vs_baselines.png` and `reports/report/data_volume.png`; logs to
`logs/reporting_D.log` (the plan's name). The same artifacts give the same bytes: the report is
dated by the business date (no wall-clock time), everything is sorted and the PNGs carry no
software/version metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.artifacts import Artifacts, atomic_path, write_json
from pipeline.config import TASKS
from pipeline.errors import PipelineError
from pipeline.model_deploy import incident_files
from pipeline.runtime import TaskContext, TaskSpec, execute, resolve_date

LOG_NAME = "reporting"  # logs/reporting_YYYYMMDD.log, the original plan's name
TASK_ORDER = (*(t for t in TASKS if t != "generate_report"), "monitor")  # the report's tables
STATUSES = ("succeeded", "failed", "incomplete")
NOT_AVAILABLE = "not available"
_STAMP = re.compile(r"^(?P<stem>.+)_(?P<day>\d{8})$")
_LOG_LINE = re.compile(
    r" pipeline\.(?P<task>\w+): (?:start (?P=task) for (?P<start>\d{4}-\d{2}-\d{2})$"
    r"|(?P<end>end) (?P=task) for |(?P<skip>skipped): |(?P=task) (?P<fail>failed) for )"
)


# -- paths ---------------------------------------------------------------------------------------
def md_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "stakeholder_report.md"


def html_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "stakeholder_report.html"


def plot_path(artifacts: Artifacts, name: str) -> Path:
    return artifacts.reports_dir / "report" / f"{name}.png"


def snapshot_path(artifacts: Artifacts) -> Path:
    return artifacts.reports_dir / "report" / "registry_snapshot.json"


PLOTS = ("model_vs_baselines", "data_volume")


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


def input_files(artifacts: Artifacts, date: dt.date) -> list[Path]:
    """Every artifact the report reads (its checkpoint's inputs), sorted."""
    reports = artifacts.reports_dir
    groups = [
        [p for name, _, p in _dated(artifacts.checkpoints_dir, "*.json", date)
         if name != "generate_report"],
        [p for _, _, p in _dated(reports / "validation", "validation_report_*.json", date)],
        [p for _, _, p in _dated(reports / "drift", "summary_*.json", date)],
        [p for _, _, p in _dated(reports / "deployment", "*.json", date)],
        [p for _, p in _incidents(artifacts, date)],
        [p for p in [reports / "evaluation_metrics.json"] if p.exists()],
    ]  # fmt: skip
    return sorted({p for group in groups for p in group})


# -- reading -------------------------------------------------------------------------------------
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


def parse_log(text: str) -> tuple[str | None, dict[str, dict]]:
    """(the file's task, {date: {status, attempts}}) from one task log: the latest outcome of each
    day (succeeded, failed, or incomplete when a start has no end) and how many times it really
    ran. A reuse of the checkpointed outputs ("skipped") is not an outcome: the day keeps the one
    that produced them, so re-running everything unchanged does not change the report. Only the
    file's own task counts (a nested task's lines appear in its parent's log too)."""
    own, current, days, before = None, None, {}, {}
    for line in text.splitlines():
        m = _LOG_LINE.search(line)
        if not m:
            continue
        own = own or m["task"]
        if m["task"] != own:
            continue
        if m["start"]:
            current = m["start"]
            before[current] = days.get(current)
            attempts = (before[current] or {}).get("attempts", 0)
            days[current] = {"status": "incomplete", "attempts": attempts + 1}
        elif current is not None and m["skip"]:
            days[current] = before[current] or {"status": "succeeded", "attempts": 0}
        elif current is not None:
            days[current]["status"] = "succeeded" if m["end"] else "failed"
    return own, days


def run_statuses(artifacts: Artifacts, date: dt.date) -> dict[str, dict[str, dict]]:
    """{task: {date: {status, attempts}}} from the task logs up to `date` (parse_log)."""
    attempts: dict[str, dict[str, dict]] = defaultdict(dict)
    for name, _, path in _dated(artifacts.logs_dir, "*.log", date):
        if name == LOG_NAME:
            continue
        task, days = parse_log(path.read_text(errors="replace"))
        if task is not None:
            attempts[task].update({d: v for d, v in days.items() if d <= str(date)})
    return attempts


def collect(artifacts: Artifacts, date: dt.date, registry: dict | None) -> dict:
    """Everything the report shows, read from the artifacts (plain data, sorted)."""
    reports = artifacts.reports_dir
    checkpoints: dict[str, dict[str, dict]] = defaultdict(dict)
    for name, day, path in _dated(artifacts.checkpoints_dir, "*.json", date):
        manifest = _read_json(path)
        if name != "generate_report" and isinstance(manifest, dict):
            checkpoints[manifest.get("task", name)][str(day)] = manifest
    attempts = run_statuses(artifacts, date)
    runs = {}
    for task in sorted(set(checkpoints) | set(attempts)):
        days = sorted(set(checkpoints[task]) | set(attempts[task]))
        runs[task] = {
            d: {
                "status": attempts[task].get(d, {}).get("status", "succeeded"),
                "attempts": attempts[task].get(d, {}).get("attempts", 1),
                "metrics": checkpoints[task].get(d, {}).get("metrics", {}),
            }
            for d in days
        }
    return {
        "date": str(date),
        "runs": runs,
        "validation": {
            str(day): v
            for _, day, p in _dated(reports / "validation", "validation_report_*.json", date)
            if isinstance(v := _read_json(p), dict)
        },
        "evaluation": _read_json(reports / "evaluation_metrics.json"),
        "drift": [
            v
            for _, _, p in _dated(reports / "drift", "summary_*.json", date)
            if isinstance(v := _read_json(p), dict)
        ],
        "deployments": [
            v
            for _, _, p in _dated(reports / "deployment", "deployment_status_*.json", date)
            if isinstance(v := _read_json(p), dict)
        ],
        "incidents": [
            {"date": str(day), "file": p.name, **v}
            for day, p in _incidents(artifacts, date)
            if isinstance(v := _read_json(p), dict)
        ],
        "registry": registry,
    }


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


# -- formatting ----------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(value: Any, spec: str = ",.0f", scale: float = 1.0, suffix: str = "") -> str:
    x = _num(value)
    return "n/a" if x is None else f"{scale * x:{spec}}{suffix}"


def _pct(value: Any, digits: int = 2) -> str:
    return _fmt(value, f".{digits}f", 100.0, "%")


def _vol(value: Any) -> str:
    """An IV figure (0.0075) in vol points (0.751)."""
    return _fmt(value, ".3f", 100.0)


def _v(version: Any) -> str:
    return "none" if version in (None, "", "none") else f"v{version}"


# -- the document: blocks rendered to markdown and to HTML ---------------------------------------
Block = tuple  # ("h", level, text) | ("p", text) | ("ul", items) | ("table", head, rows) | ("img", alt, src)


def _latest(data: dict, key: str) -> dict | None:
    return data[key][-1] if data[key] else None


def _holder(data: dict, alias: str) -> dict | None:
    """The registry row (version, stage, verdict, ...) holding `alias`, or None."""
    for row in (data["registry"] or {}).get("state") or []:
        if alias in row.get("aliases", []):
            return row
    return None


def _registry_known(data: dict) -> bool:
    reg = data["registry"] or {}
    return bool(reg) and not reg.get("error")


def _production(data: dict) -> str | None:
    """Production's version: the registry's (the record of truth), else the newest deploy
    status's when the registry could not be read."""
    if _registry_known(data):
        row = _holder(data, "production")
        return str(row["version"]) if row else None
    deploy = _latest(data, "deployments")
    version = deploy.get("production_version") if deploy else None
    return None if version is None else str(version)


def _status_counts(days: dict) -> Counter:
    return Counter(v["status"] for v in days.values())


def section_summary(data: dict, actions: list[str]) -> list[Block]:
    date, runs = data["date"], data["runs"]
    today = {t: days[date]["status"] for t, days in runs.items() if date in days}
    parts = []
    if today:
        counts = Counter(today.values())
        failed = sorted(t for t, s in today.items() if s in ("failed", "incomplete"))
        parts.append(
            f"Latest run ({date}): {len(today)} task(s) — "
            + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
            + (f"; failed: {', '.join(failed)}." if failed else ".")
        )
    else:
        parts.append(f"No task ran on {date}.")
    all_days = sorted({d for days in runs.values() for d in days})
    if all_days:
        parts.append(f"Artifacts cover {len(all_days)} day(s), {all_days[0]}..{all_days[-1]}.")
    staging = _holder(data, "staging")
    parts.append(
        f"Production: {_v(_production(data))}; Staging: "
        + (f"{_v(staging['version'])} (gate {staging.get('verdict') or 'not evaluated'})."
           if staging else "none." if _registry_known(data) else f"{NOT_AVAILABLE}.")
    )  # fmt: skip
    deploy = _latest(data, "deployments")
    if deploy:
        verdict = (deploy.get("verdict") or {}).get("verdict", "not evaluated")
        since = (" (since promoted)" if deploy.get("candidate_version") is not None
                 and str(deploy["candidate_version"]) == _production(data) else "")  # fmt: skip
        parts.append(
            f"Deploy gate ({deploy.get('date')}): candidate {_v(deploy.get('candidate_version'))}"
            f"{since}, gate {verdict}, status {deploy.get('status')}."
        )
    else:
        parts.append(f"Deploy gate: {NOT_AVAILABLE} (no deployment status yet).")
    monitored = _latest(data, "drift")
    if monitored:
        retrain = (monitored.get("decision") or {}).get("retrain")
        parts.append(
            f"Monitoring ({monitored.get('date')}): drift share "
            f"{_pct(monitored.get('drift_share'), 0)}, IV RMSE change "
            f"{_fmt(monitored.get('rmse_change'), '+.1%')}; {'RETRAIN' if retrain else 'no retrain'}."
        )
    else:
        parts.append("Monitoring: no monitoring yet.")
    parts.append(f"Next: {actions[0]}")
    return [("h", 2, "Summary"), ("p", " ".join(parts))]


def section_runs(data: dict) -> list[Block]:
    runs = data["runs"]
    blocks: list[Block] = [("h", 2, "Pipeline runs")]
    if not runs:
        return [*blocks, ("p", f"Run status: {NOT_AVAILABLE} (no checkpoints or task logs).")]
    order = [t for t in TASK_ORDER if t in runs] + sorted(t for t in runs if t not in TASK_ORDER)
    rows = []
    for task in order:
        days, counts = runs[task], _status_counts(runs[task])
        last = max(days)
        timed = [d for d in sorted(days) if "duration_s" in days[d]["metrics"]]
        duration = days[timed[-1]]["metrics"]["duration_s"] if timed else None
        rows.append([task, str(len(days)), *(str(counts[s]) for s in STATUSES), last,
                     days[last]["status"], _fmt(duration, ".2f", suffix=" s")])  # fmt: skip
    head = ["task", "days", *STATUSES, "last day", "last status", "last duration"]
    blocks += [
        ("p", "Latest outcome of each task-day (task logs; checkpoints where a log is missing). "
              "A re-run that reused the checkpointed outputs keeps the outcome that made them."),
        ("table", head, rows),
    ]  # fmt: skip
    failed = sorted(
        (d, t) for t, days in runs.items() for d, v in days.items()
        if v["status"] in ("failed", "incomplete")
    )  # fmt: skip
    if failed:
        blocks.append(("p", "Failed or unfinished task-days:"))
        blocks.append(("ul", [f"{d}: {t} ({runs[t][d]['status']})" for d, t in failed]))
    return blocks


def _data_rows(data: dict) -> list[dict]:
    fetch = data["runs"].get("data_fetch", {})
    features = data["runs"].get("feature_engineer", {})
    days = sorted(set(data["validation"]) | set(fetch))
    out = []
    for day in days:
        v = data["validation"].get(day, {})
        out.append({
            "date": day,
            "fetched": fetch.get(day, {}).get("metrics", {}).get("rows_fetched", v.get("rows_in")),
            "valid": v.get("rows_valid"),
            "quarantined": v.get("rows_quarantined"),
            "bad_share": v.get("bad_row_share"),
            "features": features.get(day, {}).get("metrics", {}).get("rows_out"),
            "iv_reliable": features.get(day, {}).get("metrics", {}).get("iv_reliable_share"),
        })  # fmt: skip
    return out


def section_data(data: dict, plot: str | None) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Data")]
    rows = _data_rows(data)
    if not rows:
        return [*blocks, ("p", f"Data volume and quality: {NOT_AVAILABLE} (no validation "
                               "reports or data_fetch checkpoints).")]  # fmt: skip

    def total(key: str) -> float:
        return sum(_num(r[key]) or 0.0 for r in rows)

    blocks.append(("p", f"{len(rows)} trading day(s), {rows[0]['date']}..{rows[-1]['date']}: "
                        f"{_fmt(total('fetched'))} rows fetched, {_fmt(total('valid'))} valid, "
                        f"{_fmt(total('quarantined'))} quarantined "
                        f"({_pct(total('quarantined') / total('fetched')) if total('fetched') else 'n/a'})."))  # fmt: skip
    if plot:
        blocks.append(("img", "Rows valid and quarantined per day", plot))
    head = ["date", "fetched", "valid", "quarantined", "quarantined share", "feature rows",
            "IV reliable"]  # fmt: skip
    blocks.append(("table", head, [
        [r["date"], _fmt(r["fetched"]), _fmt(r["valid"]), _fmt(r["quarantined"]),
         _pct(r["bad_share"]), _fmt(r["features"]), _pct(r["iv_reliable"], 1)]
        for r in rows
    ]))  # fmt: skip
    validation = data["validation"]
    reasons: Counter = Counter()
    nulls: dict[str, list[float]] = defaultdict(list)
    unexpected: set[str] = set()
    for report in validation.values():
        for rule, figures in (report.get("rules") or {}).items():
            reasons[rule] += int(figures.get("failed") or 0)
        for column, rate in (report.get("null_rate") or {}).items():
            nulls[column].append(_num(rate) or 0.0)
        unexpected |= set(report.get("unexpected_columns") or [])
    blocks.append(("h", 3, "Quarantine reasons"))
    failing = sorted(((n, r) for r, n in reasons.items() if n), key=lambda t: (-t[0], t[1]))
    if not validation:
        blocks.append(("p", f"Quarantine reasons: {NOT_AVAILABLE} (no validation reports)."))
    elif failing:
        blocks += [
            ("p", "Rows failing each rule over all days (a row can fail several rules)."),
            ("table", ["rule", "rows failed"], [[r, _fmt(n)] for n, r in failing]),
        ]
    else:
        blocks.append(("p", "No row failed a validation rule."))
    blocks.append(("h", 3, "Null rates"))
    nonzero = sorted(
        ((max(v), sum(v) / len(v), c) for c, v in nulls.items() if max(v) > 0),
        key=lambda t: (-t[0], t[2]),
    )
    if not validation:
        blocks.append(("p", f"Null rates: {NOT_AVAILABLE} (no validation reports)."))
    elif nonzero:
        blocks.append(("table", ["column", "mean null rate", "max null rate"],
                       [[c, _pct(mean, 3), _pct(mx, 3)] for mx, mean, c in nonzero]))  # fmt: skip
    else:
        blocks.append(("p", "No nulls in any column."))
    if unexpected:
        blocks.append(("p", f"Unexpected columns seen: {', '.join(sorted(unexpected))}."))
    return blocks


def _models(evaluation: dict) -> list[str]:
    names = list(evaluation.get("metrics") or {})
    first = [m for m in ("candidate", "production") if m in names]
    return first + sorted(m for m in names if m not in first)


def _by_maturity(evaluation: dict) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(maturity buckets in order, {model: {bucket: IV RMSE}}) pooled over moneyness."""
    sse: dict[tuple[str, str], float] = defaultdict(float)
    n: dict[tuple[str, str], float] = defaultdict(float)
    for b in evaluation.get("buckets") or []:
        count, rmse = _num(b.get("n")), _num(b.get("iv_rmse"))
        if count and rmse is not None:
            sse[b["model"], b["maturity"]] += count * rmse**2
            n[b["model"], b["maturity"]] += count
    seen = {m for _, m in n}
    edges = (evaluation.get("bucket_edges") or {}).get("t_years") or []
    order = [m for m in edges if m in seen] + sorted(seen - set(edges))
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for (model, maturity), count in n.items():
        table[model][maturity] = math.sqrt(sse[model, maturity] / count)
    return order, table


def section_model(data: dict, plot: str | None) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Model vs baselines")]
    ev = data["evaluation"]
    if not isinstance(ev, dict) or not ev.get("metrics"):
        return [*blocks, ("p", f"Model evaluation: {NOT_AVAILABLE} (no "
                               "reports/evaluation_metrics.json: run make evaluate).")]  # fmt: skip
    hold, models = ev.get("holdout") or {}, ev.get("models") or {}
    cand, prod = models.get("candidate") or {}, models.get("production") or {}
    conf = _num((ev.get("config") or {}).get("confidence")) or 0.95
    blocks.append(("p", f"Holdout {hold.get('start')}..{hold.get('end')} "
                        f"({hold.get('days')} days, {_fmt(hold.get('rows'))} contracts): "
                        f"candidate {_v(cand.get('version'))} vs "
                        + (f"Production {_v(prod['version'])}" if prod.get("version")
                           else "Production (none at evaluation time)")
                        + " and the baselines. IV in vol points; "
                        f"{conf:.0%} bootstrap CI over dates."))  # fmt: skip
    if plot:
        blocks.append(("img", "IV RMSE per model and by maturity", plot))
    rows = []
    for m in _models(ev):
        f, ci = ev["metrics"][m], (ev.get("ci") or {}).get(m, {}).get("iv_rmse") or [None, None]
        rows.append([m, _vol(f.get("iv_rmse")), f"[{_vol(ci[0])}, {_vol(ci[1])}]",
                     _vol(f.get("iv_mae")), _fmt(f.get("iv_r2"), ".4f"),
                     _fmt(f.get("price_rmse"), ".3f"), _pct(f.get("price_mape")),
                     _pct(f.get("inside_spread_share"), 1)])  # fmt: skip
    blocks.append(("table", ["model", "IV RMSE", "CI", "IV MAE", "IV R²", "price RMSE",
                             "price MAPE", "inside spread"], rows))  # fmt: skip
    skills = sorted(
        (k.removeprefix("iv_skill_vs_"), v)
        for k, v in (ev["metrics"].get("candidate") or {}).items()
        if k.startswith("iv_skill_vs_")
    )
    if skills:
        blocks.append(("p", "Candidate IV skill (1 − RMSE ratio): "
                            + ", ".join(f"vs {k} {_fmt(v, '+.1%')}" for k, v in skills) + "."))  # fmt: skip
    order, by_maturity = _by_maturity(ev)
    if order:
        blocks += [("h", 3, "IV RMSE by maturity"), ("table", ["model", *order], [
            [m, *(_vol(by_maturity.get(m, {}).get(b)) for b in order)]
            for m in _models(ev) if m in by_maturity
        ])]  # fmt: skip
    quant = ev.get("quant") or {}
    checks = sorted({c for source in quant.values() for c in source})
    if checks:
        blocks += [("h", 3, "Quant checks"), ("p", "Share of breaches beyond the quoted spreads "
                                                    "(bounds: beyond a tick)."), ("table", [
            "check", *(f"{s} share" for s in sorted(quant)), "checked"], [
            [c, *(_pct((quant[s].get(c) or {}).get("share_beyond_spread",
                                                    (quant[s].get(c) or {}).get("share")))
                  for s in sorted(quant)),
             _fmt(max(_num((quant[s].get(c) or {}).get("checked")) or 0 for s in quant))]
            for c in checks])]  # fmt: skip
    verdict = ev.get("verdict") or {}
    if verdict:
        blocks += [("h", 3, "Gate verdict"),
                   ("p", f"Candidate {_v(cand.get('version'))}: "
                         f"{'passed' if verdict.get('passed') else 'FAILED'}."),
                   ("ul", list(verdict.get("reasons") or []))]  # fmt: skip
    return blocks


def section_drift(data: dict) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Drift & retraining")]
    if not data["drift"]:
        return [*blocks, ("p", "No monitoring yet: no reports/drift/summary_*.json (make monitor "
                               "once a model is in Production).")]  # fmt: skip
    rows, reasons = [], []
    for s in data["drift"]:
        decision, retrain = s.get("decision") or {}, s.get("retrain") or {}
        outcome = retrain.get("status", "n/a")
        if retrain.get("candidate_version"):
            gate = (retrain.get("gate") or {}).get("verdict", "no verdict")
            outcome += f" → {_v(retrain['candidate_version'])} (gate {gate})"
        rows.append([s.get("date"), _v((s.get("model") or {}).get("version")),
                     _fmt((s.get("rows") or {}).get("scored")), _vol(s.get("rmse")),
                     _vol(s.get("reference_rmse")), _fmt(s.get("rmse_change"), "+.1%"),
                     _pct(s.get("drift_share"), 0), ", ".join(s.get("drifted_columns") or []) or "-",
                     "RETRAIN" if decision.get("retrain") else "no retrain", outcome])  # fmt: skip
        reasons += [f"{s.get('date')}: {r}" for r in decision.get("reasons") or []]
    head = ["date", "model", "rows", "IV RMSE", "reference", "change", "drift share",
            "drifted features", "decision", "retrain"]  # fmt: skip
    blocks += [("p", "Production model on each monitored day vs its reference (its holdout); "
                     "IV in vol points."), ("table", head, rows)]  # fmt: skip
    if reasons:
        blocks += [("h", 3, "Decision reasons"), ("ul", reasons)]
    return blocks


def section_registry(data: dict) -> list[Block]:
    reg = data["registry"] or {}
    name = reg.get("model", "the model")
    blocks: list[Block] = [("h", 2, "Registry & deployment")]
    if reg.get("error"):
        blocks.append(("p", f"Registry state: {NOT_AVAILABLE} ({reg['error']})."))
    elif not reg.get("state"):
        blocks.append(("p", f"No version of '{name}' is registered."))
    else:
        blocks += [("h", 3, f"Versions of '{name}'"), ("table", [
            "version", "stage", "aliases", "gate verdict", "run", "created"], [
            [_v(s["version"]), str(s.get("stage")), ", ".join(s.get("aliases") or []) or "-",
             str(s.get("verdict") or "-"), str(s.get("run_id") or "-"), str(s.get("created") or "-")]
            for s in sorted(reg["state"], key=lambda s: int(s["version"]))])]  # fmt: skip
    for problem in reg.get("disagreements") or []:
        blocks.append(("p", f"Stage/alias disagreement: {problem}"))
    blocks.append(("h", 3, "Promotion history"))
    if reg.get("history"):
        blocks.append(("table", ["#", "at", "action", "from → to", "user", "forced", "reason"], [
            [str(i), str(e.get("at") or "-"), str(e.get("action") or "-"),
             f"{_v(e.get('from_version'))} → {_v(e.get('to_version'))}", str(e.get("user") or "-"),
             "yes" if e.get("forced") else "", str(e.get("reason") or "-")]
            for i, e in enumerate(reg["history"], 1)]))  # fmt: skip
    else:
        blocks.append(("p", "No promotions or rollbacks recorded."
                       if not reg.get("error") else f"History: {NOT_AVAILABLE}."))  # fmt: skip
    blocks.append(("h", 3, "Deploy gate"))
    if data["deployments"]:
        blocks.append(("table", ["date", "status", "candidate", "gate", "production", "serving",
                                 "next action"], [
            [d.get("date"), str(d.get("status")), _v(d.get("candidate_version")),
             (d.get("verdict") or {}).get("verdict", "not evaluated"),
             _v(d.get("production_version")), (d.get("serving") or {}).get("status", "-"),
             str(d.get("next_action"))] for d in data["deployments"]]))  # fmt: skip
    else:
        blocks.append(("p", f"Deployment status: {NOT_AVAILABLE} (model_deploy has not run)."))
    if data["incidents"]:
        blocks += [("h", 3, "Incidents"), ("ul", [
            f"{i['date']}: v{i.get('failed_version')} failed its deploy health check; "
            + (f"rolled back to v{(i.get('after_rollback') or {}).get('version')}"
               if i.get("rollback") else "no rollback")
            for i in data["incidents"]])]  # fmt: skip
    return blocks


def _gate_actions(data: dict) -> list[str]:
    """The deploy gate's next step: from the registry (a status file may predate a promotion),
    else from the newest deployment status."""
    deploy = _latest(data, "deployments")
    if not _registry_known(data):
        return [str(deploy["next_action"])] if deploy and deploy.get("next_action") else []
    actions, staging, production = [], _holder(data, "staging"), _production(data)
    if staging is not None:
        version, verdict = staging["version"], staging.get("verdict")
        actions.append(
            f"approve: make promote (version {version})" if verdict == "passed"
            else f"evaluate candidate v{version}: make evaluate" if verdict is None
            else f"candidate v{version} failed the gate: review the reasons (make history); "
                 "retrain, or force: make promote FORCE=1 REASON=..."
        )  # fmt: skip
    elif production is None:
        actions.append("train a candidate: make train, then make evaluate")
    serving = (deploy or {}).get("serving") or {}
    rolled_out = (
        deploy is not None
        and str(deploy.get("production_version")) == production
        and serving.get("status") == "healthy"
    )
    if production is not None and not rolled_out:
        actions.append(f"roll Production v{production} out to the pricing service and check it: "
                       "make deploy (with make serve running)")  # fmt: skip
    return actions


def next_actions(data: dict) -> list[str]:
    """What to do now, derived from the run status, the deploy gate, incidents and monitoring."""
    actions = []
    for task, days in sorted(data["runs"].items()):
        for day, v in sorted(days.items()):
            if v["status"] in ("failed", "incomplete"):
                actions.append(f"re-run {task} for {day} (latest attempt {v['status']}; see its "
                               f"log in logs/): python -m pipeline.{task} date={day}")  # fmt: skip
    for incident in data["incidents"]:
        actions.append(f"investigate the deploy incident of {incident['date']} (v"
                       f"{incident.get('failed_version')} failed its health check): "
                       f"reports/deployment/{incident['file']}")  # fmt: skip
    actions += _gate_actions(data)
    monitored = _latest(data, "drift")
    if monitored:
        retrain = monitored.get("retrain") or {}
        if retrain.get("status") == "retrained":
            gate = (retrain.get("gate") or {}).get("verdict", "no verdict")
            actions.append(f"review the retrained candidate {_v(retrain.get('candidate_version'))} "
                           f"(gate {gate}): make history, then make promote")  # fmt: skip
        elif (monitored.get("decision") or {}).get("retrain"):
            actions.append("retrain (the monitor's trigger fired): make train, then make evaluate")
    elif _production(data):
        actions.append("start monitoring Production: make monitor")
    return list(dict.fromkeys(actions)) or [
        "nothing to do: every task succeeded, no decision pending"
    ]


def build(data: dict, title: str, plots: dict[str, str | None]) -> list[Block]:
    actions = next_actions(data)
    return [
        ("h", 1, f"{title} — {data['date']}"),
        *section_summary(data, actions),
        *section_runs(data),
        *section_data(data, plots.get("data_volume")),
        *section_model(data, plots.get("model_vs_baselines")),
        *section_drift(data),
        *section_registry(data),
        ("h", 2, "Next actions"),
        ("ul", actions),
    ]


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]) or "- (none)")
        elif kind == "table":
            head, rows = block[1], block[2]
            lines = ["| " + " | ".join(map(_md_cell, head)) + " |",
                     "|" + "|".join("---" for _ in head) + "|"]  # fmt: skip
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[1]}]({block[2]})")
    return "\n\n".join(out) + "\n"


def _inline(text: Any) -> str:
    """Escaped HTML with `code` spans (the only inline markup the report uses)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text), quote=False))


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f0f0f0}"
    "img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}"
)


def to_html(blocks: list[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>"]  # fmt: skip
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{_inline(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in block[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                    for row in block[2]]  # fmt: skip
            out.append("</table>")
        elif kind == "img":
            alt, src = html.escape(block[1]), html.escape(block[2])
            out.append(f'<p><img src="{src}" alt="{alt}"></p>')
    return "\n".join([*out, "</body>", "</html>"]) + "\n"


# -- plots ---------------------------------------------------------------------------------------
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


def plot_models(evaluation: dict, target: Path, dpi: int) -> Path:
    """Left: IV RMSE per model with its CI; right: IV RMSE by maturity bucket, per model."""
    import numpy as np

    models = _models(evaluation)
    rmse = np.array([100 * (_num(evaluation["metrics"][m].get("iv_rmse")) or np.nan)
                     for m in models])  # fmt: skip
    ci = np.array([[100 * (_num(x) if _num(x) is not None else np.nan) for x in
                    ((evaluation.get("ci") or {}).get(m, {}).get("iv_rmse") or [None, None])]
                   for m in models])  # fmt: skip
    err = np.nan_to_num(np.abs(np.vstack([rmse - ci[:, 0], ci[:, 1] - rmse])))
    fig = _figure((11, 4.2))
    left, right = fig.subplots(1, 2)
    left.bar(models, rmse, yerr=err, capsize=4, color="tab:blue")
    for x, y in enumerate(rmse):
        if np.isfinite(y):
            left.annotate(f"{y:.3f}", (x, y), ha="center", va="bottom", fontsize=8,
                          xytext=(0, 3), textcoords="offset points")  # fmt: skip
    left.set_ylabel("IV RMSE (vol points)")
    hold = evaluation.get("holdout") or {}
    left.set_title(f"Holdout {hold.get('start')}..{hold.get('end')}")
    left.tick_params(axis="x", rotation=15)
    order, table = _by_maturity(evaluation)
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
    valid = np.array([_num(r["valid"]) or 0.0 for r in rows])
    quarantined = np.array([_num(r["quarantined"]) or 0.0 for r in rows])
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


# -- the task ------------------------------------------------------------------------------------
def write_report(artifacts: Artifacts, date: dt.date, registry: dict | None, title: str,
                 dpi: int) -> list[Path]:  # fmt: skip
    """Collect, plot and render; returns the files written (md, html, snapshot, PNGs)."""
    data = collect(artifacts, date, registry)
    written = [write_json(registry, snapshot_path(artifacts))]
    plots: dict[str, str | None] = {name: None for name in PLOTS}
    ev = data["evaluation"]
    if isinstance(ev, dict) and ev.get("metrics"):
        written.append(plot_models(ev, plot_path(artifacts, "model_vs_baselines"), dpi))
        plots["model_vs_baselines"] = "report/model_vs_baselines.png"
    rows = _data_rows(data)
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
    """What the report shows besides its input files: the registry, and the run outcomes parsed
    from the task logs (not the log files themselves: a reuse appends lines, changes nothing)."""
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
