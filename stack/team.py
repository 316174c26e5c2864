"""`python -m stack.team up|down|status [--root team] [--port mlflow=5050 ...]`: the team stack
(PostgreSQL + SeaweedFS S3 + an MLflow server with proxied artifacts) on 127.0.0.1.

Everything lives under one folder (default `team/` at the repository root, gitignored):

    team/state.json    pids and ports of the running stack (written once all three answer)
    team/secrets.json  the database password and the S3 keys, generated on first use (mode 600)
    team/logs/         postgres.log, seaweedfs.log, mlflow.log
    team/postgres/     the PostgreSQL cluster (owned by the postgres user when run as root)
    team/seaweedfs/    the S3 store's data and its identity file
    team/mlflow/       the server's working folder and Prometheus multiprocess files

`up` checks every port first, starts PostgreSQL, then SeaweedFS, then the MLflow server, waiting
until each answers; any failure stops what this call started and ends in one line naming the
problem (exit code 2). On success it prints the line to export. `down` stops the stack (MLflow
first, PostgreSQL last); its data stays for the next `up`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from stack import postgres, seaweed
from stack.mlflow_server import MlflowServer, ensure_experiment, start_server
from stack.postgres import Postgres
from stack.procs import HOST, Service, StackError, alive, command_line, port_in_use, stop
from stack.seaweed import Seaweed

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "team"
SERVICE_ORDER = ("postgres", "seaweedfs", "mlflow")  # start order; stopped in reverse


def default_ports() -> dict[str, int]:
    """PostgreSQL on 5433 (beside a system one on 5432), MLflow on 5050 (make ui uses 5000),
    SeaweedFS on its own defaults (S3 8333), each gRPC port at HTTP + 10000 as weed does."""
    http = {"s3": 8333, "master": 9333, "volume": 9340, "filer": 8888, "admin": 23646}
    ports = {"postgres": 5433, "mlflow": 5050, **http}
    ports.update({f"{name}_grpc": port + 10000 for name, port in http.items()})
    return ports


@dataclass(frozen=True)
class Timeouts:
    """Seconds each service may take to answer at start-up (MLflow's first start migrates)."""

    postgres: float = 60.0
    seaweedfs: float = 60.0
    mlflow: float = 180.0


@dataclass(frozen=True)
class TeamConfig:
    root: Path = DEFAULT_ROOT
    ports: dict[str, int] = field(default_factory=default_ports)
    timeouts: Timeouts = Timeouts()
    experiment: str | None = None  # None: the pipeline's (configs/mlflow: mlflow.experiment)
    workers: int = 2

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


@dataclass(frozen=True)
class Team:
    """The stack's parts as configured (and, with secrets, how to reach each)."""

    pg: Postgres
    s3: Seaweed
    server: MlflowServer

    @property
    def tracking_uri(self) -> str:
        return self.server.url


def team(config: TeamConfig) -> Team:
    """The parts of the stack under config.root, with its secrets (created on first use)."""
    keys = _secrets(config.root)
    ports = config.ports
    return Team(
        pg=Postgres(config.root / "postgres", ports["postgres"], keys["postgres_password"]),
        s3=Seaweed(
            config.root / "seaweedfs",
            {name: port for name, port in ports.items() if name not in ("postgres", "mlflow")},
            keys["s3_access_key"],
            keys["s3_secret_key"],
        ),
        server=MlflowServer(config.root / "mlflow", ports["mlflow"], config.workers),
    )


def _secrets(root: Path) -> dict[str, str]:
    path = root / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    root.mkdir(parents=True, exist_ok=True)
    keys = {
        "postgres_password": secrets.token_urlsafe(24),
        "s3_access_key": "mlflow" + secrets.token_hex(6),
        "s3_secret_key": secrets.token_urlsafe(30),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(keys, out, indent=2)
    return keys


def _check_ports(ports: dict[str, int]) -> None:
    taken = [f"{port} ({name})" for name, port in ports.items() if port_in_use(port)]
    if taken:
        raise StackError(
            f"port {', '.join(taken)} on {HOST} already in use: stop what listens there or pick "
            "another with --port NAME=PORT"
        )
    if len(set(ports.values())) != len(ports):
        raise StackError(f"two services were given the same port: {ports}")


def running(config: TeamConfig) -> dict[str, Service]:
    """The stack's services that still run, from the state file (checked against each process's
    command line, so a reused pid is never taken for ours)."""
    if not config.state_file.exists():
        return {}
    state = json.loads(config.state_file.read_text())
    services = {}
    for name, entry in state["services"].items():
        service = Service(name, entry["pid"], Path(entry["log"]), entry["stop_signal"])
        if alive(service.pid) and entry["marker"] in " ".join(command_line(service.pid)):
            services[name] = service
    return services


def up(config: TeamConfig) -> Team:
    """Start the stack (see the module docstring); StackError with nothing left running on any
    failure. Already running: nothing to do (the running stack's parts are returned)."""
    live = running(config)
    if live:
        if len(live) == len(SERVICE_ORDER):  # as it was started, whatever ports were asked now
            ports = json.loads(config.state_file.read_text())["ports"]
            return team(replace(config, ports=ports))
        raise StackError(
            f"the team stack in {config.root} is partly running ({', '.join(live)}): "
            "run team-down first"
        )
    _check_ports(config.ports)
    parts = team(config)
    bin_dir = postgres.binaries(parts.pg.data)
    started: list[Service] = []
    try:
        postgres.prepare(parts.pg)
        postgres.initdb(parts.pg, bin_dir)
        log, wait = config.logs / "postgres.log", config.timeouts.postgres
        postgres.start_server(parts.pg, bin_dir, log, wait, started)
        postgres.ensure_database(parts.pg)
        log, wait = config.logs / "seaweedfs.log", config.timeouts.seaweedfs
        seaweed.start_server(parts.s3, log, wait, started)
        log, wait = config.logs / "mlflow.log", config.timeouts.mlflow
        start_server(parts.server, parts.pg, parts.s3, log, wait, started)
        ensure_experiment(parts.server, config.experiment or _pipeline_experiment())
        _write_state(config, started)
    except BaseException:
        for service in reversed(started):
            stop(service)
        raise
    return parts


def _pipeline_experiment() -> str:
    from hydra import compose, initialize_config_dir

    from pipeline.config import CONFIG_DIR, register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="team"):
        return compose("config").mlflow.experiment


_MARKERS = {"postgres": "postgres", "seaweedfs": "weed", "mlflow": "mlflow"}


def _write_state(config: TeamConfig, services: list[Service]) -> None:
    state = {
        "tracking_uri": f"http://{HOST}:{config.ports['mlflow']}",
        "ports": config.ports,
        "services": {
            s.name: {**asdict(s), "log": str(s.log), "marker": _MARKERS[s.name]} for s in services
        },
    }
    tmp = config.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(config.state_file)


def down(config: TeamConfig) -> list[str]:
    """Stop whatever of the stack runs (MLflow first, PostgreSQL last); the names stopped."""
    live = running(config)
    for name in reversed(SERVICE_ORDER):
        if name in live:
            stop(live[name])
    config.state_file.unlink(missing_ok=True)
    return [name for name in reversed(SERVICE_ORDER) if name in live]


def status(config: TeamConfig) -> dict[str, bool]:
    """{service: running} for the stack under config.root."""
    live = running(config)
    return {name: name in live for name in SERVICE_ORDER}


def _parse_ports(items: list[str]) -> dict[str, int]:
    ports = default_ports()
    for item in items:
        name, _, value = item.partition("=")
        if name not in ports or not value.isdigit() or not 0 < int(value) < 65536:
            raise StackError(f"--port {item}: expected NAME=PORT with NAME one of {sorted(ports)}")
        ports[name] = int(value)
    return ports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.team",
        description="Team mode: PostgreSQL + SeaweedFS S3 + an MLflow server on 127.0.0.1.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the stack's folder")
    parser.add_argument("--port", action="append", default=[], metavar="NAME=PORT",
                        help=f"override a port (defaults: {default_ports()})")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        config = TeamConfig(root=args.root.resolve(), ports=_parse_ports(args.port))
        if args.command == "up":
            parts = up(config)
            print(f"team stack up in {config.root} (logs in {config.logs}); use it with:")
            print(f"export MLFLOW_TRACKING_URI={parts.tracking_uri}")
        elif args.command == "down":
            stopped = down(config)
            print(f"stopped: {', '.join(stopped)}" if stopped else "team stack not running")
        else:
            for name, up_now in status(config).items():
                print(f"{name:10s} {'running' if up_now else 'stopped'}")
            if config.state_file.exists():
                state = json.loads(config.state_file.read_text())
                print(f"MLFLOW_TRACKING_URI={state['tracking_uri']}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
