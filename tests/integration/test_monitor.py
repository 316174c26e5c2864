"""monitor end to end on the tiny registry (v1 in Production, v2 in Staging; tests/serving_helpers).

The monitored day is the tiny market's last feature day (2026-03-31) unless a test says otherwise;
Production v1's reference is its holdout (2026-03-18..2026-03-31).
"""

from __future__ import annotations

import json

import mlflow
import pytest

from monitoring.workspace import dashboard_panels, day_count
from pipeline import monitor
from pipeline.artifacts import Artifacts, read_frame, write_frame
from pipeline.errors import DataError
from tests.helpers import run_module
from tests.serving_helpers import registry_config, registry_copy, tiny_registry, tracking_at

__all__ = ["registry_copy", "tiny_registry"]  # fixtures
pytestmark = pytest.mark.slow
NO_RETRAIN = "monitor.retrain=false"


def _summary(cfg, day: str = "20260331") -> dict:
    return json.loads(
        (Artifacts(cfg.paths).reports_dir / "drift" / f"summary_{day}.json").read_text()
    )


def test_monitor_writes_the_report_summary_and_an_mlflow_run(registry_copy):
    cfg = registry_config(registry_copy.root, NO_RETRAIN)
    with tracking_at(cfg):
        outcome = monitor.run_monitor(cfg)
        run = mlflow.get_run(outcome.run_id)
    html, summary_file = outcome.outputs
    assert html.name == "drift_20260331.html" and html.stat().st_size > 10_000
    summary = json.loads(summary_file.read_text())
    json.dumps(summary, allow_nan=False)  # strict JSON
    assert summary["model"]["version"] == registry_copy.production
    assert summary["rows"]["scored"] > 100 and 0 < summary["rmse"] < 0.05
    assert summary["reference_source"].startswith("training run")  # registration figures
    trained = mlflow.MlflowClient(cfg.mlflow.tracking_uri).get_run(summary["model"]["run_id"])
    # the holdout without its jump days (none here: the same rows as holdout.iv_rmse)
    assert summary["reference_rmse"] == trained.data.metrics["holdout.typical_iv_rmse"]
    assert summary["reference_rmse"] == pytest.approx(trained.data.metrics["holdout.iv_rmse"])
    assert 0.0 <= summary["drift_share"] <= 1.0
    assert set(summary["drift_scores"]) == set(summary["features"])
    assert set(summary["by_underlying"]) == {"SPY", "_SPX"}
    assert len(summary["decision"]["reasons"]) == 3  # RMSE, drift, one-day jump
    assert summary["retrain"]["status"] in ("not_triggered", "disabled")
    metrics, tags = run.data.metrics, run.data.tags
    for key in ("rmse", "mae", "reference_rmse", "reference_mae", "drift_share",
                "drifted_columns", "retrain_triggered", "SPY.rmse", "drift_score.prev_iv"):  # fmt: skip
        assert key in metrics, key
    assert metrics["rmse"] == pytest.approx(summary["rmse"])
    assert tags["monitor.decision"] in ("retrain", "no_retrain") and tags["monitor.reasons"]
    assert tags["pipeline.status"] == "succeeded"


