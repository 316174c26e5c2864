"""A Cboe-compatible market-data endpoint on 127.0.0.1 serving the synthetic market, with
seeded transient faults: what the market replay fetches from.

`GET /{SYMBOL}.json` answers the synthetic market's Cboe delayed-quotes payload for the server's
current `date` (the replay sets it before each simulated day), exactly what data_fetch parses
from Cboe. For each (date, symbol) a seeded draw decides whether the first 1 or 2 requests fail,
and how: HTTP 503, HTTP 429 with `Retry-After: 0`, a truncated JSON body, or a connection closed
mid-body; later requests succeed. Faults are transient by construction (at most 2 per symbol and
day, against data_fetch's 5 retries), so a client that retries as the platform's policy says
always gets the day. The server counts what it did (`stats`): requests, faults injected by kind,
symbols faulted and how many of them were eventually served.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from pipeline.market.synthetic import generate_payload

FAULT_KINDS = ("503", "429", "truncated_json", "connection_dropped")


@dataclass
class Stats:
    requests: int = 0
    served: int = 0
    faults: Counter = field(default_factory=Counter)  # kind → count
    faulted: set = field(default_factory=set)  # (date, symbol) that met at least one fault
    recovered: set = field(default_factory=set)  # of those, served in the end

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "served": self.served,
            "faults_injected": sum(self.faults.values()),
            "faults_by_kind": dict(sorted(self.faults.items())),
            "symbol_days_faulted": len(self.faulted),
            "symbol_days_recovered": len(self.recovered),
        }


class MarketServer:
    """`with MarketServer(synthetic_cfg, market_cfg, fault_rate, seed) as server:` →
    server.base_url (http://127.0.0.1:<free port>); set `server.date` before fetching."""

    def __init__(self, synthetic: Any, market: Any, fault_rate: float, seed: int,
                 host: str = "127.0.0.1") -> None:  # fmt: skip
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate={fault_rate} must be between 0 and 1")
        self.synthetic, self.market = synthetic, market
        self.fault_rate, self.seed, self.host = float(fault_rate), int(seed), host
        self.date: dt.date | None = None
        self.stats = Stats()
        self._attempts: Counter = Counter()  # (date, symbol) → requests so far
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the fault plan ------------------------------------------------------------------------
    def faults_for(self, date: dt.date, symbol: str) -> list[str]:
        """The faults the first requests for (date, symbol) meet, in order (seeded, so a
        replay is repeatable): none, or 1-2 of FAULT_KINDS."""
        key = [self.seed, date.toordinal(), *symbol.encode()]
        rng = np.random.default_rng(key)
        if rng.random() >= self.fault_rate:
            return []
        return [str(k) for k in rng.choice(FAULT_KINDS, size=int(rng.integers(1, 3)))]

    def _next(self, symbol: str) -> tuple[str | None, dt.date]:
        with self._lock:
            date = self.date
            if date is None:
                raise RuntimeError("MarketServer.date is not set")
            n = self._attempts[date, symbol]
            self._attempts[date, symbol] += 1
            self.stats.requests += 1
            plan = self.faults_for(date, symbol)
            fault = plan[n] if n < len(plan) else None
            if fault:
                self.stats.faults[fault] += 1
                self.stats.faulted.add((date, symbol))
            else:
                self.stats.served += 1
                if (date, symbol) in self.stats.faulted:
                    self.stats.recovered.add((date, symbol))
            return fault, date

    # -- HTTP -----------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                symbol = self.path.strip("/").removesuffix(".json")
                if not symbol or "/" in symbol:
                    self._send(404, b'{"error": "not found"}')
                    return
                fault, date = server._next(symbol)
                if fault == "503":
                    self._send(503, b"<html>Service Unavailable</html>", "text/html")
                elif fault == "429":
                    self._send(429, b'{"error": "rate limited"}', retry_after="0")
                else:
                    body = json.dumps(
                        generate_payload(symbol, date, server.synthetic, server.market)
                    ).encode()
                    if fault == "truncated_json":
                        self._send(200, body[: len(body) // 2])
                    elif fault == "connection_dropped":
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[:100])
                        self.close_connection = True
                    else:
                        self._send(200, body)

            def _send(self, status: int, body: bytes, ctype: str = "application/json",
                      retry_after: str | None = None) -> None:  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # quiet: the replay reports counts
                pass

        return Handler

    def __enter__(self) -> MarketServer:
        self._httpd = ThreadingHTTPServer((self.host, 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="market-server", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first (with MarketServer(...))"
        return f"http://{self.host}:{self._httpd.server_address[1]}"
