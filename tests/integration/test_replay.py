"""A short market replay on the tiny market (15 days, variance ×4 on day 8, a third of the fetches
faulted): every day completes through the faults, the shock is detected and a retrain runs."""

from __future__ import annotations

import json

import pytest

from monitoring.replay import MARKER, fresh_root, markdown, run_replay, write_summary
from pipeline.errors import ConfigError
from tests.conftest import TINY_MARKET, compose_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHORT = [
    "replay.end_date=2026-03-31",
    "replay.days=15",
    "replay.shock_day=8",
    "replay.warmup_days=25",
    "replay.fault_rate=0.35",
    "model_train.n_estimators=40",
    "model_train.days=25",
    "model_evaluate.bootstrap_samples=50",
    "monitor.sample_size=3000",
]


def test_short_replay_detects_the_shock_and_retrains(tmp_path, restore_tracking):
    cfg = compose_config([f"paths.root={tmp_path}", *TINY_MARKET, *SHORT])
    summary = run_replay(cfg)

    days = summary["days"]
    assert len(days) == 15 and summary["days_completed"] == 15
    assert summary["completion_share"] == 1.0 and summary["failed_days"] == []
    assert summary["data_freshness"]["max_lag_trading_days"] == 0
    fetch = summary["fetch"]  # transient faults were injected and every one was retried through
    assert fetch["faults_injected"] > 0 and fetch["client_retries"] >= fetch["faults_injected"]
    assert fetch["symbol_days_recovered"] == fetch["symbol_days_faulted"] > 0
    assert fetch["retry_success_rate"] == 1.0

    shock, after = days[7], days[8]
    assert shock["day"] == 8 and shock["date"] == summary["period"]["shock_date"]
    # the jump is in the day's IV RMSE (one day: persistence waits for a second) and in drift;
    # the retrain waits for a day after the change to judge its candidate on, and runs then
    assert shock["rmse_change"] > 1.0
    assert any(r.startswith("[trigger] feature drift") for r in shock["reasons"])
    assert not shock["retrain"] and shock["deferred"]
    assert after["retrain"] and after["candidate_version"]
    goals = summary["goals"]
    assert goals["retrain_triggered_by_the_shock_within_1_day"]["ok"]
    assert goals["at_least_95pct_of_daily_runs_succeed"]["ok"] and goals["data_under_24h_old"]["ok"]
    assert goals["retry_success_over_90pct"]["ok"] and goals["end_to_end_under_15_min_a_day"]["ok"]
    assert {d["production_version"] for d in days} != {None}  # monitored every day
    assert summary["manual_actions"][0]["action"] == "promote"  # the first model, at the gate
    assert all(a["action"] != "promote" or a["gate"] == "passed" for a in summary["manual_actions"])

    # the records of the flow: one line per day, the Evidently workspace, the summary files
    root = tmp_path / "replay"
    runs = (root / "reports" / "schedule" / "runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["date"] for line in runs] == [d["date"] for d in days]
    written = write_summary(summary, tmp_path / "out")
    assert json.loads(written[0].read_text())["days_completed"] == 15
    assert "| retrain triggered by the shock within 1 day | ✓ |" in written[1].read_text()
    assert markdown(summary) == written[1].read_text()


def test_a_replay_never_wipes_a_directory_it_did_not_make(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not made by a replay"):
        fresh_root(precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    made = fresh_root(tmp_path / "scratch")
    (made / "old.txt").write_text("from the last replay")
    assert not (fresh_root(made) / "old.txt").exists() and (made / MARKER).exists()


def test_replay_settings_are_checked(tmp_path):
    from monitoring.replay import period

    for bad, match in (("replay.shock_day=99", "shock_day"), ("replay.days=0", "replay.days"),
                       ("replay.fault_rate=2", "fault_rate")):  # fmt: skip
        cfg = compose_config([f"paths.root={tmp_path}", bad])
        with pytest.raises(ConfigError, match=match):
            period(cfg.replay)
