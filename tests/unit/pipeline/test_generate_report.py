"""generate_report from small synthetic artifact files: sections, missing artifacts, determinism."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import generate_report as gr
from pipeline.artifacts import Artifacts
from pipeline.outcomes import OutcomeRecord, append_outcome, outcomes_path, read_outcomes

DAY1, DAY2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
AT = "2026-03-03T18:00:00+00:00"
SECTIONS = [
    "## Summary",
    "## Pipeline runs",
    "## Data",
    "## Model vs baselines",
    "## Drift & retraining",
    "## Registry & deployment",
    "## Next actions",
]


def _artifacts(root: Path) -> Artifacts:
    paths = SimpleNamespace(
        root=root,
        raw=root / "data/raw",
        processed=root / "data/processed",
        quarantine=root / "data/quarantine",
        logs=root / "logs",
        reports=root / "reports",
        checkpoints=root / "data/checkpoints",
        state=root / "data/state",
    )
    return Artifacts(paths)


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True))


def _checkpoint(a: Artifacts, task: str, day: dt.date, **metrics) -> None:
    _write(a.checkpoint(task, day), {"task": task, "date": str(day), "metrics": metrics})


def _runs(a: Artifacts, task: str, day: dt.date, *outcomes: str) -> None:
    """Task runs as the runtime records them: a `running` line, then succeeded | skipped |
    failed (`end`, `skip`, `fail`)."""
    path = outcomes_path(a.logs_dir)
    for outcome in outcomes:
        run_id = f"{task}-{day}-{len(read_outcomes(path))}"
        append_outcome(path, OutcomeRecord(task, str(day), "running", run_id, AT))
        status = {"end": "succeeded", "skip": "skipped", "fail": "failed"}[outcome]
        append_outcome(path, OutcomeRecord(task, str(day), status, run_id, AT, 0.1, 1,
                                           "boom" if outcome == "fail" else None))  # fmt: skip


EVALUATION = {
    "holdout": {"start": "2026-02-20", "end": "2026-03-03", "days": 5, "rows": 1000},
    "config": {"confidence": 0.95},
    "models": {"candidate": {"version": "2", "run_id": "abc"}, "production": {"version": "1"}},
    "metrics": {
        "candidate": {"iv_rmse": 0.0075, "iv_mae": 0.004, "iv_skill_vs_baseline_prev_iv": 0.4},
        "production": {"iv_rmse": 0.008, "iv_mae": 0.0045},
        "baseline_prev_iv": {"iv_rmse": 0.0135, "iv_mae": 0.007},
    },
    "ci": {"candidate": {"iv_rmse": [0.0073, 0.0077]}},
    "bucket_edges": {"t_years": ["<=1m", "1m-3m"]},
    "buckets": [
        {"model": m, "maturity": t, "moneyness": "(-0.1,0.1]", "n": 10.0, "iv_rmse": r}
        for m, r in (("candidate", 0.007), ("production", 0.008), ("baseline_prev_iv", 0.013))
        for t in ("1m-3m", "<=1m")
    ],
    "quant": {"candidate": {"parity": {"checked": 50.0, "share": 0.1, "share_beyond_spread": 0.0}}},
    "verdict": {"passed": True, "reasons": ["candidate | beats the best baseline"]},
}
REGISTRY = {
    "model": "options-pricer",
    "state": [
        {"version": "2", "stage": "Staging", "aliases": ["staging"], "verdict": "passed",
         "run_id": "abc", "created": "2026-03-03T18:00:00+00:00"},
        {"version": "1", "stage": "Production", "aliases": ["production"], "verdict": "passed",
         "run_id": "def", "created": "2026-03-02T18:00:00+00:00"},
    ],
    "history": [{"at": "2026-03-02T19:00:00+00:00", "action": "promote", "from_version": None,
                 "to_version": "1", "user": "alice", "forced": False, "reason": "first"}],
    "disagreements": [],
    "error": None,
}  # fmt: skip


@pytest.fixture
def full(tmp_path) -> Artifacts:
    """Two days of data tasks (data_validate failed on its latest attempt of day 2), a model
    evaluation, a monitored day that triggered a retrain, and a deploy gate awaiting approval."""
    a = _artifacts(tmp_path)
    for day in (DAY1, DAY2):
        _checkpoint(a, "data_fetch", day, rows_fetched=1000, duration_s=0.5)
        _checkpoint(a, "data_validate", day, rows_in=1000, duration_s=0.25)
        _checkpoint(a, "feature_engineer", day, rows_out=900, iv_reliable_share=0.97)
        _write(a.validation_report(day), {
            "rows_in": 1000, "rows_valid": 900, "rows_quarantined": 100, "bad_row_share": 0.1,
            "null_rate": {"bid": 0.01, "strike": 0.0},
            "rules": {"bid_quoted": {"failed": 80, "passed": 920},
                      "bid_le_ask": {"failed": 20, "passed": 980}},
            "unexpected_columns": [],
        })  # fmt: skip
        _runs(a, "data_fetch", day, "end", "skip")
    _runs(a, "data_validate", DAY2, "end", "fail")
    _write(a.reports_dir / "evaluation_metrics.json", EVALUATION)
    _write(a.reports_dir / "drift" / "summary_20260303.json", {
        "date": str(DAY2), "model": {"version": "1"}, "rows": {"scored": 900}, "rmse": 0.009,
        "reference_rmse": 0.0075, "rmse_change": 0.2, "drift_share": 0.6,
        "drifted_columns": ["rv_5d"],
        "decision": {"retrain": True, "reasons": ["[RETRAIN] IV RMSE +20.0% above +10.0%"]},
        "retrain": {"status": "retrained", "candidate_version": "2",
                    "gate": {"verdict": "passed"}},
    })  # fmt: skip
    _write(a.reports_dir / "deployment" / "deployment_status_20260303.json", {
        "date": str(DAY2), "status": "awaiting_approval", "candidate_version": 2,
        "production_version": 1, "verdict": {"verdict": "passed"}, "serving": None,
        "next_action": "approve: make promote (version 2)",
    })  # fmt: skip
    return a


def _text(a: Artifacts) -> tuple[str, str]:
    return gr.md_path(a).read_text(), gr.html_path(a).read_text()


def test_every_section_is_rendered_from_the_artifacts(full):
    written = gr.write_report(full, DAY2, REGISTRY, "Report", 60)
    md, page = _text(full)
    assert [s for s in SECTIONS if s not in md] == []
    assert md.startswith("# Report — 2026-03-03\n")
    assert (
        "| data_fetch | 2 | 2 | 0 | 0 | 2026-03-03 | succeeded | 0.50 s |" in md
    )  # reuse ≠ outcome
    assert "| data_validate | 2 | 1 | 1 | 0 | 2026-03-03 | failed | 0.25 s |" in md
    assert "| 2026-03-02 | 1,000 | 900 | 100 | 10.00% | 900 | 97.0% |" in md
    assert "| bid_quoted | 160 |" in md and "| bid | 1.000% | 1.000% |" in md
    assert "| candidate | 0.750 | [0.730, 0.770] |" in md
    assert "- candidate | beats the best baseline" in md  # escaped in table cells only
    assert "| <=1m | 1m-3m |" in md  # maturity buckets in the evaluation's order
    assert "| 2026-03-03 | v1 | 900 | 0.900 | 0.750 | +20.0% | 60% | rv_5d | RETRAIN |" in md
    assert "| v2 | Staging | staging | passed |" in md and "| 1 | 2026-03-02T19:00" in md
    actions = md.split("## Next actions")[1]
    assert "re-run data_validate for 2026-03-03" in actions
    assert "approve: make promote (version 2)" in actions
    assert "review the retrained candidate v2 (gate passed)" in actions
    assert "roll Production v1 out" in actions  # the gate's status never saw it healthy
    assert "![Rows valid and quarantined per day](report/data_volume.png)" in md
    assert sorted(p.name for p in written if p.suffix == ".png") == [
        "data_volume.png",
        "model_vs_baselines.png",
    ]
    for png in gr.PLOTS:
        assert gr.plot_path(full, png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.startswith("<!DOCTYPE html>") and "<h2>Drift &amp; retraining</h2>" in page
    assert '<img src="report/model_vs_baselines.png"' in page
    assert "<td>&lt;=1m</td>" not in page and "<th>&lt;=1m</th>" in page
    assert json.loads(gr.snapshot_path(full).read_text()) == REGISTRY


def test_missing_artifacts_say_not_available(tmp_path):
    a = _artifacts(tmp_path)
    a.reports_dir.mkdir(parents=True)
    stale = gr.plot_path(a, "data_volume")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    registry = {"model": "options-pricer", "state": [], "history": [], "disagreements": [],
                "error": "registry unreachable"}  # fmt: skip
    written = gr.write_report(a, DAY1, registry, "Report", 60)
    md, page = _text(a)
    assert [s for s in SECTIONS if s not in md] == []
    for line in (
        "Run status: not available",
        "Data volume and quality: not available",
        "Model evaluation: not available",
        "No monitoring yet",
        "Registry state: not available (registry unreachable)",
        "Deployment status: not available",
    ):
        assert line in md and line in page
    assert not any(p.suffix == ".png" for p in written) and not stale.exists()


def test_no_registered_model_and_no_monitoring(tmp_path):
    a = _artifacts(tmp_path)
    _checkpoint(a, "data_fetch", DAY1, rows_fetched=10)
    empty = {"model": "m", "state": [], "history": [], "disagreements": [], "error": None}
    gr.write_report(a, DAY1, empty, "Report", 60)
    md = gr.md_path(a).read_text()
    assert "No version of 'm' is registered." in md
    assert "No promotions or rollbacks recorded." in md
    assert "train a candidate: make train" in md.split("## Next actions")[1]


def test_the_same_artifacts_give_the_same_bytes(full):
    def snapshot() -> dict[str, bytes]:
        written = gr.write_report(full, DAY2, REGISTRY, "Report", 60)
        return {p.name: p.read_bytes() for p in written}

    first, second = snapshot(), snapshot()
    assert first == second and len(first) == 5


def test_artifacts_dated_after_the_report_date_are_left_out(full):
    gr.write_report(full, DAY1, REGISTRY, "Report", 60)
    md = gr.md_path(full).read_text()
    assert "2026-03-03 |" not in md.split("## Model vs baselines")[0]
    assert "No monitoring yet" in md and "Deployment status: not available" in md
    inputs = gr.input_files(full, DAY1)
    assert inputs == sorted(inputs) and all("20260303" not in p.name for p in inputs)


def test_the_reports_own_checkpoint_and_the_outcome_records_are_not_input_files(full):
    """The outcome records are read for the run outcomes (the checkpoint key holds their digest,
    see _upstream), not hashed as a file: a re-run that reuses everything appends lines and
    changes nothing; the report's own runs are not reported."""
    _write(full.task_log(gr.LOG_NAME, DAY2), "anything\n")
    _checkpoint(full, "generate_report", DAY2)
    names = {p.name for p in gr.input_files(full, DAY2)}
    assert "generate_report_20260303.json" not in names
    assert not any(name.endswith((".log", ".jsonl")) for name in names)
    assert {"data_fetch_20260303.json", "evaluation_metrics.json"} <= names
    before = gr.run_statuses(full, DAY2)
    _runs(full, "data_fetch", DAY2, "skip", "skip")  # two more reuses
    _runs(full, "generate_report", DAY2, "end", "fail")  # the report's own runs
    assert gr.run_statuses(full, DAY2) == before


