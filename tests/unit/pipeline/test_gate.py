"""The gate verdict as a function of a summary and the thresholds."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from pipeline.gate import gate_verdict

CFG = OmegaConf.create(
    {
        "production_margin": 0.02,
        "parity_tolerance": 0.01,
        "monotonic_tolerance": 0.01,
        "bounds_tolerance": 0.001,
    }
)
CLEAN = {
    "parity": {"share": 0.0, "checked": 400},
    "monotonic": {"share": 0.0, "checked": 800},
    "convexity": {"share": 0.0, "checked": 760},
    "bounds": {"share": 0.0, "checked": 840},
}


def summary(
    candidate: float,
    production: float | None = None,
    hist: float = 0.05,
    prev: float = 0.03,
    **quant,
) -> dict:
    metrics = {
        "candidate": {"iv_rmse": candidate},
        "baseline_hist_vol": {"iv_rmse": hist},
        "baseline_prev_iv": {"iv_rmse": prev},
    }
    models = {"candidate": {"version": "3"}, "production": None}
    if production is not None:
        metrics["production"] = {"iv_rmse": production}
        models["production"] = {"version": "2"}
    checks = {k: dict(v) for k, v in CLEAN.items()}
    for k, share in quant.items():
        checks[k]["share"] = share
    return {
        "metrics": metrics,
        "models": models,
        "quant": {"candidate": checks},
        "holdout": {"rows_scored": 840},
    }


def test_exactly_at_the_margin_passes():
    v = gate_verdict(summary(0.010 * 1.02, production=0.010), CFG)
    assert v.passed, v.reasons
    assert v.metrics["relative_to_production"] == pytest.approx(0.02)


def test_just_below_the_margin_passes():
    assert gate_verdict(summary(0.010 * 1.0199, production=0.010), CFG).passed


def test_just_above_the_margin_fails_with_the_figures():
    v = gate_verdict(summary(0.010 * 1.0201, production=0.010), CFG)
    assert not v.passed
    assert len(v.reasons) == 1
    reason = v.reasons[0]
    assert "Production (v2)" in reason and "+2.01%" in reason and "+2.00%" in reason
    assert "1.020 vol points" in reason and "1.000 vol points" in reason


def test_worse_than_the_best_baseline_fails():
    v = gate_verdict(summary(0.0095, hist=0.012, prev=0.009), CFG)
    assert not v.passed
    assert v.reasons == [
        "candidate IV RMSE 0.950 vol points is worse than the best baseline "
        "baseline_prev_iv (0.900 vol points; skill -5.6%)"
    ]


def test_beating_production_does_not_excuse_losing_to_a_baseline():
    v = gate_verdict(summary(0.020, production=0.030, prev=0.015), CFG)
    assert not v.passed and "baseline_prev_iv" in v.reasons[0]


@pytest.mark.parametrize(
    ("check", "share", "words"),
    [
        ("parity", 0.02, "put-call parity"),
        ("monotonic", 0.015, "monotonicity"),
        ("convexity", 0.5, "convexity"),
        ("bounds", 0.002, "no-arbitrage bounds"),
    ],
)
def test_quant_breaches_beyond_tolerance_fail(check, share, words):
    v = gate_verdict(summary(0.01, **{check: share}), CFG)
    assert not v.passed
    assert len(v.reasons) == 1 and words in v.reasons[0] and f"{share:.2%}" in v.reasons[0]


def test_quant_breaches_at_tolerance_pass():
    assert gate_verdict(
        summary(0.01, parity=0.01, monotonic=0.01, convexity=0.01, bounds=0.001), CFG
    ).passed


def test_missing_quant_check_fails():
    s = summary(0.01)
    del s["quant"]["candidate"]["convexity"]
    v = gate_verdict(s, CFG)
    assert not v.passed and "convexity" in v.reasons[0]


def test_no_production_passes_on_baselines_and_quant_alone():
    v = gate_verdict(summary(0.01), CFG)
    assert v.passed
    assert v.reasons[0] == "no Production model to compare against"
    assert "production.iv_rmse" not in v.metrics
    assert any("beats or matches the best baseline baseline_prev_iv" in r for r in v.reasons)


def test_unscored_candidate_fails():
    s = summary(0.01)
    s["metrics"]["candidate"]["iv_rmse"] = None
    v = gate_verdict(s, CFG)
    assert not v.passed and "no holdout row" in v.reasons[0]


def test_every_broken_rule_is_reported():
    v = gate_verdict(summary(0.05, production=0.01, prev=0.03, parity=0.2, bounds=0.01), CFG)
    assert not v.passed and len(v.reasons) == 4


def test_tick_breaches_within_the_spreads_pass_and_tradable_ones_fail():
    """With bid/ask, parity and strike-shape breaches count only beyond the quoted spreads."""
    s = summary(0.01, parity=0.7, convexity=0.3)  # most pairs off by more than a tick...
    s["quant"]["candidate"]["parity"]["share_beyond_spread"] = 0.0  # ...none tradable
    s["quant"]["candidate"]["convexity"]["share_beyond_spread"] = 0.0
    assert gate_verdict(s, CFG).passed
    s["quant"]["candidate"]["parity"]["share_beyond_spread"] = 0.05
    v = gate_verdict(s, CFG)
    assert not v.passed
    assert v.reasons == [
        "put-call parity breaches beyond the quoted spreads: 5.00% of 400 checked (tolerance 1.00%)"
    ]
