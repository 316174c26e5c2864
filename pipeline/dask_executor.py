"""main's days on Dask (`main.executor=dask`): each day's tasks as Dask tasks on a cluster.

    daily_outcomes(cfg, days, ahead, chained) -> per day, in date order, its TaskOutcomes

Per day, one Dask task runs the `ahead` tasks (fetch → validate: they read only their own day's
files) and one runs the `chained` ones (feature_engineer), which depends on that day's `ahead`
task and on the previous day's `chained` task (features read the previous day's). Tasks are
submitted in date order, so the scheduler prefers earlier days; fetch and validate of later days
run ahead on the free workers.

Where: `main.dask_scheduler`, a scheduler address (tcp://host:8786), runs them on that cluster
(its workers must see the same paths and tracking store); null starts a LocalCluster of
`main.workers` worker processes, one thread each, scheduler and nannies in this process, no
dashboard, listening on 127.0.0.1 only. A LocalCluster's workers are this process's children
and exit when it ends, even by SIGKILL (distributed's AsyncProcess: a worker exits when the pipe
to its parent closes); tests/integration/test_main_dask.py checks it.

The same semantics as the local executor: every task run nests under main's MLflow run
(`runtime.nested_under`; worker processes point MLflow at main's store and experiment), a step
whose checkpoint holds is reused (`runtime.execute`), and a failure surfaces at its day: the
days after it are cancelled (tasks already running on a LocalCluster end with it; their runs,
left RUNNING, are marked FAILED by the next main).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from omegaconf import DictConfig

from pipeline.errors import ConfigError
from pipeline.runtime import TaskOutcome, TaskSpec, digest_memo, execute, nested_under

EXECUTORS = ("local", "dask")
HOST = "127.0.0.1"


def check(main_cfg: DictConfig) -> None:
    """main.executor and main.workers, checked before anything runs (ConfigError naming them)."""
    if main_cfg.executor not in EXECUTORS:
        raise ConfigError(f"main.executor={main_cfg.executor!r}; expected one of {EXECUTORS}")
    if main_cfg.executor == "dask" and main_cfg.dask_scheduler is None and main_cfg.workers < 1:
        raise ConfigError(f"main.workers={main_cfg.workers}: a LocalCluster needs at least 1")


@contextmanager
def client_for(main_cfg: DictConfig):
    """A distributed Client on `main.dask_scheduler`, or on a LocalCluster of `main.workers`
    single-threaded worker processes, closed (workers stopped) on the way out."""
    from distributed import Client, LocalCluster

    if main_cfg.dask_scheduler is not None:
        with Client(str(main_cfg.dask_scheduler)) as client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=int(main_cfg.workers),
        threads_per_worker=1,
        processes=True,
        host=HOST,
        scheduler_port=0,
        dashboard_address=None,
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


_TRACKING: tuple[str, str] | None = None  # in a worker: the store and experiment set up


def _run_day(
    tracking: tuple[str, str], parent_run_id: str, cfg: DictConfig, specs, day: dt.date, *after
) -> list[TaskOutcome]:
    """In a worker: the `specs` of `day`, nested under main's run. `after` only orders the task
    (the Dask tasks it waits for)."""
    global _TRACKING
    if tracking != _TRACKING:
        uri, experiment_id = tracking
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment_id=experiment_id)
        _TRACKING = tracking
    with digest_memo(), nested_under(parent_run_id):
        return [execute(spec, cfg, day, record_skip=False) for spec in specs]


def daily_outcomes(
    cfg: DictConfig, days: list[dt.date], ahead: list[TaskSpec], chained: list[TaskSpec]
) -> Iterator[list[TaskOutcome]]:
    """Per day, in date order, the outcomes of its `ahead` then `chained` tasks, run on Dask
    (see the module docstring). Called inside main's active MLflow run."""
    run = mlflow.active_run()
    tracking = (mlflow.get_tracking_uri(), run.info.experiment_id)
    tag = uuid.uuid4().hex[:8]
    with client_for(cfg.main) as client:
        futures, previous = [], None
        for day in days:
            first = None
            if ahead:
                first = client.submit(
                    _run_day, tracking, run.info.run_id, cfg, ahead, day,
                    key=f"ahead-{day}-{tag}",
                )  # fmt: skip
            second = None
            if chained:
                waits = [f for f in (first, previous) if f is not None]
                second = client.submit(
                    _run_day, tracking, run.info.run_id, cfg, chained, day, *waits,
                    key=f"chained-{day}-{tag}",
                )  # fmt: skip
                previous = second
            futures.append((first, second))
        try:
            for first, second in futures:
                yield [*(first.result() if first else []), *(second.result() if second else [])]
        finally:
            client.cancel([f for pair in futures for f in pair if f is not None])
