"""The one wrapper every task runs in.

`execute(spec, cfg)` gives a task, in this order: its business date, a log file
`logs/<task>_YYYYMMDD.log`, a checkpoint check (skip when the inputs' hashes, the task's config and
its code are unchanged and the recorded outputs are intact), an MLflow run (nested under `main`
when one is active) with the task's resolved config as params, the task's retry policy around its
body, its figures as metrics and its log and reports as artifacts, and finally a checkpoint
manifest.
A skipped task gets an MLflow run tagged pipeline.status=skipped when run on its own; inside
`main` it gets none (main's run lists what it reused).

A task provides a `TaskSpec`: what it reads (to hash), what it writes (to verify), and `run(ctx)`.

Observers (`add_observer`) hear of every execution as it ends (`TaskEnded`: succeeded, skipped or
failed, with the error). The runtime imports no monitoring code: pipeline.task_hooks registers
the alert and metrics hooks (monitoring.alerts, monitoring.prom_textfile), and every task module
imports it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from omegaconf import DictConfig, OmegaConf

from pipeline.artifacts import Artifacts, file_digest, write_json
from pipeline.config import REPO_ROOT, to_container
from pipeline.errors import ConfigError, PipelineError, TransientError
from pipeline.market.calendar import is_trading_day, latest_trading_day, previous_trading_day
from pipeline.outcomes import recorded as record_outcome
from pipeline.retry import build_retrying, retries_made
from pipeline.source_closure import import_closure, package_root

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@dataclass
class TaskContext:
    """What a task body sees: config, date, artifact names, a logger and places to put figures."""

    task: str
    cfg: DictConfig
    date: dt.date
    artifacts: Artifacts
    log: logging.Logger
    metrics: dict[str, float] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)  # files logged as MLflow artifacts
    tags: dict[str, str] = field(default_factory=dict)  # run tags logged when the run ends

    @property
    def task_cfg(self) -> DictConfig:
        return self.cfg[self.task]

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    run: Callable[[TaskContext], None]
    inputs: Callable[[TaskContext], list[Path]]  # files whose bytes key the checkpoint
    outputs: Callable[[TaskContext], list[Path]]  # files the task must leave behind
    config_keys: tuple[str, ...] = ("market", "data_format")  # besides the task's own group
    # non-file inputs that key the checkpoint, e.g. {"staging": "<version>:<run id>"}
    upstream: Callable[[TaskContext], dict[str, str]] = lambda ctx: {}
    log_name: str | None = None  # log file stem when it differs from the task name


@dataclass(frozen=True)
class TaskOutcome:
    task: str
    date: dt.date
    status: str  # succeeded | skipped
    run_id: str | None  # this execution's MLflow run (None: a skip inside main has none)
    outputs: list[Path]
    metrics: dict[str, float]
    reused_run_id: str | None = None  # skipped: the run whose outputs were reused


def parse_date(value: Any, what: str = "date") -> dt.date:
    """A YYYY-MM-DD string (or date) → date, or a ConfigError naming the bad value."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{what}={value!r} is not a date; expected YYYY-MM-DD") from None


def resolve_date(value: Any, what: str = "date") -> dt.date:
    """The task's business date: given, or the latest completed trading day; must be a trading day."""
    if value is None:
        return latest_trading_day()
    date = parse_date(value, what)
    if not is_trading_day(date):
        raise ConfigError(
            f"{what}={date} is not a trading day ({date:%A}); "
            f"the previous trading day is {previous_trading_day(date)}"
        )
    return date


@cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}, 'c': [x, y]} → {'a.b': 1, 'c.0': x, 'c.1': y} (MLflow params)."""
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else None
    if items is None:
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in items:
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict | list) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def resolved(cfg: DictConfig) -> DictConfig:
    """A copy of `cfg` with every interpolation replaced by its value (types and struct mode
    kept). Reading an interpolated key parses it again each time (OmegaConf's grammar): main
    resolves once instead of on every path and param read of every task-day."""
    copy = cfg.copy()
    OmegaConf.resolve(copy)
    return copy


def task_params(spec: TaskSpec, cfg: DictConfig) -> dict[str, Any]:
    """The task's resolved config: its own group, its retry policy and the shared keys it reads."""
    params = {
        spec.name: to_container(cfg[spec.name]),
        f"retry.{spec.name}": to_container(cfg.retry[spec.name]),
    }
    for key in spec.config_keys:
        node = cfg[key]
        params[key] = to_container(node) if isinstance(node, DictConfig) else node
    return params


def checkpoint_key(
    spec: TaskSpec,
    params: dict[str, Any],
    date: dt.date,
    inputs: dict[str, str],
    upstream: dict[str, str] | None = None,
) -> str:
    """Task, config, date, input digests, upstream references and the source of the code the
    task runs (`code_digest`), as one sha256. Everything is stringified first so like is compared
    with like. The config leaves out `force` and the `date` keys: the day is keyed as itself,
    however it was chosen (a day fetched on its own with `date=D` is the same task-day as day D of
    a range ending later)."""
    keyed = json.loads(json.dumps(params, default=str))
    keyed[spec.name].pop("force", None)
    keyed[spec.name].pop("date", None)
    keyed.pop("date", None)
    blob = json.dumps(
        {
            "task": spec.name,
            "date": str(date),
            "config": keyed,
            "inputs": inputs,
            "upstream": {k: str(v) for k, v in (upstream or {}).items()},
            "code": code_digest(inspect.getfile(spec.run)),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@cache
def code_digest(module_file: str) -> str:
    """sha256 of the source of the module in `module_file` and of every module of its own
    repository that it imports, directly or not (imports inside functions count too): the code
    a task runs. Third-party imports are left out (uv.lock pins them), as is everything else in
    the repository (docs, other tasks). Computed once per process: the code this process runs."""
    root, name = package_root(Path(module_file).resolve())
    sources = import_closure(root, name)
    h = hashlib.sha256()
    for path in sorted(sources, key=lambda p: p.relative_to(root).as_posix()):
        source_sha = hashlib.sha256(sources[path]).hexdigest()
        h.update(f"{path.relative_to(root).as_posix()}\0{source_sha}\n".encode())
    return h.hexdigest()


def relative(path: Path, root: Path) -> str:
    """A path as recorded in checkpoints: relative to paths.root when under it, so a moved or
    copied root keeps its checkpoints valid."""
    path, root = Path(path), Path(root)
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


_DIGESTS: ContextVar[dict | None] = ContextVar("pipeline_digests", default=None)


@contextmanager
def digest_memo() -> Iterator[None]:
    """Inside the block, each version of a file is hashed once (see `digest`). `main` runs in
    one: a reused day's outputs are verified by their task and read again as the next task's
    inputs (and the window's features as model_train's)."""
    token = _DIGESTS.set({})
    try:
        yield
    finally:
        _DIGESTS.reset(token)


def digest(path: Path) -> str:
    """file_digest, remembered inside `digest_memo` per (path, inode, size, mtime in ns): the
    runtime writes every artifact by atomic rename, i.e. as a new inode, so a rewrite is seen."""
    memo = _DIGESTS.get()
    if memo is None:
        return file_digest(path)
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in memo:
        memo[key] = file_digest(path)
    return memo[key]


def _reusable(manifest_path: Path, key: str, root: Path) -> dict | None:
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("key") != key:
        return None
    for path, recorded in manifest.get("outputs", {}).items():
        if not (root / path).exists() or digest(root / path) != recorded:
            return None
    return manifest


# MLflow 3's UI opens an experiment of this kind on its runs (model development), not on the
# GenAI overview (traces, token usage: all empty here)
EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"


@contextmanager
def tracking_to(cfg: DictConfig) -> Iterator[None]:
    """`configure_tracking(cfg)` for the block, the tracking URI set before it put back after
    (benchmarks and test fixtures that run main in a scratch store of their own)."""
    previous = mlflow.get_tracking_uri()
    configure_tracking(cfg)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def configure_tracking(cfg: DictConfig) -> None:
    """Point MLflow at the configured store, unless `mlflow run` already chose one for us. The
    experiment is tagged as model development (a kind a person chose in the UI is kept)."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return  # launched by `mlflow run`: log into the run it created, in its store
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is None:
        Path(cfg.mlflow.artifact_location).mkdir(parents=True, exist_ok=True)
        client.create_experiment(
            cfg.mlflow.experiment,
            artifact_location=Path(cfg.mlflow.artifact_location).as_uri(),
            tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT},
        )
    elif EXPERIMENT_KIND_TAG not in experiment.tags:  # a store made before the tag
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)
    mlflow.set_experiment(cfg.mlflow.experiment)


_PARENT_RUN: ContextVar[str | None] = ContextVar("pipeline_parent_run", default=None)


@contextmanager
def nested_under(run_id: str) -> Iterator[None]:
    """Inside the block, task runs nest under `run_id` with no active run in this process: a
    worker of main's (main's run is active in main's process only)."""
    token = _PARENT_RUN.set(run_id)
    try:
        yield
    finally:
        _PARENT_RUN.reset(token)


def start_run(run_name: str, tags: dict[str, str]) -> mlflow.ActiveRun:
    """A nested run under the active one (main) or the `nested_under` one, else the `mlflow run`
    run, else a new run. Tagged with the process that runs it (`process_tags`): a run whose
    process was killed is found and closed by `fail_abandoned_runs`."""
    tags = {**tags, **process_tags()}
    if mlflow.active_run() is not None:
        return mlflow.start_run(run_name=run_name, nested=True, tags=tags)
    if parent := _PARENT_RUN.get():
        return mlflow.start_run(run_name=run_name, parent_run_id=parent, tags=tags)
    if os.environ.get("MLFLOW_RUN_ID"):
        run = mlflow.start_run()
        mlflow.set_tags({**tags, "mlflow.runName": run_name})
        return run
    return mlflow.start_run(run_name=run_name, tags=tags)


# -- runs left RUNNING by a killed process ---------------------------------------------------------
# A SIGKILL (OOM killer, a `kill -9`, a lost machine) ends a process without ending its MLflow
# runs. Each run records the process running it; a later `main` closes the runs whose process is
# gone. Identity of a process: host, pid and, where /proc exists, the boot and the start time of
# the pid (a pid is reused once its process is gone; the pair is not).
HOST_TAG, PID_TAG, PROCESS_START_TAG = "pipeline.host", "pipeline.pid", "pipeline.process_start"


def process_tags() -> dict[str, str]:
    """This process's identity as run tags (computed once per pid: a forked worker has its own)."""
    return dict(_process_tags(os.getpid()))


@cache
def _process_tags(pid: int) -> tuple[tuple[str, str], ...]:
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    if (stat := _proc_stat(pid)) is not None:
        tags[PROCESS_START_TAG] = stat[1]
    return tuple(tags.items())


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start) of a live pid from /proc: state R, S, Z (exited, not yet reaped)...; start
    "<boot id>:<start time in clock ticks after boot>". None without /proc or such a pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces
    return fields[0], f"{boot_id}:{fields[19]}"  # stat fields 3 (state) and 22 (starttime)


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` of this host, started at `start` (a PROCESS_START_TAG value) when
    given, is still running. When it cannot tell (no /proc), it says yes."""
    if pid <= 0:  # 0 and negatives address process groups in os.kill
        raise ValueError(f"not a process id: {pid}")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a live process of another user
    stat = _proc_stat(pid)
    if stat is None:  # no /proc, or it ended a moment ago: cannot tell, so alive
        return True
    state, started = stat
    if state in ("Z", "X"):  # exited: its parent has not collected it yet
        return False
    return start is None or started == start


def fail_abandoned_runs(experiment_id: str) -> list[Run]:
    """Mark FAILED, with a note, the runs of `experiment_id` left RUNNING by a process of this
    host that is gone; return them. Runs of other hosts, of live processes, and runs that do not
    name their process are left alone."""
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    abandoned = []
    for run in list(_running_runs(client, experiment_id)):  # all pages before changing any
        tags = run.data.tags
        if tags.get(HOST_TAG) != host:
            continue
        try:
            pid = int(tags[PID_TAG])
        except (KeyError, ValueError):
            continue
        if pid <= 0 or process_alive(pid, tags.get(PROCESS_START_TAG)):
            continue
        found = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        note = (
            f"Abandoned: process {pid} on {host} ended without ending this run (killed?). "
            f"Found at {found} by process {os.getpid()}, and marked FAILED."
        )
        failed = {"pipeline.status": "failed", "pipeline.error": note, "mlflow.note.content": note}
        client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in failed.items()])
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        abandoned.append(run)
    return abandoned


def _running_runs(client: mlflow.MlflowClient, experiment_id: str) -> Iterator[Run]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], "attributes.status = 'RUNNING'", max_results=1000, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def log_params(params: dict[str, Any]) -> None:
    flat = {k: ("null" if v is None else v) for k, v in flatten(params).items()}
    items = sorted(flat.items())
    for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        mlflow.log_params(dict(items[i : i + 100]))


@dataclass
class _TaskLog:
    """A file handler on the `pipeline` logger for the duration of one task."""

    path: Path
    handler: logging.Handler | None = None
    level: int = logging.NOTSET

    def __enter__(self) -> _TaskLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.path)
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger = logging.getLogger("pipeline")
        logger.addHandler(self.handler)
        # the task log always records INFO, whatever the console shows
        self.level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.handler is not None
        logger = logging.getLogger("pipeline")
        logger.removeHandler(self.handler)
        logger.setLevel(self.level)
        self.handler.close()


def execute(
    spec: TaskSpec, cfg: DictConfig, date: dt.date | None = None, *, record_skip: bool = True
) -> TaskOutcome:
    """Run one task for one date inside the shared runtime. Raises PipelineError on failure.

    A task whose checkpoint is reusable is skipped. Called on its own (`record_skip`), the skip
    gets an MLflow run tagged pipeline.status=skipped; `main` passes record_skip=False and
    records what it reused in its own run instead (one run per reused task-day is clutter).
    Every execution ends with its observers told (`add_observer`; pipeline.task_hooks: the
    Prometheus textfile, and an alert for a failure)."""
    started = time.perf_counter()
    try:
        date = date or resolve_date(cfg[spec.name].date, f"{spec.name}.date")
        outcome = _execute(spec, cfg, date, record_skip=record_skip)
    except Exception as exc:
        _observe(spec, cfg, date, "failed", time.perf_counter() - started, exc)
        raise
    _observe(spec, cfg, date, outcome.status, time.perf_counter() - started)
    return outcome


@dataclass(frozen=True)
class TaskEnded:
    """One execution as it ends, as observers hear of it (`add_observer`)."""

    task: str
    cfg: DictConfig
    date: Any  # the business date; the configured value when it did not resolve
    status: str  # succeeded | skipped | failed
    seconds: float
    error: BaseException | None = None  # failed: what it raised
    log_name: str | None = None  # the task log's stem when it differs from the task name


TaskObserver = Callable[[TaskEnded], None]
_OBSERVERS: list[TaskObserver] = []


def add_observer(observer: TaskObserver) -> None:
    """Call `observer` at the end of every `execute`, in the order added (once, however often it
    is added). An observer that raises fails the execution: observers handle their own errors."""
    if observer not in _OBSERVERS:
        _OBSERVERS.append(observer)


def observers() -> tuple[TaskObserver, ...]:
    return tuple(_OBSERVERS)


def _observe(
    spec: TaskSpec,
    cfg: DictConfig,
    date: Any,
    status: str,
    seconds: float,
    exc: BaseException | None = None,
) -> None:
    ended = TaskEnded(spec.name, cfg, date, status, seconds, exc, spec.log_name)
    for observer in observers():
        observer(ended)


def _checkpoint(
    spec: TaskSpec, ctx: TaskContext, params: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str], str, Path, dict | None]:
    """Input digests, upstream references, checkpoint key, manifest path, and the manifest
    when the task's recorded outputs can be reused (None: the task must run)."""
    root = ctx.artifacts.root
    inputs = {relative(p, root): digest(p) for p in spec.inputs(ctx)}
    upstream = spec.upstream(ctx)
    key = checkpoint_key(spec, params, ctx.date, inputs, upstream)
    manifest_path = ctx.artifacts.checkpoint(spec.name, ctx.date)
    reused = None if ctx.cfg[spec.name].force else _reusable(manifest_path, key, root)
    return inputs, upstream, key, manifest_path, reused


def task_context(spec: TaskSpec, cfg: DictConfig, date: dt.date) -> TaskContext:
    """The context `execute` gives the task's body for `date`."""
    artifacts = Artifacts(cfg.paths, cfg.data_format)
    return TaskContext(spec.name, cfg, date, artifacts, logging.getLogger(f"pipeline.{spec.name}"))


def reusable(spec: TaskSpec, cfg: DictConfig, date: dt.date) -> bool:
    """Whether `execute(spec, cfg, date)` would reuse the recorded outputs (the checkpoint
    holds) as the files stand now. Nothing is run, logged or recorded."""
    return _checkpoint(spec, task_context(spec, cfg, date), task_params(spec, cfg))[-1] is not None


def _execute(spec: TaskSpec, cfg: DictConfig, date: dt.date, *, record_skip: bool) -> TaskOutcome:
    ctx = task_context(spec, cfg, date)
    artifacts = ctx.artifacts
    params = task_params(spec, cfg)
    with _TaskLog(artifacts.task_log(spec.log_name or spec.name, date)) as tlog:
        ctx.log.info("start %s for %s", spec.name, date)
        try:
            inputs, upstream, key, manifest_path, reused = _checkpoint(spec, ctx, params)
        except BaseException:
            with _task_run(spec, ctx, params, tlog.path):
                raise  # recorded as a failed run, like a failure of the body
        if reused is None:
            with _task_run(spec, ctx, params, tlog.path, upstream) as run:
                return _run_body(spec, ctx, run.info.run_id, inputs, key, manifest_path)
        ctx.log.info(
            "skipped: inputs and config unchanged since run %s (force=true re-runs)",
            reused["run_id"],
        )
        outcome = TaskOutcome(
            spec.name,
            date,
            "skipped",
            None,
            [artifacts.root / p for p in reused["outputs"]],
            reused.get("metrics", {}),
            reused_run_id=reused["run_id"],
        )
        if not record_skip:
            return outcome
        ctx.tags |= {"pipeline.status": "skipped", "pipeline.reused_run_id": reused["run_id"]}
        with _task_run(spec, ctx, params, tlog.path, upstream) as run:
            pass
        return replace(outcome, run_id=run.info.run_id)


@contextmanager
def _task_run(
    spec: TaskSpec,
    ctx: TaskContext,
    params: dict[str, Any],
    log_path: Path,
    upstream: dict[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """The task's MLflow run: upstream references as tags from the start; its config as params,
    the body's figures as metrics and its status as a tag in one batch at the end (each store
    call costs ~10 ms on sqlite, times ~180 task runs in `main`); an exception inside tags it
    failed (with the error) and propagates; the task log and reports are logged last."""
    tags = {
        "pipeline.task": spec.name,
        "pipeline.date": str(ctx.date),
        "git_commit": git_commit() or "unknown",
        **{f"pipeline.upstream.{k}": str(v) for k, v in (upstream or {}).items()},
    }
    # outcomes.recorded: logs/task_outcomes.jsonl gets a line as the run starts and as it ends
    with start_run(f"{spec.name} {ctx.date}", tags) as run, record_outcome(ctx, run.info.run_id):
        try:
            yield run
        except BaseException as exc:
            ctx.log.error("%s failed for %s: %s", spec.name, ctx.date, exc)
            ctx.tags |= {"pipeline.status": "failed", "pipeline.error": str(exc)[:5000]}
            raise
        finally:
            log_batch(run.info.run_id, params, ctx.metrics, ctx.tags)
            repo = get_artifact_repository(run.info.artifact_uri)
            for path in [*ctx.reports, log_path]:
                if Path(path).exists():
                    repo.log_artifact(str(path))


def log_batch(
    run_id: str, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
) -> None:
    """Params (flattened), metrics and tags in as few store calls as MLflow's batch limits
    allow (100 params, 100 tags, 1000 entries per call)."""
    now = int(time.time() * 1000)
    flat = sorted(flatten(params).items())
    params_ = [Param(k, "null" if v is None else str(v)) for k, v in flat]
    metrics_ = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
    tags_ = [RunTag(k, str(v)) for k, v in sorted(tags.items())]
    client = mlflow.MlflowClient()
    while params_ or metrics_ or tags_:
        p, params_ = params_[:100], params_[100:]
        t, tags_ = tags_[:100], tags_[100:]
        room = 1000 - len(p) - len(t)
        m, metrics_ = metrics_[:room], metrics_[room:]
        client.log_batch(run_id, m, p, t)


def _run_body(
    spec: TaskSpec,
    ctx: TaskContext,
    run_id: str,
    inputs: dict[str, str],
    key: str,
    manifest_path: Path,
) -> TaskOutcome:
    retrying = build_retrying(ctx.cfg.retry[spec.name], retry_on=TransientError)
    started = time.perf_counter()
    try:
        retrying(spec.run, ctx)
    finally:  # logged with the run's params when it ends (_task_run)
        ctx.metric("duration_s", time.perf_counter() - started)
        ctx.metric("task_retries", retries_made(retrying))
    outputs = spec.outputs(ctx)
    missing = [str(p) for p in outputs if not p.exists()]
    if missing:
        raise PipelineError(f"{spec.name} finished without writing {missing}")
    write_json(
        {
            "task": spec.name,
            "date": str(ctx.date),
            "key": key,
            "run_id": run_id,
            "inputs": inputs,
            "outputs": {relative(p, ctx.artifacts.root): digest(p) for p in outputs},
            "metrics": ctx.metrics,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        manifest_path,
    )
    ctx.tags["pipeline.status"] = "succeeded"
    headline = {
        k: v for k, v in ctx.metrics.items() if "." not in k
    }  # per-rule/column figures are in MLflow
    ctx.log.info(
        "end %s for %s: %s",
        spec.name,
        ctx.date,
        ", ".join(f"{k}={v:g}" for k, v in sorted(headline.items())),
    )
    return TaskOutcome(spec.name, ctx.date, "succeeded", run_id, outputs, dict(ctx.metrics))
