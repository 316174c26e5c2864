"""Task outcomes and durations in Prometheus text format, for a node-exporter textfile collector.

After every task execution (succeeded, skipped = reused, or failed) the runtime calls
`record_task`, which rewrites ``alerts.prom_textfile`` (``reports/metrics/pipeline.prom``):

- ``options_pipeline_task_last_status{task}``: 1 the last run succeeded or was reused, 0 it failed
- ``options_pipeline_task_last_duration_seconds{task}``: wall time of the last run
- ``options_pipeline_task_last_run_timestamp_seconds{task}``: when it ended (Unix time)
- ``options_pipeline_task_last_success_timestamp_seconds{task}``: the last run that did not fail
- ``options_pipeline_task_runs_total{task,status}``: runs by status (succeeded | skipped | failed)
- ``options_pipeline_alerts_total{kind,severity}``: alerts raised (monitoring.alerts)

Each process reads the file back before writing (so counters accumulate across processes), under
an exclusive lock on ``<file>.lock``, and writes with prometheus_client's `write_to_textfile`
(temporary file + rename: a scrape never sees half a file). Writing metrics never fails a task.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "options_pipeline_"
# sample name → (type, help, label names)
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    f"{PREFIX}task_last_status": (
        "gauge",
        "1 if the task's last run succeeded or reused its checkpoint, 0 if it failed.",
        ("task",),
    ),
    f"{PREFIX}task_last_duration_seconds": (
        "gauge",
        "Wall time of the task's last run, in seconds.",
        ("task",),
    ),
    f"{PREFIX}task_last_run_timestamp_seconds": (
        "gauge",
        "Unix time at which the task's last run ended.",
        ("task",),
    ),
    f"{PREFIX}task_last_success_timestamp_seconds": (
        "gauge",
        "Unix time at which the task's last successful (or reused) run ended.",
        ("task",),
    ),
    f"{PREFIX}task_runs_total": (
        "counter",
        "Task runs by final status: succeeded, skipped (checkpoint reused) or failed.",
        ("task", "status"),
    ),
    f"{PREFIX}alerts_total": (
        "counter",
        "Alerts raised, by kind and severity (docs/RUNBOOK.md).",
        ("kind", "severity"),
    ),
}

Labels = tuple[tuple[str, str], ...]
State = dict[str, dict[Labels, float]]

_THREAD_LOCK = threading.Lock()  # flock is per open file; threads of one process queue here


def _key(**labels: str) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def parse(text: str) -> State:
    """Our samples from a text-format exposition (other samples are dropped)."""
    from prometheus_client.parser import text_string_to_metric_families

    state: State = {name: {} for name in METRICS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in METRICS:
                state[sample.name][_key(**sample.labels)] = float(sample.value)
    return state


def read(path: str | Path) -> State:
    """The file's current state; empty when it does not exist or does not parse (logged)."""
    path = Path(path)
    if not path.exists():
        return {name: {} for name in METRICS}
    try:
        return parse(path.read_text())
    except (ValueError, OSError) as exc:
        log.warning("metrics file %s unreadable (%s): starting it afresh", path, exc)
        return {name: {} for name in METRICS}


class _StateCollector:
    def __init__(self, state: State):
        self.state = state

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, (kind, doc, labels) in METRICS.items():
            if kind == "counter":
                family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)
            else:
                family = GaugeMetricFamily(name, doc, labels=labels)
            for key, value in sorted(self.state.get(name, {}).items()):
                values = dict(key)
                family.add_metric([values.get(label, "") for label in labels], value)
            yield family


def render(state: State) -> str:
    from prometheus_client.exposition import generate_latest

    return generate_latest(_StateCollector(state)).decode()  # type: ignore[arg-type]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCK, open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(path: str | Path, change: Callable[[State], None]) -> State:
    """Read the file, apply `change` to its state, write it back atomically; the new state."""
    from prometheus_client.exposition import write_to_textfile

    path = Path(path)
    with _locked(path):
        state = _last_written(path) or read(path)
        change(state)
        write_to_textfile(str(path), _StateCollector(state))  # type: ignore[arg-type]
        _WRITTEN[str(path)] = (_stamp(path), _copy(state))
    return state


# path → (file stamp, state) of this process's last write: while the file still carries that
# stamp nobody else has written it, and parsing it again (~5 ms, once per task in `main`) is moot
_WRITTEN: dict[str, tuple[tuple[int, int, int], State]] = {}


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()  # write_to_textfile renames a new file into place: a new inode each write
    return st.st_ino, st.st_size, st.st_mtime_ns


def _last_written(path: Path) -> State | None:
    stamp, state = _WRITTEN.get(str(path), (None, None))
    if state is None or not path.exists() or _stamp(path) != stamp:
        return None
    return _copy(state)


def _copy(state: State) -> State:
    return {name: dict(samples) for name, samples in state.items()}  # keys, values immutable


def record_task(
    path: str | Path | None,
    task: str,
    status: str,
    duration_s: float,
    *,
    now: float | None = None,
) -> None:
    """One task execution (status: succeeded | skipped | failed). Never raises (logged)."""
    if not path:
        return
    ended = time.time() if now is None else now
    ok = status != "failed"

    def change(state: State) -> None:
        t = _key(task=task)
        state[f"{PREFIX}task_last_status"][t] = 1.0 if ok else 0.0
        state[f"{PREFIX}task_last_duration_seconds"][t] = round(float(duration_s), 3)
        state[f"{PREFIX}task_last_run_timestamp_seconds"][t] = round(ended, 3)
        if ok:
            state[f"{PREFIX}task_last_success_timestamp_seconds"][t] = round(ended, 3)
        runs = state[f"{PREFIX}task_runs_total"]
        k = _key(task=task, status=status)
        runs[k] = runs.get(k, 0.0) + 1.0

    try:
        update(path, change)
    except Exception:  # noqa: BLE001 - metrics must never fail a task
        log.warning("could not update the metrics file %s", path, exc_info=True)


def record_alert(path: str | Path | None, kind: str, severity: str) -> None:
    """One alert raised. Never raises (logged)."""
    if not path:
        return

    def change(state: State) -> None:
        alerts = state[f"{PREFIX}alerts_total"]
        k = _key(kind=kind, severity=severity)
        alerts[k] = alerts.get(k, 0.0) + 1.0

    try:
        update(path, change)
    except Exception:  # noqa: BLE001
        log.warning("could not update the metrics file %s", path, exc_info=True)


def task_metrics(path: str | Path, task: str) -> dict[str, float]:
    """The file's figures for one task: {sample name (+ status for runs_total): value}."""
    out: dict[str, float] = {}
    for name, samples in read(path).items():
        for key, value in samples.items():
            labels = dict(key)
            if labels.get("task") != task:
                continue
            suffix = f"{{status={labels['status']}}}" if "status" in labels else ""
            out[name.removeprefix(PREFIX) + suffix] = value
    return out
