"""The deployment gate: a pure function of the evaluation summary (pipeline.evaluation_summary)
and the thresholds in config.

Every figure is on the holdout's informative quotes (OTM + ATM; pipeline.market_state).
Rules (the candidate fails on any of them; the reasons are sentences with the figures):
1. it must have been scored (a finite IV RMSE on at least one holdout row);
2. with a Production model: candidate IV RMSE ≤ Production's × (1 + production_margin)
   (exactly at the limit passes);
3. candidate IV RMSE ≤ the best (lowest) baseline's IV RMSE, and the lower bound of its skill CI
   vs that baseline (1 − RMSE / baseline RMSE, bootstrap over dates, or (date, underlying)
   groups on a short holdout) above `min_skill_lower_bound` (default 0): evidence, not a point;
4. quant checks on its prices: share of put-call parity breaches ≤ parity_tolerance, of
   strike-monotonicity and of convexity breaches each ≤ monotonic_tolerance, of prices outside
   the no-arbitrage bounds ≤ bounds_tolerance (missing checks fail). Parity and strike-shape
   breaches count when they exceed the quoted half-spreads of the legs (`share_beyond_spread`:
   an arbitrage one could trade at the quotes); a breach of a tick alone is within the market's
   own noise (the quoted mids themselves break parity by more than a tick on most pairs).
   Without bid/ask the tick-based share is used.
A passing verdict's reasons say why each rule passed; a failing one lists only the broken rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.evaluation import BASELINES
from pipeline.evaluation_summary import EvaluationSummary

REL_EPS = 1e-9  # float slack so "exactly at the margin" is not lost to rounding
QUANT_RULES = (  # check name, config threshold, words
    ("parity", "parity_tolerance", "put-call parity breaches"),
    ("monotonic", "monotonic_tolerance", "strike-monotonicity breaches"),
    ("convexity", "monotonic_tolerance", "strike-convexity breaches"),
    ("bounds", "bounds_tolerance", "prices outside the no-arbitrage bounds (beyond a tick)"),
)


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]
    metrics: dict[str, float] = field(default_factory=dict)  # the figures the verdict read


def _vp(iv: float) -> str:
    return f"{100 * iv:.3f} vol points"


def _worse(value: float, limit: float) -> bool:
    return value > limit and not math.isclose(value, limit, rel_tol=REL_EPS)


def _skill_evidence(summary: EvaluationSummary, best: str, cfg) -> tuple[bool, str, float | None]:
    """(fails, words, lower bound): the lower bound of the candidate's IV-RMSE skill CI vs the best baseline
    must be above model_evaluate.min_skill_lower_bound (a point estimate is not evidence)."""
    floor = float(cfg.get("min_skill_lower_bound", 0.0) if hasattr(cfg, "get") else
                  getattr(cfg, "min_skill_lower_bound", 0.0))  # fmt: skip
    conf, unit = summary.config.confidence, summary.config.bootstrap_unit
    low, high = summary.interval("candidate", f"iv_skill_vs_{best}")
    if low is None or not math.isfinite(low) or high is None:
        return True, (f"no confidence interval for the candidate's skill vs {best} (too few "
                      f"holdout rows or days to bootstrap): no evidence it beats the baseline"), None  # fmt: skip
    words = (
        f"{conf:.0%} CI" if conf else "CI"
    ) + f" of the IV skill vs {best} [{low:+.1%}, {high:+.1%}] "
    words += f"(bootstrap over {unit})"
    if low > floor:
        return False, f"{words}: lower bound above the required {floor:+.1%}", low
    return True, f"{words}: lower bound not above the required {floor:+.1%} (skill not shown)", low


def gate_verdict(summary: EvaluationSummary | Mapping[str, Any], cfg) -> Verdict:
    """Verdict on the candidate from `summary` (an EvaluationSummary, or its JSON content:
    evaluation.summarise's dict, optionally with `models.production.version`) and `cfg`
    (model_evaluate: production_margin and tolerances)."""
    summary = EvaluationSummary.of(summary)
    cand = summary.iv_rmse("candidate")
    if cand is None or not math.isfinite(cand):
        return Verdict(
            False,
            [
                "the candidate has no IV RMSE: no holdout row could be scored "
                f"({summary.holdout.rows_scored} rows scored)"
            ],
        )
    fails: list[str] = []
    passes: list[str] = []
    figures = {"candidate.iv_rmse": cand}

    prod = summary.iv_rmse("production")
    if prod is not None and math.isfinite(prod) and prod > 0:
        margin = float(cfg.production_margin)
        version = summary.version("production")
        who = f"Production (v{version})" if version else "Production"
        rel = cand / prod - 1
        figures |= {"production.iv_rmse": prod, "relative_to_production": rel}
        text = (
            f"candidate IV RMSE {_vp(cand)} is {rel:+.2%} vs {who}'s {_vp(prod)} "
            f"(allowed: at most {margin:+.2%})"
        )
        (fails if _worse(cand, prod * (1 + margin)) else passes).append(text)
    else:
        passes.append("no Production model to compare against")

    base = {b: rmse for b in BASELINES if (rmse := summary.iv_rmse(b)) is not None}
    if base:
        best = min(base, key=base.get)
        figures |= {"best_baseline.iv_rmse": base[best]}
        skill = 1 - cand / base[best] if base[best] else float("nan")
        verb = "is worse than" if _worse(cand, base[best]) else "beats or matches"
        text = (
            f"candidate IV RMSE {_vp(cand)} {verb} the best baseline {best} "
            f"({_vp(base[best])}; skill {skill:+.1%})"
        )
        (fails if _worse(cand, base[best]) else passes).append(text)
        fails_ci, text, low = _skill_evidence(summary, best, cfg)
        (fails if fails_ci else passes).append(text)
        if low is not None and math.isfinite(low):
            figures["skill_ci_low"] = low

    quant = summary.quant_checks("candidate")
    for check, key, words in QUANT_RULES:
        result = quant.get(check)
        tol = float(cfg[key])
        if result is None:
            fails.append(f"quant check '{check}' was not computed on the candidate's prices")
            continue
        share = result.tradable_share
        if result.share_beyond_spread is not None:
            words = f"{words} beyond the quoted spreads"
        figures[f"{check}_share"] = share
        text = f"{words}: {share:.2%} of {int(result.checked)} checked (tolerance {tol:.2%})"
        (fails if share > tol else passes).append(text)

    return Verdict(not fails, fails or passes, figures)
