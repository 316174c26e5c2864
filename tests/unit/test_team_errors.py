"""Team mode's bad input (stack.team): a port taken, a data folder of another PostgreSQL version,
a service that exits or does not answer: one line naming the problem, nothing left running."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stack import postgres, team
from stack.procs import StackError, alive, processes_in, start, stop, wait_until


def free_ports(names) -> dict[str, int]:
    """A distinct free 127.0.0.1 port for each name."""
    sockets = []
    try:
        for _ in names:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return {name: s.getsockname()[1] for name, s in zip(names, sockets, strict=True)}
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def config(tmp_path) -> team.TeamConfig:
    return team.TeamConfig(root=tmp_path / "team", ports=free_ports(team.default_ports()))


def test_a_taken_port_is_named_and_nothing_starts(config, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", config.ports["mlflow"]))
        holder.listen()
        with pytest.raises(StackError, match=rf"port {config.ports['mlflow']} \(mlflow\) on "):
            team.up(config)
        args = ["up", "--root", str(config.root)]
        args += [f"--port={name}={port}" for name, port in config.ports.items()]
        assert team.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: port ") and "already in use" in err[0]
    assert not config.state_file.exists() and processes_in(config.root) == []


def test_a_cluster_of_another_postgresql_version_is_refused(config):
    data = config.root / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("9.6\n")
    with pytest.raises(StackError, match=r"holds a PostgreSQL 9\.6 cluster but this machine has"):
        team.up(config)
    assert (data / "PG_VERSION").read_text() == "9.6\n"  # left as it was
    assert not config.state_file.exists() and processes_in(config.root) == []


def _server_root(tmp_path: Path, *versions: str) -> Path:
    for version in versions:
        (tmp_path / "pg" / version / "bin").mkdir(parents=True)
        (tmp_path / "pg" / version / "bin" / "postgres").touch()
    return tmp_path / "pg"


def test_binaries_follow_the_clusters_version_else_the_newest(tmp_path):
    servers = _server_root(tmp_path, "9.6", "15", "16")
    data = tmp_path / "data"
    assert postgres.binaries(data, servers) == servers / "16" / "bin"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    assert postgres.binaries(data, servers) == servers / "15" / "bin"
    (data / "PG_VERSION").write_text("14\n")
    with pytest.raises(StackError, match="PostgreSQL 14 cluster but this machine has PostgreSQL "
                       "9.6, 15, 16"):  # fmt: skip
        postgres.binaries(data, servers)
    with pytest.raises(StackError, match="no PostgreSQL server found"):
        postgres.binaries(data, tmp_path / "none")


def test_a_folder_that_is_no_cluster_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    with pytest.raises(StackError, match="not empty but holds no PostgreSQL cluster"):
        postgres.binaries(data, _server_root(tmp_path, "15"))


@pytest.mark.parametrize("item", ["mlflow", "mlflow=x", "nosuch=5000", "mlflow=70000"])
def test_a_bad_port_option_names_it(item, capsys):
    assert team.main(["status", "--port", item]) == 2
    assert capsys.readouterr().err.startswith(f"error: --port {item}: expected NAME=PORT")


@pytest.mark.integration
def test_a_service_that_never_answers_times_out_and_is_stopped(tmp_path):
    service = start("sleeper", ["sleep", "60"], log=tmp_path / "sleeper.log", cwd=tmp_path)
    with pytest.raises(StackError, match=r"^sleeper did not answer its port within 0\.5 s"):
        wait_until(service, lambda: False, "its port", timeout_s=0.5)
    stop(service, timeout_s=5)
    assert not alive(service.pid) and processes_in(tmp_path) == []


@pytest.mark.integration
def test_a_service_that_exits_at_start_up_is_named_with_its_last_log_line(tmp_path):
    cmd = ["sh", "-c", "echo starting; echo 'FATAL: bad config' >&2; exit 3"]
    service = start("broken", cmd, log=tmp_path / "broken.log", cwd=tmp_path)
    with pytest.raises(StackError, match=r"^broken exited during start-up .*: FATAL: bad config$"):
        wait_until(service, lambda: False, "its port", timeout_s=30)
    assert processes_in(tmp_path) == []
