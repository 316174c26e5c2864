"""How main's cost grows with the universe: the synthetic market at 8, 64 (and 256) underlyings
(`data_fetch.synthetic.n_underlyings`) × N trading days, the local executor (every task in
main's process, in date order) against the Dask one (a LocalCluster of `main.workers`
single-threaded workers; feature_engineer in `main.shards` shards, default as many as workers),
in the same run, each `python -m pipeline.main` in a scratch root with its own MLflow store.

Per run: wall time, quotes fetched (rows of the raw day files), quotes per second, and peak RSS
per process (VmHWM of main and of each process under it, sampled every 0.1 s while it runs).
By default the daily tasks only (fetch → validate → features: what the executor changes);
`--tasks all` adds training, evaluation, the gate and the report.

    uv run python -m benchmarks.scale [--sizes 8 64] [--days 5] [--workers 2] [--shards N]
                                      [--tasks data|all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.config import REPO_ROOT

DATA_TASKS = "main.tasks=[data_fetch,data_validate,feature_engineer]"
EXECUTORS = ("local", "dask")
SAMPLE_S = 0.1


def _tree(pid: int) -> list[int]:
    """`pid` and every live process under it."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(text.split(" ", 1)[0])] = int(text[text.rindex(")") + 2 :].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _peak_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return int(line.split()[1]) if line else None


def run_main(root: Path, overrides: list[str]) -> dict:
    """One `python -m pipeline.main` rooted at `root`: wall time and peak RSS per process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log = (root / "main.log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.main", f"paths.root={root}", *overrides],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            if (kib := _peak_kib(pid)) is not None:
                peaks[pid] = max(peaks.get(pid, 0), kib)
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    log.close()
    if proc.returncode != 0:
        tail = (root / "main.log").read_text()[-3000:]
        raise RuntimeError(f"main failed ({proc.returncode}) in {root}:\n{tail}")
    main_peak = peaks.pop(proc.pid, 0)
    return {
        "wall_time_s": round(wall, 1),
        "peak_rss_mib_main": round(main_peak / 1024, 1),
        "peak_rss_mib_other_processes": sorted(
            (round(v / 1024, 1) for v in peaks.values()), reverse=True
        ),
    }


def quotes(root: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (root / "data" / "raw").glob("*.parquet"))


def measure(n: int, executor: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
        root = Path(scratch)
        overrides = [
            f"data_fetch.synthetic.n_underlyings={n}",
            f"main.days={args.days}",
            f"main.end_date={args.end_date}",
            f"main.executor={executor}",
            f"main.workers={args.workers}",
            *([f"main.shards={args.shards}"] if args.shards is not None else []),
            "model_deploy.service_url=http://127.0.0.1:9",  # no service: nothing is rolled out
            *([DATA_TASKS] if args.tasks == "data" else []),
        ]
        result = run_main(root, overrides)
        rows = quotes(root)
    per_s = rows / result["wall_time_s"]
    return {
        "underlyings": n,
        "executor": executor,
        "days": args.days,
        "quotes": rows,
        "quotes_per_s": round(per_s),
        "us_per_quote": round(1e6 / per_s, 1),
        **result,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=None, help="main.shards (default: the workers)")
    ap.add_argument("--end-date", default="2026-11-20")
    ap.add_argument("--tasks", choices=("data", "all"), default="data")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.json")
    args = ap.parse_args()
    runs = []
    for n in args.sizes:
        for executor in EXECUTORS:
            runs.append(measure(n, executor, args))
            print(json.dumps(runs[-1]), flush=True)
    by = {(r["underlyings"], r["executor"]): r for r in runs}
    result = {
        "command": "python -m benchmarks.scale " + " ".join(sys.argv[1:]),
        "tasks": args.tasks,
        "workers": args.workers,
        "shards": args.workers if args.shards is None else args.shards,
        "runs": runs,
        "dask_speedup_vs_local": {
            str(n): round(by[n, "local"]["wall_time_s"] / by[n, "dask"]["wall_time_s"], 2)
            for n in args.sizes
        },
        "us_per_quote_vs_smallest": {
            executor: {
                str(n): round(
                    by[n, executor]["us_per_quote"] / by[args.sizes[0], executor]["us_per_quote"],
                    2,
                )
                for n in args.sizes
            }
            for executor in EXECUTORS
        },
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
