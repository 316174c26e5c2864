"""data_validate: raw quotes → validated quotes + quarantine + validation report.

Outputs for date D:
- `data/processed/validated_data_D.<ext>`: rows that pass every rule;
- `data/processed/spots_D.<ext>`: their spot per underlying (feature_engineer's spot history);
- `data/quarantine/quarantine_D.<ext>`: the others, with a `reason` column (rule names, `;`-joined);
- `reports/validation/validation_report_D.json`: per rule passed/failed counts, null rate per column.
A schema change (missing/renamed column, changed type), a null-rate spike in a required column, a
stale chain or too many bad rows halts: DataError, non-zero exit, and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import task_hooks  # noqa: F401 (registers the alert and metrics hooks)
from pipeline.artifacts import read_frame, write_frame, write_json
from pipeline.errors import DataError
from pipeline.market.parse import coerce_raw
from pipeline.runtime import TaskContext, TaskSpec, execute
from pipeline.schema import REQUIRED, check_columns, failing_rows, quote_rules, rule_names
from pipeline.spot_history import spot_summary


@dataclass(frozen=True)
class Validation:
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict


def validate_quotes(raw: pd.DataFrame, cfg, market, date) -> Validation:
    """Split raw quotes into valid and quarantined rows; raise DataError when the day must halt."""
    extra = check_columns(raw)
    raw = raw.reset_index(drop=True)
    null_rates = {c: float(v) for c, v in raw.isna().mean().items()} if len(raw) else {}
    spikes = {
        c: round(null_rates[c], 4) for c in REQUIRED if null_rates.get(c, 0.0) > cfg.max_null_rate
    }
    if spikes:
        raise DataError(
            f"null-rate spike in required columns {spikes} (max_null_rate={cfg.max_null_rate})"
        )
    # cache=False: pandas' cache check walks all 20k values, for nothing on a datetime column
    quote_dates = pd.to_datetime(raw["quote_date"], cache=False).dropna()
    age = (pd.Timestamp(date) - quote_dates.min()).days if len(quote_dates) else None
    if age is None or age > cfg.max_quote_age_days:
        raise DataError(
            f"stale chain for {date}: newest quotes are {age} days old "
            f"(max_quote_age_days={cfg.max_quote_age_days})"
        )

    schema = quote_rules(
        market.rate, market.dividend_yields, market.default_dividend_yield, cfg.arbitrage_tolerance
    )
    failures = failing_rows(raw, schema)
    reasons = pd.Series("", index=raw.index, dtype=object)
    for name, idx in failures.items():  # in rule order, so reasons always read the same way
        reasons.loc[idx] += ";" + name
    bad = reasons != ""
    # a zero bid alone is the market saying "worthless", not a defect: such rows are
    # quarantined (no usable mid) but do not count towards the share that halts the day (a
    # chain listed twice as wide after a shock is ~30% zero-bid wings)
    zero_bid_only = reasons == ";bid_quoted"
    n = len(raw)
    report = {
        "date": str(date),
        "rows_in": n,
        "rows_valid": int((~bad).sum()),
        "rows_quarantined": int(bad.sum()),
        "zero_bid_rows": int(zero_bid_only.sum()),
        "bad_row_share": float((bad & ~zero_bid_only).mean()) if n else 0.0,
        "rules": {
            name: {"passed": n - len(failures.get(name, [])), "failed": len(failures.get(name, []))}
            for name in rule_names(schema)
        },
        "null_rate": null_rates,
        "unexpected_columns": extra,
    }
    if report["bad_row_share"] > cfg.max_bad_row_share:
        raise DataError(
            f"too many bad rows on {date}: {report['rows_quarantined'] - report['zero_bid_rows']}/{n} "
            f"({report['bad_row_share']:.1%} > max_bad_row_share={cfg.max_bad_row_share:.0%}); "
            f"top rules: {_top_rules(report)}"
        )
    quarantine = raw[bad].assign(reason=reasons[bad].str.lstrip(";"))
    return Validation(raw[~bad].reset_index(drop=True), quarantine.reset_index(drop=True), report)


def _top_rules(report: dict, k: int = 3) -> dict[str, int]:
    ranked = sorted(report["rules"].items(), key=lambda kv: -kv[1]["failed"])
    return {name: r["failed"] for name, r in ranked[:k] if r["failed"]}


def load_raw(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(
            f"no raw quotes for this date: {path} does not exist (run data_fetch first)"
        )
    df = read_frame(path)
    return coerce_raw(df) if path.suffix == ".csv" else df  # csv loses dtypes; parquet keeps them


def run(ctx: TaskContext) -> None:
    cfg = ctx.task_cfg
    raw = load_raw(ctx.artifacts.raw_quotes(ctx.date))
    try:
        result = validate_quotes(raw, cfg, ctx.cfg.market, ctx.date)
    except DataError as exc:
        ctx.log.error("halting the pipeline for %s: %s", ctx.date, exc)
        raise
    report = result.report
    for name, r in report["rules"].items():
        ctx.log.info("rule %-26s passed %6d failed %6d", name, r["passed"], r["failed"])
    high_nulls = {c: round(v, 4) for c, v in report["null_rate"].items() if v > 0}
    ctx.log.info("null rates (non-zero): %s", high_nulls)
    if report["unexpected_columns"]:
        ctx.log.warning("unexpected columns kept: %s", report["unexpected_columns"])
    write_frame(result.valid, ctx.artifacts.validated_quotes(ctx.date))
    write_frame(spot_summary(result.valid), ctx.artifacts.spots(ctx.date))
    write_frame(result.quarantine, ctx.artifacts.quarantine(ctx.date))
    report_path = write_json(report, ctx.artifacts.validation_report(ctx.date))
    ctx.reports.append(report_path)
    ctx.log.info(
        "validated %d rows, quarantined %d (%.2f%%)",
        report["rows_valid"],
        report["rows_quarantined"],
        100 * report["bad_row_share"],
    )
    ctx.metric("rows_in", report["rows_in"])
    ctx.metric("rows_out", report["rows_valid"])
    ctx.metric("rows_quarantined", report["rows_quarantined"])
    ctx.metric("bad_row_share", report["bad_row_share"])
    for name, r in report["rules"].items():
        ctx.metric(f"rule_failed.{name}", r["failed"])
    for col in REQUIRED:
        ctx.metric(f"null_rate.{col}", report["null_rate"].get(col, 0.0))


SPEC = TaskSpec(
    name="data_validate",
    run=run,
    inputs=lambda ctx: [p for p in [ctx.artifacts.raw_quotes(ctx.date)] if p.exists()],
    outputs=lambda ctx: [
        ctx.artifacts.validated_quotes(ctx.date),
        ctx.artifacts.quarantine(ctx.date),
        ctx.artifacts.validation_report(ctx.date),
        ctx.artifacts.spots(ctx.date),
    ],
)


def main(cfg) -> None:
    execute(SPEC, cfg)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
