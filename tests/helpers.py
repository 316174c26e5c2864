"""Helpers for tests that run the project's commands in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
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
