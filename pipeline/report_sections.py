"""The stakeholder report's content: its sections and next actions, as document blocks.

Reads a ReportData (pipeline.report_data) and returns blocks (pipeline.report_format) that
render to markdown and HTML; `build` is the whole document.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pipeline.config import TASKS
from pipeline.evaluation_summary import QuantCheck
from pipeline.report_data import ReportData, TaskDay, by_maturity, data_rows
from pipeline.report_format import Block, fmt, num, pct, version_label, vol

TASK_ORDER = (*(t for t in TASKS if t != "generate_report"), "monitor")  # the report's tables
STATUSES = ("succeeded", "failed", "incomplete")
NOT_AVAILABLE = "not available"


def _holder(data: ReportData, alias: str) -> dict | None:
    """The registry row (version, stage, verdict, ...) holding `alias`, or None."""
    for row in (data.registry or {}).get("state") or []:
        if alias in row.get("aliases", []):
            return row
    return None


def _registry_known(data: ReportData) -> bool:
    reg = data.registry or {}
    return bool(reg) and not reg.get("error")


def _production(data: ReportData) -> str | None:
    """Production's version: the registry's (the record of truth), else the newest deploy
    status's when the registry could not be read."""
    if _registry_known(data):
        row = _holder(data, "production")
        return str(row["version"]) if row else None
    deploy = data.latest("deployments")
    version = deploy.get("production_version") if deploy else None
    return None if version is None else str(version)


def _status_counts(days: dict[str, TaskDay]) -> Counter:
    return Counter(v.status for v in days.values())


def section_summary(data: ReportData, actions: list[str]) -> list[Block]:
    date, runs = data.date, data.runs
    today = {t: days[date].status for t, days in runs.items() if date in days}
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
        f"Production: {version_label(_production(data))}; Staging: "
        + (f"{version_label(staging['version'])} (gate {staging.get('verdict') or 'not evaluated'})."
           if staging else "none." if _registry_known(data) else f"{NOT_AVAILABLE}.")
    )  # fmt: skip
    deploy = data.latest("deployments")
    if deploy:
        verdict = (deploy.get("verdict") or {}).get("verdict", "not evaluated")
        since = (" (since promoted)" if deploy.get("candidate_version") is not None
                 and str(deploy["candidate_version"]) == _production(data) else "")  # fmt: skip
        parts.append(
            f"Deploy gate ({deploy.get('date')}): candidate {version_label(deploy.get('candidate_version'))}"
            f"{since}, gate {verdict}, status {deploy.get('status')}."
        )
    else:
        parts.append(f"Deploy gate: {NOT_AVAILABLE} (no deployment status yet).")
    monitored = data.latest("drift")
    if monitored:
        retrain = (monitored.get("decision") or {}).get("retrain")
        parts.append(
            f"Monitoring ({monitored.get('date')}): drift share "
            f"{pct(monitored.get('drift_share'), 0)}, IV RMSE change "
            f"{fmt(monitored.get('rmse_change'), '+.1%')}; {'RETRAIN' if retrain else 'no retrain'}."
        )
    else:
        parts.append("Monitoring: no monitoring yet.")
    parts.append(f"Next: {actions[0]}")
    return [("h", 2, "Summary"), ("p", " ".join(parts))]


def section_runs(data: ReportData) -> list[Block]:
    runs = data.runs
    blocks: list[Block] = [("h", 2, "Pipeline runs")]
    if not runs:
        return [
            *blocks,
            ("p", f"Run status: {NOT_AVAILABLE} (no checkpoints or task outcome records)."),
        ]
    order = [t for t in TASK_ORDER if t in runs] + sorted(t for t in runs if t not in TASK_ORDER)
    rows = []
    for task in order:
        days, counts = runs[task], _status_counts(runs[task])
        last = max(days)
        timed = [d for d in sorted(days) if "duration_s" in days[d].metrics]
        duration = days[timed[-1]].metrics["duration_s"] if timed else None
        rows.append([task, str(len(days)), *(str(counts[s]) for s in STATUSES), last,
                     days[last].status, fmt(duration, ".2f", suffix=" s")])  # fmt: skip
    head = ["task", "days", *STATUSES, "last day", "last status", "last duration"]
    blocks += [
        ("p", "Latest outcome of each task-day (task outcome records; checkpoints where there is "
              "none). "
              "A re-run that reused the checkpointed outputs keeps the outcome that made them."),
        ("table", head, rows),
    ]  # fmt: skip
    failed = sorted(
        (d, t) for t, days in runs.items() for d, v in days.items()
        if v.status in ("failed", "incomplete")
    )  # fmt: skip
    if failed:
        blocks.append(("p", "Failed or unfinished task-days:"))
        blocks.append(("ul", [f"{d}: {t} ({runs[t][d].status})" for d, t in failed]))
    return blocks


