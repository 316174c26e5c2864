"""Loading a registered options-pricer in a process that has the repository's own code."""

from __future__ import annotations

import sys


def load_pricer(uri: str, model_config: dict):
    """`mlflow.pyfunc.load_model(uri, model_config=...)`, leaving sys.path as it was. MLflow
    prepends the model's code_paths copy of `pipeline` (the pricing core only) on every load and
    leaves it there; a process that already imported its own `pipeline` (the repository's, or
    the Bento's) never uses the copy, but processes it starts later would (a second main's Dask
    workers then miss the task modules)."""
    import mlflow

    path = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(uri, model_config=model_config)
    finally:
        sys.path[:] = path
