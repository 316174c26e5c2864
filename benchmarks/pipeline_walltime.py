"""Wall time of fetch → validate → features on the default synthetic market (8 underlyings × 60
trading days), run in-process exactly as `make run` does, in a scratch root with its own MLflow
store. Also times the immediate re-run, where every task is reused from its checkpoint.

    uv run python -m benchmarks.pipeline_walltime [--days 60] [--out benchmarks/results/pipeline_walltime.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from hydra import compose, initialize_config_dir

from pipeline.cli import configure_logging, set_console_level
from pipeline.config import CONFIG_DIR, register_configs
from pipeline.main import run_pipeline
from pipeline.runtime import configure_tracking


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--end-date", default="2026-11-20")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pipeline_walltime.json")
    args = ap.parse_args()
    configure_logging()
    set_console_level(logging.WARNING)  # task detail goes to the scratch root's logs/
    register_configs()
    with tempfile.TemporaryDirectory() as root:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"paths.root={root}", f"main.days={args.days}",
                                               f"main.end_date={args.end_date}"])
        configure_tracking(cfg)
        t0 = time.perf_counter()
        outcomes = run_pipeline(cfg)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = run_pipeline(cfg)
        warm = time.perf_counter() - t0
    per_task: dict[str, float] = defaultdict(float)
    rows = 0.0
    for o in outcomes:
        per_task[o.task] += o.metrics.get("duration_s", 0.0)
        rows += o.metrics.get("rows_fetched", 0.0)
    result = {
        "days": args.days, "underlyings": len(cfg.data_fetch.synthetic.underlyings),
        "rows_fetched": int(rows), "wall_time_s": round(cold, 1), "rerun_all_reused_s": round(warm, 1),
        "task_body_s": {k: round(v, 1) for k, v in per_task.items()},
        "runtime_overhead_s": round(cold - sum(per_task.values()), 1),
        "reused_on_rerun": sum(o.status == "skipped" for o in again), "tasks": len(again),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| measure | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
