"""CboeClient against a real HTTP server on 127.0.0.1 that scripts failures per path.

Waits are recorded by an injected sleep (nothing actually sleeps between attempts), so the file
runs in about a second; the only real delays are the client timeouts in the slow-server tests.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.config import RetryPolicy
from pipeline.errors import ConfigError, DataError, SchemaChangeError, TransientError
from pipeline.market.cboe import (
    CboeClient,
    CboeRequestError,
    FetchFailedError,
    UnknownSymbolError,
    parse_retry_after,
)
from pipeline.market.parse import MalformedPayloadError, PayloadSchemaChangeError, chain_to_frame
from pipeline.retry import build_retrying

pytestmark = pytest.mark.integration

PAYLOAD = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "cboe" / "spy_chain.json").read_text()
)
BODY = json.dumps(PAYLOAD).encode()
TIMEOUT_S = 0.3
PREFIX = "/api/global/delayed_quotes/options"  # Cboe's own path, so url_for is exercised with one
Responder = Callable[[BaseHTTPRequestHandler, threading.Event], None]


# --- responders: what the server does for one request ------------------------------------------


def send(
    status: int,
    body: bytes = b"",
    ctype: str = "application/json",
    headers: dict | None = None,
    length: int | None = None,
) -> Responder:
    def respond(h: BaseHTTPRequestHandler, _stop: threading.Event) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    return respond


OK = send(200, BODY)


def slow(seconds: float, then: Responder) -> Responder:
    def respond(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        stop.wait(seconds)  # cut short at teardown
        then(h, stop)

    return respond


class Scripted:
    """Per-path scripts: each request takes the next responder; the last one repeats."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Responder]] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self.user_agents: list[str] = []
        self.stop = threading.Event()

    def script(self, symbol: str, *responders: Responder) -> None:
        self.scripts[f"{PREFIX}/{symbol}.json"] = list(responders)

    def count(self, symbol: str) -> int:
        """Requests the server saw for `symbol`."""
        return self.hits[f"{PREFIX}/{symbol}.json"]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                n = scripted.hits[self.path]
                scripted.hits[self.path] += 1
                scripted.user_agents.append(self.headers.get("User-Agent", ""))
                script = scripted.scripts.get(self.path) or [
                    send(403, b"<Error>AccessDenied</Error>", "application/xml")
                ]
                # the client may have given up (timeout): expected in the slow-server tests
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    script[min(n, len(script) - 1)](self, scripted.stop)

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def server():
    """(base_url, Scripted) for a ThreadingHTTPServer on an ephemeral 127.0.0.1 port."""
    scripted = Scripted()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), scripted.handler())
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{PREFIX}", scripted
    finally:
        scripted.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def tiny_policy(max_retries: int = 3, **kw) -> RetryPolicy:
    spec = {"backoff": "exponential", "max_delay": 0.01, "base_delay": 0.01, "jitter": True, **kw}
    return RetryPolicy(max_retries=max_retries, **spec)


def make_client(
    base_url: str,
    waits: list[float] | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float = TIMEOUT_S,
) -> CboeClient:
    return CboeClient(
        base_url,
        timeout_s=timeout_s,
        policy=policy or tiny_policy(),
        user_agent="options-mlops-test/1.0",
        sleep=(waits.append if waits is not None else lambda s: None),
    )


# --- success paths -----------------------------------------------------------------------------


def test_first_try_success(server):
    base, srv = server
    srv.script("SPY", OK)
    with make_client(base) as client:
        assert client.url_for("SPY") == f"{base}/SPY.json"
        result = client.fetch_chain("SPY")
    assert result.symbol == "SPY"
    assert result.payload == PAYLOAD
    assert (result.status_codes, result.attempts) == ([200], 1)
    assert srv.user_agents == ["options-mlops-test/1.0"]
    assert len(chain_to_frame(result.payload)) == 7


def test_429_with_retry_after_seconds_is_honoured(server):
    base, srv = server
    srv.script("SPY", send(429, b'{"error": "slow down"}', headers={"Retry-After": "2"}), OK)
    waits: list[float] = []
    policy = tiny_policy(max_delay=10.0, jitter=False)
    result = make_client(base, waits, policy).fetch_chain("SPY")
    assert (result.status_codes, result.attempts) == ([429, 200], 2)
    assert waits == [2.0]  # the server's 2 s, not the policy's 0.01 s
    assert srv.count("SPY") == 2


