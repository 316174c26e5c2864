"""Prometheus and node-exporter for the platform, run from the binaries that
observability/install-prometheus.sh extracts from Debian's packages into .tools/prometheus
(no system service, nothing installed system-wide).

- `render_config(targets, ...)`: the tracked observability/prometheus/prometheus.yml with this
  run's scrape targets, intervals and absolute rule paths, as YAML text.
- `running(...)`: starts node-exporter (its textfile collector reading the pipeline's metrics
  folder, reports/metrics) and Prometheus on 127.0.0.1, waits until both answer, and stops both
  on exit. The rendered config is checked with promtool first; a taken port, a missing binary or
  a process that exits early is one clear `PrometheusError`, and nothing is left running.
- `check()`: `promtool check config` + `promtool test rules` (the alert rules' unit tests).
- `python -m observability.prometheus up|check|config`: `make prometheus`, `make prometheus-check`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "prometheus"
CONFIG = HERE / "prometheus.yml"
RULE_TESTS = HERE / "tests"
TOOLS = REPO_ROOT / ".tools" / "prometheus" / "usr" / "bin"
DATA_DIR = REPO_ROOT / ".tools" / "prometheus-data"
TEXTFILE_DIR = REPO_ROOT / "reports" / "metrics"  # alerts.prom_textfile's folder
HOST = "127.0.0.1"
NODE_EXPORTER_JOB = "node-exporter"


class PrometheusError(Exception):
    """Prometheus or node-exporter cannot be set up or started (the message says why)."""


def binary(name: str) -> Path:
    """The path of `name` (prometheus, promtool, prometheus-node-exporter) in .tools."""
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        raise PrometheusError(
            f"{name} is not installed in {path.parent.relative_to(REPO_ROOT)}: "
            "run `make prometheus-install` (observability/install-prometheus.sh)"
        )
    return path


def render_config(
    targets: Mapping[str, str],
    *,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> str:
    """prometheus.yml with `targets` ({job_name: "host:port"}) replacing those jobs' targets,
    optional global intervals, and the rule files as absolute paths."""
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    unknown = sorted(set(targets) - set(jobs))
    if unknown:
        raise PrometheusError(f"no scrape job named {unknown} in {CONFIG.name}; jobs: {list(jobs)}")
    for name, target in targets.items():
        jobs[name]["static_configs"] = [{"targets": [target]}]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    config["rule_files"] = [str(HERE / pattern) for pattern in config.get("rule_files", [])]
    return yaml.safe_dump(config, sort_keys=False)


def promtool(*args: str) -> subprocess.CompletedProcess:
    """`promtool args...` from the observability/prometheus folder; raises with its output when
    it fails."""
    done = subprocess.run(
        [str(binary("promtool")), *args], cwd=HERE, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise PrometheusError(
            f"promtool {' '.join(args)} failed:\n{(done.stdout + done.stderr).strip()}"
        )
    return done


def check() -> str:
    """Check the config (with its rules) and run the rules' unit tests; their output."""
    with tempfile.TemporaryDirectory(prefix="prometheus_check_") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(render_config({}))
        checked = promtool("check", "config", str(config)).stdout
    tests = sorted(str(p.relative_to(HERE)) for p in RULE_TESTS.glob("*.yml"))
    if not tests:
        raise PrometheusError(f"no promtool rule tests in {RULE_TESTS}")
    return checked + promtool("test", "rules", *tests).stdout


# ---------------------------------------------------------------------------------------------
# running


@dataclass
class Process:
    """A started binary: its process (own process group) and its log file (None: inherited)."""

    name: str
    popen: subprocess.Popen
    log_path: Path | None

    def tail(self, chars: int = 2000) -> str:
        if self.log_path is None:
            return "(its output is above)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM its process group, then SIGKILL."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout_s)


@dataclass
class Stack:
    """Prometheus and node-exporter started by `running`."""

    url: str
    node_exporter_url: str
    processes: list[Process]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query (Prometheus HTTP API), a list of series."""
        body = get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {answer.get('error', answer)}")
        return answer["data"]["result"]

    def dead(self) -> Process | None:
        """A process that has exited, if any."""
        return next((p for p in self.processes if p.popen.poll() is not None), None)


def get(url: str, timeout_s: float = 5) -> str:
    """The body of a GET (only 127.0.0.1 URLs are ever asked)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http://127.0.0.1
        return response.read().decode()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _require_free(ports: Mapping[str, int]) -> None:
    for what, port in ports.items():
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                raise PrometheusError(
                    f"port {port} on {HOST} is taken: cannot start {what} there "
                    "(choose another with PROM_PORT / NODE_EXPORTER_PORT)"
                ) from None


