"""Wall time of `monitor` on one day of 1,000,000 contracts (target: ≤ 10 s on 2 cores).

Setup (not timed), in a scratch root with its own MLflow store: the tiny synthetic market (SPY and
_SPX, 25 trading days to 2026-03-31), a fast model trained on it and promoted to Production
(force + reason: the benchmark skips the gate), then a feature file for 2026-04-01 made of the last
day's reliable rows tiled to `--rows` rows (each copy's spot and strike nudged so rows differ).

Timed: `pipeline.monitor.run_monitor` in-process (`monitor.retrain=false`, `monitor.force=true`),
after one warm-up run on the normal-sized last day (imports and the model's first load are paid
there, as in a long-running scheduler; the cold figure is reported too). Phases come from wrapping
the monitor's own functions: reading, scoring (the pyfunc model on every row), the Evidently
report (on the `monitor.sample_size` seeded sample of each side), its HTML and the workspace
snapshot. How the 10 s is met: Evidently sees a seeded sample of at most `sample_size` rows of
each side (default 10,000; its cost is mostly per column, plotly figures per drift widget);
RMSE/MAE over all rows are NumPy.

    uv run python -m benchmarks.monitor [--rows 1000000] [--out benchmarks/results/monitor.json]
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
from functools import wraps
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from pipeline.cli import configure_logging
from pipeline.config import CONFIG_DIR, register_configs

TINY = ["data_fetch.symbols=[SPY,_SPX]", "data_fetch.synthetic.max_expiry_years=0.5",
        "data_fetch.synthetic.strike_std_devs=2.5"]  # fmt: skip
TRAIN = ["model_train.n_estimators=40", "model_train.days=25"]
LAST, DAY = "2026-03-31", "2026-04-01"


def config(root: Path, *overrides: str):
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[f"paths.root={root}", *TINY, *TRAIN, *overrides])


def prepare(root: Path) -> None:
    """Tiny market → model → Production, in `root` (the store is root/mlflow.db)."""
    from pipeline import model_train
    from pipeline.main import run_pipeline
    from pipeline.registry import Registry
    from pipeline.runtime import configure_tracking, execute

    cfg = config(root, f"date={LAST}", f"main.end_date={LAST}", "main.days=25",
                 "main.tasks=[data_fetch,data_validate,feature_engineer]")  # fmt: skip
    configure_tracking(cfg)
    run_pipeline(cfg)
    execute(model_train.SPEC, cfg)
    registry = Registry(cfg.registry.model_name)
    version = registry.resolve("staging").version
    registry.promote(version=version, force=True, reason="benchmark", user="benchmarks")


def big_day(root: Path, rows: int) -> int:
    """features_<DAY>.parquet: the last day's rows tiled to `rows` (spot/strike nudged per copy)."""
    from pipeline.artifacts import Artifacts, read_frame, write_frame
    from pipeline.runtime import parse_date

    artifacts = Artifacts(config(root).paths)
    day = read_frame(artifacts.features(parse_date(LAST)))
    copies = -(-rows // len(day))
    frame = pd.concat([day] * copies, ignore_index=True).iloc[:rows].copy()
    nudge = 1.0 + 1e-4 * (np.arange(len(frame)) // len(day))
    frame["spot"] = frame["spot"] * nudge
    frame["strike"] = frame["strike"] * nudge
    write_frame(frame, artifacts.features(parse_date(DAY)))
    return len(frame)


def instrument(phases: dict[str, float]) -> None:
    """Wrap the monitor's steps so each call adds its seconds to `phases`."""
    from monitoring import drift, workspace
    from pipeline import monitor

    def timed(module, name, label):
        fn = getattr(module, name)

        @wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[label] += time.perf_counter() - t0

        setattr(module, name, wrapper)

    timed(monitor, "read_scored_input", "read")
    timed(monitor, "score", "score (pyfunc, all rows)")
    timed(drift, "build_report", "evidently report (sample)")
    timed(drift, "save_html", "evidently html")
    timed(workspace, "add_day", "workspace snapshot")


def run(root: Path, date: str, phases: dict[str, float]) -> tuple[float, dict]:
    from pipeline import monitor

    phases.clear()
    cfg = config(root, f"date={date}", "monitor.retrain=false", "monitor.force=true")
    t0 = time.perf_counter()
    outcome = monitor.run_monitor(cfg)
    wall = time.perf_counter() - t0
    summary = json.loads(outcome.outputs[1].read_text())
    return wall, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default="benchmarks/results/monitor.json")
    args = parser.parse_args()
    configure_logging(logging.WARNING)
    phases: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory(prefix="bench_monitor_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        prepare(root)
        rows = big_day(root, args.rows)
        setup = time.perf_counter() - t0
        instrument(phases)
        cold, cold_summary = run(root, LAST, phases)
        cold_phases = dict(phases)
        wall, summary = run(root, DAY, phases)
    result = {
        "rows_current": rows,
        "rows_scored": summary["rows"]["scored"],
        "evidently_rows": {
            "current": summary["evidently"]["rows_current"],
            "reference": summary["evidently"]["rows_reference"],
        },  # fmt: skip
        "sample_size": int(config(Path(tmp)).monitor.sample_size),
        "wall_s": round(wall, 2),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "target_s": 10.0,
        "meets_target": wall <= 10.0,
        "warm_up_normal_day": {
            "rows": cold_summary["rows"]["current"],
            "wall_s": round(cold, 2),
            "phases_s": {k: round(v, 2) for k, v in cold_phases.items()},
        },  # fmt: skip
        "figures": {k: summary[k] for k in ("rmse", "reference_rmse", "drift_share")},
        "setup_s": round(setup, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },  # fmt: skip
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
