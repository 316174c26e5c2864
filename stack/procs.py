"""Background services for the team stack: start one detached in its own session, wait until it
answers, stop it and everything it forked. Shared by the PostgreSQL, SeaweedFS and MLflow parts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


class StackError(Exception):
    """A problem the team stack reports as one line (exit code 2)."""


@dataclass(frozen=True)
class Service:
    """A started service: its name, the pid of its session leader, the log it writes."""

    name: str
    pid: int
    log: Path
    stop_signal: int = signal.SIGTERM


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something already listens on host:port (or the port cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def start(
    name: str,
    cmd: list[str],
    log: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Service:
    """Run `cmd` detached (a new session, so it outlives this process and can be stopped with all
    its children), stdout and stderr appended to `log`, as `user` when given (we are root)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        extra = {"user": user, "group": user, "extra_groups": []} if user else {}
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **extra,
        )
    return Service(name, proc.pid, log, stop_signal)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect `pid`'s exit status if it is our child (else nothing to do)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def last_line(log: Path) -> str:
    """The log's last non-empty line, for an error message."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line), "")


def wait_until(service: Service, ready: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Poll `ready()` until it is true; StackError when the service exits or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(service.pid)
        if not alive(service.pid):
            tail = last_line(service.log)
            raise StackError(
                f"{service.name} exited during start-up (see {service.log})"
                + (f": {tail}" if tail else "")
            )
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() >= deadline:
            raise StackError(
                f"{service.name} did not answer {what} within {timeout_s:g} s (see {service.log})"
            )
        time.sleep(0.25)


def stop(service: Service, timeout_s: float = 30.0) -> None:
    """Send the service's stop signal to its whole session (process group), wait up to
    `timeout_s` for the leader to exit, then kill the group."""
    _signal_group(service.pid, service.stop_signal)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(service.pid)
        if not alive(service.pid):
            break
        time.sleep(0.1)
    _signal_group(service.pid, signal.SIGKILL)  # stragglers (workers) of the group, if any
    _reap(service.pid)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def command_line(pid: int) -> list[str]:
    """The process's argv, empty when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def processes_in(folder: Path) -> list[int]:
    """Pids of the processes whose working folder is `folder` or below it (every service of the
    stack runs in its own folder under the stack's root, and its children inherit it)."""
    folder = folder.resolve()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue  # gone, a zombie, or not ours to see
        if cwd == folder or folder in cwd.parents:
            found.append(int(proc.name))
    return found
