"""pandas_digest: MLflow's dataset digest without MLflow's per-cell type scan."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.data.digest_utils import compute_pandas_digest

from pipeline.model.tracking import pandas_digest


def test_pandas_digest_equals_mlflows_on_a_training_like_frame():
    rng = np.random.default_rng(0)
    n = 12_000  # more than MLflow's 10,000 hashed rows: the row count still counts
    frame = pd.DataFrame({
        "quote_date": pd.to_datetime("2026-03-02") + pd.to_timedelta(rng.integers(0, 5, n), "D"),
        "underlying": rng.choice(["SPY", "QQQ"], n),
        "x": rng.normal(size=n),
        "iv": rng.random(n),
    })  # fmt: skip
    assert pandas_digest(frame) == compute_pandas_digest(frame)
    assert pandas_digest(frame.iloc[:-1]) != pandas_digest(frame)
    assert pandas_digest(frame.assign(x=frame["x"] + 1e-9)) != pandas_digest(frame)


def test_pandas_digest_equals_mlflows_on_mixed_column_types():
    rng = np.random.default_rng(1)
    n = 500
    frame = pd.DataFrame({
        "quote_date": pd.to_datetime("2026-03-02") + pd.to_timedelta(rng.integers(0, 5, n), "D"),
        "text": rng.choice(["a", "b"], n).astype(object),
        "text_dtype": pd.array(rng.choice(["x", "y"], n), dtype="string"),
        "mixed": pd.Series(["s", 1.5] * (n // 2), dtype=object),
        "flag": rng.random(n) > 0.5,
        "count": rng.integers(0, 9, n),
        "cat": pd.Categorical(rng.choice(["p", "q"], n)),
        "x": rng.normal(size=n),
    })  # fmt: skip
    assert pandas_digest(frame) == compute_pandas_digest(frame)
    empty = frame[["quote_date", "text", "x"]].iloc[:0]  # pandas cannot all() empty str/category
    assert pandas_digest(empty) == compute_pandas_digest(empty)
