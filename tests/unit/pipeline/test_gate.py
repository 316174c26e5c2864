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
HALF_WIDTH = 0.05  # the default skill CI: the point skill ± this


def summary(
    candidate: float,
    production: float | None = None,
    hist: float = 0.05,
    prev: float = 0.03,
    ci: tuple[float | None, float | None] | None = None,
    unit: str = "date",
    **quant,
) -> dict:
    """A summary as evaluation.summarise writes it. The candidate's skill CI vs each baseline is
    its point skill ± HALF_WIDTH unless `ci` gives the one vs the best baseline."""
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
    skills = {b: 1 - candidate / rmse for b, rmse in (("baseline_hist_vol", hist),
                                                     ("baseline_prev_iv", prev))}  # fmt: skip
    cand_ci = {f"iv_skill_vs_{b}": [s - HALF_WIDTH, s + HALF_WIDTH] for b, s in skills.items()}
    if ci is not None:
        best = "baseline_hist_vol" if hist < prev else "baseline_prev_iv"
        cand_ci[f"iv_skill_vs_{best}"] = list(ci)
    return {
        "metrics": metrics,
        "ci": {"candidate": cand_ci},
        "config": {"confidence": 0.9, "bootstrap_unit": unit},
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
        "baseline_prev_iv (0.900 vol points; skill -5.6%)",
        "90% CI of the IV skill vs baseline_prev_iv [-10.6%, -0.6%] (bootstrap over date): "
        "lower bound not above the required +0.0% (skill not shown)",
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
    assert any("lower bound above the required +0.0%" in r for r in v.reasons)
    assert v.metrics["skill_ci_low"] == pytest.approx(1 - 0.01 / 0.03 - HALF_WIDTH)


def test_unscored_candidate_fails():
    s = summary(0.01)
    s["metrics"]["candidate"]["iv_rmse"] = None
    v = gate_verdict(s, CFG)
    assert not v.passed and "no holdout row" in v.reasons[0]


def test_every_broken_rule_is_reported():
    v = gate_verdict(summary(0.05, production=0.01, prev=0.03, parity=0.2, bounds=0.01), CFG)
    assert not v.passed and len(v.reasons) == 5
    production, baseline, ci, parity, bounds = v.reasons
    assert "Production (v2)" in production and "worse than the best baseline" in baseline
    assert "CI of the IV skill" in ci and "parity" in parity and "bounds" in bounds


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


# -- the skill CI: evidence, not a point estimate ---------------------------------------------
FLOOR = OmegaConf.merge(CFG, {"min_skill_lower_bound": 0.05})


def test_a_skill_ci_lower_bound_above_the_floor_passes():
    v = gate_verdict(summary(0.02, prev=0.03, ci=(0.0501, 0.4)), FLOOR)
    assert v.passed, v.reasons
    assert v.metrics["skill_ci_low"] == pytest.approx(0.0501)
    assert (
        "90% CI of the IV skill vs baseline_prev_iv [+5.0%, +40.0%] (bootstrap over date): "
        "lower bound above the required +5.0%"
    ) in v.reasons


def test_a_skill_ci_lower_bound_at_the_floor_fails():
    v = gate_verdict(summary(0.02, prev=0.03, ci=(0.05, 0.4)), FLOOR)
    assert not v.passed
    assert v.reasons == [
        "90% CI of the IV skill vs baseline_prev_iv [+5.0%, +40.0%] (bootstrap over date): "
        "lower bound not above the required +5.0% (skill not shown)"
    ]
    assert v.metrics["skill_ci_low"] == pytest.approx(0.05)


def test_a_skill_ci_lower_bound_below_the_floor_fails():
    v = gate_verdict(summary(0.02, prev=0.03, ci=(0.03, 0.4)), FLOOR)
    assert not v.passed and len(v.reasons) == 1
    assert "[+3.0%, +40.0%]" in v.reasons[0] and "not above the required +5.0%" in v.reasons[0]


def test_without_a_configured_floor_the_lower_bound_must_be_above_zero():
    assert "min_skill_lower_bound" not in CFG
    assert gate_verdict(summary(0.02, prev=0.03, ci=(0.001, 0.4)), CFG).passed
    v = gate_verdict(summary(0.02, prev=0.03, ci=(0.0, 0.4)), CFG)
    assert not v.passed and "not above the required +0.0%" in v.reasons[0]


def test_a_better_point_estimate_is_not_enough_when_its_ci_straddles_the_floor():
    """Beating the best baseline on the holdout's point estimate, without evidence it would
    on other days, fails on the CI alone."""
    v = gate_verdict(summary(0.029, prev=0.03, ci=(-0.02, 0.08)), CFG)
    assert not v.passed
    assert v.reasons == [
        "90% CI of the IV skill vs baseline_prev_iv [-2.0%, +8.0%] (bootstrap over date): "
        "lower bound not above the required +0.0% (skill not shown)"
    ]


def test_the_ci_read_is_the_one_vs_the_best_baseline():
    # hist_vol is the best baseline here: a wide margin over prev_iv does not count
    s = summary(0.02, hist=0.025, prev=0.06, ci=(-0.01, 0.3))
    assert s["ci"]["candidate"]["iv_skill_vs_baseline_prev_iv"][0] > 0.5
    v = gate_verdict(s, CFG)
    assert not v.passed
    assert v.reasons[0].startswith("90% CI of the IV skill vs baseline_hist_vol [-1.0%, +30.0%]")
    assert v.metrics["skill_ci_low"] == pytest.approx(-0.01)


@pytest.mark.parametrize(
    "drop",
    ["no ci at all", "no candidate ci", "no skill vs the best baseline", "a null bound"],
)
def test_a_missing_skill_ci_fails_with_a_reason(drop):
    s = summary(0.01)
    if drop == "no ci at all":
        del s["ci"]
    elif drop == "no candidate ci":
        s["ci"] = {"baseline_prev_iv": {"iv_rmse": [0.02, 0.04]}}
    elif drop == "no skill vs the best baseline":
        del s["ci"]["candidate"]["iv_skill_vs_baseline_prev_iv"]
    else:  # summarise writes a NaN bound (no resample could score it) as null
        s["ci"]["candidate"]["iv_skill_vs_baseline_prev_iv"] = [None, None]
    v = gate_verdict(s, CFG)
    assert not v.passed
    assert v.reasons == [
        "no confidence interval for the candidate's skill vs baseline_prev_iv (too few holdout "
        "rows or days to bootstrap): no evidence it beats the baseline"
    ]
    assert "skill_ci_low" not in v.metrics


@pytest.mark.parametrize("unit", ["date", "date x underlying"])
def test_the_ci_reason_names_the_confidence_and_the_bootstrap_unit(unit):
    s = summary(0.02, prev=0.03, ci=(-0.05, 0.2), unit=unit)
    s["config"]["confidence"] = 0.95
    (reason,) = gate_verdict(s, CFG).reasons
    assert reason.startswith("95% CI of the IV skill vs baseline_prev_iv [-5.0%, +20.0%]")
    assert f"(bootstrap over {unit})" in reason
