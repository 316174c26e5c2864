"""Market replay wall time per simulated day: the replay of `make replay` (60 trading days of the
default synthetic market, 25% of fetches faulted, variance ×4 on day 40), timed day by day, with
the time each task of the daily flow took. Peer: the same period and shock with no faults
(`--peer`, another full replay), to show what the faults and their retries cost.

    uv run python -m benchmarks.replay [--days 60] [--peer] [--out benchmarks/results/replay.json]
    uv run python -m benchmarks.replay --scenario shock_early [--seed 3]   # configs/replay/<name>
    uv run python -m benchmarks.replay --summary reports/replay/replay_summary.json   # of a `make replay`
    uv run python -m benchmarks.replay --summary reports/replay/replay_summary.json --peer  # + peer
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from monitoring.replay import run_replay
from pipeline.cli import configure_logging, set_console_level
from pipeline.config import CONFIG_DIR, register_configs


def figures(summary: dict) -> dict:
    days = summary["days"]
    tasks = sorted({t for d in days for t in d["task_seconds"]})
    plain = [d["seconds"] for d in days if not d["retrain"]]
    retrain = [d["seconds"] for d in days if d["retrain"]]
    return {
        "days": len(days),
        "seconds_per_day": summary["seconds_per_day"],
        "seconds_per_day_without_retrain": {
            "n": len(plain),
            "mean": round(statistics.fmean(plain), 2) if plain else None,
        },  # fmt: skip
        "seconds_per_day_with_retrain": {
            "n": len(retrain),
            "mean": round(statistics.fmean(retrain), 2) if retrain else None,
        },  # fmt: skip
        "task_mean_seconds": {
            t: round(statistics.fmean(d["task_seconds"].get(t, 0.0) for d in days), 2)
            for t in tasks
        },
        "faults_injected": summary["fetch"]["faults_injected"],
        "client_retries": summary["fetch"]["client_retries"],
        "retrains": len(summary["retrains"]),
        "goals": {k: v["ok"] for k, v in summary["goals"].items()},
    }


def replay(root: str, *extra: str) -> dict:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.root={root}", *extra])
    return run_replay(cfg)


def scenario_overrides(scenario: str, seed: int | None, days: int | None) -> list[str]:
    """The replay's overrides: the scenario, the seed, and with `days` a period of that length
    with the shock two-thirds in (the default's 40 of 60); without, the scenario's own."""
    out = [f"replay={scenario}"] + ([f"seed={seed}"] if seed is not None else [])
    if days is not None:
        out += [f"replay.days={days}", f"replay.shock_day={max(1, round(days * 2 / 3))}"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=None, help="simulated days (the scenario's)")
    ap.add_argument("--scenario", default="default", help="configs/replay/<name>.yaml")
    ap.add_argument("--seed", type=int, default=None, help="the config's seed unless given")
    ap.add_argument("--peer", action="store_true", help="also replay with no faults")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "replay.json")
    ap.add_argument("--summary", type=Path, help="figures of a replay already run, no new run")
    args = ap.parse_args()
    shock = scenario_overrides(args.scenario, args.seed, args.days)
    if not args.summary or args.peer:
        configure_logging()
        set_console_level(logging.ERROR)  # faults and retries are counted, not printed
        register_configs()
    if args.summary:  # figures of a replay already run (make replay); the peer copies its period
        summary = json.loads(args.summary.read_text())
        period = summary["period"]
        day = period["shock_day"]
        shock = [*scenario_overrides(period.get("scenario", "default"),
                                     summary["config"].get("seed"), None),
                 f"replay.days={period['days']}",
                 f"replay.shock_day={'null' if day is None else day}",
                 f"replay.end_date={period['end']}"]  # fmt: skip
        result = {"replay": figures(summary), "source": args.summary.name}
    else:
        with tempfile.TemporaryDirectory() as root:
            result = {"replay": figures(replay(root, *shock)), "scenario": args.scenario}
    if args.peer:  # the same period and shock, no faults: what the faults and retries cost
        with tempfile.TemporaryDirectory() as root:
            result["no_faults"] = figures(replay(root, *shock, "replay.fault_rate=0"))
    result |= {"machine": platform.machine(), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
