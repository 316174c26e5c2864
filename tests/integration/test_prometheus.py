"""Prometheus, its alert rules and the Grafana dashboard (observability/), against the real
binaries that `make prometheus-install` extracts into .tools/prometheus (.ci/run installs them).

- the alert rules pass their `promtool test rules` unit tests, and those tests catch a broken rule;
- the dashboard's panels all use the provisioned data source;
- a taken port is one clear error and starts nothing;
- every panel's query returns a series from a real Prometheus scraping a real node-exporter (the
  textfile of real task runs, one of them a Cboe schema change), a real `bentoml serve` and a real
  `mlflow server --expose-prometheus` (on a sqlite store).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from observability import prometheus
from pipeline import data_fetch
from pipeline.errors import SchemaChangeError
from pipeline.runtime import execute
from stack import procs
from tests.conftest import compose_config
from tests.helpers import CBOE_PATH, answer, http_server
from tests.serving_helpers import (  # noqa: F401 (fixtures)
    registry_config,
    registry_copy,
    running_service,
    tiny_registry,
    tracking_at,
)

GRAFANA = prometheus.REPO_ROOT / "observability" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "options-mlops.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
CONTRACT = {"underlying": "SPY", "option_type": "C", "strike": 600.0, "expiry": "2026-06-19",
            "quote_date": "2026-03-31", "spot": 640.0}  # fmt: skip


def panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def exprs() -> dict[str, str]:
    """{panel title: its query} for every panel of the dashboard (one query each)."""
    out = {}
    for panel in panels():
        (target,) = panel["targets"]
        out[panel["title"]] = target["expr"]
    return out


@pytest.mark.integration
def test_the_alert_rules_pass_their_promtool_tests_and_those_tests_catch_a_broken_rule(tmp_path):
    assert "SUCCESS" in prometheus.check()

    # the first alert of a kind (a new counter series) must still fire: drop that branch and the
    # schema-change test fails
    copy = tmp_path / "prometheus"
    shutil.copytree(prometheus.HERE, copy)
    rules = copy / "rules" / "pipeline.yml"
    broken = rules.read_text().replace(
        "          or\n          sum by (kind) (options_pipeline_alerts_total unless "
        "options_pipeline_alerts_total offset 1h) > 0\n",
        "",
    )
    assert broken != rules.read_text()
    rules.write_text(broken)
    test_file = str(copy / "tests" / "pipeline_test.yml")
    with pytest.raises(prometheus.PrometheusError, match="CboeSchemaChange"):
        prometheus.promtool("test", "rules", test_file)


def test_every_panel_uses_the_provisioned_data_source():
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    found = panels()
    assert len(found) >= 10
    assert len({p["id"] for p in found}) == len(found)
    for panel in found:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
    assert source["url"] == "http://127.0.0.1:9090"  # make prometheus's default port


@pytest.mark.integration
def test_a_taken_port_is_one_clear_error_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(prometheus.PrometheusError, match=f"port {port} on 127.0.0.1 is taken"),
            prometheus.running(port=port, data_dir=tmp_path / "prom", textfile_dir=tmp_path),
        ):
            pass
    assert not (tmp_path / "prom").exists()  # refused before writing anything


def cboe_with_a_changed_schema():
    """A Cboe stand-in whose payload lost its `data` key (renamed `payload`)."""
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = {"timestamp": "2026-04-01 16:15:00", "symbol": "SPY", "payload": {}}
            answer(self, 200, "application/json", json.dumps(body).encode())

        def log_message(self, *args):
            pass

    return http_server(Handler)


def run_tasks(root) -> None:
    """Real task runs writing root's textfile: a synthetic data_fetch that succeeds, then one
    from a Cboe stand-in whose schema changed (a failed task and a schema_change alert)."""
    import datetime as dt

    day = dt.date(2026, 4, 1)
    cfg = registry_config(root)
    with tracking_at(cfg):
        execute(data_fetch.SPEC, cfg, day)
        with cboe_with_a_changed_schema() as url:
            cboe = compose_config([f"paths.root={root}", "data_fetch=cboe",
                                   f"data_fetch.cboe.base_url={url}{CBOE_PATH}",
                                   "data_fetch.cboe.symbols=[SPY]"])  # fmt: skip
            with pytest.raises(SchemaChangeError):
                execute(data_fetch.SPEC, cboe, dt.date(2026, 4, 2))


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real `mlflow server` on a sqlite store in `folder`, serving /metrics (multiprocess files
    in folder/prom) with its job runner off; yields its host:port, stops its process group."""
    port = prometheus.free_port()
    (folder / "prom").mkdir(parents=True)
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", f"sqlite:///{folder / 'm.db'}",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--expose-prometheus", str(folder / "prom")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    server = procs.start("mlflow", cmd, log=folder / "mlflow.log", cwd=folder, env=env)
    try:
        health = f"http://127.0.0.1:{port}/health"
        procs.wait_until(server, lambda: prometheus.get(health) == "OK", health, timeout_s=120)
        yield f"127.0.0.1:{port}"
    finally:
        procs.stop(server)


def use_mlflow(address: str) -> None:
    """A few tracking requests (/health and /metrics are not counted): one answered 404."""
    from mlflow import MlflowClient

    client = MlflowClient(f"http://{address}")
    client.create_experiment("prometheus-check")
    client.search_experiments()
    assert client.get_experiment_by_name("no-such-experiment") is None  # a 404


@pytest.mark.integration
@pytest.mark.slow
def test_every_dashboard_panel_query_returns_a_series(registry_copy, tmp_path):  # noqa: F811
    root = registry_copy.root
    queries = exprs()
    with (
        running_service(registry_copy.tracking_uri) as service,
        mlflow_server(tmp_path / "mlflow") as tracking,
    ):
        with prometheus.running(
            port=prometheus.free_port(),
            node_exporter_port=prometheus.free_port(),
            targets={
                "pricing-service": service.url.removeprefix("http://"),
                "mlflow-server": tracking,
            },
            textfile_dir=root / "reports" / "metrics",
            data_dir=tmp_path / "prometheus",
            scrape_interval="1s",
            evaluation_interval="1s",
            log_dir=tmp_path,
        ) as stack:
            run_tasks(root)
            priced = service.post("/price", json={"contracts": [CONTRACT]})
            assert priced.status_code == 200, priced.text
            use_mlflow(tracking)
            assert not stack.query("options_pipeline_no_such_metric")  # the check can fail
            empty = wait_for_series(stack, queries, timeout_s=60)
            assert not empty, f"panels whose query returned no series: {empty}"
            firing = {s["metric"]["alertname"] for s in stack.query('ALERTS{alertstate="firing"}')}
            assert {"DataFetchFailing", "CboeSchemaChange"} <= firing
            up = {s["metric"]["job"]: s["value"][1] for s in stack.query("up")}
            assert up == {"pricing-service": "1", "mlflow-server": "1", "node-exporter": "1"}
        assert all(p.popen.poll() is not None for p in stack.processes)  # both stopped


def wait_for_series(stack, queries: dict[str, str], timeout_s: float) -> dict[str, str]:
    """Poll until every query returns at least one series; the ones still empty at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        empty = {title: expr for title, expr in queries.items() if not stack.query(expr)}
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(1)
