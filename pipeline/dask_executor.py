"""main's days on Dask (`main.executor=dask`): each day's tasks as Dask tasks on a cluster.

    daily_outcomes(cfg, days, ahead, chained) -> per day, in date order, its TaskOutcomes

Per day, one Dask task runs the `ahead` tasks (fetch → validate: they read only their own day's
files). With `main.shards` (null: `main.workers`) above 1 and feature_engineer as the `chained`
task, feature_engineer runs as one Dask task per shard of the underlyings, each depending on that
day's `ahead` task and on the same shard of the previous day (whose state it is handed), and one
task per day that publishes the day (its files, checkpoint and run), depending on the day's
shards and on the previous day's publication (pipeline.feature_shards): the shards' chains run
side by side, ahead of the publications. With 1 shard, one task runs the `chained` tasks of the
day, depending on the day's `ahead` task and on the previous day's `chained` task (features read
the previous day's). Tasks are submitted in date order, so the scheduler prefers earlier days;
fetch and validate of later days run ahead on the free workers.

Where: `main.dask_scheduler`, a scheduler address (tcp://host:8786), runs them on that cluster
(its workers must see the same paths and tracking store); null starts a LocalCluster of
`main.workers` worker processes, one thread each, scheduler and nannies in this process, no
dashboard, listening on 127.0.0.1 only, with glibc's default malloc (DROPPED_WORKER_ENVIRON).
A LocalCluster's workers are this process's children and exit when it ends, even by SIGKILL
(distributed's AsyncProcess: a worker exits when the pipe to its parent closes);
tests/integration/test_main_dask.py checks it.

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

import dask
import mlflow
from omegaconf import DictConfig

from pipeline import feature_shards
from pipeline.errors import ConfigError
from pipeline.runtime import TaskOutcome, TaskSpec, digest_memo, execute, nested_under

EXECUTORS = ("local", "dask")
HOST = "127.0.0.1"


def check(main_cfg: DictConfig) -> None:
    """main.executor, main.workers and main.shards, checked before anything runs (ConfigError
    naming them)."""
    if main_cfg.executor not in EXECUTORS:
        raise ConfigError(f"main.executor={main_cfg.executor!r}; expected one of {EXECUTORS}")
    if main_cfg.executor == "dask" and main_cfg.dask_scheduler is None and main_cfg.workers < 1:
        raise ConfigError(f"main.workers={main_cfg.workers}: a LocalCluster needs at least 1")
    if main_cfg.executor == "dask" and shard_count(main_cfg) < 1:
        raise ConfigError(f"main.shards={main_cfg.shards}: feature_engineer needs at least 1")


def shard_count(main_cfg: DictConfig) -> int:
    """feature_engineer's shards on Dask: main.shards, or main.workers when null."""
    return int(main_cfg.workers if main_cfg.shards is None else main_cfg.shards)


SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"
# Left out of distributed's default environment of a worker process. MALLOC_TRIM_THRESHOLD_
# (64 KiB: hand freed memory back to the OS at once) also turns off glibc's adaptive mmap
# threshold, so every numpy temporary above 128 KiB (a column of a day's quotes is ~1 MB) is a
# fresh mmap, page-faulted in and unmapped again: a day's features took twice as long in a worker
# as in main's process (0.5 s → 1.0 s at 64 underlyings). Without it the workers allocate as the
# local executor's process does.
DROPPED_WORKER_ENVIRON = ("MALLOC_TRIM_THRESHOLD_",)


def worker_environ() -> dict:
    """The environment a LocalCluster worker is spawned with: distributed's default (one BLAS
    and OpenMP thread) without DROPPED_WORKER_ENVIRON."""
    import distributed  # noqa: F401 (its defaults are dask's config once imported)

    default = dask.config.get(SPAWN_ENVIRON, default={})
    return {k: v for k, v in default.items() if k not in DROPPED_WORKER_ENVIRON}


