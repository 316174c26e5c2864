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
        "at_least_95pct_of_daily_runs_succeed": True,
        "data_under_24h_old": True,
        "retry_success_over_90pct": True,
        "under_2_manual_interventions_a_week": True,
        "end_to_end_under_15_min_a_day": True,
        "retrain_triggered_by_the_shock_within_1_day": True,
        "production_skill_after_the_shock_within_10pct_of_before": True,
    }
    assert s["fetch"]["retry_success_rate"] == 1.0 and s["fetch"]["client_retries"] == 6
    assert s["market_difficulty"]["post_shock_days"] == 3
    text = markdown(s)
    assert "| retrain triggered by the shock within 1 day | ✓ |" in text and text.count("\n| ") > 10


def test_goals_missed_are_named_with_their_figures():
    records = [day(1, retrain=True), day(2, status="failed"), day(3, rmse=0.08), day(4),
               day(5, rmse=0.02, skill=0.9), day(6, rmse=0.02, skill=0.9)]  # fmt: skip
    records[1]["failed_task"], records[1]["reason"] = "data_fetch", "DataError: no quotes"
    records[1]["freshness_lag_days"] = 1
    records[3]["seconds"] = 901.0
    stats = STATS | {"symbol_days_faulted": 10, "symbol_days_recovered": 9}
    reviews = [{"date": str(DAYS[0]), "version": "2", "gate": "failed", "action":
                "review failed gate (not promoted)", "when": "evening"}]  # fmt: skip
    s = summarise(cfg(3), DAYS, records, PROMOTE + reviews, stats, 10.0, 40.0)
    goals = s["goals"]
    assert not any(g["ok"] for g in goals.values())
    assert goals["at_least_95pct_of_daily_runs_succeed"]["value"] == "5/6 days (83%)"
    assert goals["data_under_24h_old"]["value"] == "5/6 days end with that day's features"
    assert goals["retry_success_over_90pct"]["value"] == "9/10 faulted fetches recovered"
    # 6 days = 1.2 weeks: 1 approval + 1 gate review + 1 failed day = 3 > 2.4
    assert goals["under_2_manual_interventions_a_week"]["value"].startswith(
        "3 in 1.2 weeks (2.50/week): 1 approvals at the gate, 1 reviews of a failed gate, "
        "1 failed days"
    )
    assert goals["end_to_end_under_15_min_a_day"]["value"] == "max 901.0 s"
    assert goals["retrain_triggered_by_the_shock_within_1_day"]["value"] == "no retrain on days 3-4"
    # the model kept in Production after the shock is judged: worse against the baseline
    assert goals["production_skill_after_the_shock_within_10pct_of_before"]["value"] == (
        "IV RMSE / previous-day-IV RMSE 0.833 over the 3 days after the shock (Production v1) "
        "vs 0.700 before (+19.0%; 95% CI over days -0.0%..+28.6%)"
    )
    assert s["failed_days"] == [{"date": str(DAYS[1]), "failed_task": "data_fetch",
                                 "reason": "DataError: no quotes"}]  # fmt: skip
    assert "data_fetch: DataError: no quotes" in markdown(s)


def test_production_after_the_shock_is_judged_on_its_skill_not_its_raw_rmse():
    """After the shock every model's RMSE is higher (the market moves more); the goal compares
    Production's RMSE to the previous-day-IV baseline's, before and after."""
    records = [day(1), day(2), day(3, rmse=0.08, retrain=True),
               day(4, version="2", rmse=0.02, base=0.028, skill=0.72),
               day(5, version="2", rmse=0.02, base=0.028, skill=0.74), day(6, version="2")]  # fmt: skip
    s = summarise(cfg(3), DAYS, records, PROMOTE, STATS, 10.0, 40.0)
    goal = s["goals"]["production_skill_after_the_shock_within_10pct_of_before"]
    assert goal["ok"] and "0.720 over the 3 days after the shock (Production v2)" in goal["value"]
    assert s["market_difficulty"]["post_shock_rmse_mean"] > 1.5 * s["pre_shock_reference_rmse"]
    records[3]["skill_vs_prev_iv"] = records[4]["skill_vs_prev_iv"] = 0.9
    s = summarise(cfg(3), DAYS, records, PROMOTE, STATS, 10.0, 40.0)
    assert not s["goals"]["production_skill_after_the_shock_within_10pct_of_before"]["ok"]


def test_without_a_shock_only_the_shock_free_goals_are_judged():
    s = summarise(cfg(None), DAYS, [day(i) for i in range(1, 7)], PROMOTE, STATS, 10.0, 40.0)
    assert set(s["goals"]) == {
        "at_least_95pct_of_daily_runs_succeed",
        "data_under_24h_old",
        "retry_success_over_90pct",
        "under_2_manual_interventions_a_week",
        "end_to_end_under_15_min_a_day",
    }
    assert "no shock" in markdown(s) and s["market_difficulty"] == {}


def test_the_skill_change_has_a_bootstrap_interval_over_days():
    from monitoring.replay import skill_change_interval

    steady = skill_change_interval([0.4] * 10, [0.4] * 10)
    assert steady == [0.0, 0.0]
    lo, hi = skill_change_interval([0.2, 0.6] * 10, [0.3, 0.9] * 10)
    assert lo < 0.5 < hi  # the point estimate (+50%) inside, and the interval wide
    assert hi - lo > 0.3
    assert skill_change_interval([0.4], [0.5, 0.6]) is None
    assert skill_change_interval([0.4, None, float("nan"), 0.5], [0.5, 0.6]) is not None
