"""The monitoring hooks of every task execution, registered with the runtime when imported.

pipeline.runtime imports no monitoring code: it tells its observers how each execution ended
(`TaskEnded`). This module registers the one observer that connects it to monitoring:

- every execution (succeeded, skipped = reused, failed) goes to the Prometheus textfile
  (monitoring.prom_textfile, cfg.alerts.prom_textfile);
- a failed one raises its alert (monitoring.alerts: the log, logs/alerts.jsonl, the webhook when
  configured), with the task's log name for the runbook's pointer.

Every task module imports it (`from pipeline import task_hooks`), so whoever runs a task (its
command line, main, the daily flow, a test calling `execute`) gets the hooks; tests/unit/
test_layers.py checks that each module defining a TaskSpec does.
"""

from __future__ import annotations

from monitoring import alerts, prom_textfile
from pipeline.runtime import TaskEnded, add_observer


def observe(ended: TaskEnded) -> None:
    """The textfile's task metrics, and a failed task's alert."""
    textfile = ended.cfg.get("alerts", {}).get("prom_textfile")
    prom_textfile.record_task(textfile, ended.task, ended.status, ended.seconds)
    if ended.error is not None:
        alerts.task_failed(ended.task, ended.date, ended.error, ended.cfg, ended.log_name)


add_observer(observe)
