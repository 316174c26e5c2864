"""The options-pricer as an MLflow pyfunc model, built from code (no pickle anywhere).

Logged model layout (`log_pricer`; MLflow adds MLmodel, requirements, input examples):

    MLmodel                       flavor python_function, model_code_path = pyfunc_model.py
    pyfunc_model.py               pipeline/model/pyfunc_model.py (calls mlflow.models.set_model)
    artifacts/booster.ubj         the XGBoost booster in XGBoost's own UBJSON format
    artifacts/market_state.json   MarketState of the last training day (pipeline.market_state):
                                  the model prices the next trading day with it, and later days
                                  with the daily states of its `state_dir` (pyfunc_model.py)
    artifacts/model_meta.json     feature list, base margin, IV clip, best iteration, split
    code/pipeline/...             the training-time copy of the pricing core (code_paths)
    input_example.json, serving_input_example.json, requirements.txt, python_env.yaml, ...

Code: `code_paths` ships the pricing core with the model: `pipeline/__init__.py` and exactly the
modules pyfunc_model.py imports, directly or not (pipeline.source_closure: the pricer, the
feature code, the market state, quant, the calendar; no task, runtime or monitoring module,
which the import-linter contracts keep out of that closure). So a fresh process anywhere (a
notebook, `mlflow models serve` from any folder) loads the model and prices with the feature
code it was trained with. A process that has already imported `pipeline` (the evaluator, the
BentoML service in this repo) keeps its own import, i.e. the repo's code; the run's `git_commit`
tag names the commit the model came from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import pandas as pd
import xgboost as xgb
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from pipeline.market.calendar import shift_trading_days
from pipeline.market_state import MarketState
from pipeline.model.loading import load_pricer
from pipeline.model.pricer import CONTRACT_COLUMNS, DEFAULT_BASE_IV, IV_CAP, IV_FLOOR, STATE_COLUMNS
from pipeline.source_closure import import_closure, package_root

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
BOOSTER_FILE, META_FILE, STATE_FILE = "booster.ubj", "model_meta.json", "market_state.json"
# the distributions the shipped core imports (`core_sources`; their own dependencies come with
# them; tests/unit/test_layers.py checks the list), and pyarrow for parquet; listing them spares
# MLflow's slow requirement inference
REQUIREMENTS = ("mlflow", "xgboost-cpu", "pandas", "numpy", "scipy", "pyarrow",
                "exchange-calendars")  # fmt: skip
EXAMPLE_COLUMNS = (*CONTRACT_COLUMNS, "option")
RAW_COLUMNS = (*CONTRACT_COLUMNS, "option", "rate", "dividend_yield")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle")


def signature() -> ModelSignature:
    """Inputs: the raw contract fields (required) and the optional columns; outputs iv, price."""
    types = {"underlying": "string", "option_type": "string", "strike": "double",
             "expiry": "datetime", "quote_date": "datetime", "spot": "double"}  # fmt: skip
    optional = [ColSpec("string", "option", required=False),
                ColSpec("double", "rate", required=False),
                ColSpec("double", "dividend_yield", required=False)]  # fmt: skip
    optional += [ColSpec("double", c, required=False) for c in STATE_COLUMNS]
    inputs = Schema([ColSpec(t, c) for c, t in types.items()] + optional)
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "iv"),
                                                         ColSpec("double", "price")]))  # fmt: skip


def input_example(frame: pd.DataFrame, state: MarketState, n: int = 5) -> pd.DataFrame:
    """A few raw contracts (contract fields and OCC symbol) quoted on the trading day after
    `state`'s: the last training day's contracts (a different underlying each where possible)
    one day on, spot unchanged. The bundled state prices them, so the example (and the
    service's self-check) works wherever the model is loaded, with or without daily states."""
    day = frame[pd.to_datetime(frame["quote_date"]).dt.date == state.as_of]
    nxt = pd.Timestamp(shift_trading_days(state.as_of, 1))
    day = day[pd.to_datetime(day["expiry"]) > nxt]
    rows = day.drop_duplicates("underlying").head(n)
    if len(rows) < n:
        rows = pd.concat([rows, day.head(n - len(rows))])
    return rows[list(EXAMPLE_COLUMNS)].assign(quote_date=nxt).reset_index(drop=True)


def requirements() -> list[str]:
    """Pinned pip requirements of the running environment (no slow inference by MLflow)."""
    pins = []
    for dist in REQUIREMENTS:
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def save_artifacts(booster: xgb.Booster, state: MarketState, meta: dict, folder: Path) -> dict:
    """Write the booster (UBJSON), the state and the metadata into `folder`; pyfunc artifacts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(folder / BOOSTER_FILE)
    state.save(folder / STATE_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return {"booster": str(folder / BOOSTER_FILE), "state": str(folder / STATE_FILE),
            "meta": str(folder / META_FILE)}  # fmt: skip


def model_meta(features: list[str], booster: xgb.Booster, extra: dict | None = None) -> dict:
    """What pyfunc_model.py needs besides the booster and the state, plus provenance."""
    return {
        "format_version": 2,
        "features": list(features),
        "target": "iv (market mid implied vol)",
        "base_margin": ["prev_smile_iv", "prev_surface_iv", "rv_20d", DEFAULT_BASE_IV],
        "iv_clip": [IV_FLOOR, IV_CAP],
        "best_iteration": int(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1),
        "xgboost_version": xgb.__version__,
        **(extra or {}),
    }


@contextmanager
def quiet_artifact_transfers():
    """No tqdm bars from MLflow's artifact copies (they flood task logs and test output)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def core_sources() -> list[Path]:
    """The files the model ships as code, relative to the repository: the packages and modules
    pyfunc_model.py imports, directly or not (see the module docstring)."""
    root, name = package_root(PYFUNC_FILE.resolve())
    return sorted(path.relative_to(root) for path in import_closure(root, name))


@contextmanager
def staged_core() -> Iterator[Path]:
    """A temporary copy of the pricing core (`core_sources`) as a `pipeline` package folder, for
    `code_paths`; removed on exit."""
    root, _ = package_root(PYFUNC_FILE.resolve())
    with tempfile.TemporaryDirectory(prefix="pricer_code_") as tmp:
        for relative in core_sources():
            target = Path(tmp) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / relative, target)
        yield Path(tmp) / "pipeline"


