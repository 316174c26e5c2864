"""Helpers for tests: the project's commands in subprocesses, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.config import REPO_ROOT


def run_module(
    module: str, *args: str, env: dict | None = None, timeout: float = 300, cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess:
    """`python -m <module> args...` in a subprocess with the project's interpreter."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


CBOE_PATH = "/api/global/delayed_quotes/options"  # where a local stand-in for Cboe answers


def answer(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    """Send one complete response from a BaseHTTPRequestHandler."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port) running `handler` in a thread; yields its
    base URL (http://127.0.0.1:<port>) and stops it on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