def section_data(data: ReportData, plot: str | None) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Data")]
    rows = data_rows(data)
    if not rows:
        return [*blocks, ("p", f"Data volume and quality: {NOT_AVAILABLE} (no validation "
                               "reports or data_fetch checkpoints).")]  # fmt: skip

    def total(key: str) -> float:
        return sum(num(r[key]) or 0.0 for r in rows)

    blocks.append(("p", f"{len(rows)} trading day(s), {rows[0]['date']}..{rows[-1]['date']}: "
                        f"{fmt(total('fetched'))} rows fetched, {fmt(total('valid'))} valid, "
                        f"{fmt(total('quarantined'))} quarantined "
                        f"({pct(total('quarantined') / total('fetched')) if total('fetched') else 'n/a'})."))  # fmt: skip
    if plot:
        blocks.append(("img", "Rows valid and quarantined per day", plot))
    head = ["date", "fetched", "valid", "quarantined", "quarantined share", "feature rows",
            "IV reliable"]  # fmt: skip
    blocks.append(("table", head, [
        [r["date"], fmt(r["fetched"]), fmt(r["valid"]), fmt(r["quarantined"]),
         pct(r["bad_share"]), fmt(r["features"]), pct(r["iv_reliable"], 1)]
        for r in rows
    ]))  # fmt: skip
    validation = data.validation
    reasons: Counter = Counter()
    nulls: dict[str, list[float]] = defaultdict(list)
    unexpected: set[str] = set()
    for report in validation.values():
        for rule, figures in (report.get("rules") or {}).items():
            reasons[rule] += int(figures.get("failed") or 0)
        for column, rate in (report.get("null_rate") or {}).items():
            nulls[column].append(num(rate) or 0.0)
        unexpected |= set(report.get("unexpected_columns") or [])
    blocks.append(("h", 3, "Quarantine reasons"))
    failing = sorted(((n, r) for r, n in reasons.items() if n), key=lambda t: (-t[0], t[1]))
    if not validation:
        blocks.append(("p", f"Quarantine reasons: {NOT_AVAILABLE} (no validation reports)."))
    elif failing:
        blocks += [
            ("p", "Rows failing each rule over all days (a row can fail several rules)."),
            ("table", ["rule", "rows failed"], [[r, fmt(n)] for n, r in failing]),
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
                       [[c, pct(mean, 3), pct(mx, 3)] for mx, mean, c in nonzero]))  # fmt: skip
    else:
        blocks.append(("p", "No nulls in any column."))
    if unexpected:
        blocks.append(("p", f"Unexpected columns seen: {', '.join(sorted(unexpected))}."))
    return blocks


