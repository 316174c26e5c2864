"""Options-pricing MLOps pipeline: one module per task, shared runtime, market sources and quant code."""

import os

# MLflow 3 reports usage telemetry to an outside endpoint unless told not to; the platform talks
# to 127.0.0.1 only. An explicit MLFLOW_DISABLE_TELEMETRY=false in the environment still wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
