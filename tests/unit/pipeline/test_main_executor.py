"""main.executor: a wrong value (or a LocalCluster of no workers) is one ConfigError naming the
key, raised before anything is written or started."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.main import run_pipeline
from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["main.executor=spark"], r"main.executor='spark'; expected one of \('local', 'dask'\)"),
        (["main.executor=dask", "main.workers=0"], "main.workers=0: a LocalCluster needs"),
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
