"""The replay's summary and goals from day records (no market, no MLflow)."""

from __future__ import annotations

import datetime as dt

from omegaconf import OmegaConf

from monitoring.replay import markdown, summarise

DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(6)]  # dates only label days


def cfg(shock_day):
    return OmegaConf.create({
        "replay": {"shock_day": shock_day, "shock_size": 4.0, "warmup_days": 25,
                   "fault_rate": 0.25, "retry_base_delay": 0.05, "approve": True},
        "monitor": {"rmse_degradation": 0.1}, "paths": {"root": "/r"},
    })  # fmt: skip


def day(i, *, rmse=0.008, version="1", retrain=False, status="succeeded", skill=0.7, base=0.011):
    return {"day": i, "date": str(DAYS[i - 1]), "status": status, "failed_task": None,
            "reason": None, "seconds": 5.0, "task_seconds": {"monitor": 3.0}, "fetch_retries": 1,
            "freshness_lag_days": 0, "production_version": version, "rmse": rmse,
            "reference_rmse": 0.008, "rmse_change": rmse / 0.008 - 1, "drift_share": 0.1,
            "drifted_columns": [], "retrain": retrain, "reasons": ["[trigger] x"] if retrain else [],
            "candidate_version": "2" if retrain else None, "gate": "passed" if retrain else None,
            "baseline_prev_iv_rmse": base, "skill_vs_prev_iv": skill}  # fmt: skip


STATS = {"requests": 30, "served": 24, "faults_injected": 6, "faults_by_kind": {"503": 6},
         "symbol_days_faulted": 5, "symbol_days_recovered": 5}  # fmt: skip
PROMOTE = [{"date": str(DAYS[0]), "version": "1", "gate": "passed", "action": "promote",
            "when": "before the period"}]  # fmt: skip


def test_goals_met_when_the_shock_is_caught_and_the_new_model_recovers():
    records = [day(1), day(2), day(3, rmse=0.08, retrain=True), day(4, version="2"),
               day(5, version="2", rmse=0.0085), day(6, version="2")]  # fmt: skip
    actions = PROMOTE + [{"date": str(DAYS[2]), "version": "2", "gate": "passed",
                          "action": "promote", "when": "evening"}]  # fmt: skip
    s = summarise(cfg(3), DAYS, records, actions, STATS, 10.0, 40.0)
    assert {k: g["ok"] for k, g in s["goals"].items()} == {
        "all_days_complete": True,
        "only_manual_action_is_the_promotion_gate": True,
        "no_retrain_on_calm_days_before_the_shock": True,
        "shock_detected_and_retrain_within_1_day": True,
        "retrained_model_recovers_within_10pct_of_pre_shock_reference": True,
    }
    assert s["fetch"]["retry_success_rate"] == 1.0 and s["fetch"]["client_retries"] == 6
    assert s["market_difficulty"]["post_shock_days"] == 3
    text = markdown(s)
    assert "| shock detected and retrain within 1 day | ✓ |" in text and text.count("\n| ") > 10


def test_goals_missed_are_named_with_their_figures():
    records = [day(1, retrain=True), day(2, status="failed"), day(3, rmse=0.08), day(4),
               day(5, rmse=0.02), day(6, rmse=0.02)]  # fmt: skip
    records[1]["failed_task"], records[1]["reason"] = "data_fetch", "DataError: no quotes"
    s = summarise(cfg(3), DAYS, records, PROMOTE, STATS, 10.0, 40.0)
    goals = s["goals"]
    assert (
        not goals["all_days_complete"]["ok"] and goals["all_days_complete"]["value"] == "5/6 days"
    )
    assert goals["no_retrain_on_calm_days_before_the_shock"]["value"] == [str(DAYS[0])]
    assert not goals["shock_detected_and_retrain_within_1_day"]["ok"]
    assert not goals["retrained_model_recovers_within_10pct_of_pre_shock_reference"]["ok"]
    assert s["failed_days"] == [{"date": str(DAYS[1]), "failed_task": "data_fetch",
                                 "reason": "DataError: no quotes"}]  # fmt: skip
    assert "data_fetch: DataError: no quotes" in markdown(s)


def test_without_a_shock_only_the_shock_free_goals_are_judged():
    s = summarise(cfg(None), DAYS, [day(i) for i in range(1, 7)], PROMOTE, STATS, 10.0, 40.0)
    assert set(s["goals"]) == {"all_days_complete", "only_manual_action_is_the_promotion_gate"}
    assert "no shock" in markdown(s) and s["market_difficulty"] == {}
