"""data_fetch through each source: Cboe over real HTTP on 127.0.0.1, and files."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pandas as pd
import pytest

from monitoring import alerts
from pipeline import data_fetch
from pipeline.artifacts import Artifacts, read_frame, write_frame
from pipeline.errors import DataError, TransientError
from pipeline.market.parse import PayloadSchemaChangeError
from pipeline.market.synthetic import generate_chain
from pipeline.runtime import execute
from tests.helpers import CBOE_PATH, answer, http_server

pytestmark = pytest.mark.integration
DAY = dt.date(2026, 3, 2)
FAST_RETRY = ["retry.data_fetch.base_delay=0.01", "retry.data_fetch.max_delay=0.05"]


@pytest.fixture
def cboe_server(make_cfg):
    """Serves the synthetic market's payloads under Cboe's path; the first GET of each symbol is a 503."""
    cfg = make_cfg()
    bodies = {
        s: json.dumps(generate_chain(s, DAY, cfg.data_fetch.synthetic, cfg.market)[0]).encode()
        for s in ("SPY", "_SPX")
    }
    hits: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            symbol = self.path.rsplit("/", 1)[-1].removesuffix(".json")
            hits[symbol] += 1
            if symbol not in bodies:
                self.send_response(403)
                self.end_headers()
                return
            status, body = (
                (503, b"<html>busy</html>") if hits[symbol] == 1 else (200, bodies[symbol])
            )
            answer(self, status, "application/json" if status == 200 else "text/html", body)

        def log_message(self, *args):
            pass

    with http_server(Handler) as url:
        yield url + CBOE_PATH, hits


@pytest.fixture
def scripted_cboe(make_cfg):
    """(url, script, hits, body): a Cboe-like server on 127.0.0.1 that answers each symbol's
    requests with script[symbol] in turn, (status, content type, body) each, the last one
    repeating; body[symbol] is the synthetic market's payload for DAY, as bytes."""
    cfg = make_cfg()
    body = {
        s: json.dumps(generate_chain(s, DAY, cfg.data_fetch.synthetic, cfg.market)[0]).encode()
        for s in ("SPY", "_SPX")
    }
    script: dict[str, list[tuple[int, str, bytes]]] = {}
    hits: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            symbol = self.path.rsplit("/", 1)[-1].removesuffix(".json")
            hits[symbol] += 1
            answers = script.get(symbol) or [(403, "application/xml", b"<Error/>")]
            status, ctype, payload = answers[min(hits[symbol], len(answers)) - 1]
            answer(self, status, ctype, payload)

        def log_message(self, *args):
            pass

    with http_server(Handler) as url:
        yield url + CBOE_PATH, script, hits, body