class _NoPipVersionWarning(logging.Filter):
    """MLflow warns when the env has no `pip` (uv venvs don't): the model's conda.yaml then lists
    an unpinned pip, which is what we want; the warning is noise in every training run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to resolve installed pip version" not in record.getMessage()


logging.getLogger("mlflow.utils.environment").addFilter(_NoPipVersionWarning())


def log_pricer(
    booster,
    state,
    features,
    example: pd.DataFrame,
    meta_extra: dict | None = None,
    max_state_age_days: int = 2,
):
    """Log the model under the active run as `model` (models from code); returns ModelInfo.
    Its default model config: `max_state_age_days`; `state_dir` is given where it is loaded."""
    with (
        tempfile.TemporaryDirectory(prefix="pricer_") as tmp,
        staged_core() as core,
        quiet_artifact_transfers(),
    ):
        artifacts = save_artifacts(
            booster, state, model_meta(features, booster, meta_extra), Path(tmp)
        )
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_FILE),
            artifacts=artifacts,
            code_paths=[str(core)],
            signature=signature(),
            input_example=example,
            pip_requirements=requirements(),
            # keys a loader may set (MLflow ignores undeclared ones); state_dir "" = bundled only
            model_config={"state_dir": "", "max_state_age_days": int(max_state_age_days)},
        )


def served_model(model_uri: str, state_dir, max_state_age_days: int):
    """The registered pyfunc model as the pricing service loads it: pricing each contract with
    the daily state of the trading day before its quote date, from `state_dir`."""
    config = {"state_dir": str(state_dir), "max_state_age_days": int(max_state_age_days)}
    return load_pricer(model_uri, config)


def served_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of `frame` a pricing request carries (raw contract fields, the OCC symbol,
    rate and dividend yield): no state column, so the model looks the state up as it does when
    serving."""
    return frame[[c for c in RAW_COLUMNS if c in frame.columns]]


def predict_served(model, frame: pd.DataFrame, who: str) -> pd.DataFrame:
    """(iv, price) per row of `frame` from a `served_model`, given only the request's fields;
    DataError naming `who` when the model refuses the contracts or answers out of shape."""
    from pipeline.errors import DataError
    from pipeline.model.pricer import ContractError

    try:
        out = pd.DataFrame(model.predict(served_inputs(frame)))
    except ContractError as exc:
        raise DataError(
            f"{who} could not price the contracts as the service would: {exc}"
        ) from None
    if {"iv", "price"} - set(out.columns) or len(out) != len(frame):
        raise DataError(f"{who} returned columns {list(out.columns)} and {len(out)} rows for "
                        f"{len(frame)} contracts; expected iv and price per row")  # fmt: skip
    return out[["iv", "price"]].reset_index(drop=True).astype(float)


def downloaded_pickles(model_uri: str) -> list[str]:
    """Download the logged model `model_uri` and list its pickle files (relative paths)."""
    with tempfile.TemporaryDirectory(prefix="model_check_") as tmp, quiet_artifact_transfers():
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        return [str(p.relative_to(local)) for p in find_pickles(local)]


def find_pickles(directory: Path) -> list[Path]:
    """Files under `directory` that are pickles: a pickle-ish suffix, or the magic of pickle
    protocols 2-5 (b'\\x80' then the protocol byte) at the start of the file."""
    found = []
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_file():
            continue
        with open(path, "rb") as fh:
            head = fh.read(2)
        if path.suffix in PICKLE_SUFFIXES or (
            len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5
        ):
            found.append(path)
    return found
