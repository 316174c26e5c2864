"""A SIGKILLed main: with the local executor it has no child process to leave behind, and the
next main marks the runs the killed process left RUNNING as FAILED, with a note naming the
process. Runs of live processes, of other hosts, or that name no process are left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from pipeline.config import REPO_ROOT
from pipeline.runtime import (
    HOST_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    configure_tracking,
    fail_abandoned_runs,
)
from tests.conftest import TINY_MARKET, compose_config

pytestmark = pytest.mark.integration
EXPERIMENT = "options-pricing"
TIMEOUT_S = 300  # generous: a condition awaited, not a duration asserted


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout_s:g}s for {what}")
        time.sleep(0.2)
    return value


def gone(pid: int) -> bool:
    """The process has ended: no such pid, or a zombie its parent has not collected."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] not in "ZX":  # stat fields 4 (ppid) and 3 (state)
            found.add(int(text.split(" ", 1)[0]))
    return found


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def _runs(client: mlflow.MlflowClient) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id])


# -- main killed while it fetches ----------------------------------------------------------------
@pytest.fixture
def silent_cboe():
    """A Cboe endpoint that accepts connections and never answers: a fetch from it waits, busy,
    until its process ends."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/api/global/delayed_quotes/options"


def _main(root: Path, *overrides: str, log: Path) -> subprocess.Popen:
    """`python -m pipeline.main` rooted at `root` (its tracking store: root/mlflow.db)."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.main", f"paths.root={root}", *overrides],
            cwd=REPO_ROOT,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _fetching(client: mlflow.MlflowClient) -> list:
    return [
        r
        for r in _runs(client)
        if r.data.tags.get("pipeline.task") == "data_fetch" and r.info.status == "RUNNING"
    ]


@pytest.mark.slow
def test_killed_local_main_leaves_no_process_and_the_next_main_fails_its_runs(
    tmp_path, silent_cboe, restore_tracking
):
    root = tmp_path / "root"
    # the store exists before the processes share it (two first openers would both migrate it)
    configure_tracking(compose_config([f"paths.root={root}"]))
    client = mlflow.MlflowClient()
    main = _main(
        root,
        "data_fetch=cboe",
        f"data_fetch.cboe.base_url={silent_cboe}",
        "data_fetch.cboe.symbols=[SPY]",
        "data_fetch.cboe.timeout_s=3600",
        "main.tasks=[data_fetch,data_validate,feature_engineer]",
        "main.end_date=2026-03-05",
        "main.days=4",
        "main.executor=local",
        log=tmp_path / "killed_main.log",
    )
    spawned: set[int] = set()
    try:
        # busy: main inside the first day's fetch (its run started, the fetch waiting for Cboe)
        (busy,) = wait_until(lambda: _fetching(client), "main fetching")
        assert int(busy.data.tags[PID_TAG]) == main.pid  # the fetch runs in main itself
        spawned = children(main.pid)
        assert spawned == set()  # and main started no process: none can outlive it
        main.send_signal(signal.SIGKILL)
        main.wait(TIMEOUT_S)
    finally:  # whatever happened, no process of this test outlives it
        spawned |= children(main.pid) if main.poll() is None else set()
        main.kill()
        main.wait(TIMEOUT_S)
        for pid in spawned:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)

    left = {r.info.run_id: r for r in _runs(client) if r.info.status == "RUNNING"}
    assert {int(r.data.tags[PID_TAG]) for r in left.values()} == {main.pid}
    assert len(left) == 2  # main's and the fetch

    # the next main, on another day, source and market
    again = _main(
        root,
        *TINY_MARKET,
        "main.tasks=[data_fetch]",
        "main.end_date=2026-03-05",
        "main.days=1",
        log=tmp_path / "next_main.log",
    )
    assert again.wait(TIMEOUT_S) == 0, (tmp_path / "next_main.log").read_text()[-3000:]
    host = socket.gethostname()
    for run_id, before in left.items():
        run = client.get_run(run_id)
        assert run.info.status == "FAILED"
        note = run.data.tags["mlflow.note.content"]
        assert f"process {before.data.tags[PID_TAG]} on {host}" in note and "Found at" in note
        assert run.data.tags["pipeline.error"] == note
        assert run.data.tags["pipeline.status"] == "failed"
    assert {r.info.status for r in _runs(client) if r.info.run_id not in left} == {"FINISHED"}
    assert "marked FAILED" in (tmp_path / "next_main.log").read_text()


# -- which runs are abandoned --------------------------------------------------------------------
VICTIM = """
import sys
import mlflow
from pipeline.runtime import start_run

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment(sys.argv[2])
with start_run("victim", {"pipeline.task": "victim"}) as run:
    print(run.info.run_id, flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


def _victim(uri: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", VICTIM, uri, EXPERIMENT],
        cwd=REPO_ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_only_runs_of_gone_processes_of_this_host_are_failed(tracking):
    client = mlflow.MlflowClient()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    killed, alive = _victim(tracking), _victim(tracking)
    try:
        killed_run, alive_run = killed.stdout.readline().strip(), alive.stdout.readline().strip()
        killed.kill()
        killed.wait(TIMEOUT_S)
        me = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        reused_pid = client.create_run(  # this pid, but the run of an earlier process with it
            experiment_id, tags={**me, PROCESS_START_TAG: "another-boot:1"}
        ).info.run_id
        elsewhere = client.create_run(  # a process with this pid may run on the other host
            experiment_id, tags={**me, HOST_TAG: "elsewhere.invalid", PID_TAG: str(killed.pid)}
        ).info.run_id
        unnamed = client.create_run(experiment_id).info.run_id

        failed = fail_abandoned_runs(experiment_id)

        assert {r.info.run_id for r in failed} == {killed_run, reused_pid}
        status = {r: client.get_run(r).info.status for r in (alive_run, elsewhere, unnamed)}
        assert set(status.values()) == {"RUNNING"}
        assert client.get_run(killed_run).info.status == "FAILED"
    finally:
        alive.stdin.close()  # it ends its run and exits
        assert alive.wait(TIMEOUT_S) == 0
    assert client.get_run(alive_run).info.status == "FINISHED"
