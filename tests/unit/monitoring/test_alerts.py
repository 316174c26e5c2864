"""The alert sink without a network: log + alerts.jsonl always, webhook retries with fake POSTs."""

from __future__ import annotations

import datetime as dt
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from monitoring import alerts, prom_textfile
from monitoring.alerts import Alert, WebhookError, WebhookRejected
from pipeline.data_validate import validate_quotes
from pipeline.errors import DataError, PipelineError
from tests.factories import DAY, MARKET, VALIDATE, good_quotes


@pytest.fixture(autouse=True)
def no_env_webhook(monkeypatch):
    monkeypatch.delenv(alerts.ENV_WEBHOOK, raising=False)


@pytest.fixture
def cfg(tmp_path):
    """A full-config-shaped node: alerts (no webhook) and paths."""
    return OmegaConf.create(
        {
            "paths": {"logs": str(tmp_path / "logs")},
            "alerts": {
                "webhook_url": None,
                "timeout_s": 0.5,
                "retries": 3,
                "base_delay_s": 0.01,
                "max_delay_s": 0.02,
                "exit_wait_s": 2.0,
                "log_path": str(tmp_path / "logs" / "alerts.jsonl"),
                "prom_textfile": str(tmp_path / "reports" / "metrics" / "pipeline.prom"),
            },
        }
    )


def _lines(cfg) -> list[dict]:
    return alerts.read_alerts(cfg.alerts.log_path)


def test_every_kind_has_a_severity_and_unknown_kinds_are_refused():
    assert set(alerts.KINDS) == {
        "schema_change",
        "null_rate_spike",
        "bad_rows_halt",
        "failed_gate",
        "deploy_rollback",
        "retrain_triggered",
        "task_failed",
    }
    assert set(alerts.KINDS.values()) == {"error", "warning"}
    assert Alert.of("failed_gate", "model_evaluate", DAY, "x").severity == "warning"
    with pytest.raises(ValueError, match="unknown alert kind"):
        Alert.of("oops", "t", None, "x")


def test_slack_payload_has_text_and_blocks_naming_kind_task_date_and_runbook():
    alert = Alert.of(
        "schema_change", "data_validate", dt.date(2026, 3, 2), "missing ['strike']", error="E"
    )
    payload = alert.slack_payload()
    assert set(payload) == {"text", "blocks"}
    assert "schema_change" in payload["text"] and "data_validate" in payload["text"]
    assert "2026-03-02" in payload["text"] and "missing ['strike']" in payload["text"]
    rendered = json.dumps(payload["blocks"])
    assert "docs/RUNBOOK.md#schema_change" in rendered and "*error*: E" in rendered
    json.dumps(payload)  # serialisable as is


def test_send_without_webhook_logs_and_appends_a_json_line(cfg, caplog):
    caplog.set_level(logging.WARNING, logger="pipeline.alerts")
    alert = Alert.of("task_failed", "data_fetch", DAY, "boom", error="DataError")
    assert alerts.send(alert, cfg) is None  # no delivery thread without a webhook
    alerts.send(Alert.of("retrain_triggered", "monitor", DAY, "drift"), cfg)
    records = [r for r in caplog.records if r.name == "pipeline.alerts"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.WARNING]
    assert "task_failed" in records[0].getMessage() and "boom" in records[0].getMessage()
    lines = _lines(cfg)
    assert [(a["kind"], a["task"], a["date"]) for a in lines] == [
        ("task_failed", "data_fetch", str(DAY)),
        ("retrain_triggered", "monitor", str(DAY)),
    ]
    assert lines[0]["details"] == {"error": "DataError"} and lines[0]["webhook"] is False
    counted = prom_textfile.read(cfg.alerts.prom_textfile)["options_pipeline_alerts_total"]
    assert counted == {
        (("kind", "task_failed"), ("severity", "error")): 1.0,
        (("kind", "retrain_triggered"), ("severity", "warning")): 1.0,
    }


def test_a_broken_sink_never_raises(cfg, tmp_path, caplog):
    (tmp_path / "dir.jsonl").mkdir()  # a directory where the log file should be
    broken = OmegaConf.merge(cfg, {"alerts": {"log_path": str(tmp_path / "dir.jsonl")}})
    assert alerts.send(Alert.of("task_failed", "t", DAY, "x"), broken) is None
    assert "alert sink failed" in caplog.text