def test_retry_after_http_date_and_max_delay_cap(server):
    base, srv = server
    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    srv.script(
        "SPY",
        send(503, b"", headers={"Retry-After": later}),
        send(429, headers={"Retry-After": "600"}),
        OK,
    )
    waits: list[float] = []
    result = make_client(base, waits, tiny_policy(max_delay=30.0, jitter=False)).fetch_chain("SPY")
    assert result.status_codes == [503, 429, 200]
    assert 1.0 <= waits[0] <= 3.0  # HTTP-date form (1 s resolution)
    assert waits[1] == 30.0  # 600 s asked, capped at max_delay


def test_503_twice_then_success(server, caplog):
    base, srv = server
    srv.script("QQQ", send(503, b"busy"), send(503, b"busy"), OK)
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, logger="pipeline.market.cboe"):
        result = make_client(base, waits).fetch_chain("QQQ")
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and all("HTTP 503" in m and "QQQ" in m for m in retries)
    assert (result.status_codes, result.attempts) == ([503, 503, 200], 3)
    assert len(waits) == 2 and all(0.005 <= w <= 0.01 for w in waits)


def test_slow_response_times_out_then_success(server):
    base, srv = server
    srv.script("IWM", slow(TIMEOUT_S * 4, OK), OK)
    started = time.perf_counter()
    result = make_client(base).fetch_chain("IWM")
    assert (result.status_codes, result.attempts) == (["timeout", 200], 2)
    assert time.perf_counter() - started < TIMEOUT_S * 4  # gave up on the slow answer
    assert srv.count("IWM") == 2


