"""Wall time of `main` on the default synthetic market (8 underlyings × 60 trading days: fetch →
validate → features per day, then train → evaluate → deploy gate → report), run in-process
exactly as `make run` does, in scratch roots with their own MLflow stores. Four measures, one
after another:

- cold, `main.executor=local` (the default): every task in main's process, in date order;
- the immediate re-run (every task reused from its checkpoint);
- the next trading day (the window moves one day: 59 days reused, one new day fetched,
  validated and featurised, the model retrained, evaluated and gated);
- the peer, cold, `main.executor=dask`: the daily tasks on a LocalCluster of `main.workers` (2)
  single-threaded workers, later days' fetch and validate running ahead of the features, and
  model_train on `xgboost.dask`.

Task-body seconds are summed over processes: on Dask they overlap in time, so their sum can
exceed the wall time.

    uv run python -m benchmarks.pipeline_walltime [--days 60] [--out benchmarks/results/pipeline_walltime.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from hydra import compose, initialize_config_dir

from pipeline.cli import configure_logging, set_console_level
from pipeline.config import CONFIG_DIR, register_configs
from pipeline.main import run_pipeline
from pipeline.market.calendar import shift_trading_days
from pipeline.runtime import configure_tracking, parse_date


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def task_seconds(outcomes) -> dict[str, float]:
    """Seconds spent in each task's body, summed over days (tasks that ran, not reused ones)."""
    per_task: dict[str, float] = defaultdict(float)
    for o in outcomes:
        if o.status == "succeeded":
            per_task[o.task] += o.metrics.get("duration_s", 0.0)
    return {k: round(v, 1) for k, v in per_task.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--end-date", default="2026-11-20")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "pipeline_walltime.json"
    )
    args = ap.parse_args()
    configure_logging()
    set_console_level(logging.WARNING)  # task detail goes to the scratch root's logs/
    register_configs()
    next_day = shift_trading_days(parse_date(args.end_date), 1)

    def config(root, end_date, *extra):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            return compose(
                "config",
                overrides=[
                    f"paths.root={root}",
                    f"main.days={args.days}",
                    f"main.end_date={end_date}",
                    *extra,
                ],
            )

    with tempfile.TemporaryDirectory() as root:
        cfg = config(root, args.end_date)
        configure_tracking(cfg)
        outcomes, cold = timed(run_pipeline, cfg)
        again, warm = timed(run_pipeline, cfg)
        incremental, inc = timed(run_pipeline, config(root, next_day))
    with tempfile.TemporaryDirectory() as root:
        dask_cfg = config(root, args.end_date, "main.executor=dask")
        configure_tracking(dask_cfg)
        on_dask, dask_cold = timed(run_pipeline, dask_cfg)
    rows = sum(o.metrics.get("rows_fetched", 0.0) for o in outcomes)
    result = {
        "days": args.days,
        "underlyings": len(cfg.data_fetch.synthetic.underlyings),
        "rows_fetched": int(rows),
        "executor": cfg.main.executor,
        "wall_time_s": round(cold, 1),
        "task_body_s": task_seconds(outcomes),
        "dask_workers": dask_cfg.main.workers,
        "dask_wall_time_s": round(dask_cold, 1),
        "dask_task_body_s": task_seconds(on_dask),
        "local_speedup_vs_dask": round(dask_cold / cold, 2),
        "rerun_all_reused_s": round(warm, 1),
        "reused_on_rerun": sum(o.status == "skipped" for o in again),
        "tasks": len(again),
        "next_day": str(next_day),
        "next_day_s": round(inc, 1),
        "next_day_task_body_s": task_seconds(incremental),
        "next_day_tasks_run": sorted({o.task for o in incremental if o.status == "succeeded"}),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| measure | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