def test_a_failed_task_run_is_in_the_report_with_its_outcome(full):
    """The report reads the failure from the outcome records, whatever the task logs say."""
    _write(full.task_log("data_validate", DAY2),  # log text is not read: it says otherwise
           "t INFO    pipeline.data_validate: end data_validate for 2026-03-03: x=1\n")  # fmt: skip
    gr.write_report(full, DAY2, REGISTRY, "Report", 60)
    md = gr.md_path(full).read_text()
    assert "| data_validate | 2 | 1 | 1 | 0 | 2026-03-03 | failed | 0.25 s |" in md
    assert "- 2026-03-03: data_validate (failed)" in md
    _runs(full, "data_validate", DAY2, "end")  # a later run that succeeded
    gr.write_report(full, DAY2, REGISTRY, "Report", 60)
    assert (
        "| data_validate | 2 | 2 | 0 | 0 | 2026-03-03 | succeeded | 0.25 s |"
        in gr.md_path(full).read_text()
    )


def test_a_run_that_never_ended_is_incomplete(full):
    path = outcomes_path(full.logs_dir)
    append_outcome(path, OutcomeRecord("monitor", str(DAY2), "running", "killed", AT))
    gr.write_report(full, DAY2, REGISTRY, "Report", 60)
    md = gr.md_path(full).read_text()
    assert "| monitor | 1 | 0 | 0 | 1 | 2026-03-03 | incomplete | n/a |" in md
    assert "re-run monitor for 2026-03-03 (latest attempt incomplete" in md


def test_an_unreadable_evaluation_summary_is_named_in_the_report(full):
    _write(
        full.reports_dir / "evaluation_metrics.json", {"metrics": {"candidate": {"iv_rmse": "x"}}}
    )
    gr.write_report(full, DAY2, REGISTRY, "Report", 60)
    md = gr.md_path(full).read_text()
    assert "Model evaluation: not available (" in md
    assert "evaluation_metrics.json: not an evaluation summary: metrics.candidate.iv_rmse" in md


def test_markdown_and_html_escape_what_they_must():
    blocks = [("p", "a <b> & `code`"), ("table", ["x|y"], [["1|2"]]), ("ul", [])]
    assert gr.to_markdown(blocks) == "a <b> & `code`\n\n| x\\|y |\n|---|\n| 1\\|2 |\n\n- (none)\n"
    page = gr.to_html(blocks, "T")
    assert "<p>a &lt;b&gt; &amp; <code>code</code></p>" in page and "<td>1|2</td>" in page