@contextmanager
def client_for(main_cfg: DictConfig):
    """A distributed Client on `main.dask_scheduler`, or on a LocalCluster of `main.workers`
    single-threaded worker processes, closed (workers stopped) on the way out."""
    from distributed import Client, LocalCluster

    if main_cfg.dask_scheduler is not None:
        with Client(str(main_cfg.dask_scheduler)) as client:
            yield client
        return
    with dask.config.set({SPAWN_ENVIRON: worker_environ()}):  # read as the nannies start
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


@contextmanager
def _in_main_run(tracking: tuple[str, str], parent_run_id: str) -> Iterator[None]:
    """In a worker: task runs nest under main's run, in main's store and experiment."""
    global _TRACKING
    if tracking != _TRACKING:
        uri, experiment_id = tracking
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment_id=experiment_id)
        _TRACKING = tracking
    with digest_memo(), nested_under(parent_run_id):
        yield


def _run_day(
    tracking: tuple[str, str], parent_run_id: str, cfg: DictConfig, specs, day: dt.date, *after
) -> list[TaskOutcome]:
    """In a worker: the `specs` of `day`, nested under main's run. `after` only orders the task
    (the Dask tasks it waits for)."""
    with _in_main_run(tracking, parent_run_id):
        return [execute(spec, cfg, day, record_skip=False) for spec in specs]


def _run_shard(
    cfg: DictConfig, day: dt.date, shard: int, shards: int, previous, *after
) -> feature_shards.ShardDay:
    """In a worker: one shard of `day`'s features (no run of its own; `after`: as in _run_day)."""
    return feature_shards.compute_shard(cfg, day, shard, shards, previous)


def _publish_day(
    tracking: tuple[str, str], parent_run_id: str, cfg: DictConfig, day: dt.date, shard_days,
    *after,
) -> list[TaskOutcome]:  # fmt: skip
    """In a worker: `day`'s feature_engineer from its shards, nested under main's run."""
    with _in_main_run(tracking, parent_run_id):
        return [feature_shards.publish(cfg, day, shard_days)]


def daily_outcomes(
    cfg: DictConfig, days: list[dt.date], ahead: list[TaskSpec], chained: list[TaskSpec]
) -> Iterator[list[TaskOutcome]]:
    """Per day, in date order, the outcomes of its `ahead` then `chained` tasks, run on Dask
    (see the module docstring). Called inside main's active MLflow run."""
    run = mlflow.active_run()
    parent = (mlflow.get_tracking_uri(), run.info.experiment_id), run.info.run_id
    tag = uuid.uuid4().hex[:8]
    sharded = [s.name for s in chained] == [feature_shards.SPEC.name]
    shards = shard_count(cfg.main) if sharded else 1
    with client_for(cfg.main) as client:
        days_futures, previous, previous_shards = [], None, [None] * shards
        for day in days:
            first = None
            if ahead:
                first = client.submit(_run_day, *parent, cfg, ahead, day, key=f"ahead-{day}-{tag}")
            parts, second = [], None
            if chained and shards > 1:
                parts = [
                    client.submit(
                        _run_shard, cfg, day, k, shards, previous_shards[k], *_given(first),
                        key=f"features-{day}-shard{k}-{tag}",
                    )
                    for k in range(shards)
                ]  # fmt: skip
                second = client.submit(
                    _publish_day, *parent, cfg, day, parts, *_given(previous),
                    key=f"features-{day}-{tag}",
                )  # fmt: skip
                previous_shards = parts
            elif chained:
                second = client.submit(
                    _run_day, *parent, cfg, chained, day, *_given(first, previous),
                    key=f"chained-{day}-{tag}",
                )  # fmt: skip
            previous = second
            days_futures.append([first, parts, second])
        try:
            for i, (first, _, second) in enumerate(days_futures):
                yield [*(first.result() if first else []), *(second.result() if second else [])]
                days_futures[i] = [None, [], None]  # done: let Dask drop the day's results
        finally:
            client.cancel([f for first, parts, second in days_futures
                           for f in (first, *parts, second) if f is not None])  # fmt: skip


def _given(*futures):
    """The futures a task waits for, of `futures` (None: nothing to wait for)."""
    return [f for f in futures if f is not None]
