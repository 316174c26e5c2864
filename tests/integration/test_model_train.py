"""model_train end to end on a copy of the tiny market's 25 feature days (2026-02-24..03-31):
the MLflow run (params, per-iteration metrics, PNGs, dataset lineage, tags), the logged model (no
pickle, loads with mlflow.pyfunc, prices raw contracts), the Staging version and its split tags,
determinism, the shortfall error and a Hydra multirun sweep."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import model_train
from pipeline.artifacts import Artifacts
from pipeline.errors import DataError
from pipeline.model.packaging import downloaded_pickles, find_pickles
from pipeline.model.pricer import ContractError
from pipeline.model.training import train_model
from pipeline.registry import Registry
from pipeline.runtime import configure_tracking, execute
from tests.conftest import TINY_MARKET, compose_config
from tests.helpers import run_module

pytestmark = [pytest.mark.slow, pytest.mark.integration]
END, LAST = "date=2026-03-31", dt.date(2026, 3, 31)
FAST = ("model_train.n_estimators=30",)


@pytest.fixture
def root(tiny_features_root, tmp_path) -> Path:
    shutil.copytree(tiny_features_root, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.fixture(scope="module")
def trained(tiny_features_root, tmp_path_factory):
    """One training with registration, shared by the module's read-only checks:
    (cfg, outcome, summary). Tracking points at the copy's sqlite store meanwhile."""
    root = tmp_path_factory.mktemp("model_train")
    shutil.copytree(tiny_features_root, root, dirs_exist_ok=True)
    cfg = compose_config([f"paths.root={root}", *TINY_MARKET, END, *FAST])
    previous = mlflow.get_tracking_uri()
    configure_tracking(cfg)
    try:
        outcome = execute(model_train.SPEC, cfg)
        summary = json.loads(Artifacts(cfg.paths).train_summary(LAST).read_text())
        yield cfg, outcome, summary
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def test_training_run_logs_params_curves_plots_and_lineage(trained):
    cfg, outcome, summary = trained
    assert outcome.status == "succeeded"
    client = mlflow.MlflowClient()
    run = client.get_run(outcome.run_id)
    params = run.data.params
    assert params["model_train.max_depth"] == str(cfg.model_train.max_depth)
    assert params["model_train.n_estimators"] == "30"
    assert params["market.rate"] == "0.04" and params["registry.model_name"] == "options-pricer"
    assert (
        params["model_train.features.0"] == "t_years" and "retry.model_train.max_retries" in params
    )
    # one point per round played: up to n_estimators, fewer when early stopping ends it
    curve = client.get_metric_history(outcome.run_id, "validation_rmse")
    rounds = len(curve)
    best = int(run.data.metrics["best_iteration"])
    patience = int(cfg.model_train.early_stopping_rounds)
    assert best < rounds <= 30 and (rounds == 30 or rounds == best + 1 + patience)
    assert sorted(m.step for m in curve) == list(range(rounds))
    assert len(client.get_metric_history(outcome.run_id, "train_rmse")) == rounds
    metrics = run.data.metrics
    for key in ("best_iteration", "best_validation_rmse", "holdout.iv_rmse", "holdout.price_r2",
                "holdout.baseline_hist_vol.iv_rmse", "holdout.baseline_prev_iv.iv_rmse"):  # fmt: skip
        assert np.isfinite(metrics[key]), key
    assert metrics["holdout.iv_rmse"] < metrics["holdout.baseline_hist_vol.iv_rmse"]
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    for name in model_train.PLOTS:
        assert f"{name}_20260331.png" in artifacts
    assert {"train_summary_20260331.json", "model_train_20260331.log"} <= artifacts
    tags = run.data.tags
    assert tags["holdout_end"] == "2026-03-31" and tags["features"].startswith("t_years,")
    assert tags["git_commit"] and tags["pipeline.status"] == "succeeded"
    # lineage: the three folds as datasets with a digest, the date range and the files' sha256
    inputs = {_context(i): i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation", "holdout"}
    train = inputs["train"]
    assert train.dataset.digest and train.dataset.name == (
        f"features_{tags['train_start'].replace('-', '')}_{tags['train_end'].replace('-', '')}"
    )
    train_tags = {t.key: t.value for t in train.tags}
    assert train_tags["start"] == tags["train_start"] and len(train_tags["files_sha256"]) == 64
    assert summary["split"]["holdout_days"] == cfg.model_train.holdout_days == 10
    assert summary["split"]["validation_days"] == 5 and summary["split"]["train_days"] == 10


def _context(dataset_input) -> str:
    return next(t.value for t in dataset_input.tags if t.key == "mlflow.data.context")


def test_model_is_registered_in_staging_without_pickle_and_prices_raw_contracts(trained):
    cfg, outcome, summary = trained
    mv = Registry(cfg.registry.model_name).resolve("staging")
    assert mv is not None and str(mv.version) == summary["model_version"]
    assert mv.run_id == outcome.run_id
    assert mv.current_stage == "Staging"
    split = summary["split"]
    for key in ("holdout_start", "holdout_end", "train_start", "train_end"):
        assert mv.tags[key] == split[key]
    assert mv.tags["features"] == ",".join(cfg.model_train.features)
    assert (mv.tags["holdout_start"], mv.tags["holdout_end"]) == ("2026-03-18", "2026-03-31")

    uri = f"models:/{cfg.registry.model_name}/{mv.version}"
    assert downloaded_pickles(uri) == []
    local = Path(mlflow.artifacts.download_artifacts(uri))
    files = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
    assert {"MLmodel", "pyfunc_model.py", "artifacts/booster.ubj", "artifacts/model_meta.json",
            "artifacts/market_state.json", "code/pipeline/model/pricer.py",
            "input_example.json"} <= files  # fmt: skip
    assert not any(f.endswith((".pkl", ".pickle")) for f in files) and find_pickles(local) == []
    (local / "planted.bin").write_bytes(b"\x80\x04\x95" + bytes(8))  # the check does see pickles
    assert [p.name for p in find_pickles(local)] == ["planted.bin"]

    model = mlflow.pyfunc.load_model(uri)
    inputs = {c.name: c.required for c in model.metadata.signature.inputs.inputs}
    assert inputs["strike"] and not inputs["prev_iv"] and not inputs["option"]
    raw = pd.DataFrame({"underlying": ["SPY", "SPY", "_SPX"], "option_type": ["C", "P", "C"],
                        "strike": [640.0, 600.0, 6400.0],
                        "expiry": ["2026-05-15", "2026-05-15", "2026-06-18"],
                        "quote_date": ["2026-04-01"] * 3, "spot": [640.0, 640.0, 6400.0]})  # fmt: skip
    out = model.predict(raw)
    assert list(out.columns) == ["iv", "price"] and len(out) == 3
    assert out["iv"].between(0.03, 1.0).all() and (out["price"] > 0).all()

    # the bundled state (2026-03-31's) prices 2026-04-01 only: an older quote date needs the
    # daily states, and is refused without them, naming the dates
    holdout = pd.read_parquet(Artifacts(cfg.paths).features(LAST))
    with pytest.raises(ContractError, match=r"no market state for quote_date 2026-03-31: it needs"):
        model.predict(holdout[holdout["iv_reliable"]])
    # the evaluator's call: a holdout feature table, state inputs as given, extra columns ignored,
    # with the daily states the service reads
    model = mlflow.pyfunc.load_model(
        uri, model_config={"state_dir": str(Artifacts(cfg.paths).state_dir)}
    )
    scored = model.predict(holdout[holdout["iv_reliable"]])
    rmse = float(
        np.sqrt(
            np.mean(
                (scored["iv"].to_numpy() - holdout.loc[holdout["iv_reliable"], "iv"].to_numpy())
                ** 2
            )
        )
    )
    assert rmse < 0.02

    # unchanged features and config: the checkpoint is reused, no new version
    assert execute(model_train.SPEC, cfg).status == "skipped"
    assert Registry(cfg.registry.model_name).resolve("staging").version == mv.version


def test_same_seed_same_model(root, make_cfg):
    cfg = make_cfg(END, *FAST)
    art = Artifacts(cfg.paths, cfg.data_format)
    days = [d for d in pd.bdate_range(end=LAST, periods=40).date if art.features(d).exists()]
    frames = {d: model_train.read_features(art.features(d)) for d in days}
    first, evals, split = train_model(frames, cfg.model_train)
    second, _, _ = train_model(frames, cfg.model_train)
    assert bytes(first.save_raw("ubj")) == bytes(second.save_raw("ubj"))
    assert 0 < len(evals["validation"]["rmse"]) <= 30 and split.holdout[-1] == LAST
    other, _, _ = train_model(frames, make_cfg(END, *FAST, "model_train.seed=11").model_train)
    assert bytes(other.save_raw("ubj")) != bytes(first.save_raw("ubj"))


def test_too_few_days_is_a_data_error_naming_the_shortfall(root, make_cfg, tracking):
    cfg = make_cfg(END, *FAST, "model_train.min_train_days=20")
    with pytest.raises(DataError, match=r"need at least 35 trading days of features \(train ≥ "
                       r"min_train_days \+ validation \+ holdout.*found 25 between "):  # fmt: skip
        execute(model_train.SPEC, cfg)


def test_multirun_sweep_logs_one_run_per_setting(root):
    result = run_module("pipeline.model_train", "-m", "model_train.max_depth=2,3", f"paths.root={root}",
                        END, "model_train.n_estimators=20", "model_train.register=false")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("options-pricing")
    runs = client.search_runs([experiment.experiment_id], "tags.`pipeline.task` = 'model_train'")
    assert sorted(r.data.params["model_train.max_depth"] for r in runs) == ["2", "3"]
    assert {r.data.tags["pipeline.status"] for r in runs} == {"succeeded"}
    assert all(r.data.params["model_train.register"] == "False" for r in runs)
