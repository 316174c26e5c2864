"""PostgreSQL for the team stack: Debian's server binaries (/usr/lib/postgresql/<major>/bin),
a cluster initialised in the project folder, run as the `postgres` user when we are root, listening
on 127.0.0.1 only (no Unix socket), with a password-protected role and database for MLflow."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack.procs import HOST, Service, StackError, start, wait_until

SERVER_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"  # PostgreSQL refuses to run as root
SUPERUSER = "postgres"


@dataclass(frozen=True)
class Postgres:
    """Where the cluster lives and how to reach it."""

    folder: Path  # <root>/postgres: owned by the postgres user when we are root
    port: int
    password: str  # the superuser's and (below) the MLflow role's, from the stack's secrets
    db: str = "mlflow"
    role: str = "mlflow"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def uri(self, with_password: bool = False) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql+psycopg2://{self.role}{secret}@{HOST}:{self.port}/{self.db}"


def installed_versions(server_root: Path = SERVER_ROOT) -> dict[str, Path]:
    """{major version: bin folder} of every PostgreSQL server installed the Debian way."""
    found = {}
    for postgres in server_root.glob("*/bin/postgres"):
        found[postgres.parent.parent.name] = postgres.parent
    return found


def binaries(data: Path, server_root: Path = SERVER_ROOT) -> Path:
    """The bin folder to run `data` with: the one matching its PG_VERSION when it holds a cluster,
    else the newest installed. StackError when none is installed, when the folder is something
    else, or when it holds a cluster of a version this machine does not have."""
    versions = installed_versions(server_root)
    if not versions:
        raise StackError(
            f"no PostgreSQL server found under {server_root}/*/bin "
            "(install Debian's postgresql package)"
        )
    marker = data / "PG_VERSION"
    if marker.exists():
        version = marker.read_text().strip()
        if version not in versions:
            have = ", ".join(sorted(versions, key=_major))
            raise StackError(
                f"{data} holds a PostgreSQL {version} cluster but this machine has PostgreSQL "
                f"{have}: move the folder away (or pg_upgrade it) and run team-up again"
            )
        return versions[version]
    if data.exists() and any(data.iterdir()):
        raise StackError(
            f"{data} is not empty but holds no PostgreSQL cluster (no PG_VERSION): move it away"
        )
    return versions[max(versions, key=_major)]


def _major(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return -1.0


def _run_as() -> str | None:
    """The user to run the server as: postgres when we are root, else ourselves."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def prepare(pg: Postgres) -> None:
    """Create the cluster's folder, owned by the postgres user when we are root, and check that
    user can reach it (every folder above it must be traversable)."""
    pg.folder.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    if user is None:
        pg.folder.chmod(0o700)
        return
    shutil.chown(pg.folder, user, user)
    pg.folder.chmod(0o700)
    probe = subprocess.run(["test", "-w", str(pg.folder)], user=user, group=user, extra_groups=[])
    if probe.returncode != 0:
        raise StackError(
            f"the {user} user cannot reach {pg.folder}: a folder above it is not traversable "
            "for others (chmod o+x it, or put the team folder elsewhere)"
        )


def initdb(pg: Postgres, bin_dir: Path) -> bool:
    """Initialise the cluster unless it exists; True when it was created now. The superuser's
    password comes through a file readable by the server's user only, removed afterwards."""
    if (pg.data / "PG_VERSION").exists():
        return False
    user = _run_as()
    pwfile = pg.folder / "initdb.pw"
    pwfile.write_text(pg.password + "\n")
    pwfile.chmod(0o600)
    if user:
        shutil.chown(pwfile, user, user)
    extra = {"user": user, "group": user, "extra_groups": []} if user else {}
    try:
        done = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(pg.data), "-U", SUPERUSER,
             "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True, cwd=pg.folder, **extra,
        )  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        shutil.rmtree(pg.data, ignore_errors=True)  # a half-initialised cluster is no use
        raise StackError(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
    return True


def start_server(
    pg: Postgres, bin_dir: Path, log: Path, timeout_s: float, started: list[Service]
) -> None:
    """Start the server on 127.0.0.1:<port> (SIGINT stops it: a fast shutdown), append it to
    `started`, and wait until it accepts the superuser's connection."""
    service = start(
        "postgres",
        [str(bin_dir / "postgres"), "-D", str(pg.data), "-p", str(pg.port),
         "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories="],
        log=log, cwd=pg.folder, user=_run_as(), stop_signal=signal.SIGINT,
    )  # fmt: skip
    started.append(service)
    wait_until(service, lambda: _connect(pg, SUPERUSER, "postgres").close() is None,
               f"on {HOST}:{pg.port}", timeout_s)  # fmt: skip


def _connect(pg: Postgres, user: str, db: str):
    import psycopg2

    return psycopg2.connect(
        host=HOST, port=pg.port, user=user, password=pg.password, dbname=db, connect_timeout=3
    )


def ensure_database(pg: Postgres) -> None:
    """The MLflow role (a login, not a superuser) and its database, created when missing."""
    from psycopg2 import sql

    conn = _connect(pg, SUPERUSER, "postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.role,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(pg.role)),
                    (pg.password,),
                )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.db,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(pg.db), sql.Identifier(pg.role)
                    )
                )
    finally:
        conn.close()


def connect(pg: Postgres):
    """A psycopg2 connection to the MLflow database as the MLflow role."""
    return _connect(pg, pg.role, pg.db)
