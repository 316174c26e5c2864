"""In-process pricing latency (issue 16): predict_frame (pandas) vs the NumPy array path vs the
booster's own one-row inplace_predict (the floor), one OpenMP thread, in the same run.

Builds 4 trading days of the default synthetic market in a temporary folder (data_fetch →
data_validate → feature_engineer), fits a small log-scale booster on them, then times:
- one contract: median of 200 calls, each path and the floor;
- 1,000 and 10,000 contracts: contracts/s (median of 20 / 5 calls) for both paths and for the
  booster's own inplace_predict on those rows' inputs (the ceiling: no path can beat it).
The floor is timed in a tight loop, with the booster's trees hot in the CPU caches; inside a
real call the same inplace_predict runs with colder caches and costs more (about 1.5-2x for one
row here), so the ratio to the floor overstates the path's own overhead somewhat.
Writes benchmarks/results/latency.json and prints a table.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.latency
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/xgboost load their thread pools

import datetime as dt  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from pipeline.config import CONFIG_DIR, REPO_ROOT, register_configs  # noqa: E402
from pipeline.features import MODEL_FEATURES  # noqa: E402
from pipeline.main import run_pipeline  # noqa: E402
from pipeline.market_state import StateStore  # noqa: E402
from pipeline.model.array_path import predict_contracts  # noqa: E402
from pipeline.model.pricer import (  # noqa: E402
    CONTRACT_COLUMNS,
    booster_blend,
    booster_moves,
    booster_scale,
    design_matrix,
    fit_blend,
    model_features,
    model_inputs,
    predict_frame,
)
from pipeline.runtime import tracking_to  # noqa: E402

RESULT = REPO_ROOT / "benchmarks" / "results" / "latency.json"
FEATURES = list(MODEL_FEATURES)
RAW = [*CONTRACT_COLUMNS, "option"]


def build(root: Path):
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"paths.root={root}", "model_deploy.service_url=http://127.0.0.1:9",
            "main.end_date=2026-03-31", "main.days=4",
            "main.tasks=[data_fetch,data_validate,feature_engineer]"])  # fmt: skip
    with tracking_to(cfg):
        run_pipeline(cfg)
    frames = [pd.read_parquet(f) for f in sorted((root / "data/processed").glob("features_*"))]
    train = pd.concat(frames[1:-1], ignore_index=True)
    train = train[train["iv_reliable"].astype(bool)]
    blend = fit_blend(train, train["iv"])
    label = train["iv"].to_numpy(float)
    matrix = design_matrix(train, FEATURES, label, blend, "log", "standardised")  # as shipped
    booster = xgb.train({"max_depth": 6, "eta": 0.1, "seed": 0, "nthread": 1}, matrix, 300)
    booster.set_attr(base_blend=json.dumps(blend), target_scale="log", moves="standardised")
    booster.set_param({"nthread": 1})
    return frames[-1][RAW].reset_index(drop=True), StateStore(root / "data/state", 2), booster


def median_s(fn, repeat: int) -> float:
    fn()  # warm-up (state arrays cache, first-call costs)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="latency_") as tmp:  # the states are read from it
        return measure(*build(Path(tmp)))


def booster_inputs(contracts: pd.DataFrame, store: StateStore, booster: xgb.Booster):
    """(float32 matrix, base margin): what the booster itself is given for `contracts`."""
    feats = model_features(contracts, store)
    x, margin = model_inputs(feats, FEATURES, booster_blend(booster), booster_scale(booster),
                             booster_moves(booster))  # fmt: skip
    return x.to_numpy(np.float32), margin


def measure(contracts: pd.DataFrame, store: StateStore, booster: xgb.Booster) -> dict:
    one = contracts.head(1)
    x32, margin = booster_inputs(one, store, booster)
    big = contracts.sample(10_000, replace=True, random_state=0).reset_index(drop=True)
    paths = {"predict_frame": lambda c: predict_frame(c, booster, store, FEATURES),
             "array_path": lambda c: predict_contracts(c, booster, store, FEATURES)}  # fmt: skip
    out = {"date": dt.date.today().isoformat(), "omp_num_threads": os.environ["OMP_NUM_THREADS"],
           "trees": booster.num_boosted_rounds(), "one_contract_ms": {}, "contracts_per_s": {}}  # fmt: skip
    out["one_contract_ms"]["booster_inplace_predict"] = 1e3 * median_s(
        lambda: booster.inplace_predict(x32, base_margin=margin), 200
    )
    out["contracts_per_s"]["booster_inplace_predict"] = {}
    for n, r in ((1_000, 20), (10_000, 5)):
        xn, mn = booster_inputs(big.head(n), store, booster)
        rate = n / median_s(lambda xn=xn, mn=mn: booster.inplace_predict(xn, base_margin=mn), r)
        out["contracts_per_s"]["booster_inplace_predict"][str(n)] = round(rate)
    for name, fn in paths.items():
        out["one_contract_ms"][name] = 1e3 * median_s(lambda fn=fn: fn(one), 200)
        out["contracts_per_s"][name] = {
            str(n): round(n / median_s(lambda fn=fn, n=n: fn(big.head(n)), r))
            for n, r in ((1_000, 20), (10_000, 5))
        }
    floor = out["one_contract_ms"]["booster_inplace_predict"]
    out["array_path_vs_floor"] = round(out["one_contract_ms"]["array_path"] / floor, 2)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'path':<26}{'1 contract (ms)':>16}{'1k contracts/s':>16}{'10k contracts/s':>17}")
    for name, ms in out["one_contract_ms"].items():
        rates = out["contracts_per_s"].get(name, {})
        print(f"{name:<26}{ms:>16.3f}{rates.get('1000', ''):>16}{rates.get('10000', ''):>17}")
    print(f"array path / floor: {out['array_path_vs_floor']}x (goal <= 5x)")
    return out


if __name__ == "__main__":
    main()
