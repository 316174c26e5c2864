"""`main` end to end on the tiny market: data tasks per day, then train → evaluate → deploy gate →
stakeholder report, reusing every unchanged step on a re-run."""

from __future__ import annotations

import mlflow
import pytest

from pipeline.main import next_steps, run_pipeline
from pipeline.registry import Registry
from tests.conftest import TINY_DAYS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FAST_MODEL = [
    "model_train.n_estimators=40",
    "model_train.days=25",
    "model_evaluate.bootstrap_samples=50",
]


def _task_runs() -> int:
    """Task runs (not main's) in the active tracking store's experiment."""
    runs = mlflow.search_runs(experiment_names=["options-pricing"], output_format="list")
    return sum(r.data.tags.get("pipeline.task") != "main" for r in runs)


@pytest.fixture
def root(tiny_root):
    return tiny_root


def test_main_ends_with_a_candidate_in_staging_and_reuses_everything_next_time(
    make_cfg, tracking, root
):
    cfg = make_cfg(f"paths.root={root}", *TINY_DAYS, *FAST_MODEL)
    from pipeline.runtime import configure_tracking

    configure_tracking(cfg)
    first = run_pipeline(cfg)
    by_task = {o.task: o.status for o in first}
    assert (
        by_task["model_train"]
        == by_task["model_evaluate"]
        == by_task["model_deploy"]
        == by_task["generate_report"]
        == "succeeded"
    )
    assert first[-1].task == "generate_report"  # the last step: it reports on all the others
    registry = Registry(cfg.registry.model_name)
    staging = registry.resolve("staging")
    assert staging is not None and registry.resolve("production") is None
    assert registry.verdict(staging.version) is not None
    message = next_steps(next(o for o in first if o.task == "model_deploy"))
    assert f"v{staging.version} in Staging" in message and "make promote" in message

    runs_before = _task_runs()
    again = run_pipeline(cfg)
    # every step is reused, the report too (a reuse is not a new outcome for it to report)
    assert {o.status for o in again} == {"skipped"}
    assert again[-1].task == "generate_report"
    # reused steps get no nested run each: main's run lists them
    assert _task_runs() == runs_before

    changed = run_pipeline(
        make_cfg(f"paths.root={root}", *TINY_DAYS, *FAST_MODEL, "model_train.max_depth=3")
    )
    status = {o.task: o.status for o in changed}
    assert {status[t] for t in ("data_fetch", "data_validate", "feature_engineer")} == {"skipped"}
    assert (
        status["model_train"]
        == status["model_evaluate"]
        == status["model_deploy"]
        == status["generate_report"]
        == "succeeded"
    )
    assert registry.resolve("staging").version != staging.version
