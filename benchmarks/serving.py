"""Pricing-service throughput and latency: ours vs BentoML's own batching vs `mlflow models serve`.

Three servers, one after the other in the same run, each loading `models:/options-pricer@production`
from the registry under `--root` (run `make run` and `make promote` first) and listening on
127.0.0.1 with one worker:
- ours: serving/service.py (`make serve`): the custom batcher (serving/batching.py), a lone
  contract priced inline while it is idle;
- BentoML batching: serving/batchable_service.py, the same service with
  `@bentoml.api(batchable=True)` in place of the custom batcher (issue 16: the custom batcher has
  to earn its place);
- `mlflow models serve --env-manager local --workers 1`: MLflow's own server, the pyfunc model.
wrk (benchmarks/install-wrk.sh puts one in .tools/wrk when none is on PATH) drives each with the
same contracts (sampled from the newest feature file):
- single: one contract per request, `--connections` concurrent connections, `--seconds` each;
- batch: 1,000 contracts per request, 2 connections (contracts/s).
p50/p99 are wrk's (`--latency`); errors are non-2xx answers plus socket errors.

The ceiling is the in-process rate, no HTTP, one OpenMP thread (as the servers run): the same
model through MLflow's pyfunc predict() (what `mlflow models serve` calls), the unwrapped
model's predict() on a frame, and the service's NumPy path (`price_columns` on the contracts'
arrays, what both BentoML servers call). Prints a Markdown table and writes
benchmarks/results/serving.json.

    OMP_NUM_THREADS=1 uv run python -m benchmarks.serving [--root .] [--seconds 15] [--connections 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/xgboost load their thread pools

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402

from pipeline.config import REPO_ROOT  # noqa: E402

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


def find_wrk() -> tuple[str, dict[str, str]]:
    """wrk on PATH, else the one benchmarks/install-wrk.sh extracted into .tools/wrk (with the
    LuaJIT library beside it): (binary, environment to run it with)."""
    if found := shutil.which("wrk"):
        return found, dict(os.environ)
    local = REPO_ROOT / ".tools" / "wrk" / "usr"
    if (local / "bin" / "wrk").exists():
        libs = [str(p) for p in (local / "lib").glob("*-linux-gnu")]
        libs.append(os.environ.get("LD_LIBRARY_PATH", ""))
        return str(local / "bin" / "wrk"), {**os.environ, "LD_LIBRARY_PATH": ":".join(filter(None, libs))}  # fmt: skip
    sys.exit("wrk is not installed: run benchmarks/install-wrk.sh (or apt-get install -y wrk)")


def wrk(url: str, body: str, seconds: int, connections: int) -> dict:
    """Run wrk against `url` with `body`; parse requests/s, p50/p99 latency (ms) and errors."""
    binary, env = find_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_text(body)
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA.format(body=body_path))
        out = subprocess.run(
            [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, check=True, env=env,
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
    (schema enforcement included), the unwrapped model's predict() on the same frame, and the
    BentoML servers' NumPy path (the request's contracts → arrays → price_columns)."""
    from serving.engine import contract_columns
    from serving.schemas import PriceRequest

    model = mlflow.pyfunc.load_model(MODEL_URI)
    pricer = model.unwrap_python_model()

    def typed(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(expiry=pd.to_datetime(frame["expiry"]),
                            quote_date=pd.to_datetime(frame["quote_date"]))  # fmt: skip

    def pyfunc(frame: pd.DataFrame):
        rows = typed(frame)
        return lambda: model.predict(rows)

    def unwrapped(frame: pd.DataFrame):
        rows = typed(frame)
        return lambda: pricer.predict(None, rows)

    def numpy_path(frame: pd.DataFrame):
        body = json.dumps({"contracts": frame.to_dict(orient="records")})
        contracts = PriceRequest.model_validate_json(body).contracts  # parsed once, as served
        return lambda: pricer.price_columns(contract_columns(contracts))

    paths = {"pyfunc": pyfunc, "unwrapped": unwrapped, "numpy path": numpy_path}
    rates: dict[str, dict] = {}
    for path, prepare in paths.items():
        for name, frame in frames.items():
            call = prepare(frame)
            call()  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                call()
                n += len(frame)
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
    find_wrk()  # before anything slow: exits naming the install script when there is none
    root = args.root.resolve()
    uri = f"sqlite:///{root}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    # every server prices with the root's daily market states (the peer through the pyfunc's env)
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
    # the ceiling first, while no server runs
    ceiling = in_process({"single": one, "batch": batch})
    results: dict[str, dict] = {}
    ports = [free_port() for _ in range(3)]

    def bentoml_serve(service: str, port: int) -> list[str]:
        return [str(bin_dir / "bentoml"), "serve", service, "--host", "127.0.0.1",
                "--port", str(port)]  # fmt: skip

    peer = [str(bin_dir / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
            "--host", "127.0.0.1", "--port", str(ports[2]), "--workers", "1"]  # fmt: skip
    servers = (
        ("ours (BentoML, custom batcher)",
         bentoml_serve("serving.service:OptionsPricingService", ports[0]),
         f"http://127.0.0.1:{ports[0]}/readyz", f"http://127.0.0.1:{ports[0]}/price", ours_body),
        ("BentoML batching (batchable=True)",
         bentoml_serve("serving.batchable_service:BentoBatchingService", ports[1]),
         f"http://127.0.0.1:{ports[1]}/readyz", f"http://127.0.0.1:{ports[1]}/price", ours_body),
        ("mlflow models serve", peer,
         f"http://127.0.0.1:{ports[2]}/ping", f"http://127.0.0.1:{ports[2]}/invocations", peer_body),
    )  # fmt: skip
    for name, cmd, ready, url, bodies in servers:
        with server(cmd, env, ready):
            # warm-up: both shapes (BentoML's dispatcher trains its latency model on the first)
            wrk(url, bodies["single"], 3, args.connections)
            wrk(url, bodies["batch"], 3, 2)
            single = wrk(url, bodies["single"], args.seconds, args.connections)
            batched = wrk(url, bodies["batch"], args.seconds, 2)
            results[name] = {"single": single, "batch": batched | {
                "contracts_per_s": batched["requests_per_s"] * 1000}}  # fmt: skip
    result = {
        "servers": results,
        "in_process_contracts_per_s": ceiling,
        "seconds": args.seconds, "connections": args.connections, "batch_connections": 2,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def table(result: dict) -> str:
    """The README's Markdown table of a result."""
    rows = [
        "| server | single contract: req/s | p50 ms | p99 ms | errors "
        "| 1,000-contract batches: contracts/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["servers"].items():
        s, b = r["single"], r["batch"]
        rows.append(f"| {name} | {s['requests_per_s']:,.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} "
                    f"| {s['errors']} | {b['contracts_per_s']:,.0f} | {b['p50_ms']:.1f} "
                    f"| {b['p99_ms']:.1f} | {b['errors']} |")  # fmt: skip
    for path, rates in result["in_process_contracts_per_s"].items():
        rows.append(f"| in-process {path}, one call per request | {rates['single']:,.0f} | | | "
                    f"| {rates['batch']:,.0f} | | | |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    main()