def section_model(data: ReportData, plot: str | None) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Model vs baselines")]
    ev = data.evaluation
    if ev is None or not ev.metrics:
        why = (f"{data.evaluation_error}" if data.evaluation_error
               else "no reports/evaluation_metrics.json: run make evaluate")  # fmt: skip
        return [*blocks, ("p", f"Model evaluation: {NOT_AVAILABLE} ({why}).")]
    hold, cand, prod = ev.holdout, ev.version("candidate"), ev.version("production")
    conf = num(ev.config.confidence) or 0.95
    blocks.append(("p", f"Holdout {hold.start}..{hold.end} "
                        f"({hold.days} days, {fmt(hold.rows)} contracts): "
                        f"candidate {version_label(cand)} vs "
                        + (f"Production {version_label(prod)}" if prod
                           else "Production (none at evaluation time)")
                        + " and the baselines. IV in vol points; "
                        f"{conf:.0%} bootstrap CI over dates."))  # fmt: skip
    if plot:
        blocks.append(("img", "IV RMSE per model and by maturity", plot))
    rows = []
    for m in ev.model_names():
        f, ci = ev.metrics[m], ev.interval(m, "iv_rmse")
        rows.append([m, vol(f.iv_rmse), f"[{vol(ci[0])}, {vol(ci[1])}]", vol(f.iv_mae),
                     fmt(f.iv_r2, ".4f"), fmt(f.price_rmse, ".3f"), pct(f.price_mape),
                     pct(f.inside_spread_share, 1)])  # fmt: skip
    blocks.append(("table", ["model", "IV RMSE", "CI", "IV MAE", "IV R²", "price RMSE",
                             "price MAPE", "inside spread"], rows))  # fmt: skip
    candidate = ev.figures("candidate")
    skills = sorted(candidate.skills("iv").items()) if candidate else []
    if skills:
        blocks.append(("p", "Candidate IV skill (1 − RMSE ratio): "
                            + ", ".join(f"vs {k} {fmt(v, '+.1%')}" for k, v in skills) + "."))  # fmt: skip
    order, maturities = by_maturity(ev)
    if order:
        blocks += [("h", 3, "IV RMSE by maturity"), ("table", ["model", *order], [
            [m, *(vol(maturities.get(m, {}).get(b)) for b in order)]
            for m in ev.model_names() if m in maturities
        ])]  # fmt: skip
    blocks += _quant_blocks(ev.quant)
    if ev.verdict is not None:
        blocks += [("h", 3, "Gate verdict"),
                   ("p", f"Candidate {version_label(cand)}: "
                         f"{'passed' if ev.verdict.passed else 'FAILED'}."),
                   ("ul", list(ev.verdict.reasons))]  # fmt: skip
    return blocks


def _quant_blocks(quant: dict[str, dict[str, QuantCheck]]) -> list[Block]:
    """The quant checks' table: per check, each source's tradable breach share."""
    checks = sorted({c for source in quant.values() for c in source})
    if not checks:
        return []
    sources = sorted(quant)
    rows = [[c, *(pct(quant[s][c].tradable_share) if c in quant[s] else pct(None)
                  for s in sources),
             fmt(max(num(quant[s][c].checked) or 0 if c in quant[s] else 0 for s in sources))]
            for c in checks]  # fmt: skip
    return [("h", 3, "Quant checks"),
            ("p", "Share of breaches beyond the quoted spreads (bounds: beyond a tick)."),
            ("table", ["check", *(f"{s} share" for s in sources), "checked"], rows)]  # fmt: skip


def section_drift(data: ReportData) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Drift & retraining")]
    if not data.drift:
        return [*blocks, ("p", "No monitoring yet: no reports/drift/summary_*.json (make monitor "
                               "once a model is in Production).")]  # fmt: skip
    rows, reasons = [], []
    for s in data.drift:
        decision, retrain = s.get("decision") or {}, s.get("retrain") or {}
        outcome = retrain.get("status", "n/a")
        if retrain.get("candidate_version"):
            gate = (retrain.get("gate") or {}).get("verdict", "no verdict")
            outcome += f" → {version_label(retrain['candidate_version'])} (gate {gate})"
        rows.append([s.get("date"), version_label((s.get("model") or {}).get("version")),
                     fmt((s.get("rows") or {}).get("scored")), vol(s.get("rmse")),
                     vol(s.get("reference_rmse")), fmt(s.get("rmse_change"), "+.1%"),
                     pct(s.get("drift_share"), 0), ", ".join(s.get("drifted_columns") or []) or "-",
                     "RETRAIN" if decision.get("retrain") else "no retrain", outcome])  # fmt: skip
        reasons += [f"{s.get('date')}: {r}" for r in decision.get("reasons") or []]
    head = ["date", "model", "rows", "IV RMSE", "reference", "change", "drift share",
            "drifted features", "decision", "retrain"]  # fmt: skip
    blocks += [("p", "Production model on each monitored day vs its reference (its holdout); "
                     "IV in vol points."), ("table", head, rows)]  # fmt: skip
    if reasons:
        blocks += [("h", 3, "Decision reasons"), ("ul", reasons)]
    return blocks


