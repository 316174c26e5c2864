"""Time the bodies of data_fetch, data_validate and feature_engineer for one trading day of the
default synthetic market (8 underlyings, ~20k contracts), in a scratch root.

The days before the measured one are run first (untimed) so feature_engineer finds its full spot
history (`feature_engineer.history_days` validated days) and yesterday's features, as it does
inside `main`; they also warm up imports, caches and the synthetic path. The measured day is then
run `--repeat` times; the best and median of each task are reported (the best is the least
disturbed by other processes). Only the task bodies are timed: the MLflow run, checkpoint and
log file that `main` adds per task are the runtime's, not measured here.

    uv run python -m benchmarks.day_profile [--date 2026-11-20] [--repeat 5] [--history 25]
                                            [--format parquet|csv] [--profile data_validate]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import logging
import pstats
import statistics
import tempfile
import time

from hydra import compose, initialize_config_dir

from pipeline import data_fetch, data_validate, feature_engineer
from pipeline.artifacts import Artifacts
from pipeline.config import CONFIG_DIR, register_configs
from pipeline.market.calendar import shift_trading_days
from pipeline.runtime import TaskContext

TASKS = {
    "data_fetch": data_fetch.SPEC,
    "data_validate": data_validate.SPEC,
    "feature_engineer": feature_engineer.SPEC,
}


def run_day(cfg, date: dt.date) -> dict[str, float]:
    """Run the three task bodies for `date` in order; seconds per task."""
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    seconds = {}
    for name, spec in TASKS.items():
        ctx = TaskContext(name, cfg, date, artifacts, logging.getLogger(f"pipeline.{name}"))
        started = time.perf_counter()
        spec.run(ctx)
        seconds[name] = time.perf_counter() - started
    return seconds


def profile_task(cfg, date: dt.date, name: str, top: int) -> None:
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    ctx = TaskContext(name, cfg, date, artifacts, logging.getLogger(f"pipeline.{name}"))
    prof = cProfile.Profile()
    prof.runcall(TASKS[name].run, ctx)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--date", default="2026-11-20", help="the measured trading day")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of the measured day")
    ap.add_argument("--history", type=int, help="days run first (default: history_days)")
    ap.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    ap.add_argument("--profile", choices=list(TASKS), help="also cProfile this task once")
    ap.add_argument("--top", type=int, default=40, help="rows of the cProfile listing")
    args = ap.parse_args()
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    register_configs()
    date = dt.date.fromisoformat(args.date)
    with tempfile.TemporaryDirectory() as root:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[f"paths.root={root}", f"date={date}", f"data_format={args.format}"],
            )
        history = cfg.feature_engineer.history_days if args.history is None else args.history
        started = time.perf_counter()
        for i in range(history, 0, -1):
            run_day(cfg, shift_trading_days(date, -i))
        print(f"{history} history days in {time.perf_counter() - started:.1f} s")
        runs = [run_day(cfg, date) for _ in range(args.repeat)]
        print(f"\none day ({date}, {args.format}), seconds over {args.repeat} runs:")
        print("| task | best | median |\n|---|---|---|")
        for name in [*TASKS, "total"]:
            times = [sum(r.values()) if name == "total" else r[name] for r in runs]
            print(f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} |")
        if args.profile:
            profile_task(cfg, date, args.profile, args.top)


if __name__ == "__main__":
    main()