def test_truncated_json_then_success(server):
    base, srv = server
    srv.script("SPY", send(200, BODY[: len(BODY) // 2]), OK)
    result = make_client(base).fetch_chain("SPY")
    # the cut-off 200 is its own outcome, not a second http_200
    assert (result.status_codes, result.attempts) == (["malformed_json", 200], 2)
    assert result.payload == PAYLOAD


def test_connection_dropped_mid_body_then_success(server):
    base, srv = server
    srv.script("SPY", send(200, BODY[:100], length=len(BODY)), OK)  # promises more than it sends
    result = make_client(base).fetch_chain("SPY")
    assert result.status_codes == ["incomplete_body", 200]


def test_html_error_page_then_success(server, caplog):
    base, srv = server
    page = b"<html><head><title>502 Bad Gateway</title></head><body>cloudfront</body></html>"
    srv.script("SPY", send(200, page, "text/html"), send(200, page, "application/json"), OK)
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, logger="pipeline.market.cboe"):
        result = make_client(base, waits).fetch_chain("SPY")
    assert (result.status_codes, result.attempts) == (
        ["bad_content_type", "malformed_json", 200],
        3,
    )
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert "Content-Type 'text/html', not JSON" in retries[0]
    assert "with an HTML page" in retries[1]


# --- fail fast ---------------------------------------------------------------------------------


def test_403_fails_fast_as_unknown_symbol(server):
    base, srv = server
    srv.script("SPX", send(403, b"<Error>AccessDenied</Error>", "application/xml"))
    waits: list[float] = []
    with pytest.raises(UnknownSymbolError) as info:
        make_client(base, waits).fetch_chain("SPX")
    assert str(info.value) == (
        "Cboe answered 403 for symbol 'SPX': unknown symbol (indices need a leading underscore, e.g. _SPX)"
    )
    assert srv.count("SPX") == 1
    assert waits == []
    assert (info.value.status_codes, info.value.attempts) == ([403], 1)
    assert isinstance(info.value, DataError) and not isinstance(info.value, TransientError)


def test_other_4xx_fails_fast_with_status_and_url(server):
    base, srv = server
    srv.script("SPY", send(404, b"{}"))
    with pytest.raises(CboeRequestError, match="HTTP 404") as info:
        make_client(base).fetch_chain("SPY")
    assert f"{base}/SPY.json" in str(info.value)
    assert srv.count("SPY") == 1


def test_renamed_quote_key_is_a_schema_change_not_retried(server):
    """Cboe renames `bid` to `bid_price`: the fetch checks the chain's structure, data_fetch's
    parser the quotes (see tests/integration/test_data_fetch_sources.py for the alert)."""
    base, srv = server
    renamed = json.loads(BODY)
    for contract in renamed["data"]["options"]:
        contract["bid_price"] = contract.pop("bid")
    srv.script("SPY", send(200, json.dumps(renamed).encode()))
    result = make_client(base).fetch_chain("SPY")
    assert (result.status_codes, result.attempts) == ([200], 1)
    with pytest.raises(
        PayloadSchemaChangeError, match=r"missing keys \['bid'\], new keys \['bid_price'\]"
    ):
        chain_to_frame(result.payload)


def test_renamed_top_level_key_fails_fast_as_a_schema_change(server):
    base, srv = server
    renamed = json.loads(BODY)
    renamed["quotes"] = renamed.pop("data")
    srv.script("SPY", send(200, json.dumps(renamed).encode()))
    waits: list[float] = []
    with pytest.raises(PayloadSchemaChangeError) as info:
        make_client(base, waits).fetch_chain("SPY")
    assert str(info.value) == (
        "Cboe payload for 'SPY': schema change at the top level: missing keys ['data'], "
        "new keys ['quotes']"
    )
    assert isinstance(info.value, SchemaChangeError) and not isinstance(info.value, TransientError)
    assert srv.count("SPY") == 1 and waits == []


def test_json_without_cboe_keys_fails_fast(server):
    base, srv = server
    srv.script(
        "SPY", send(200, json.dumps({"timestamp": "2025-11-21 16:15:03", "symbol": "SPY"}).encode())
    )
    with pytest.raises(MalformedPayloadError, match=r"\['data'\]"):
        make_client(base).fetch_chain("SPY")
    assert srv.count("SPY") == 1


# --- retries exhausted -------------------------------------------------------------------------


def test_persistent_500_gives_fetch_failed_after_all_attempts(server):
    base, srv = server
    srv.script("SPY", send(500, b"oops"))
    waits: list[float] = []
    with pytest.raises(FetchFailedError) as info:
        make_client(base, waits, tiny_policy(max_retries=3)).fetch_chain("SPY")
    exc = info.value
    assert srv.count("SPY") == 4
    assert (exc.status_codes, exc.attempts, len(waits)) == ([500] * 4, 4, 3)
    assert isinstance(exc, DataError) and not isinstance(exc, TransientError)
    msg = str(exc)
    assert (
        "'SPY'" in msg and f"{base}/SPY.json" in msg and "4 attempts" in msg and "HTTP 500" in msg
    )


def test_outer_task_retry_does_not_multiply_attempts(server):
    base, srv = server
    srv.script("SPY", send(502))
    client = make_client(base, policy=tiny_policy(max_retries=2))
    outer = build_retrying(
        tiny_policy(max_retries=3), retry_on=TransientError, sleep=lambda s: None
    )
    with pytest.raises(FetchFailedError):
        outer(client.fetch_chain, "SPY")
    assert srv.count("SPY") == 3


def test_connection_refused_is_retried_and_recorded():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchFailedError, match="connection error") as info:
        make_client(f"http://127.0.0.1:{port}", policy=tiny_policy(max_retries=2)).fetch_chain(
            "SPY"
        )
    assert info.value.status_codes == ["connection_error"] * 3


# --- small pieces ------------------------------------------------------------------------------


def test_parse_retry_after_forms():
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(
        email.utils.formatdate(now + 10, usegmt=True), now=now
    ) == pytest.approx(10, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"base_url": "cdn.cboe.com/api"}, "base_url"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"policy": {"max_retries": 2, "backoff": "sometimes"}}, "backoff"),
    ],
)
def test_bad_client_config_fails_at_construction(kwargs, match):
    spec = {
        "base_url": "http://127.0.0.1:9",
        "timeout_s": 1.0,
        "policy": tiny_policy(),
        "user_agent": "t",
    }
    spec.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        CboeClient(spec.pop("base_url"), **spec)


@pytest.mark.parametrize("symbol", ["", "SPY/../x", "S P Y"])
def test_url_for_rejects_symbols_that_are_not_path_segments(symbol):
    with pytest.raises(ConfigError, match="not a valid ticker"):
        make_client("http://127.0.0.1:9").url_for(symbol)