def test_truncated_and_html_answers_are_counted_as_their_own_outcomes(
    make_cfg, tracking, scripted_cboe
):
    url, script, hits, body = scripted_cboe
    json_type, page = "application/json", b"<html><body>502 Bad Gateway</body></html>"
    script["SPY"] = [
        (200, json_type, body["SPY"][: len(body["SPY"]) // 2]),  # truncated JSON
        (200, "text/html", page),  # a CDN's error page
        (200, json_type, body["SPY"]),
    ]
    script["_SPX"] = [(200, json_type, page), (200, json_type, body["_SPX"])]  # HTML, mislabelled
    cfg = make_cfg(
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={url}",
        "data_fetch.cboe.symbols=[SPY,_SPX]",
        *FAST_RETRY,
        tiny=False,
    )
    metrics = execute(data_fetch.SPEC, cfg, DAY).metrics
    assert {k: v for k, v in metrics.items() if k.startswith("http_")} == {
        "http_malformed_json": 2,
        "http_bad_content_type": 1,
        "http_200": 2,  # only the answers that were payloads
    }
    assert metrics["fetch_retries"] == 3 and hits == {"SPY": 3, "_SPX": 2}


def test_a_renamed_quote_key_alerts_schema_change_without_retrying(
    make_cfg, tracking, scripted_cboe
):
    url, script, hits, body = scripted_cboe
    renamed = json.loads(body["SPY"])
    for contract in renamed["data"]["options"]:
        contract["bid_price"] = contract.pop("bid")
    script["SPY"] = [(200, "application/json", json.dumps(renamed).encode())]
    cfg = make_cfg(
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={url}",
        "data_fetch.cboe.symbols=[SPY]",
        *FAST_RETRY,
        tiny=False,
    )
    with pytest.raises(PayloadSchemaChangeError) as info:
        execute(data_fetch.SPEC, cfg, DAY)
    assert not isinstance(info.value, TransientError)
    assert hits == {"SPY": 1}  # neither the client nor the task retried
    (alert,) = alerts.read_alerts(cfg.alerts.log_path)
    assert (alert["kind"], alert["severity"], alert["task"]) == (
        "schema_change",
        "error",
        "data_fetch",
    )
    assert "missing keys ['bid'], new keys ['bid_price']" in alert["message"]
    assert alert["details"]["error"] == "PayloadSchemaChangeError"
    assert not Artifacts(cfg.paths, cfg.data_format).raw_quotes(DAY).exists()


def test_cboe_source_gives_the_same_raw_table_as_the_synthetic_source(
    make_cfg, tracking, cboe_server
):
    url, hits = cboe_server
    cboe_cfg = make_cfg(
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={url}",
        f"date={DAY}",
        "data_fetch.cboe.symbols=[SPY,_SPX]",
        *FAST_RETRY,
        tiny=False,
    )
    outcome = execute(data_fetch.SPEC, cboe_cfg, DAY)
    assert outcome.metrics["fetch_retries"] == 2 and outcome.metrics["http_503"] == 2
    assert outcome.metrics["http_200"] == 2 and hits == {"SPY": 2, "_SPX": 2}
    via_cboe = read_frame(outcome.outputs[0])
    synthetic = execute(data_fetch.SPEC, make_cfg(f"date={DAY}", "data_fetch.force=true"), DAY)
    pd.testing.assert_frame_equal(via_cboe, read_frame(synthetic.outputs[0]))


def test_unknown_cboe_symbol_fails_fast_and_writes_nothing(make_cfg, tracking, cboe_server):
    url, hits = cboe_server
    cfg = make_cfg(
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={url}",
        f"date={DAY}",
        "data_fetch.symbols=[SPY,NOPE]",
        *FAST_RETRY,
        tiny=False,
    )
    with pytest.raises(DataError, match="403 for symbol 'NOPE'"):
        execute(data_fetch.SPEC, cfg, DAY)
    assert hits["NOPE"] == 1
    assert not Artifacts(cfg.paths, cfg.data_format).raw_quotes(DAY).exists()


def test_cboe_quotes_for_another_session_are_refused(make_cfg, tracking, cboe_server):
    url, _ = cboe_server
    cfg = make_cfg(
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={url}",
        "data_fetch.symbols=[SPY]",
        *FAST_RETRY,
        tiny=False,
    )
    with pytest.raises(DataError, match="Cboe delayed quotes only serve the current session"):
        execute(data_fetch.SPEC, cfg, dt.date(2026, 3, 3))
    assert not Artifacts(cfg.paths, cfg.data_format).raw_quotes(dt.date(2026, 3, 3)).exists()


def test_file_source_reads_a_csv_export(make_cfg, tracking, tmp_path):
    day_cfg = make_cfg(f"date={DAY}")
    raw = read_frame(execute(data_fetch.SPEC, day_cfg, DAY).outputs[0])
    export = tmp_path / "exports" / "quotes_20260302.csv"
    write_frame(raw, export)
    cfg = make_cfg(
        "data_fetch=file",
        f"data_fetch.file.path='{tmp_path}/exports/quotes_{{date}}.csv'",
        "data_fetch.symbols=[_SPX]",
        "data_format=csv",
        tiny=False,
    )
    out = read_frame(execute(data_fetch.SPEC, cfg, DAY).outputs[0])
    assert out.shape[0] == (raw["underlying"] == "_SPX").sum()
    missing = make_cfg(
        "data_fetch=file", f"data_fetch.file.path='{tmp_path}/nowhere_{{date}}.csv'", tiny=False
    )
    with pytest.raises(DataError, match="nowhere_20260302.csv does not exist"):
        execute(data_fetch.SPEC, missing, DAY)
