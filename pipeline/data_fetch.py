"""data_fetch: market quotes for one trading day → `data/raw/options_data_YYYYMMDD.<ext>`.

Sources (config group `data_fetch=synthetic|cboe|file`):
- synthetic: the embedded deterministic market (default; no network);
- cboe: Cboe delayed quotes over HTTP, one GET per symbol with the task's retry policy;
- file: a csv/parquet export in the raw-quotes layout.
Every source goes through the same parser/contract (`pipeline.market.parse`), and the raw file is
written once, atomically, after every symbol has arrived: a failure leaves no partial file.
Idempotent by date: same date, config and inputs → skipped unless `data_fetch.force=true`.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from tqdm import tqdm

from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import stamp, write_frame
from pipeline.errors import ConfigError, DataError
from pipeline.market.calendar import latest_closed_session
from pipeline.market.cboe import CboeClient, CboeFetchError
from pipeline.market.file_source import read_quotes_file
from pipeline.market.parse import chain_to_frame, frames_to_raw
from pipeline.market.synthetic import generate_payload, symbols_of
from pipeline.runtime import TaskContext, TaskSpec, execute, resolve_date

SOURCES = ("synthetic", "cboe", "file")


@dataclass
class FetchLog:
    """What the fetch saw, for the log and MLflow: status codes and attempts per symbol."""

    status_codes: Counter = field(default_factory=Counter)
    attempts: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def source_symbols(cfg: DictConfig) -> list[str]:
    """The symbols to fetch: `data_fetch.symbols`, else every symbol the source knows."""
    if cfg.symbols:
        return list(cfg.symbols)
    if cfg.source == "synthetic":
        return symbols_of(cfg.synthetic)  # the configured list, or n_underlyings of them
    if cfg.source == "cboe":
        return list(cfg.cboe.symbols)
    return []  # file: whatever the file holds


def file_path(cfg: DictConfig, date: dt.date) -> Path:
    return Path(cfg.file.path.replace("{date}", stamp(date)))


def fetch_quotes(
    cfg: DictConfig, market: DictConfig, retry_policy, date: dt.date, flog: FetchLog
) -> pd.DataFrame:
    """Quotes of every requested symbol for `date` as one raw table (the core of the task)."""
    if cfg.source not in SOURCES:
        raise ConfigError(f"data_fetch.source={cfg.source!r}; expected one of {SOURCES}")
    symbols = source_symbols(cfg)
    if cfg.source == "file":
        raw = read_quotes_file(file_path(cfg, date))
        if symbols:
            raw = raw[raw["underlying"].isin(symbols)]
        flog.rows = raw["underlying"].value_counts().to_dict()
        return raw.reset_index(drop=True)

    client = None
    if cfg.source == "cboe":
        client = CboeClient(
            cfg.cboe.base_url,
            timeout_s=cfg.cboe.timeout_s,
            policy=retry_policy,
            user_agent=cfg.cboe.user_agent,
        )
    frames = []
    with _gc_paused():
        for symbol in tqdm(
            symbols, desc=f"data_fetch {date}", unit="symbol", disable=None, leave=False
        ):
            if client is None:
                payload = generate_payload(symbol, date, cfg.synthetic, market)
                flog.status_codes["synthetic"] += 1
                flog.attempts += 1
            else:
                try:
                    result = client.fetch_chain(symbol)
                except CboeFetchError as exc:
                    flog.status_codes.update(str(c) for c in getattr(exc, "status_codes", []))
                    raise
                flog.status_codes.update(str(c) for c in result.status_codes)
                flog.attempts += result.attempts
                payload = result.payload
            frame = chain_to_frame(payload)
            flog.rows[symbol] = len(frame)
            frames.append(frame)
    return frames_to_raw(frames)


@contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector. A day's payloads are ~20k contract dicts (plus as
    many parsed symbols); allocating them triggers collections that walk the whole heap (~70 ms
    a day on average once MLflow is loaded) and find nothing: these objects form no reference
    cycles, so reference counting frees them as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_quote_date(raw: pd.DataFrame, date: dt.date, source: str) -> None:
    # distinct days first: a date per row costs ~0.2 s a day; cache=False: pandas' cache check
    # walks every value (~10 ms) and saves nothing when the column already holds datetimes
    days = pd.to_datetime(raw["quote_date"], cache=False).dropna().dt.normalize().unique()
    dates = sorted({d.date() for d in days})
    if dates != [date]:
        hint = " (Cboe delayed quotes only serve the current session)" if source == "cboe" else ""
        raise DataError(
            f"data_fetch for {date} received quotes dated {[str(d) for d in dates]}{hint}"
        )


def run(ctx: TaskContext) -> None:
    cfg = ctx.task_cfg
    flog = FetchLog()
    raw = fetch_quotes(cfg, ctx.cfg.market, ctx.cfg.retry.data_fetch, ctx.date, flog)
    if raw.empty:
        raise DataError(f"data_fetch for {ctx.date}: the {cfg.source} source returned no quotes")
    check_quote_date(raw, ctx.date, cfg.source)
    target = write_frame(raw, ctx.artifacts.raw_quotes(ctx.date))
    for symbol, n in flog.rows.items():
        ctx.log.info("fetched %s: %d rows", symbol, n)
    ctx.log.info(
        "rows fetched: %d from %d symbols (%s) → %s; response codes %s; attempts %d",
        len(raw),
        len(flog.rows),
        cfg.source,
        target.name,
        dict(flog.status_codes),
        flog.attempts,
    )
    ctx.metric("rows_fetched", len(raw))
    ctx.metric("symbols", len(flog.rows))
    ctx.metric(
        "fetch_retries", max(flog.attempts - len(flog.rows), 0) if cfg.source == "cboe" else 0
    )
    for code, n in flog.status_codes.items():
        ctx.metric(f"http_{code}", n)


def _inputs(ctx: TaskContext) -> list[Path]:
    cfg = ctx.task_cfg
    if cfg.source == "file":
        path = file_path(cfg, ctx.date)
        if not path.exists():
            raise DataError(f"data_fetch: input file {path} does not exist")
        return [path]
    return []


SPEC = TaskSpec(
    name="data_fetch",
    run=run,
    inputs=_inputs,
    outputs=lambda ctx: [ctx.artifacts.raw_quotes(ctx.date)],
)


def task_date(cfg: DictConfig) -> dt.date:
    """Cboe serves the current session, so its default date is the latest session that closed
    (by its real close: early closes included)."""
    if cfg.data_fetch.date is None and cfg.data_fetch.source == "cboe":
        return latest_closed_session()
    return resolve_date(cfg.data_fetch.date, "data_fetch.date")


def main(cfg: DictConfig) -> None:
    execute(SPEC, cfg, task_date(cfg))


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
