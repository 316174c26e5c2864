"""The options-pricer model: everything a trained booster needs to price raw contracts.

- `market_state`: MarketState, the market-state snapshot saved with a model (realised vols,
  yesterday's fitted surface and contract IVs, rate and dividend conventions); JSON + parquet.
- `pricer`: pure pricing of raw contract rows (validation, features through feature_engineer's own
  functions, booster prediction, BSM price). Training and serving share it, so they cannot skew.
- `training`: the pure training core (date split, XGBoost with early stopping).
- `packaging`: signature, input example, the models-from-code pyfunc log, the no-pickle check.
- `plots`: the training run's PNG figures.
- `tracking`: the training run's MLflow records (curves, dataset lineage, the no-pickle check).
- `pyfunc_model`: the models-from-code file MLflow executes to rebuild the model (no pickle).
"""
