"""The typed evaluation summary: summarise's content round-trips through the file byte for byte,
a file from before later fields existed still reads (and the gate judges it), a bad file is one
error naming the field."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from pipeline.errors import DataError
from pipeline.evaluation import baseline_predictions, summarise
from pipeline.evaluation_summary import (
    EvaluationSummary,
    ModelRef,
    VerdictRecord,
    read_summary,
    write_summary,
)
from pipeline.gate import gate_verdict
from tests.unit.pipeline.test_evaluation import CFG, _predictor, holdout

GATE = OmegaConf.create({"production_margin": 0.02, "parity_tolerance": 0.01,
                         "monotonic_tolerance": 0.01, "bounds_tolerance": 0.001})  # fmt: skip

# the file model_evaluate wrote before per-day figures, scopes, rows_finite and the bootstrap
# unit existed (its first version): the keys as they were, trimmed to one check and one bucket
OLD_FORMAT = {
    "holdout": {"start": "2026-02-20", "end": "2026-03-03", "days": 8, "rows_scored": 4200,
                "dates": ["2026-02-20", "2026-03-03"], "rows": 4300},
    "config": {"min_mid_for_mape": 0.1, "bootstrap_samples": 200, "confidence": 0.95, "seed": 7},
    "coverage": {"candidate": 1.0, "baseline_prev_iv": 0.98},
    "metrics": {
        "candidate": {"n": 4200.0, "iv_rmse": 0.007, "iv_mae": 0.005, "iv_bias": 0.0,
                      "iv_r2": 0.9, "price_rmse": 0.1, "price_mae": 0.05, "price_mape": None,
                      "price_r2": 0.99, "inside_spread_share": 0.6,
                      "iv_skill_vs_baseline_prev_iv": 0.5, "price_skill_vs_baseline_prev_iv": 0.4},
        "baseline_prev_iv": {"n": 4200.0, "iv_rmse": 0.014, "iv_mae": 0.01, "iv_bias": 0.001,
                             "iv_r2": 0.7, "price_rmse": 0.2, "price_mae": 0.1,
                             "price_mape": 0.05, "price_r2": 0.95, "inside_spread_share": 0.3},
    },
    "ci": {"candidate": {"iv_rmse": [0.0065, 0.0075], "iv_skill_vs_baseline_prev_iv": [0.4, 0.6]}},
    "buckets": [{"model": "candidate", "moneyness": "(-0.1,0.1]", "maturity": "1m-3m",
                 "n": 100.0, "iv_rmse": 0.006}],
    "bucket_edges": {"std_moneyness": ["(-0.1,0.1]"], "t_years": ["1m-3m"]},
    "quant": {"candidate": {c: {"share": 0.0, "checked": 100.0, "violations": 0.0}
                            for c in ("parity", "monotonic", "convexity", "bounds")}},
    "models": {"candidate": {"name": "options-pricer", "version": "3", "run_id": "abc"},
               "production": None},
    "verdict": {"passed": True, "reasons": ["..."], "metrics": {"candidate.iv_rmse": 0.007}},
}  # fmt: skip


def _summarised() -> dict:
    h = holdout()
    preds = {"candidate": _predictor(h, h["iv"] + 0.01), **baseline_predictions(h)}
    return summarise(h, preds, CFG, seed=0)


def test_summarise_content_round_trips_through_the_file_byte_for_byte(tmp_path):
    content = _summarised()
    summary = EvaluationSummary.of(content)
    summary = summary.with_models(
        {"candidate": ModelRef(name="m", version="3", run_id="r"), "production": None}
    ).with_verdict(VerdictRecord(passed=False, reasons=["why"], metrics={"x": 1.0}))
    target = write_summary(summary, tmp_path / "evaluation_metrics.json")
    expected = content | {
        "models": {"candidate": {"name": "m", "version": "3", "run_id": "r"}, "production": None},
        "verdict": {"passed": False, "reasons": ["why"], "metrics": {"x": 1.0}},
    }
    assert json.loads(target.read_text()) == expected  # the same keys as the dict it replaces
    again = read_summary(target)
    assert again == summary
    write_summary(again, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == target.read_bytes()
    # typed fields, not .get chains
    assert again.holdout.days == 4 and again.config.bootstrap_unit == "date"
    assert again.version("candidate") == "3" and again.version("production") is None
    assert again.figures("candidate").iv_rmse == content["metrics"]["candidate"]["iv_rmse"]
    assert set(again.figures("candidate").skills()) == {"baseline_hist_vol", "baseline_prev_iv"}
    assert again.interval("candidate", "iv_rmse") == tuple(content["ci"]["candidate"]["iv_rmse"])
    assert again.interval("production", "iv_rmse") == (None, None)


def test_an_old_format_file_reads_with_defaults_and_writes_back_its_own_keys(tmp_path):
    path = tmp_path / "evaluation_metrics.json"
    path.write_text(json.dumps(OLD_FORMAT))
    old = read_summary(path)
    assert old.holdout.rows_finite is None and old.scopes == {} and old.days == []
    assert old.config.bootstrap_unit == "date"  # what the bootstrap was over back then
    assert old.quant_checks("candidate")["parity"].share_beyond_spread is None
    assert old.to_json() == OLD_FORMAT  # nothing added, nothing lost
    verdict = gate_verdict(old, GATE)  # the gate judges it: the tick-based shares, date CI
    assert verdict.passed, verdict.reasons
    assert "put-call parity breaches: 0.00% of 100 checked" in verdict.reasons[-4]
    assert "95% CI of the IV skill vs baseline_prev_iv [+40.0%, +60.0%]" in verdict.reasons[-5]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["metrics"]["candidate"].update(iv_rmse="high"), "metrics.candidate.iv_rmse"),
        (lambda d: d["metrics"]["candidate"].update(iv_rmsee=0.1), "unknown metric 'iv_rmsee'"),
        (lambda d: d["holdout"].update(colour="red"), "holdout.colour"),
        (lambda d: d.pop("metrics"), "metrics: Field required"),
        (lambda d: d["verdict"].pop("passed"), "verdict.passed"),
    ],
)
def test_a_file_that_is_not_a_summary_is_one_error_naming_the_field(tmp_path, change, named):
    content = json.loads(json.dumps(OLD_FORMAT))
    change(content)
    path = tmp_path / "evaluation_metrics.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match="not an evaluation summary") as err:
        read_summary(path)
    assert named in str(err.value) and str(path) in str(err.value)


def test_a_missing_file_is_none_and_a_non_json_one_an_error(tmp_path):
    assert read_summary(tmp_path / "nothing.json") is None
    (tmp_path / "cut.json").write_text('{"metrics": {')
    with pytest.raises(DataError, match="cut.json: not JSON"):
        read_summary(tmp_path / "cut.json")


def test_the_summary_is_frozen():
    summary = EvaluationSummary.of(OLD_FORMAT)
    with pytest.raises(ValueError, match="frozen"):
        summary.verdict = None