def test_no_production_is_a_clear_skip(tmp_path, capsys):
    cfg = registry_config(tmp_path)  # an empty root: nothing registered
    with tracking_at(cfg):
        assert monitor.run_monitor(cfg) is None
    assert "no 'options-pricer' version in Production" in capsys.readouterr().out
    result = run_module("pipeline.monitor", f"paths.root={tmp_path}", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "nothing to monitor, skipped" in result.stdout


def test_the_workspace_gets_one_snapshot_per_day(registry_copy):
    cfg = registry_config(registry_copy.root, NO_RETRAIN)
    with tracking_at(cfg):
        for day in ("2026-03-30", "2026-03-31"):
            monitor.run_monitor(registry_config(registry_copy.root, NO_RETRAIN, f"date={day}"))
        # the same day again (forced): its snapshot is replaced, not added
        monitor.run_monitor(registry_config(registry_copy.root, NO_RETRAIN, "monitor.force=true"))
    assert day_count(cfg.monitor.workspace, cfg.monitor.project) == {
        "2026-03-30": 1,
        "2026-03-31": 1,
    }
    panels = dashboard_panels(cfg.monitor.workspace, cfg.monitor.project)
    assert panels["Per underlying"] == ["IV MAE: SPY", "IV MAE: _SPX"]  # each listed once
    assert panels["Performance"] == ["IV RMSE", "IV MAE"] and len(panels["Drift"]) == 3


def test_a_trigger_retrains_into_staging_behind_the_gate(registry_copy):
    # a negative allowance makes any RMSE a degradation, judged on the day alone: the trigger fires
    cfg = registry_config(registry_copy.root, "monitor.rmse_degradation=-0.5",
                          "monitor.breach_days=1", "monitor.window_days=1")  # fmt: skip
    registry = registry_copy.registry()
    with tracking_at(cfg):
        monitor.run_monitor(cfg)
    summary = _summary(cfg)
    assert summary["decision"]["retrain"] is True
    assert summary["decision"]["reasons"][0].startswith("[trigger] IV RMSE")
    retrain = summary["retrain"]
    assert retrain["status"] == "retrained" and retrain["promoted"] is None
    new = retrain["candidate_version"]
    assert int(new) > int(registry_copy.candidate)
    assert str(registry.resolve("staging").version) == new  # the new candidate waits in Staging
    assert registry.verdict(new) is not None  # model_evaluate recorded its gate verdict
    assert str(registry.resolve("production").version) == registry_copy.production


def test_a_due_retrain_waits_after_a_recent_failed_gate(registry_copy):
    """A summary of 2026-03-27 (2 trading days earlier) says this Production version's retrain
    then gave a candidate that failed the gate: today's due retrain is deferred, nothing runs."""
    cfg = registry_config(registry_copy.root, "monitor.rmse_degradation=-0.5",
                          "monitor.breach_days=1", "monitor.window_days=1")  # fmt: skip
    earlier = Artifacts(cfg.paths).reports_dir / "drift" / "summary_20260327.json"
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.write_text(json.dumps({
        "model": {"version": registry_copy.production}, "rmse_change": 0.4,
        "retrain": {"status": "retrained", "candidate_version": "9",
                    "gate": {"verdict": "failed", "passed": False}}}))  # fmt: skip
    with tracking_at(cfg):
        monitor.run_monitor(cfg)
    summary = _summary(cfg)
    assert summary["last_failed_gate"] == {"date": "2026-03-27", "version": "9", "days_ago": 2}
    assert summary["decision"]["retrain"] is False
    assert summary["decision"]["reasons"][0].startswith("[trigger] IV RMSE")
    assert summary["decision"]["reasons"][-1].startswith(
        "[deferred] retrain deferred: candidate v9"
    )
    assert summary["retrain"] == {"status": "not_triggered"}
    assert str(registry_copy.registry().resolve("staging").version) == registry_copy.candidate


def test_one_degraded_day_waits_for_a_second_under_the_default_persistence(registry_copy):
    cfg = registry_config(registry_copy.root, "monitor.rmse_degradation=-0.5", NO_RETRAIN)
    with tracking_at(cfg):
        monitor.run_monitor(cfg)
    summary = _summary(cfg)
    assert summary["rmse_history"] == [] and summary["decision"]["retrain"] is False
    assert (
        "on 1 of the last 1 monitored day(s) (retrain needs 2 of 3"
        in (summary["decision"]["reasons"][0])
    )


def test_missing_reference_data_names_the_files(registry_copy):
    cfg = registry_config(registry_copy.root, NO_RETRAIN, "date=2026-03-10")
    processed = Artifacts(cfg.paths).processed_dir
    for day in ("18", "19", "20", "23", "24", "25", "26", "27", "30", "31"):
        (processed / f"features_202603{day}.parquet").unlink()
    with (
        tracking_at(cfg),
        pytest.raises(DataError, match="reference data missing.*features_20260318"),
    ):
        monitor.run_monitor(cfg)


def test_schema_incompatible_current_data_names_the_column(registry_copy):
    cfg = registry_config(registry_copy.root, NO_RETRAIN)
    path = Artifacts(cfg.paths).features(monitor.monitored_date(cfg))
    write_frame(read_frame(path).drop(columns=["rv_20d"]), path)
    with (
        tracking_at(cfg),
        pytest.raises(DataError, match=r"current data .* lacks column\(s\) \['rv_20d'\]"),
    ):
        monitor.run_monitor(cfg)
