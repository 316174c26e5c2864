from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.artifacts import (
    Artifacts,
    atomic_path,
    file_digest,
    read_frame,
    write_frame,
    write_json,
)
from pipeline.errors import ConfigError


def test_names_follow_the_original_plan(tmp_path):
    keys = ["root", "raw", "processed", "quarantine", "logs", "reports", "checkpoints", "state"]
    paths = OmegaConf.create({k: str(tmp_path / k) for k in keys})
    a = Artifacts(paths, "csv")
    day = dt.date(2026, 3, 2)
    assert a.raw_quotes(day).name == "options_data_20260302.csv"
    assert a.validated_quotes(day).name == "validated_data_20260302.csv"
    assert a.features(day).name == "features_20260302.csv"
    assert a.task_log("data_fetch", day).name == "data_fetch_20260302.log"
    # the day's market state is JSON whatever the data format, under paths.state
    assert a.state_dir == tmp_path / "state"
    assert a.market_state(day) == tmp_path / "state" / "market_state_20260302.json"
    assert Artifacts(paths, "parquet").market_state(day).name == "market_state_20260302.json"
    with pytest.raises(ConfigError, match="data_format"):
        Artifacts(paths, "xlsx")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_frame_round_trips_and_leaves_no_temp_files(tmp_path, suffix):
    df = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]})
    target = write_frame(df, tmp_path / f"t{suffix}")
    pd.testing.assert_frame_equal(read_frame(target), df)
    assert [p.name for p in tmp_path.iterdir()] == [f"t{suffix}"]


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    write_json({"v": 1}, target)
    before = file_digest(target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("crash mid-write")
    assert file_digest(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_kill_during_write_never_leaves_a_corrupt_artifact(tmp_path):
    """SIGKILL a process that rewrites a large parquet in a loop: the target is always readable."""
    target = tmp_path / "big.parquet"
    script = textwrap.dedent(f"""
        import numpy as np, pandas as pd, sys
        from pipeline.artifacts import write_frame
        rng = np.random.default_rng(0)
        i = 0
        while True:
            df = pd.DataFrame(rng.normal(size=(400_000, 8)), columns=list("abcdefgh")).assign(gen=i)
            write_frame(df, {str(target)!r})
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"  # one complete write exists
        time.sleep(0.15)  # now it is (very likely) in the middle of the next write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    df = read_frame(target)
    assert len(df) == 400_000 and df["gen"].nunique() == 1
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    # a killed writer may leave its hidden temp file, never a half-written target
    assert all(p.name.startswith(".big.parquet.") and p.name.endswith(".tmp") for p in leftovers)
