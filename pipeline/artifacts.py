"""Every artifact the pipeline reads or writes is named here, and written atomically.

Names follow the original plan: `data/raw/options_data_YYYYMMDD.<ext>`,
`data/processed/validated_data_YYYYMMDD.<ext>`, `data/processed/features_YYYYMMDD.<ext>`,
`data/quarantine/quarantine_YYYYMMDD.<ext>`, `logs/<task>_YYYYMMDD.log`, and the small per-day
spot summary `data/processed/spots_YYYYMMDD.<ext>`.

Atomic write: the bytes go to a hidden temporary file in the same folder, are fsynced, then
`os.replace`d over the target, so a crash (even SIGKILL) leaves either the old file or the new one,
never a half-written artifact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

FORMATS = ("parquet", "csv")


def stamp(date: dt.date) -> str:
    return date.strftime("%Y%m%d")


class Artifacts:
    """Paths of every artifact, from the resolved `paths` config and the table format."""

    def __init__(self, paths: Any, data_format: str = "parquet"):
        if data_format not in FORMATS:
            from pipeline.errors import ConfigError

            raise ConfigError(f"data_format must be one of {FORMATS}, got {data_format!r}")
        self.root = Path(paths.root)
        self.raw_dir = Path(paths.raw)
        self.processed_dir = Path(paths.processed)
        self.quarantine_dir = Path(paths.quarantine)
        self.logs_dir = Path(paths.logs)
        self.reports_dir = Path(paths.reports)
        self.checkpoints_dir = Path(paths.checkpoints)
        self.state_dir = Path(paths.state)
        self.ext = data_format

    def raw_quotes(self, date: dt.date) -> Path:
        return self.raw_dir / f"options_data_{stamp(date)}.{self.ext}"

    def validated_quotes(self, date: dt.date) -> Path:
        return self.processed_dir / f"validated_data_{stamp(date)}.{self.ext}"

    def quarantine(self, date: dt.date) -> Path:
        return self.quarantine_dir / f"quarantine_{stamp(date)}.{self.ext}"

    def validation_report(self, date: dt.date) -> Path:
        return self.reports_dir / "validation" / f"validation_report_{stamp(date)}.json"

    def features(self, date: dt.date) -> Path:
        return self.processed_dir / f"features_{stamp(date)}.{self.ext}"

    def task_log(self, task: str, date: dt.date) -> Path:
        return self.logs_dir / f"{task}_{stamp(date)}.log"

    def checkpoint(self, task: str, date: dt.date) -> Path:
        return self.checkpoints_dir / f"{task}_{stamp(date)}.json"

    def spots(self, date: dt.date) -> Path:
        """The day's spot per underlying (validated quotes), feature_engineer's spot history."""
        return self.processed_dir / f"spots_{stamp(date)}.{self.ext}"

    def market_state(self, date: dt.date) -> Path:
        """The day's market state (pipeline.market_state), published by feature_engineer."""
        return self.state_dir / f"market_state_{stamp(date)}.json"

    def train_summary(self, date: dt.date) -> Path:
        """model_train's summary of one training (split, figures, model URI and version)."""
        return self.reports_dir / "model" / f"train_summary_{stamp(date)}.json"

    def model_plot(self, name: str, date: dt.date) -> Path:
        """A model_train figure, e.g. `reports/model/feature_importance_YYYYMMDD.png`."""
        return self.reports_dir / "model" / f"{name}_{stamp(date)}.png"


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside `target`; on success it replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; artifacts are shared files
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_with(target: Path, writer: Callable[[Path], None]) -> Path:
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_frame(df: pd.DataFrame, target: Path) -> Path:
    """Write a table as parquet or csv (by the target's suffix), atomically."""
    target = Path(target)
    if target.suffix == ".parquet":
        # Dictionary-encode text columns only: building dictionaries for every numeric column
        # costs ~20% of the write time of a day's quotes and saves little space.
        text = [str(c) for c in df.columns if df[c].dtype == object]
        return _write_with(target, lambda p: df.to_parquet(p, index=False, use_dictionary=text))
    if target.suffix == ".csv":
        return _write_with(
            target, lambda p: df.to_csv(p, index=False, date_format="%Y-%m-%dT%H:%M:%S")
        )
    raise ValueError(f"unsupported table suffix {target.suffix!r} for {target.name}")


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table written by `write_frame`. CSV datetimes come back as strings (see coerce_raw)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=columns)
    if path.suffix == ".csv":
        return pd.read_csv(path, usecols=columns, low_memory=False)
    raise ValueError(f"unsupported table suffix {path.suffix!r} for {path.name}")


def json_text(obj: Any) -> str:
    """`obj` as the text `write_json` writes."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_json(obj: Any, target: Path) -> Path:
    text = json_text(obj)
    return _write_with(Path(target), lambda p: p.write_text(text))


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (the checkpoint's notion of 'same input')."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
