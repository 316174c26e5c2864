"""Alerts over real HTTP to a receiver on 127.0.0.1 that each test starts and stops; a real task
failure ends on the receiver, in logs/alerts.jsonl and in the Prometheus textfile."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from prometheus_client.parser import text_string_to_metric_families

from monitoring import alerts
from monitoring.alerts import Alert
from pipeline import data_fetch, data_validate
from pipeline.artifacts import Artifacts, read_frame, write_frame
from pipeline.errors import DataError, SchemaChangeError
from pipeline.runtime import execute
from tests.conftest import TINY_MARKET
from tests.helpers import run_module

pytestmark = pytest.mark.integration
DAY = "2026-03-02"


class Receiver:
    """A Slack-like webhook on 127.0.0.1: answers each POST with the next queued status (then
    200), optionally after a delay, and keeps the JSON bodies it got."""

    def __init__(self, statuses: tuple[int, ...] = (), delay_s: float = 0.0):
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.attempts = 0
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    receiver.attempts += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status == 200:
                        receiver.received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_env_webhook(monkeypatch):
    monkeypatch.delenv(alerts.ENV_WEBHOOK, raising=False)


FAST = ["alerts.base_delay_s=0.05", "alerts.max_delay_s=0.1", "alerts.timeout_s=1.0"]


def _alert() -> Alert:
    return Alert.of("schema_change", "data_validate", DAY, "schema change: missing ['strike']")


def test_the_receiver_gets_slack_json(make_cfg):
    with Receiver() as rx:
        cfg = make_cfg(f"alerts.webhook_url={rx.url}", *FAST)
        thread = alerts.send(_alert(), cfg)
        thread.join(5)
    (payload,) = rx.received
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith(":rotating_light: [ERROR] schema_change: data_validate")
    assert payload["blocks"][0]["text"]["type"] == "mrkdwn"


def test_5xx_twice_then_200_is_retried_and_delivered(make_cfg, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.alerts")
    with Receiver(statuses=(500, 500)) as rx:
        cfg = make_cfg(f"alerts.webhook_url={rx.url}", *FAST)
        alerts.send(_alert(), cfg).join(10)
    assert rx.attempts == 3 and len(rx.received) == 1
    assert caplog.text.count("retrying in") == 2
    assert "delivered (HTTP 200, attempt 3)" in caplog.text


def test_the_environment_variable_points_the_webhook(make_cfg, monkeypatch):
    with Receiver() as rx:
        monkeypatch.setenv(alerts.ENV_WEBHOOK, rx.url)
        alerts.send(_alert(), make_cfg(*FAST)).join(5)
    assert len(rx.received) == 1


def test_a_receiver_that_is_down_blocks_nothing_and_raises_nothing(make_cfg, caplog):
    url = f"http://127.0.0.1:{_closed_port()}/hooks/alerts"
    cfg = make_cfg(f"alerts.webhook_url={url}", "alerts.retries=2", *FAST)
    started = time.perf_counter()
    thread = alerts.send(_alert(), cfg)
    assert time.perf_counter() - started < 0.5  # the caller never waits on the webhook
    thread.join(10)
    assert not thread.is_alive()
    assert "not delivered after 3 attempt(s)" in caplog.text
    assert alerts.read_alerts(cfg.alerts.log_path)[0]["kind"] == "schema_change"  # still logged


def test_a_slow_receiver_is_bounded_by_the_timeout_and_the_exit_wait(make_cfg):
    with Receiver(delay_s=3.0) as rx:
        cfg = make_cfg(
            f"alerts.webhook_url={rx.url}", "alerts.timeout_s=0.3", "alerts.retries=1", *FAST[:2]
        )
        started = time.perf_counter()
        thread = alerts.send(_alert(), cfg)
        sent = time.perf_counter() - started
        flushed = alerts.flush(timeout_s=0.5)  # what the process does at exit, bounded
        waited = time.perf_counter() - started
        thread.join(5)  # two attempts of 0.3 s timeout each, plus a short backoff
        total = time.perf_counter() - started
    assert sent < 0.5 and not flushed and waited < 1.5
    assert not thread.is_alive() and total < 3.0
    assert rx.received == []


def _prom(cfg) -> dict[tuple[str, tuple], float]:
    text = Path(cfg.alerts.prom_textfile).read_text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_failing_task_alerts_the_receiver_the_alerts_log_and_the_metrics(
    make_cfg, tracking, tmp_path
):
    with Receiver() as rx:
        cfg = make_cfg(f"date={DAY}", f"alerts.webhook_url={rx.url}", *FAST)
        # a day with no raw file: data_validate fails → task_failed
        with pytest.raises(DataError, match="no raw quotes"):
            execute(data_validate.SPEC, cfg)
        execute(data_fetch.SPEC, cfg)
        assert execute(data_fetch.SPEC, cfg).status == "skipped"  # reused: not a failure
        execute(data_validate.SPEC, cfg)
        # upstream renames a column: the schema-change halt → schema_change
        a = Artifacts(cfg.paths, cfg.data_format)
        day = dt.date.fromisoformat(DAY)
        raw = read_frame(a.raw_quotes(day)).rename(columns={"strike": "strike_price"})
        write_frame(raw, a.raw_quotes(day))
        with pytest.raises(SchemaChangeError):
            execute(data_validate.SPEC, cfg)
        assert alerts.flush(10)

    lines = alerts.read_alerts(tmp_path / "logs" / "alerts.jsonl")
    assert [(x["kind"], x["task"], x["date"], x["severity"]) for x in lines] == [
        ("task_failed", "data_validate", DAY, "error"),
        ("schema_change", "data_validate", DAY, "error"),
    ]
    assert lines[0]["details"]["log"] == str(tmp_path / "logs" / "data_validate_20260302.log")
    assert "strike_price" in lines[1]["message"] and lines[1]["details"]["exit_code"] == 1
    texts = sorted(p["text"] for p in rx.received)
    assert len(texts) == 2
    assert "schema_change: data_validate for 2026-03-02" in texts[0]
    assert "task_failed: data_validate for 2026-03-02" in texts[1]

    m = _prom(cfg)
    status = "options_pipeline_task_runs_total"
    assert m[(status, (("status", "failed"), ("task", "data_validate")))] == 2
    assert m[(status, (("status", "succeeded"), ("task", "data_validate")))] == 1
    assert m[(status, (("status", "succeeded"), ("task", "data_fetch")))] == 1
    assert m[(status, (("status", "skipped"), ("task", "data_fetch")))] == 1
    assert m[("options_pipeline_task_last_status", (("task", "data_validate"),))] == 0
    assert m[("options_pipeline_task_last_status", (("task", "data_fetch"),))] == 1
    assert m[("options_pipeline_task_last_duration_seconds", (("task", "data_fetch"),))] > 0
    alerts_total = "options_pipeline_alerts_total"
    assert m[(alerts_total, (("kind", "schema_change"), ("severity", "error")))] == 1


def test_a_failing_command_delivers_its_alert_before_the_process_exits(tmp_path):
    with Receiver(statuses=(503,)) as rx:
        result = run_module(
            "pipeline.data_validate",
            f"paths.root={tmp_path}",
            f"date={DAY}",
            *TINY_MARKET,
            *FAST,
            env={alerts.ENV_WEBHOOK: rx.url},
            timeout=180,
        )
    assert result.returncode == 1 and "no raw quotes" in result.stderr
    assert rx.attempts == 2 and len(rx.received) == 1  # retried, delivered at exit
    assert "task_failed: data_validate for 2026-03-02" in rx.received[0]["text"]
    (line,) = alerts.read_alerts(tmp_path / "logs" / "alerts.jsonl")
    assert line["kind"] == "task_failed" and line["webhook"] is True
    prom = (tmp_path / "reports" / "metrics" / "pipeline.prom").read_text()
    assert 'options_pipeline_task_runs_total{status="failed",task="data_validate"} 1.0' in prom


def test_without_a_webhook_nothing_is_posted(make_cfg):
    cfg = make_cfg()
    assert cfg.alerts.webhook_url is None
    assert alerts.send(_alert(), OmegaConf.create(OmegaConf.to_container(cfg))) is None
