"""An exported MLFLOW_TRACKING_URI (team mode) is every task's store, read once at start."""

import mlflow

from pipeline.cli import tracking_from_env


def test_an_exported_tracking_uri_is_the_store(make_cfg, monkeypatch):
    cfg = make_cfg()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5050")
    tracking_from_env(cfg, ["main.days=3"])
    assert cfg.mlflow.tracking_uri == "http://127.0.0.1:5050"


def test_the_command_line_wins_over_the_exported_uri(make_cfg, monkeypatch, tmp_path):
    cfg = make_cfg(f"mlflow.tracking_uri=sqlite:///{tmp_path}/other.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5050")
    tracking_from_env(cfg, [f"mlflow.tracking_uri=sqlite:///{tmp_path}/other.db"])
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/other.db"


def test_unset_keeps_the_local_store_and_is_not_moved_by_mlflow(make_cfg, tmp_path,
                                                                restore_tracking):  # fmt: skip
    cfg = make_cfg()
    tracking_from_env(cfg, [])
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    # MLflow's set_tracking_uri exports the variable; a composed config must not follow it
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/elsewhere.db")
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