def section_registry(data: ReportData) -> list[Block]:
    reg = data.registry or {}
    name = reg.get("model", "the model")
    blocks: list[Block] = [("h", 2, "Registry & deployment")]
    if reg.get("error"):
        blocks.append(("p", f"Registry state: {NOT_AVAILABLE} ({reg['error']})."))
    elif not reg.get("state"):
        blocks.append(("p", f"No version of '{name}' is registered."))
    else:
        blocks += [("h", 3, f"Versions of '{name}'"), ("table", [
            "version", "stage", "aliases", "gate verdict", "run", "created"], [
            [version_label(s["version"]), str(s.get("stage")), ", ".join(s.get("aliases") or []) or "-",
             str(s.get("verdict") or "-"), str(s.get("run_id") or "-"), str(s.get("created") or "-")]
            for s in sorted(reg["state"], key=lambda s: int(s["version"]))])]  # fmt: skip
    for problem in reg.get("disagreements") or []:
        blocks.append(("p", f"Stage/alias disagreement: {problem}"))
    blocks.append(("h", 3, "Promotion history"))
    if reg.get("history"):
        blocks.append(("table", ["#", "at", "action", "from → to", "user", "forced", "reason"], [
            [str(i), str(e.get("at") or "-"), str(e.get("action") or "-"),
             f"{version_label(e.get('from_version'))} → {version_label(e.get('to_version'))}", str(e.get("user") or "-"),
             "yes" if e.get("forced") else "", str(e.get("reason") or "-")]
            for i, e in enumerate(reg["history"], 1)]))  # fmt: skip
    else:
        blocks.append(("p", "No promotions or rollbacks recorded."
                       if not reg.get("error") else f"History: {NOT_AVAILABLE}."))  # fmt: skip
    blocks.append(("h", 3, "Deploy gate"))
    if data.deployments:
        blocks.append(("table", ["date", "status", "candidate", "gate", "production", "serving",
                                 "next action"], [
            [d.get("date"), str(d.get("status")), version_label(d.get("candidate_version")),
             (d.get("verdict") or {}).get("verdict", "not evaluated"),
             version_label(d.get("production_version")), (d.get("serving") or {}).get("status", "-"),
             str(d.get("next_action"))] for d in data.deployments]))  # fmt: skip
    else:
        blocks.append(("p", f"Deployment status: {NOT_AVAILABLE} (model_deploy has not run)."))
    if data.incidents:
        blocks += [("h", 3, "Incidents"), ("ul", [
            f"{i['date']}: v{i.get('failed_version')} failed its deploy health check; "
            + (f"rolled back to v{(i.get('after_rollback') or {}).get('version')}"
               if i.get("rollback") else "no rollback")
            for i in data.incidents])]  # fmt: skip
    return blocks


def _gate_actions(data: ReportData) -> list[str]:
    """The deploy gate's next step: from the registry (a status file may predate a promotion),
    else from the newest deployment status."""
    deploy = data.latest("deployments")
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


def next_actions(data: ReportData) -> list[str]:
    """What to do now, derived from the run status, the deploy gate, incidents and monitoring."""
    actions = []
    for task, days in sorted(data.runs.items()):
        for day, v in sorted(days.items()):
            if v.status in ("failed", "incomplete"):
                actions.append(f"re-run {task} for {day} (latest attempt {v.status}; see its "
                               f"log in logs/): python -m pipeline.{task} date={day}")  # fmt: skip
    for incident in data.incidents:
        actions.append(f"investigate the deploy incident of {incident['date']} (v"
                       f"{incident.get('failed_version')} failed its health check): "
                       f"reports/deployment/{incident['file']}")  # fmt: skip
    actions += _gate_actions(data)
    monitored = data.latest("drift")
    if monitored:
        retrain = monitored.get("retrain") or {}
        if retrain.get("status") == "retrained":
            gate = (retrain.get("gate") or {}).get("verdict", "no verdict")
            actions.append(f"review the retrained candidate {version_label(retrain.get('candidate_version'))} "
                           f"(gate {gate}): make history, then make promote")  # fmt: skip
        elif (monitored.get("decision") or {}).get("retrain"):
            actions.append("retrain (the monitor's trigger fired): make train, then make evaluate")
    elif _production(data):
        actions.append("start monitoring Production: make monitor")
    return list(dict.fromkeys(actions)) or [
        "nothing to do: every task succeeded, no decision pending"
    ]


def build(data: ReportData, title: str, plots: dict[str, str | None]) -> list[Block]:
    actions = next_actions(data)
    return [
        ("h", 1, f"{title} — {data.date}"),
        *section_summary(data, actions),
        *section_runs(data),
        *section_data(data, plots.get("data_volume")),
        *section_model(data, plots.get("model_vs_baselines")),
        *section_drift(data),
        *section_registry(data),
        ("h", 2, "Next actions"),
        ("ul", actions),
    ]