def test_webhook_url_comes_from_config_and_the_environment_overrides_it(cfg, monkeypatch):
    assert alerts.webhook_url(cfg) is None
    configured = OmegaConf.merge(cfg, {"alerts": {"webhook_url": "http://127.0.0.1:1/a"}})
    assert alerts.webhook_url(configured) == "http://127.0.0.1:1/a"
    monkeypatch.setenv(alerts.ENV_WEBHOOK, "http://127.0.0.1:2/b")
    assert alerts.webhook_url(cfg) == alerts.webhook_url(configured) == "http://127.0.0.1:2/b"
    monkeypatch.setenv(alerts.ENV_WEBHOOK, "")  # empty: off, whatever the config says
    assert alerts.webhook_url(configured) is None


@pytest.mark.parametrize(
    ("corrupt", "kind"),
    [
        (lambda df: df.rename(columns={"strike": "strike_price"}), "schema_change"),
        (lambda df: df.assign(bid=df["bid"].astype(str)), "schema_change"),
        (lambda df: df.assign(ask=np.where(df.index < 9, np.nan, df["ask"])), "null_rate_spike"),
        (lambda df: df.assign(bid=df["ask"] + 1.0), "bad_rows_halt"),
    ],
)
def test_data_validate_halts_map_to_their_kinds(corrupt, kind):
    with pytest.raises(DataError) as caught:
        validate_quotes(corrupt(good_quotes()), VALIDATE, MARKET, DAY)
    assert alerts.kind_of(caught.value) == kind


def test_other_failures_are_task_failed():
    with pytest.raises(DataError) as stale:
        validate_quotes(good_quotes(), VALIDATE, MARKET, DAY + dt.timedelta(days=10))
    assert alerts.kind_of(stale.value) == "task_failed"
    assert alerts.kind_of(PipelineError("x")) == alerts.kind_of(RuntimeError()) == "task_failed"


def test_task_failed_alerts_once_with_the_kind_and_the_log_path(cfg):
    alerts.task_failed("model_evaluate", DAY, DataError("no feature files"), cfg, "model_eval")
    (line,) = _lines(cfg)
    assert line["kind"] == "task_failed" and line["severity"] == "error"
    assert line["message"] == "model_evaluate failed: no feature files"
    assert line["details"]["error"] == "DataError" and line["details"]["exit_code"] == 1
    assert line["details"]["log"].endswith(f"logs/model_eval_{DAY:%Y%m%d}.log")


def _ctx(cfg, task, **task_cfg):
    return SimpleNamespace(task=task, date=DAY, cfg=cfg, task_cfg=OmegaConf.create(task_cfg))


def test_gate_alerts_only_when_it_failed(cfg):
    ctx = _ctx(cfg, "model_evaluate")
    passed = SimpleNamespace(passed=True, reasons=["fine"])
    failed = SimpleNamespace(passed=False, reasons=["worse than Production by 5%"])
    assert alerts.gate_verdict(ctx, 3, passed) is None and _lines(cfg) == []
    alerts.gate_verdict(ctx, 3, failed)
    (line,) = _lines(cfg)
    assert line["kind"] == "failed_gate" and line["severity"] == "warning"
    assert "v3" in line["message"] and "worse than Production by 5%" in line["message"]
    assert line["details"] == {"version": "3", "reasons": ["worse than Production by 5%"]}


def test_retrain_alerts_only_when_triggered(cfg):
    ctx = _ctx(cfg, "monitor", retrain=False)
    alerts.retrain_decision(ctx, SimpleNamespace(retrain=False, reasons=["all within"]))
    assert _lines(cfg) == []
    alerts.retrain_decision(ctx, SimpleNamespace(retrain=True, reasons=["IV RMSE +20%"]))
    (line,) = _lines(cfg)
    assert line["kind"] == "retrain_triggered" and "IV RMSE +20%" in line["message"]
    assert "monitor.retrain=false" in line["message"] and line["details"]["retrain_runs"] is False