def _start(name: str, cmd: list[str], log_dir: Path | None) -> Process:
    log_path = None if log_dir is None else log_dir / f"{name}.log"
    out: IO[bytes] | None = None if log_path is None else open(log_path, "wb")  # noqa: SIM115
    try:
        popen = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # its own process group: stop() ends all of it
        )
    finally:
        if out is not None:
            out.close()
    return Process(name, popen, log_path)


def _wait(url: str, process: Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.popen.poll() is not None:
            raise PrometheusError(
                f"{process.name} exited ({process.popen.returncode}) while starting:\n"
                f"{process.tail()}"
            )
        with contextlib.suppress(urllib.error.URLError, OSError):
            get(url, timeout_s=2)
            return
        if time.monotonic() > deadline:
            raise PrometheusError(
                f"{process.name} did not answer {url} within {timeout_s:.0f} s:\n{process.tail()}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def running(
    *,
    port: int = 9090,
    node_exporter_port: int = 9100,
    targets: Mapping[str, str] | None = None,
    textfile_dir: Path = TEXTFILE_DIR,
    data_dir: Path = DATA_DIR,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    log_dir: Path | None = None,
    timeout_s: float = 60,
) -> Iterator[Stack]:
    """node-exporter (textfile collector on `textfile_dir`) and Prometheus (TSDB in `data_dir`)
    on 127.0.0.1, Prometheus scraping `targets` ({job: host:port}) and node-exporter; yields the
    Stack once both answer, stops both on exit. `log_dir`: their logs (None: this terminal)."""
    _require_free({"Prometheus": port, "node-exporter": node_exporter_port})
    node_exporter, prometheus = binary("prometheus-node-exporter"), binary("prometheus")
    textfile_dir, data_dir = Path(textfile_dir).resolve(), Path(data_dir).resolve()
    node_addr = f"{HOST}:{node_exporter_port}"
    config_text = render_config(
        {**(targets or {}), NODE_EXPORTER_JOB: node_addr},
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
    )
    textfile_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "prometheus.yml"
    config.write_text(config_text)
    promtool("check", "config", str(config))
    stack = Stack(f"http://{HOST}:{port}", f"http://{node_addr}", [])
    try:
        node = _start(
            "node-exporter",
            [str(node_exporter), f"--web.listen-address={node_addr}",
             f"--collector.textfile.directory={textfile_dir}"],
            log_dir,
        )  # fmt: skip
        stack.processes.append(node)
        _wait(f"{stack.node_exporter_url}/metrics", node, timeout_s)
        prom = _start(
            "prometheus",
            [str(prometheus), f"--config.file={config}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
             f"--web.listen-address={HOST}:{port}"],
            log_dir,
        )  # fmt: skip
        stack.processes.append(prom)
        _wait(f"{stack.url}/-/ready", prom, timeout_s)
        yield stack
    finally:
        for process in reversed(stack.processes):
            process.stop()


# ---------------------------------------------------------------------------------------------
# command line


def _up(args: argparse.Namespace) -> None:
    targets = {"pricing-service": args.service, "mlflow-server": args.mlflow}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `finally` stops both
    with running(
        port=args.port,
        node_exporter_port=args.node_exporter_port,
        targets=targets,
        textfile_dir=Path(args.textfile_dir),
        data_dir=Path(args.data_dir),
    ) as stack:
        print(
            f"Prometheus on {stack.url} (alerts: {stack.url}/alerts), node-exporter on "
            f"{stack.node_exporter_url} reading {args.textfile_dir}; scraping the pricing service "
            f"at {args.service} and the MLflow server at {args.mlflow}. Ctrl-C stops both.",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while (dead := stack.dead()) is None:
                time.sleep(1)
            raise PrometheusError(f"{dead.name} exited ({dead.popen.returncode}); stopping")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m observability.prometheus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run Prometheus + node-exporter until Ctrl-C")
    up.add_argument("--port", type=int, default=9090)
    up.add_argument("--node-exporter-port", type=int, default=9100)
    up.add_argument("--service", default=f"{HOST}:3000", help="the pricing service, host:port")
    up.add_argument(
        "--mlflow", default=f"{HOST}:5050", help="the MLflow server (make team-up), host:port"
    )
    up.add_argument("--textfile-dir", default=str(TEXTFILE_DIR.relative_to(REPO_ROOT)))
    up.add_argument("--data-dir", default=str(DATA_DIR.relative_to(REPO_ROOT)))
    commands.add_parser("check", help="promtool check config + test rules")
    commands.add_parser("config", help="print the rendered prometheus.yml")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            _up(args)
        elif args.command == "check":
            print(check(), end="")
        else:
            print(render_config({}), end="")
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
