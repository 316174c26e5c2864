"""Benchmark: how good can any model's skill be, before and after a replay scenario's change?

    uv run python -m benchmarks.skill_floor [variance_x4 crush ...] [--seed 7] [--root DIR]

The replay's skill goal compares Production's skill (its IV RMSE / the previous-day-IV
baseline's, per day, on the informative quotes that traded the day before) over the 20 days
after a change with the days before it. Part of that ratio is not the model's: the market sets
both how far IVs move in a day (the baseline's error) and how noisy a quote's own IV is (an
error no model can remove). The synthetic market knows each contract's true IV, so this
benchmark measures, on the replay's own days (same scenario, same seed, the pipeline's own
fetch → validate → feature_engineer, scored on the monitor's rows):

- `floor`: a model that knows today's true surface exactly (iv_pred = true_iv): only today's quote
  noise is left. No model can score below it; its change is the part of the skill change the
  market alone causes.
- `yesterday_true`: yesterday's true IV of the same contract (a perfect fit of yesterday's
  market, no forecast): what a model that only denoises yesterday could reach.
- `knowable`: the IV of the smile the market's own dynamics forecast at the close from what is
  known then without today's option quotes (`pipeline.market.synthetic.knowable_truth`: the
  previous close's hidden variance, today's return; the part of the day's vol shock the return
  does not reveal averages out). A model that knew the generator's equations and hidden state
  would score about this; its change says how much of the skill change a model could avoid.

For each scenario: the mean daily ratio before the change and over the 20 days after it, and its
change (the replay goal's measure). Writes benchmarks/results/skill_floor.json and prints a
Markdown table. ~2-3 min per scenario on 2 cores (data tasks only, no training).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from monitoring.replay import POST_SHOCK_DAYS, period, replay_config
from pipeline.config import CONFIG_DIR, register_configs
from pipeline.market.calendar import shift_trading_days
from pipeline.market.synthetic import generate_chain, knowable_truth, symbols_of
from pipeline.market_state import informative
from pipeline.runtime import tracking_to

RESULTS = Path(__file__).parent / "results" / "skill_floor.json"
DEFAULT_SCENARIOS = ("variance_x2", "variance_x4", "crush", "skew", "strikes_wide", "shock_early")
PREDICTORS = ("floor", "yesterday_true", "knowable")


def scenario_config(name: str, seed: int, root: Path):
    """The replay's config of scenario `name` (configs/replay/<name>.yaml), pointed at `root`,
    running only the data tasks over the period's days up to 20 after the change."""
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="skill_floor"):
        cfg = compose("config", overrides=[f"replay={name}", f"seed={seed}",
                                           f"replay.root={root}"])  # fmt: skip
    days = period(cfg.replay)
    shock = int(cfg.replay.shock_day)
    cfg = replay_config(cfg, days)
    last = days[min(len(days), shock + POST_SHOCK_DAYS) - 1]
    with open_dict(cfg):
        cfg.main.start_date = str(shift_trading_days(days[0], -1))  # a day before: prev_iv
        cfg.main.end_date = str(last)
        cfg.main.tasks = ["data_fetch", "data_validate", "feature_engineer"]
    return cfg, days, days[shock - 1]


def truth(cfg, day: dt.date, knowable: bool = False) -> pd.Series:
    """The synthetic market's true IV of every contract listed on `day` (by OCC symbol), or,
    `knowable`, the IV forecast at the close without the quotes (knowable_truth)."""
    synthetic = cfg.data_fetch.synthetic
    frames = [knowable_truth(s, day, synthetic, cfg.market) if knowable
              else generate_chain(s, day, synthetic, cfg.market)[1]
              for s in symbols_of(synthetic)]  # fmt: skip
    out = pd.concat(frames, ignore_index=True)[["option", "true_iv"]]
    return out.drop_duplicates("option").set_index("option")["true_iv"]


def day_ratios(
    frame: pd.DataFrame, today: pd.Series, yesterday: pd.Series, knowable: pd.Series
) -> dict[str, float]:
    """Each predictor's RMSE / the previous-day-IV baseline's on the monitor's rows of one day."""
    iv, prev = frame["iv"].to_numpy(float), frame["prev_iv"].to_numpy(float)
    keep = informative(frame) & np.isfinite(iv) & np.isfinite(prev)
    rows = frame[keep]
    y = rows["iv"].to_numpy(float)
    base = float(np.sqrt(np.mean((rows["prev_iv"].to_numpy(float) - y) ** 2)))
    preds = {"floor": today.reindex(rows["option"]).to_numpy(float),
             "yesterday_true": yesterday.reindex(rows["option"]).to_numpy(float),
             "knowable": knowable.reindex(rows["option"]).to_numpy(float)}  # fmt: skip
    out = {"rows": int(len(rows)), "baseline_rmse": base}
    for name, pred in preds.items():
        ok = np.isfinite(pred)
        out[name] = float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2)) / base) if ok.any() else np.nan
    return out


def measure(name: str, seed: int, scratch: Path) -> dict:
    from pipeline.main import run_pipeline

    root = scratch / f"{name}-seed{seed}"
    cfg, days, change = scenario_config(name, seed, root)
    with tracking_to(cfg):
        run_pipeline(cfg)
    shock = days.index(change) + 1
    records, prior = [], None
    for i, day in enumerate(days, start=1):
        path = root / "data" / "processed" / f"features_{day:%Y%m%d}.parquet"
        if i > shock + POST_SHOCK_DAYS or not path.exists():
            continue
        today = truth(cfg, day)
        if prior is None:
            prior = truth(cfg, shift_trading_days(day, -1))
        frame = pd.read_parquet(path)
        ratios = day_ratios(frame, today, prior, truth(cfg, day, knowable=True))
        records.append({"day": i, "date": str(day)} | ratios)
        prior = today
    # the replay's windows: calm = the days before the change, after = the 20 days after it
    calm = [r for r in records if r["day"] < shock]
    after = [r for r in records if shock < r["day"] <= shock + POST_SHOCK_DAYS]
    summary = {"scenario": name, "seed": seed, "change_date": str(change),
               "calm_days": len(calm), "after_days": len(after)}  # fmt: skip
    for key in ("baseline_rmse", *PREDICTORS):
        before = statistics.fmean(r[key] for r in calm)
        later = statistics.fmean(r[key] for r in after)
        summary[key] = {"before": before, "after": later, "change": later / before - 1.0}
    return summary | {"days": records}


def markdown(rows: list[dict]) -> str:
    lines = ["| scenario | baseline RMSE before → after | floor (true IV today) before → after "
             "| yesterday's true IV before → after | knowable at the close before → after |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        cells = [f"{r[k]['before']:.4f} → {r[k]['after']:.4f} ({r[k]['change']:+.1%})"
                 for k in ("baseline_rmse", *PREDICTORS)]  # fmt: skip
        lines.append(f"| {r['scenario']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=list(DEFAULT_SCENARIOS))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--root", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skill-floor-") as tmp:
        scratch = (args.root or Path(tmp)).absolute()
        rows = [measure(name, args.seed, scratch) for name in args.scenarios]
    table = markdown(rows)
    print(table)
    RESULTS.write_text(json.dumps({"runs": rows, "table": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
