"""Pricing-service throughput: our BentoML endpoint vs `mlflow models serve`, same model, same run.

Both servers load `models:/options-pricer@production` from the registry under `--root` (run
`make run` and `make promote` first) and listen on 127.0.0.1 with one worker each. wrk drives
them in turn with the same contracts (sampled from the newest feature file):

- single: one contract per request, `--connections` concurrent connections, `--seconds` each;
- batch: 1,000 contracts per request (contracts/s).

The ceiling is the in-process rate: the same pyfunc model's predict() on the same frames, in this
process. Prints a Markdown table and writes benchmarks/results/serving.json.

    uv run python -m benchmarks.serving [--root .] [--seconds 15] [--connections 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import requests

from pipeline.config import REPO_ROOT

MODEL_URI = "models:/options-pricer@production"
FIELDS = ["underlying", "option_type", "strike", "expiry", "quote_date", "spot"]
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def contracts(root: Path, n: int) -> pd.DataFrame:
    """`n` reliable contracts (raw fields) from the newest feature file under root."""
    files = sorted((root / "data" / "processed").glob("features_*.parquet"))
    if not files:
        sys.exit(f"no feature files under {root}/data/processed: run `make run` first")
    frame = pd.read_parquet(files[-1])
    frame = frame[frame["iv_reliable"].astype(bool)]
    rows = frame.sample(n, replace=len(frame) < n, random_state=0)[FIELDS].reset_index(drop=True)
    for col in ("expiry", "quote_date"):
        rows[col] = pd.to_datetime(rows[col]).dt.strftime("%Y-%m-%d")
    return rows


@contextlib.contextmanager
def server(cmd: list[str], env: dict, ready_url: str, timeout_s: float = 180):
    """Start `cmd`, wait until `ready_url` answers 200, stop it (process group) at the end."""
    with tempfile.TemporaryFile() as log:
        yield from _serve(cmd, env, ready_url, timeout_s, log)


def _serve(cmd, env, ready_url, timeout_s, log):
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                sys.exit(f"{cmd[:3]} exited: {log.read()[-2000:].decode(errors='replace')}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(ready_url, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                sys.exit(f"{cmd[:3]} not ready after {timeout_s} s")
            time.sleep(0.5)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def wrk(url: str, body: str, seconds: int, connections: int) -> dict:
    """Run wrk against `url` with `body`; parse requests/s, p50/p99 latency (ms) and errors."""
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_text(body)
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA.format(body=body_path))
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": _errors(out),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _errors(out: str) -> int:
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)


def in_process(frames: dict[str, pd.DataFrame], seconds: float = 5.0) -> dict[str, dict]:
    """Contracts/s of the same model in this process, no HTTP: through MLflow's pyfunc predict()
    (schema enforcement included) and through the model object the service calls (unwrapped)."""
    model = mlflow.pyfunc.load_model(MODEL_URI)
    paths = {"pyfunc": model.predict,
             "unwrapped": lambda f: model.unwrap_python_model().predict(None, f)}  # fmt: skip
    rates: dict[str, dict] = {}
    for path, predict in paths.items():
        for name, frame in frames.items():
            typed = frame.assign(expiry=pd.to_datetime(frame["expiry"]),
                                 quote_date=pd.to_datetime(frame["quote_date"]))  # fmt: skip
            predict(typed)  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                predict(typed)
                n += len(typed)
            rates.setdefault(path, {})[name] = n / (time.perf_counter() - t0)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="paths.root with a Production model"
    )
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serving.json")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    root = args.root.resolve()
    uri = f"sqlite:///{root}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    # both servers price with the root's daily market states (the peer through the pyfunc's env)
    state_dir = str(root / "data" / "state")
    os.environ["OPTIONS_PRICER_STATE_DIR"] = state_dir
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SERVING_POLL_S": "0",
           "SERVING_STATE_DIR": state_dir}  # fmt: skip
    one, batch = contracts(root, 1), contracts(root, 1000)
    ours_body = {k: json.dumps({"contracts": f.to_dict(orient="records")}) for k, f in
                 {"single": one, "batch": batch}.items()}  # fmt: skip
    peer_body = {k: json.dumps({"dataframe_records": f.to_dict(orient="records")}) for k, f in
                 {"single": one, "batch": batch}.items()}  # fmt: skip
    bin_dir = Path(sys.executable).parent
    # the ceiling first, while no server runs; one OpenMP thread, as in the service
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ceiling = in_process({"single": one, "batch": batch})
    results: dict[str, dict] = {}
    p1, p2 = free_port(), free_port()
    ours = [str(bin_dir / "bentoml"), "serve", "serving.service:OptionsPricingService",
            "--host", "127.0.0.1", "--port", str(p1)]  # fmt: skip
    peer = [str(bin_dir / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
            "--host", "127.0.0.1", "--port", str(p2), "--workers", "1"]  # fmt: skip
    for name, cmd, ready, url, bodies in (
        ("bentoml (ours)", ours, f"http://127.0.0.1:{p1}/readyz", f"http://127.0.0.1:{p1}/price", ours_body),
        ("mlflow models serve", peer, f"http://127.0.0.1:{p2}/ping", f"http://127.0.0.1:{p2}/invocations", peer_body),
    ):  # fmt: skip
        with server(cmd, env, ready):
            wrk(url, bodies["single"], 3, args.connections)  # warm-up
            single = wrk(url, bodies["single"], args.seconds, args.connections)
            batched = wrk(url, bodies["batch"], args.seconds, 2)
            results[name] = {"single": single, "batch": batched | {
                "contracts_per_s": batched["requests_per_s"] * 1000}}  # fmt: skip
    result = {
        "servers": results,
        "in_process_contracts_per_s": ceiling,
        "seconds": args.seconds, "connections": args.connections,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        "| server | single req/s | p50 ms | p99 ms | errors | 1,000-contract batches: contracts/s | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        s, b = r["single"], r["batch"]
        print(f"| {name} | {s['requests_per_s']:,.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
              f"{s['errors']} | {b['contracts_per_s']:,.0f} | {b['errors']} |")  # fmt: skip
    for path, rates in ceiling.items():
        print(f"| in-process {path} predict(), one call per request | {rates['single']:,.0f} | | | "
              f"| {rates['batch']:,.0f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
