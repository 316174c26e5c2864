"""The Prometheus textfile: parses, accumulates across writers, written atomically, never fails."""

from __future__ import annotations

import subprocess
import sys
import threading

from prometheus_client.parser import text_string_to_metric_families

from monitoring import prom_textfile
from pipeline.config import REPO_ROOT


def _families(path) -> dict:
    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def _value(path, name, **labels) -> float:
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise KeyError((name, labels))


def test_a_task_run_writes_every_metric_with_its_type(tmp_path):
    path = tmp_path / "metrics" / "pipeline.prom"
    prom_textfile.record_task(path, "data_fetch", "succeeded", 1.25, now=1_700_000_000.0)
    families = _families(path)
    assert {name: f.type for name, f in families.items()} == {
        "options_pipeline_task_last_status": "gauge",
        "options_pipeline_task_last_duration_seconds": "gauge",
        "options_pipeline_task_last_run_timestamp_seconds": "gauge",
        "options_pipeline_task_last_success_timestamp_seconds": "gauge",
        "options_pipeline_task_runs": "counter",
        "options_pipeline_alerts": "counter",
    }
    assert _value(path, "options_pipeline_task_last_status", task="data_fetch") == 1
    assert _value(path, "options_pipeline_task_last_duration_seconds", task="data_fetch") == 1.25
    stamp = _value(path, "options_pipeline_task_last_run_timestamp_seconds", task="data_fetch")
    assert stamp == 1_700_000_000.0
    runs = _value(path, "options_pipeline_task_runs_total", task="data_fetch", status="succeeded")
    assert runs == 1
    assert "_created" not in path.read_text()  # counters without creation-time samples


def test_runs_accumulate_and_last_values_follow_the_latest_run(tmp_path):
    path = tmp_path / "pipeline.prom"
    prom_textfile.record_task(path, "data_validate", "succeeded", 2.0, now=100.0)
    prom_textfile.record_task(path, "data_validate", "skipped", 0.1, now=200.0)
    prom_textfile.record_task(path, "data_validate", "failed", 0.5, now=300.0)
    prom_textfile.record_task(path, "data_fetch", "succeeded", 3.0, now=50.0)
    m = prom_textfile.task_metrics(path, "data_validate")
    assert m == {
        "task_last_status": 0.0,
        "task_last_duration_seconds": 0.5,
        "task_last_run_timestamp_seconds": 300.0,
        "task_last_success_timestamp_seconds": 200.0,  # the skip reused a good checkpoint
        "task_runs_total{status=succeeded}": 1.0,
        "task_runs_total{status=skipped}": 1.0,
        "task_runs_total{status=failed}": 1.0,
    }
    assert prom_textfile.task_metrics(path, "data_fetch")["task_last_status"] == 1.0
    prom_textfile.record_task(path, "data_validate", "succeeded", 1.0, now=400.0)
    assert prom_textfile.task_metrics(path, "data_validate")["task_last_status"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.prom", "pipeline.prom.lock"]


def test_another_process_adds_to_the_same_counters(tmp_path):
    path = tmp_path / "pipeline.prom"
    prom_textfile.record_task(path, "model_train", "succeeded", 10.0)
    code = (
        "from monitoring import prom_textfile as p; "
        f"p.record_task({str(path)!r}, 'model_train', 'succeeded', 9.0); "
        f"p.record_alert({str(path)!r}, 'failed_gate', 'warning')"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=REPO_ROOT,
    )
    assert (
        _value(path, "options_pipeline_task_runs_total", task="model_train", status="succeeded")
        == 2
    )
    assert _value(path, "options_pipeline_task_last_duration_seconds", task="model_train") == 9.0
    assert (
        _value(path, "options_pipeline_alerts_total", kind="failed_gate", severity="warning") == 1
    )


def test_concurrent_writers_lose_no_increment(tmp_path):
    path = tmp_path / "pipeline.prom"
    threads = [
        threading.Thread(
            target=prom_textfile.record_task, args=(path, f"t{i % 3}", "succeeded", 0.1)
        )
        for i in range(24)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = prom_textfile.read(path)["options_pipeline_task_runs_total"]
    assert sum(totals.values()) == 24 and len(totals) == 3


def test_a_corrupt_file_is_started_afresh_and_foreign_samples_are_dropped(tmp_path, caplog):
    path = tmp_path / "pipeline.prom"
    path.write_text("this is { not prometheus\n")
    prom_textfile.record_task(path, "data_fetch", "succeeded", 1.0)
    assert "unreadable" in caplog.text
    assert prom_textfile.task_metrics(path, "data_fetch")["task_runs_total{status=succeeded}"] == 1
    path.write_text(path.read_text() + "# TYPE other_metric gauge\nother_metric 3\n")
    prom_textfile.record_task(path, "data_fetch", "succeeded", 1.0)
    assert "other_metric" not in path.read_text()


def test_an_unwritable_path_never_raises(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    prom_textfile.record_task(blocker / "sub" / "pipeline.prom", "data_fetch", "failed", 1.0)
    prom_textfile.record_alert(blocker / "sub" / "pipeline.prom", "task_failed", "error")
    prom_textfile.record_task(None, "data_fetch", "failed", 1.0)  # no path configured: nothing
    assert "could not update the metrics file" in caplog.text
