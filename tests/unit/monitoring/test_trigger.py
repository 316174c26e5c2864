"""The retrain trigger policy: RMSE degradation (at, just below, just above its limit), drift,
both; the change point a retrain's holdout starts at. The limits are the shipped ones
(configs/monitor/default.yaml, read through Thresholds.from_config); a scenario that needs another
setting (persistence, a backoff) replaces just that field."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import fields, replace
from types import SimpleNamespace

import pytest

from monitoring.trigger import Decision, Thresholds, change_point, day_breaches, decide, run_start
from tests.conftest import compose_config

REFERENCE = 0.0110
SHIPPED = Thresholds.from_config(compose_config([]).monitor)
# the shipped limits, each day judged alone, no failed-gate wait, no one-day jump rule
POLICY = replace(SHIPPED, breach_days=1, window_days=1, failed_gate_backoff_days=0,
                 change_rmse_jump=math.inf)  # fmt: skip
LIMIT, SHARE = POLICY.rmse_degradation, POLICY.drift_share
OVER_SHARE = (1.0 + SHARE) / 2  # a drift share over the limit


def summary(rmse: float, share: float = 0.0, drifted: list[str] | None = None) -> dict:
    return {"rmse": rmse, "reference_rmse": REFERENCE, "drift_share": share,
            "drifted_columns": drifted or []}  # fmt: skip


@pytest.mark.parametrize("reference", [0.0110, 0.1, 0.0123456, 1.0 / 3.0])
def test_rmse_exactly_at_the_threshold_does_not_trigger(reference):
    decision = decide({"rmse": reference * (1 + LIMIT), "reference_rmse": reference,
                       "drift_share": 0.0}, POLICY)  # fmt: skip
    assert not decision.retrain, decision.reasons


def test_rmse_exactly_ten_percent_in_decimals_does_not_trigger():
    """0.11 vs 0.10 × 1.10 is "at" the limit whatever the float rounding."""
    ten = replace(POLICY, rmse_degradation=0.10)
    decision = decide({"rmse": 0.11, "reference_rmse": 0.10, "drift_share": 0.0}, ten)
    assert not decision.retrain, decision.reasons


def test_rmse_just_below_the_threshold_does_not_trigger():
    decision = decide(summary(REFERENCE * (1 + LIMIT * 0.999)), POLICY)
    assert not decision.retrain
    assert decision.reasons[0].startswith("[ok] IV RMSE")
    assert f"within the allowed {LIMIT:+.1%}" in decision.reasons[0]


def test_rmse_just_above_the_threshold_triggers():
    decision = decide(summary(REFERENCE * (1 + LIMIT * 1.001)), POLICY)
    assert decision.retrain
    assert decision.reasons[0].startswith("[trigger] IV RMSE")
    assert f"more than the allowed {LIMIT:+.1%}" in decision.reasons[0]
    assert decision.reasons[1].startswith("[ok] feature drift")


def test_an_improved_rmse_does_not_trigger():
    assert not decide(summary(REFERENCE * 0.5), POLICY).retrain


def test_the_degradation_threshold_is_configurable():
    assert decide(summary(REFERENCE * 1.06), replace(POLICY, rmse_degradation=0.05)).retrain
    assert not decide(summary(REFERENCE * 1.06), replace(POLICY, rmse_degradation=0.20)).retrain


def test_drift_only_triggers_and_names_the_drifted_columns():
    decision = decide(summary(REFERENCE, share=OVER_SHARE, drifted=["rv_5d", "prev_iv"]), POLICY)
    assert decision.retrain
    assert decision.reasons[0].startswith("[ok] IV RMSE")
    assert decision.reasons[1].startswith(f"[trigger] feature drift share {OVER_SHARE:.0%}")
    assert "rv_5d, prev_iv" in decision.reasons[1]


def test_drift_share_exactly_at_the_threshold_does_not_trigger():
    assert not decide(summary(REFERENCE, share=SHARE), POLICY).retrain


def test_both_checks_firing_give_both_reasons():
    decision = decide(summary(REFERENCE * 1.5, share=1.0, drifted=["rv_5d"]), POLICY)
    assert decision.retrain
    assert [r.split()[0] for r in decision.reasons] == ["[trigger]", "[trigger]"]


def test_nothing_fires_and_the_reasons_still_say_why():
    decision = decide(summary(REFERENCE, share=SHARE / 2), POLICY)
    assert not decision.retrain and len(decision.reasons) == 2
    assert all(r.startswith("[ok]") for r in decision.reasons)


@pytest.mark.parametrize(
    ("figures", "said"),
    [
        ({"rmse": math.nan, "reference_rmse": REFERENCE, "drift_share": 0.0}, "no scored rows"),
        ({"rmse": 0.5, "reference_rmse": None, "drift_share": 0.0}, "no reference RMSE"),
        ({"rmse": 0.5, "drift_share": math.nan}, "not computed"),
    ],
)
def test_missing_figures_never_trigger_and_say_what_is_missing(figures, said):
    decision = decide(figures, POLICY)
    assert not decision.retrain
    assert any(said in r for r in decision.reasons), decision.reasons


def test_thresholds_are_the_shipped_config_and_need_every_key():
    node = compose_config([]).monitor
    for f in fields(Thresholds):
        assert getattr(SHIPPED, f.name) == node[f.name], f.name
    with pytest.raises(AttributeError, match="breach_days"):  # no silent default
        Thresholds.from_config(SimpleNamespace(rmse_degradation=0.2, drift_share=0.3))


# the scenarios below: a breach on 2 of the last 3 monitored days retrains
PERSISTENT = replace(POLICY, breach_days=2, window_days=3)


def test_one_bad_day_alone_does_not_retrain_when_persistence_is_asked():
    spike = summary(REFERENCE * 1.67) | {"rmse_history": [0.01, -0.03]}
    decision = decide(spike, PERSISTENT)
    assert not decision.retrain
    assert "above the limit on 1 of the last 3 monitored day(s)" in decision.reasons[0]
    assert decide(spike, POLICY).retrain  # judged alone, the same day retrains


def test_a_persisting_degradation_retrains_on_its_second_day():
    second = summary(REFERENCE * 1.5) | {"rmse_history": [0.0, 0.8]}
    decision = decide(second, PERSISTENT)
    assert decision.retrain and decision.reasons[0].startswith("[trigger]")
    assert "on 2 of the last 3" in decision.reasons[0]
    # exactly at the limit the earlier day is no breach; just above it is
    assert not decide(summary(REFERENCE * 1.5) | {"rmse_history": [0.0, 0.10]}, PERSISTENT).retrain
    assert decide(summary(REFERENCE * 1.5) | {"rmse_history": [0.0, 0.1001]}, PERSISTENT).retrain
    # only the window counts: a breach 3 days back is out of it
    assert not decide(
        summary(REFERENCE * 1.5) | {"rmse_history": [0.9, 0.0, 0.0]}, PERSISTENT
    ).retrain


def test_earlier_breaches_do_not_retrain_a_day_within_the_limit():
    calm_today = summary(REFERENCE * 1.02) | {"rmse_history": [0.5, 0.6]}
    assert not decide(calm_today, PERSISTENT).retrain
    missing = summary(REFERENCE * 1.5) | {"rmse_history": [None, float("nan")]}
    assert not decide(missing, PERSISTENT).retrain


def test_persistence_settings_are_checked():
    with pytest.raises(ValueError, match="breach_days"):
        replace(POLICY, breach_days=3, window_days=2)
    bad = compose_config(["monitor.breach_days=3", "monitor.window_days=2"]).monitor
    with pytest.raises(ValueError, match=r"breach_days \(3\) <= window_days \(2\)"):
        Thresholds.from_config(bad)


BACKOFF = replace(POLICY, failed_gate_backoff_days=5)


def failed(days_ago: int) -> dict:
    return {"last_failed_gate": {"date": "2026-11-02", "version": "7", "days_ago": days_ago}}


def test_a_due_retrain_waits_after_a_failed_gate_and_says_so():
    due = summary(REFERENCE * 1.5, share=OVER_SHARE, drifted=["rv_5d"]) | failed(4)
    decision = decide(due, BACKOFF)
    assert not decision.retrain
    # the checks still say what fired; the last reason says why nothing runs, and until when
    assert [r.split(" ")[0] for r in decision.reasons] == ["[trigger]", "[trigger]", "[deferred]"]
    assert ("candidate v7 retrained on 2026-11-02 failed the gate 4 trading day(s) ago"
            in decision.reasons[2])  # fmt: skip
    # the backoff is over on its 5th trading day; without one, or with no failed gate, no wait
    assert decide(summary(REFERENCE * 1.5) | failed(5), BACKOFF).retrain
    assert decide(summary(REFERENCE * 1.5) | failed(1), POLICY).retrain
    assert decide(summary(REFERENCE * 1.5) | {"last_failed_gate": None}, BACKOFF).retrain


def test_no_deferral_reason_when_nothing_is_due():
    calm = decide(summary(REFERENCE) | failed(1), BACKOFF)
    assert not calm.retrain and not any(r.startswith("[deferred]") for r in calm.reasons)


def test_backoff_settings_are_checked():
    with pytest.raises(ValueError, match="failed_gate_backoff_days"):
        replace(POLICY, failed_gate_backoff_days=-1)


# -- the change point ------------------------------------------------------------------------------
D = [dt.date(2026, 10, 26) + dt.timedelta(days=i) for i in range(5)]  # Mon..Fri


def flags(rmse: str, drift: str) -> list[tuple[dt.date, dict]]:
    """Days D[0].. with their breaches, from strings such as "-xx" (x: over the limit)."""
    return [
        (D[i], {"rmse": r == "x", "drift": d == "x"})
        for i, (r, d) in enumerate(zip(rmse, drift, strict=True))
    ]


def test_a_run_starts_at_its_first_breaching_day_back_from_today():
    assert run_start([(D[0], False), (D[1], True), (D[2], True), (D[3], True)]) == D[1]
    # only the current run counts: an earlier one, ended by a day within the limit, does not
    assert run_start([(D[0], True), (D[1], False), (D[2], True), (D[3], True)]) == D[2]
    assert run_start([(D[0], True), (D[1], True)]) == D[0]  # back to the first monitored day
    assert run_start([(D[1], True), (D[0], True)]) == D[0]  # in any order
    assert run_start([(D[0], True), (D[1], False)]) is None and run_start([]) is None


def test_a_shock_after_calm_days_is_its_own_change_point():
    """The day drift crossed its threshold (the replay's shock day: 77% of the features)."""
    assert change_point(flags("---", "--x"), ["drift"]) == D[2]
    assert change_point(flags("--x", "--x"), ["rmse", "drift"]) == D[2]


def test_the_change_point_is_the_day_drift_crossed_not_the_first_noisy_rmse_day():
    """Volatile days above the RMSE limit before a shock do not pull the change point back."""
    assert change_point(flags("-xxxx", "---xx"), ["rmse", "drift"]) == D[3]
    assert change_point(flags("xxxxx", "-xxxx"), ["drift"]) == D[1]  # the drift run's first day
    assert change_point(flags("xxxxx", "x-xxx"), ["drift"]) == D[2]  # a calm day ends a run


def test_a_retrain_on_the_rmse_alone_dates_no_change():
    """The usual holdout: a 1-2 day one from a noisy RMSE run made noisy gates and references."""
    assert change_point(flags("-x-xx", "-----"), ["rmse"]) is None
    assert change_point(flags("xxx", "--x"), ["rmse"]) is None  # drift over, but did not fire
    # the signals dating a change are a parameter: with the RMSE among them, its run's start
    assert change_point(flags("-x-xx", "-----"), ["rmse"], signals=("rmse", "drift")) == D[3]
    assert change_point(flags("-xxxx", "---xx"), ["rmse", "drift"], ("rmse", "drift")) == D[3]


def test_no_change_point_without_a_signal_over_its_limit_today():
    assert change_point(flags("xx-", "xx-"), ["drift"]) is None
    assert change_point(flags("xxx", "xxx"), []) is None and change_point([], ["drift"]) is None


def test_a_day_breaches_on_its_own_rmse_or_drift_strictly_above_the_limit():
    def day(change, share):
        return day_breaches({"rmse_change": change, "drift_share": share}, POLICY)

    off = {"jump": False}  # POLICY has no one-day jump rule
    assert day(LIMIT * 4.5, SHARE / 2) == {"rmse": True, "drift": False, **off}
    assert day(0.0, OVER_SHARE) == {"rmse": False, "drift": True, **off}
    assert day(LIMIT, SHARE) == {"rmse": False, "drift": False, **off}  # exactly at both limits
    assert day_breaches({}, POLICY) == day(math.nan, None) == {"rmse": False, "drift": False, **off}


def test_a_decision_names_the_signals_that_fired():
    assert decide(summary(REFERENCE * 1.5, share=OVER_SHARE), POLICY).fired == ("rmse", "drift")
    assert decide(summary(REFERENCE, share=OVER_SHARE), POLICY).fired == ("drift",)
    assert decide(summary(REFERENCE), POLICY).fired == ()
    deferred = decide(summary(REFERENCE * 1.5) | failed(1), BACKOFF)
    assert not deferred.retrain and deferred.fired == ("rmse",)


def test_the_monitor_retrains_with_its_holdout_from_the_change_point(monkeypatch):
    """monitor.retrain_holdout_start over earlier summaries of the same Production version: a
    calm day, an RMSE breach, then drift over its limit the day before today's retrain."""
    from pipeline import monitor

    earlier = [(D[0], {"rmse_change": 0.02, "drift_share": 0.3}),
               (D[1], {"rmse_change": 0.45, "drift_share": 0.3}),
               (D[2], {"rmse_change": 0.35, "drift_share": 0.77})]  # fmt: skip
    monkeypatch.setattr(monitor, "_production", lambda cfg: SimpleNamespace(version="3"))
    monkeypatch.setattr(monitor, "earlier_summaries", lambda ctx, mv: earlier)
    ctx = SimpleNamespace(task_cfg=compose_config([]).monitor, cfg=SimpleNamespace(), date=D[3])
    both = monitor.retrain_holdout_start(ctx, Decision(True, [], ("rmse", "drift")))
    # judged on the days after the change (2026-10-28), i.e. from today
    assert both == (D[3], "change point 2026-10-28: drift or an IV RMSE jump since; the "
                          "candidate is judged on the days after it, from 2026-10-29")  # fmt: skip
    rmse_only = monitor.retrain_holdout_start(ctx, Decision(True, [], ("rmse",)))
    assert rmse_only[0] is None and "the usual holdout" in rmse_only[1]
    # the retrain a change waited for: dated by the pending change even if drift has eased
    pending = monitor.retrain_holdout_start(ctx, Decision(True, [], ()), pending=str(D[2]))
    assert pending[0] == D[3]
    monkeypatch.setattr(monitor, "earlier_summaries", lambda ctx, mv: earlier[:2])
    today = monitor.retrain_holdout_start(ctx, Decision(True, [], ("drift",)))
    assert today[0] is None and "no day after it yet" in today[1]  # a change today: none after


def test_a_retrain_on_drift_passes_the_change_point_to_model_train(monkeypatch):
    """monitor._retrain: model_train and model_evaluate see model_train.holdout_start = the change
    point (and force); the outcome records it. A retrain on the IV RMSE alone leaves it null."""
    from omegaconf import OmegaConf

    from pipeline import monitor

    seen = []

    def execute(spec, cfg, day):
        seen.append((spec.name, cfg.model_train.holdout_start, cfg.model_train.force, day))
        return SimpleNamespace(run_id=f"run-{spec.name}")

    class Registry:
        def __init__(self, name):
            pass

        def resolve(self, stage):
            return SimpleNamespace(version="4")

        def verdict(self, version):
            return {"verdict": "passed", "passed": True}

    earlier = [(D[0], {"rmse_change": 0.0, "drift_share": 0.3}),
               (D[1], {"rmse_change": 0.0, "drift_share": 0.8})]  # fmt: skip
    monkeypatch.setattr(monitor, "execute", execute)
    monkeypatch.setattr(monitor, "Registry", Registry)
    monkeypatch.setattr(monitor, "_production", lambda cfg: SimpleNamespace(version="3"))
    monkeypatch.setattr(monitor, "earlier_summaries", lambda ctx, mv: earlier)
    cfg = OmegaConf.create({"registry": {"model_name": "m"},
                            "model_train": {"force": False, "holdout_start": None}})  # fmt: skip
    task = compose_config(["monitor.retrain=true", "monitor.auto_promote=false"]).monitor
    ctx = SimpleNamespace(cfg=cfg, task_cfg=task, date=D[2], log=SimpleNamespace(info=print),
                          metric=lambda *a: None)  # fmt: skip
    out = monitor._retrain(ctx, Decision(True, [], ("drift",)))
    # the change began 2026-10-27: the candidate is judged from the day after, 2026-10-28
    assert seen == [("model_train", "2026-10-28", True, D[2]),
                    ("model_evaluate", "2026-10-28", True, D[2])]  # fmt: skip
    assert out["holdout_start"] == "2026-10-28" and out["candidate_version"] == "4"
    assert cfg.model_train.holdout_start is None  # the user's config is left alone
    seen.clear()
    out = monitor._retrain(ctx, Decision(True, [], ("rmse",)))
    assert [s[1] for s in seen] == [None, None] and out["holdout_start"] is None


def _due(**extra) -> dict:
    return {"rmse": 0.01, "reference_rmse": 0.01, "drift_share": 0.8, "drifted_columns": ["rv_5d"],
            "date": "2026-10-29", **extra}  # fmt: skip


def test_a_retrain_due_on_the_day_of_a_change_waits_for_the_day_after():
    th = replace(SHIPPED, breach_days=1, window_days=1, failed_gate_backoff_days=5)
    today = decide(_due(change_point="2026-10-29"), th)
    assert (
        not today.retrain and "[deferred] the change began today (2026-10-29)" in today.reasons[-1]
    )
    older = decide(_due(change_point="2026-10-28"), th)
    assert older.retrain
    # the next day retrains for it even when the drift has eased
    eased = decide(_due(drift_share=0.2, change_point=None, pending_change="2026-10-28"), th)
    assert eased.retrain and "waited for a day after it" in eased.reasons[-1]


def test_a_new_change_after_a_failed_gate_lifts_the_backoff():
    th = replace(SHIPPED, breach_days=1, window_days=1, failed_gate_backoff_days=5)
    failed = {"date": "2026-10-27", "version": "5", "days_ago": 2}
    same = decide(_due(change_point="2026-10-26", last_failed_gate=failed), th)
    assert not same.retrain and "[deferred] retrain deferred" in same.reasons[-1]
    new = decide(_due(change_point="2026-10-28", last_failed_gate=failed), th)
    assert new.retrain and "a new change on 2026-10-28" in new.reasons[-1]


def test_a_one_day_rmse_jump_is_a_change_that_needs_no_second_day():
    th = replace(SHIPPED, breach_days=2, window_days=3, failed_gate_backoff_days=5,
                 change_rmse_jump=1.0)  # fmt: skip
    calm = {"rmse": 0.03, "reference_rmse": 0.01, "rmse_change": 2.0, "drift_share": 0.3,
            "rmse_history": [0.0, 0.0], "date": "2026-10-30"}  # fmt: skip
    shock = decide({**calm, "change_point": "2026-10-30"}, th)
    assert (
        shock.fired == ("jump",)
        and "[trigger] IV RMSE +200% over its reference" in shock.reasons[2]
    )
    assert not shock.retrain and shock.reasons[-1].startswith("[deferred] the change began today")
    volatile = decide({**calm, "rmse": 0.0178, "rmse_change": 0.78, "change_point": None}, th)
    assert volatile.fired == () and not volatile.retrain  # +78%: a volatile day, one of 3
    assert day_breaches({"rmse_change": 2.0, "drift_share": 0.1}, th)["jump"]
    assert not day_breaches({"rmse_change": 0.9, "drift_share": 0.1}, th)["jump"]
