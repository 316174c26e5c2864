"""The options-pricer pyfunc model, "models from code": MLflow executes this file to rebuild the
model, so nothing is pickled. Artifacts (see pipeline.model.packaging): `booster` (XGBoost UBJSON),
`state` (MarketState folder), `meta` (model_meta.json: feature list, ...).

predict(DataFrame of raw contracts) → DataFrame(iv, price); see pipeline.model.pricer.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import xgboost as xgb
from mlflow.pyfunc import PythonModel

from pipeline.model.market_state import MarketState
from pipeline.model.pricer import predict_frame


class OptionsPricer(PythonModel):
    """Booster + market-state snapshot + feature list, loaded from the model's artifacts."""

    def load_context(self, context) -> None:
        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        if meta.get("format_version") != 1:
            raise ValueError(f"unknown options-pricer model format {meta.get('format_version')}")
        self.features = list(meta["features"])
        self.booster = xgb.Booster()
        self.booster.load_model(context.artifacts["booster"])
        self.state = MarketState.load(Path(context.artifacts["state"]))

    # pd.DataFrame hints: MLflow then validates inputs against the logged signature only
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return predict_frame(model_input, self.booster, self.state, self.features)


mlflow.models.set_model(OptionsPricer())
