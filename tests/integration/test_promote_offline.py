"""pipeline.promote against a real sqlite MLflow store: a version becomes Production only if it
prices its logged input example offline, loaded as the service loads it; force overrides a failed
gate, not that. A refusal changes nothing. A missing version is said to be missing.

One store per module holds three tiny "models from code" pyfuncs logged with a contract as input
example: `flat` (a finite IV and price per contract), `broken` (raises) and `nan` (NaN IVs). Each
test copies the store (as tests/integration/test_registry.py does) and registers what it needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline import promote
from pipeline.model.packaging import signature
from pipeline.registry import Registry, RegistryRefusal
from tests.helpers import run_module
from tests.integration.test_registry import Store
from tests.serving_helpers import registry_config, tracking_at

pytestmark = pytest.mark.integration

MODEL_CODE = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Stub(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        {body}


mlflow.models.set_model(Stub())
"""
BODIES = {
    "flat": 'return pd.DataFrame({"iv": 0.2, "price": 1.5}, index=model_input.index)',
    "broken": 'raise RuntimeError("deliberately broken model")',
    "nan": 'return pd.DataFrame({"iv": float("nan"), "price": 1.5}, index=model_input.index)',
}
EXAMPLE = pd.DataFrame(
    {"underlying": ["SPY", "SPY"], "option_type": ["C", "P"], "strike": [600.0, 580.0],
     "expiry": pd.to_datetime(["2026-06-19"] * 2), "quote_date": pd.to_datetime(["2026-03-31"] * 2),
     "spot": [600.0, 600.0]}
)  # fmt: skip
NAME = "options-pricer"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """The module's store: one run per model of BODIES, in that order (run_ids)."""
    root = tmp_path_factory.mktemp("promote_store")
    uri = f"sqlite:///{root}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        exp = MlflowClient(uri).create_experiment("promote", (root / "mlartifacts").as_uri())
        run_ids = []
        for kind, body in BODIES.items():
            code = root / f"{kind}_model.py"
            code.write_text(MODEL_CODE.format(body=body))
            with mlflow.start_run(experiment_id=exp) as run:
                mlflow.pyfunc.log_model(
                    name="model", python_model=str(code), pip_requirements=["mlflow"],
                    input_example=EXAMPLE, signature=signature(),
                    model_config={"state_dir": "", "max_state_age_days": 2},
                )  # fmt: skip
            run_ids.append(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(previous)
    return Store(root, uri, run_ids)


def stage(store: Store, root: Path, production: str, candidate: str) -> Registry:
    """A copy of the store at root/mlflow.db with model `production` as v1 in Production and
    `candidate` as v2 in Staging, its gate verdict failed."""
    shutil.copy(store.root / "mlflow.db", root / "mlflow.db")
    registry = Registry(NAME, MlflowClient(f"sqlite:///{root}/mlflow.db"))
    run_ids = dict(zip(BODIES, store.run_ids, strict=True))
    registry.register_candidate(f"runs:/{run_ids[production]}/model", run_ids[production])
    registry.promote(force=True, reason="tests: the first Production version")
    registry.register_candidate(f"runs:/{run_ids[candidate]}/model", run_ids[candidate])
    registry.record_verdict("2", False, ["IV RMSE worse than Production's"])
    return registry


def snapshot(registry: Registry):
    return registry.state(), registry.history()


def test_a_forced_promotion_of_a_broken_version_is_refused_and_changes_nothing(store, tmp_path):
    registry = stage(store, tmp_path, "flat", "broken")
    before = snapshot(registry)
    proc = run_module(
        "pipeline.promote",
        f"paths.root={tmp_path}",
        "registry.force=true",
        'registry.reason="hotfix: ship it"',
        timeout=240,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: v2 of 'options-pricer' cannot become Production: ")
    assert "v2 failed on its input example: RuntimeError: deliberately broken model" in lines[0]
    assert "force overrides a failed gate verdict, not this check" in lines[0]
    assert str(tmp_path) not in lines[0] and "Traceback" not in proc.stderr
    assert snapshot(registry) == before
    assert registry.check_consistency() == []


def promote_in_process(root: Path, *overrides: str) -> dict:
    cfg = registry_config(root, *overrides)
    with tracking_at(cfg):
        return promote.main(cfg)


def test_a_version_answering_nan_is_refused_and_a_working_one_then_promoted(store, tmp_path):
    registry = stage(store, tmp_path, "flat", "nan")
    before = snapshot(registry)
    with pytest.raises(RegistryRefusal, match="priced 2 of its 2 input example contracts out of range"):  # fmt: skip
        promote_in_process(tmp_path, "registry.force=true", "registry.reason=hotfix")
    assert snapshot(registry) == before

    flat = store.run_ids[list(BODIES).index("flat")]
    fixed = str(registry.register_candidate(f"runs:/{flat}/model", flat).version)
    entry = promote_in_process(tmp_path, "registry.force=true", "registry.reason=hotfix")
    assert (entry["from_version"], entry["to_version"], entry["forced"]) == ("1", fixed, True)
    assert str(registry.resolve("production").version) == fixed
    assert str(registry.resolve("previous-production").version) == "1"


def test_a_missing_version_is_said_not_to_exist(store, tmp_path):
    registry = stage(store, tmp_path, "flat", "flat")
    before = snapshot(registry)
    with pytest.raises(RegistryRefusal) as info:
        promote_in_process(tmp_path, "registry.version=42")
    assert str(info.value) == (
        "v42 of 'options-pricer' does not exist: its versions are v1 (Production), v2 (Staging)"
    )
    assert snapshot(registry) == before
