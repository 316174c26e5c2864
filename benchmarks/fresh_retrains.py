"""Benchmark: Production's skill after a regime change if it were always the freshest retrain.

    uv run python -m benchmarks.fresh_retrains outputs/replay-matrix/variance_x4-seed7 \
        [--change 2026-10-30] [model_train overrides, e.g. validation_days=10]

Reads the feature tables of a replay's scratch root (`make replay-matrix` keeps them), retrains the
shipped model (configs/model_train, the training core `pipeline.model.training.train_model`) at a
fixed schedule before and after the change, each model scoring the days up to the next retrain with
the monitor's measure (`pipeline.monitor.skill_figures`: IV RMSE / previous-day-IV RMSE on the
informative quotes that traded the day before). No gate, no approval, no monitor delay: every model
is the freshest a retrain policy could serve: compared with the replay's own figure, it says
whether a faster retrain policy would close the gap after the change. Prints each model's days and writes
benchmarks/results/fresh_retrains.json; the change date defaults to the replay summary's shock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from monitoring.replay import skill_change_interval
from pipeline.config import CONFIG_DIR
from pipeline.market_state import informative
from pipeline.model.pricer import predict_iv
from pipeline.model.training import train_model

RESULTS = Path(__file__).parent / "results" / "fresh_retrains.json"
BEFORE = (-19, -15, -10, -5)  # retrain points, trading days from the change (first scored day)
AFTER = (1, 3, 5, 8, 11, 14, 17)  # every 2-3 days after it, up to 20 days


def day_skill(frame: pd.DataFrame, booster, features: list[str]) -> float:
    """The monitor's skill on one day: model RMSE / previous-day-IV RMSE, same rows."""
    iv = frame["iv"].astype(float)
    keep = informative(frame) & np.isfinite(iv) & frame["iv_reliable"].astype(bool)
    rows = frame[keep & np.isfinite(frame["prev_iv"].astype(float))]
    y = rows["iv"].to_numpy(float)
    model = np.sqrt(np.mean((predict_iv(rows, booster, features) - y) ** 2))
    base = np.sqrt(np.mean((rows["prev_iv"].to_numpy(float) - y) ** 2))
    return float(model / base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a replay scratch root (data/processed/features_*)")
    ap.add_argument("--change", type=dt.date.fromisoformat, default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("overrides", nargs="*", help="model_train key=value")
    args = ap.parse_args()
    files = sorted(args.root.glob("data/processed/features_*.parquet"))
    dates = [dt.datetime.strptime(p.stem[-8:], "%Y%m%d").date() for p in files]
    if not dates:
        raise SystemExit(f"error: no feature tables under {args.root}/data/processed")
    change = args.change
    if change is None:
        summary = json.loads((args.root / "reports/replay/replay_summary.json").read_text())
        change = dt.date.fromisoformat(summary["period"]["shock_date"])
    cfg = OmegaConf.load(CONFIG_DIR / "model_train" / "default.yaml")
    cfg.seed, cfg.date = args.seed, None
    cfg.merge_with_dotlist(args.overrides)  # YAML values: false is False, 10 is 10
    frames = {d: pd.read_parquet(p) for d, p in zip(dates, files, strict=True)}
    at = dates.index(change)
    result: dict = {"root": args.root.name, "change": str(change), "overrides": args.overrides}
    for period, points, stop in (("before", BEFORE, at), ("after", AFTER, at + 21)):
        days: list[float] = []
        bounds = [at + p for p in points] + [min(stop, len(dates))]
        for first, end in zip(bounds[:-1], bounds[1:], strict=False):
            window = [d for d in dates if d < dates[first]][-int(cfg.days) :]
            booster, _, _ = train_model({d: frames[d] for d in window}, cfg)
            scored = [day_skill(frames[d], booster, list(cfg.features)) for d in dates[first:end]]
            days += scored
            print(f"{period} model of {window[-1]} ({int(booster.attr('best_iteration')) + 1} "
                  f"rounds): {', '.join(f'{s:.3f}' for s in scored)}", flush=True)  # fmt: skip
        result[f"skill_{period}"] = statistics.fmean(days)
        result[f"days_{period}"] = days
    result["change_pct"] = result["skill_after"] / result["skill_before"] - 1
    result["change_ci95"] = skill_change_interval(result["days_before"], result["days_after"])
    lo, hi = result["change_ci95"]
    print(f"{args.root.name}: mean day skill {result['skill_before']:.3f} before → "
          f"{result['skill_after']:.3f} after ({result['change_pct']:+.1%}; 95% CI over days "
          f"{lo:+.1%}..{hi:+.1%})")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = " ".join([args.root.name, *args.overrides])
    RESULTS.write_text(json.dumps({**previous, key: result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
