"""The options-pricer pyfunc model, "models from code": MLflow executes this file to rebuild the
model, so nothing is pickled. Artifacts (see pipeline.model.packaging): `booster` (XGBoost UBJSON),
`state` (the training day's MarketState, one JSON file), `meta` (model_meta.json: feature list,
...).

Each contract is priced with the market state of the last trading day before its quote_date
(pipeline.model.pricer): the daily states in the folder the model config's `state_dir` names
(`mlflow.pyfunc.load_model(uri, model_config={"state_dir": ..., "max_state_age_days": ...})`), else
the `OPTIONS_PRICER_STATE_DIR` environment variable, plus the state bundled with the model, so a
model loaded anywhere prices the trading day after its training without any folder.

predict(DataFrame of raw contracts) → DataFrame(iv, price), through the NumPy path
(pipeline.model.array_path; pipeline.model.pricer.predict_frame is its tested oracle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import xgboost as xgb
from mlflow.pyfunc import PythonModel

from pipeline.market_state import MarketState, StateStore
from pipeline.model.array_path import predict_contracts, price_columns

STATE_DIR_ENV = "OPTIONS_PRICER_STATE_DIR"
DEFAULT_MAX_STATE_AGE_DAYS = 2
MODEL_FORMAT = 2


def state_store(bundled: MarketState, config: dict | None, environ=os.environ) -> StateStore:
    """The states a loaded model prices with (see the module docstring)."""
    config = dict(config or {})
    folder = config.get("state_dir") or environ.get(STATE_DIR_ENV) or None
    max_age = int(config.get("max_state_age_days") or DEFAULT_MAX_STATE_AGE_DAYS)
    return StateStore(folder, max_age, [bundled])


class OptionsPricer(PythonModel):
    """Booster + states + feature list, loaded from the model's artifacts."""

    def load_context(self, context) -> None:
        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        if meta.get("format_version") != MODEL_FORMAT:
            raise ValueError(
                f"options-pricer model format {meta.get('format_version')}, this code reads "
                f"{MODEL_FORMAT} (a model from before daily market states: retrain it)"
            )
        self.features = list(meta["features"])
        self.booster = xgb.Booster()
        self.booster.load_model(context.artifacts["booster"])
        self.state = MarketState.load(Path(context.artifacts["state"]))
        self.store = state_store(self.state, getattr(context, "model_config", None))

    # pd.DataFrame hints: MLflow then validates inputs against the logged signature only
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return predict_contracts(model_input, self.booster, self.store, self.features)

    def price_columns(self, columns: dict) -> tuple:
        """(iv, price) of raw contract fields {column: array}, rows named by position: the
        service's path without a DataFrame (pipeline.model.array_path.price_columns)."""
        return price_columns(columns, self.booster, self.store, self.features)


mlflow.models.set_model(OptionsPricer())
