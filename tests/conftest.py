"""Shared fixtures: a composed Hydra config rooted in tmp_path, with MLflow on sqlite there."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from pipeline.config import CONFIG_DIR, register_configs

# A small market: two underlyings (one ETF-like, one index-like) and short chains.
TINY_MARKET = [
    "data_fetch.symbols=[SPY,_SPX]",
    "data_fetch.synthetic.max_expiry_years=0.5",
    "data_fetch.synthetic.strike_std_devs=2.5",
]
# No test may roll a model out to a pricing service someone runs on the default port (3000):
# port 9 (discard) has no listener. Tests with a real service override it after this.
NO_SERVICE = "model_deploy.service_url=http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def no_exported_tracking_uri(monkeypatch):
    """configs/mlflow reads MLFLOW_TRACKING_URI (team mode): a test never writes to a store the
    developer exported; each test names its own (sqlite in tmp_path, or a server it started)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def compose_config(overrides: list[str]):
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg(*overrides) → a DictConfig whose paths.root is tmp_path (tiny market by default)."""

    def _make(*overrides: str, tiny: bool = True):
        base = [f"paths.root={tmp_path}", NO_SERVICE] + (TINY_MARKET if tiny else [])
        return compose_config(base + list(overrides))

    return _make


@pytest.fixture
def restore_tracking():
    """After the test: no active MLflow run left, and the tracking URI it found."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def tracking(make_cfg, restore_tracking):
    """Point MLflow at a sqlite store in tmp_path for the duration of a test."""
    from pipeline.runtime import configure_tracking

    cfg = make_cfg()
    configure_tracking(cfg)
    return cfg.mlflow.tracking_uri


TINY_DAYS = ["main.end_date=2026-03-31", "main.days=25"]


@pytest.fixture(scope="session")
def tiny_features_root(tmp_path_factory):
    """A root holding 25 trading days (2026-02-24..2026-03-31) of the tiny market's raw, validated
    and feature files, built once per session. Copy it (shutil.copytree) before writing into it."""
    from pipeline.main import run_pipeline
    from pipeline.runtime import tracking_to

    root = tmp_path_factory.mktemp("tiny_market")
    cfg = compose_config(
        [
            f"paths.root={root}",
            *TINY_MARKET,
            *TINY_DAYS,
            "main.tasks=[data_fetch,data_validate,feature_engineer]",
        ]
    )
    with tracking_to(cfg):
        run_pipeline(cfg)
    return root


@pytest.fixture
def tiny_root(tiny_features_root, tmp_path):
    """A private copy of tiny_features_root (its data, logs and checkpoints), without its MLflow
    store: a test writes into it freely and starts a fresh tracking store there."""
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(tiny_features_root, copy)
    (copy / "mlflow.db").unlink(missing_ok=True)
    return copy
