"""main.executor: a wrong value (or a LocalCluster of no workers, or no feature shards) is one
ConfigError naming the key, raised before anything is written or started."""

from __future__ import annotations

import pytest

from pipeline.dask_executor import shard_count
from pipeline.errors import ConfigError
from pipeline.main import run_pipeline
from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["main.executor=spark"], r"main.executor='spark'; expected one of \('local', 'dask'\)"),
        (["main.executor=dask", "main.workers=0"], "main.workers=0: a LocalCluster needs"),
        (["main.executor=dask", "main.shards=0"], "main.shards=0: feature_engineer needs"),
    ],
)
def test_a_bad_executor_is_one_clear_error_before_anything_runs(tmp_path, overrides, message):
    cfg = compose_config([f"paths.root={tmp_path}", *overrides])
    with pytest.raises(ConfigError, match=message):
        run_pipeline(cfg)
    assert not any(tmp_path.iterdir())


def test_the_default_executor_is_local():
    cfg = compose_config([])
    assert cfg.main.executor == "local" and cfg.main.dask_scheduler is None


def test_features_have_as_many_shards_as_workers_unless_set():
    assert shard_count(compose_config(["main.workers=3"]).main) == 3
    assert shard_count(compose_config(["main.workers=3", "main.shards=1"]).main) == 1