def test_deploy_rollback_alerts_and_the_task_failure_does_not_alert_again(cfg):
    ctx = _ctx(cfg, "model_deploy")
    incident = {
        "failed_version": "4",
        "checks": ["golden IVs differ by 0.3"],
        "rollback": {"version": "3"},
        "after_rollback": {"version": "3", "passed": True, "checks": ["ok"]},
    }
    alerts.deploy_rollback(ctx, incident, "reports/deployment/incident_20260302.json")
    alerts.task_failed("model_deploy", DAY, PipelineError("v4 failed its deploy health check"), cfg)
    (line,) = _lines(cfg)
    assert line["kind"] == "deploy_rollback"
    assert "v4 failed its deploy health check" in line["message"]
    assert "rolled back to v3" in line["message"]
    assert line["details"]["rolled_back_to"] == "3" and line["details"]["incident"].endswith(
        "incident_20260302.json"
    )
    # the next failure of that task is alerted again
    alerts.task_failed("model_deploy", DAY, PipelineError("again"), cfg)
    assert [a["kind"] for a in _lines(cfg)] == ["deploy_rollback", "task_failed"]


def test_deploy_without_a_previous_version_says_so(cfg):
    incident = {"failed_version": "1", "checks": ["down"], "rollback": None, "after_rollback": None}
    alerts.deploy_rollback(_ctx(cfg, "model_deploy"), incident, "x.json")
    alerts.task_failed("model_deploy", DAY, PipelineError("v1 failed"), cfg)
    (line,) = _lines(cfg)
    assert "no previous Production version" in line["message"]


class FakePost:
    """Stands in for alerts.post: raises the queued exceptions, then returns 200."""

    def __init__(self, *failures: Exception):
        self.failures = list(failures)
        self.calls: list[tuple[str, dict, float]] = []

    def __call__(self, url, payload, timeout_s):
        self.calls.append((url, payload, timeout_s))
        if self.failures:
            raise self.failures.pop(0)
        return 200


def test_deliver_retries_transient_failures_with_backoff(cfg, monkeypatch):
    fake = FakePost(WebhookError("HTTP 500"), WebhookError("HTTP 503"))
    monkeypatch.setattr(alerts, "post", fake)
    waits: list[float] = []
    payload = Alert.of("task_failed", "t", DAY, "x").slack_payload()
    assert alerts.deliver("http://127.0.0.1:1/hook", payload, cfg, sleep=waits.append)
    assert len(fake.calls) == 3 and fake.calls[0][1] == payload and fake.calls[0][2] == 0.5
    assert len(waits) == 2 and all(0 < w <= cfg.alerts.max_delay_s for w in waits)


def test_deliver_gives_up_after_the_retries_without_raising(cfg, monkeypatch, caplog):
    fake = FakePost(*[WebhookError("refused")] * 10)
    monkeypatch.setattr(alerts, "post", fake)
    assert not alerts.deliver(
        "http://127.0.0.1:1/secret-path", {"text": "x"}, cfg, sleep=lambda s: None
    )
    assert len(fake.calls) == 1 + cfg.alerts.retries
    assert "not delivered after 4 attempt(s)" in caplog.text
    assert "secret-path" not in caplog.text  # a webhook URL's path is its secret


def test_deliver_does_not_retry_a_rejection(cfg, monkeypatch):
    fake = FakePost(WebhookRejected("HTTP 404"))
    monkeypatch.setattr(alerts, "post", fake)
    assert not alerts.deliver("http://127.0.0.1:1/x", {"text": "x"}, cfg, sleep=lambda s: None)
    assert len(fake.calls) == 1


def test_post_refuses_non_http_urls():
    with pytest.raises(WebhookRejected, match="http"):
        alerts.post("file:///etc/passwd", {"text": "x"}, 1.0)


def test_send_with_a_webhook_returns_at_once_and_delivers_in_the_background(cfg, monkeypatch):
    fake = FakePost()
    monkeypatch.setattr(alerts, "post", fake)
    hooked = OmegaConf.merge(cfg, {"alerts": {"webhook_url": "http://127.0.0.1:1/hook"}})
    thread = alerts.send(Alert.of("failed_gate", "model_evaluate", DAY, "worse"), hooked)
    assert thread is not None and thread.daemon
    assert alerts.flush(5.0) and alerts.pending() == 0
    assert fake.calls[0][1]["text"].startswith(":warning: [WARNING] failed_gate")
    assert _lines(cfg)[0]["webhook"] is True


def test_a_hook_never_raises_into_its_task(cfg, caplog):
    ctx = _ctx(cfg, "model_deploy")
    assert alerts.deploy_rollback(ctx, None, "x.json") is None  # not even on a malformed incident
    assert alerts.gate_verdict(ctx, 1, object()) is None
    assert "alert hook" in caplog.text
