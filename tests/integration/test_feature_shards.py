"""feature_engineer by shards of underlyings (pipeline.feature_shards), run in this process
without Dask: a day whose checkpoint holds is computed by no shard; a shard that fails hands its
day over to the publication, which fails as feature_engineer does on the local path (the error,
a failed run of that day); the shards after it compute nothing."""

from __future__ import annotations

import mlflow
import pytest

from pipeline import data_fetch, data_validate
from pipeline.artifacts import Artifacts
from pipeline.errors import DataError
from pipeline.feature_shards import compute_shard, publish
from pipeline.runtime import configure_tracking, execute
from tests.integration.test_main_local import DAYS, _cfg

pytestmark = pytest.mark.integration


def test_a_failing_shard_fails_its_day_as_feature_engineer_does(tmp_path, restore_tracking):
    cfg = _cfg(tmp_path / "root")  # two underlyings: one per shard
    configure_tracking(cfg)
    for day in DAYS:
        execute(data_fetch.SPEC, cfg, day)
        execute(data_validate.SPEC, cfg, day)
    Artifacts(cfg.paths, cfg.data_format).validated_quotes(DAYS[1]).unlink()

    first = [compute_shard(cfg, DAYS[0], k, 2, None) for k in range(2)]
    assert all(s.computed is not None and len(s.computed.features) for s in first)
    assert publish(cfg, DAYS[0], first).status == "succeeded"
    # published: a new chain starting on that day finds its checkpoint and computes nothing
    assert all(compute_shard(cfg, DAYS[0], k, 2, None).reused for k in range(2))

    second = [compute_shard(cfg, DAYS[1], k, 2, first[k]) for k in range(2)]
    assert all(s.computed is None and s.why.startswith("DataError: no validated quotes")
               for s in second)  # fmt: skip
    with pytest.raises(DataError, match="no validated quotes"):
        publish(cfg, DAYS[1], second)
    (run,) = mlflow.search_runs(
        experiment_names=["options-pricing"],
        filter_string=f"tags.`pipeline.task` = 'feature_engineer' "
        f"and tags.`pipeline.date` = '{DAYS[1]}'",
        output_format="list",
    )
    assert run.info.status == "FAILED" and run.data.tags["pipeline.status"] == "failed"

    third = [compute_shard(cfg, DAYS[2], k, 2, second[k]) for k in range(2)]
    assert [s.why for s in third] == [f"shard {k} of {DAYS[1]} was not computed" for k in (0, 1)]
