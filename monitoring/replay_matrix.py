"""Replay matrix: every market-replay scenario (configs/replay) × seed, one table of the goals.

    python -m monitoring.replay_matrix [scenarios=[shock_early,crush]] [seeds=[1,2]] [force=true]
                                       [keep=false] [any Hydra override, e.g. replay.days=25]
    (make replay-matrix ARGS='...')

`scenarios` (default: every file of configs/replay but default.yaml, whose change the shorter
variance_x4 makes on day 20 of 40) and `seeds` (default: the config's `seed`) are the matrix's
own arguments; every other argument is a Hydra override applied to each run. Each run is one
`monitoring.replay` in its own scratch root, `outputs/replay-matrix/<scenario>-seed<n>`, one
after the other; its summary lands in `reports/replay/matrix/<scenario>-seed<n>/` (.json, .md).
A scratch root takes ~0.9 GB (25 days); `keep=false` removes each once its summary is saved.

**Resume.** A run whose summary already exists there, made from the same configuration (a
fingerprint of the whole resolved config, the scenario's name and scratch root left out), is
not run again (`force=true` re-runs it): an interrupted matrix picks up where it stopped.
Scenarios that compose to the same configuration (warmup_60 and variance_x4) share one run.

**The table**, `reports/replay/replay_matrix.json` and `.md`: per scenario × seed, each goal met or
missed with its figure: the retrain within 1 trading day of the change, Production's skill (IV
RMSE / previous-day-IV RMSE) over the 20 days after the change within 10% of before, fewer than 2
manual interventions a week, and the original plan's other metrics. A run that could not run
(e.g. a scenario's change the synthetic market does not know yet) is a row with its error.
Exit 1 when any goal is missed or any run failed; the table is written first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from monitoring.replay import MARKER, change_text, period, replay_config, write_summary
from pipeline.artifacts import write_json
from pipeline.config import CONFIG_DIR
from pipeline.errors import ConfigError

# a child of monitoring.replay: the replay's console filter shows the matrix's progress too
log = logging.getLogger("monitoring.replay.matrix")
SCRATCH = Path("outputs") / "replay-matrix"  # under paths.root: one scratch root per run
REPORT_DIR = Path("replay")  # under paths.reports
# the goals the table puts first, each with its column title; the others are the plan's metrics
HEADLINE = {
    "retrain_triggered_by_the_shock_within_1_day": "retrain ≤ 1 day after the change",
    "production_skill_after_the_shock_within_10pct_of_before": "skill after vs before (≤ +10%)",
    "under_2_manual_interventions_a_week": "interventions (< 2 a week)",
}
MATRIX_KEYS = ("scenarios", "seeds", "force", "keep")


# -- arguments ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatrixArgs:
    """The matrix's own arguments and the Hydra overrides for every run."""

    scenarios: tuple[str, ...]
    seeds: tuple[int, ...] = ()  # empty: the config's seed
    force: bool = False
    overrides: tuple[str, ...] = field(default_factory=tuple)
    keep: bool = True  # keep each run's scratch root (False: removed once its summary is saved)


def available_scenarios(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Every scenario of `config_dir`/replay but `default`, sorted."""
    return sorted(p.stem for p in (config_dir / "replay").glob("*.yaml") if p.stem != "default")


def _as_list(text: str) -> list:
    value = yaml.safe_load(text)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_args(argv: Sequence[str], known: Sequence[str] | None = None) -> MatrixArgs:
    """`scenarios=[a,b]`, `seeds=[1,2]`, `force=true`, `keep=false` → the matrix's arguments; any
    other argument is kept as a Hydra override. ConfigError on an unknown scenario, a bad seed or
    a flag that is not true/false."""
    known = list(available_scenarios() if known is None else known)
    mine, overrides = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in MATRIX_KEYS:
            mine[key] = value
        else:
            overrides.append(arg)
    scenarios = [str(s) for s in _as_list(mine.get("scenarios", ""))] or known
    unknown = [s for s in scenarios if s not in known and s != "default"]
    if unknown:
        raise ConfigError(f"scenarios={unknown} unknown; configs/replay has {known} (and default)")
    seeds = _as_list(mine.get("seeds", ""))
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds={mine.get('seeds')}: expected a list of integers, e.g. [1,2]")
    force, keep = _flag(mine, "force", False), _flag(mine, "keep", True)
    return MatrixArgs(tuple(dict.fromkeys(scenarios)), tuple(dict.fromkeys(seeds)), force,
                      tuple(overrides), keep)  # fmt: skip


def _flag(given: dict[str, str], key: str, default: bool) -> bool:
    value = yaml.safe_load(given[key]) if key in given else default
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={given.get(key)}: expected true or false")
    return value


# -- the plan -------------------------------------------------------------------------------------
@dataclass
class Run:
    """One scenario × seed: its config, where it runs and reports, its fingerprint."""

    scenario: str
    seed: int
    cfg: DictConfig | None
    fingerprint: str | None
    error: str | None = None  # the config could not be prepared: the run cannot happen

    @property
    def key(self) -> str:
        return f"{self.scenario}-seed{self.seed}"


def fingerprint(cfg: DictConfig) -> str:
    """sha256 of the resolved config without the replay's name and scratch root: two runs with
    the same fingerprint replay the same market with the same settings."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data["replay"] = {k: v for k, v in data["replay"].items() if k not in ("name", "root")}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def plan(args: MatrixArgs, compose: Callable[[list[str]], DictConfig]) -> list[Run]:
    """The runs, scenario-major, each config composed and checked before any runs (a scenario
    whose change the market cannot make becomes a Run with its error)."""
    runs = []
    for scenario in args.scenarios:
        for wanted in args.seeds or (None,):
            seeded = [f"seed={wanted}"] if wanted is not None else []
            cfg = compose([f"replay={scenario}", *seeded, *args.overrides])
            seed = int(cfg.seed)
            root = Path(cfg.paths.root) / SCRATCH / f"{scenario}-seed{seed}"
            OmegaConf.update(cfg, "replay.root", str(root))
            try:
                replay_config(cfg, period(cfg.replay))  # the knobs the market must know
            except ConfigError as exc:
                runs.append(Run(scenario, seed, None, None, error=str(exc)))
                continue
            runs.append(Run(scenario, seed, cfg, fingerprint(cfg)))
    return runs


# -- running --------------------------------------------------------------------------------------
def summary_dir(reports: Path, key: str) -> Path:
    return reports / REPORT_DIR / "matrix" / key


def existing_summary(folder: Path, fingerprint_: str) -> dict | None:
    """The summary of an earlier run in `folder` made from the same configuration, else None."""
    try:
        summary = json.loads((folder / "replay_summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if (summary.get("matrix") or {}).get("fingerprint") == fingerprint_ else None


def run_all(runs: list[Run], reports: Path, force: bool,
            replay: Callable[[DictConfig], dict], keep: bool = True) -> list[dict]:  # fmt: skip
    """Run (or resume, or share) each run in turn; one table row each. A run that raises is a
    row with its error; the next runs go on. Without `keep`, a run's scratch root is removed
    once its summary is saved."""
    rows, done = [], {}  # fingerprint → (key, summary) of this matrix's runs
    for i, run in enumerate(runs, start=1):
        if run.error:
            log.warning("matrix %d/%d %s: cannot run: %s", i, len(runs), run.key, run.error)
            rows.append(row(run, None, "error", error=run.error))
            continue
        folder = summary_dir(reports, run.key)
        if run.fingerprint in done:
            key, summary = done[run.fingerprint]
            log.info("matrix %d/%d %s: the same run as %s", i, len(runs), run.key, key)
            rows.append(row(run, summary, "shared", same_as=key))
            continue
        summary = None if force else existing_summary(folder, run.fingerprint)
        status = "resumed"
        if summary is None:
            log.info("matrix %d/%d %s: replay in %s", i, len(runs), run.key, run.cfg.replay.root)
            try:
                summary = replay(run.cfg)
            except Exception as exc:  # noqa: BLE001 - one run's failure is its row, not the matrix's
                log.error("matrix %s failed: %s", run.key, traceback.format_exc())
                rows.append(row(run, None, "error", error=f"{type(exc).__name__}: {exc}"))
                continue
            summary["matrix"] = {"scenario": run.scenario, "seed": run.seed,
                                 "fingerprint": run.fingerprint}  # fmt: skip
            write_summary(summary, folder, Path(summary["config"]["root"]) / "reports" / "replay")
            status = "ran"
            if not keep:
                remove_root(Path(run.cfg.replay.root))
        else:
            log.info("matrix %d/%d %s: summary already there, not re-run (force=true re-runs)",
                     i, len(runs), run.key)  # fmt: skip
        done[run.fingerprint] = (run.key, summary)
        rows.append(row(run, summary, status))
    return rows


def remove_root(root: Path) -> None:
    """Remove a replay's scratch root, only if a replay made it (its marker is there)."""
    if (root / MARKER).exists():
        shutil.rmtree(root)


# -- the table ------------------------------------------------------------------------------------
def headline(summary: dict) -> dict[str, str]:
    """Short figures of the three headline goals, for the table's cells."""
    p, m = summary["period"], summary.get("market_difficulty") or {}
    shock = p.get("shock_day")
    out = {}
    if shock:
        caught = [r for r in summary["retrains"] if shock <= r["day"] <= shock + 1]
        out["retrain_triggered_by_the_shock_within_1_day"] = (
            f"day {caught[0]['day']} (+{caught[0]['day'] - shock})" if caught
            else f"none on days {shock}-{shock + 1}"
        )  # fmt: skip
        before, after = m.get("skill_vs_prev_iv_before"), m.get("skill_vs_prev_iv_after")
        out["production_skill_after_the_shock_within_10pct_of_before"] = (
            f"{after:.3f} vs {before:.3f} ({after / before - 1:+.1%}"
            + (f"; CI {ci[0]:+.0%}..{ci[1]:+.0%})" if (ci := m.get("skill_change_ci95")) else ")")
            if before and after is not None else "not measured"
        )  # fmt: skip
    weeks = p["days"] / 5
    interventions = len(summary["manual_actions"]) + len(summary["failed_days"])
    out["under_2_manual_interventions_a_week"] = (
        f"{interventions} in {weeks:g} weeks ({interventions / weeks:.2f}/week)"
    )
    return out


def row(run: Run, summary: dict | None, status: str, *, same_as: str | None = None,
        error: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One table row: the run, its change, every goal {ok, value}, the headline figures."""
    out: dict[str, Any] = {"scenario": run.scenario, "seed": run.seed, "status": status,
                           "same_as": same_as, "error": error, "ok": False}  # fmt: skip
    if summary is None:
        return out
    goals = summary["goals"]
    return out | {
        "change": change_text(summary["period"]),
        "period": {k: summary["period"][k] for k in ("start", "end", "days", "warmup_days")},
        "goals": goals,
        "headline": headline(summary),
        "retrains": len(summary["retrains"]),
        "ok": all(g["ok"] for g in goals.values()),
        "summary": str(summary_dir(Path("reports"), same_as or run.key) / "replay_summary.md"),
    }


def _mark(ok: Any) -> str:
    return "✓" if ok else "✗"


def _cell(text: Any) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def overview_cells(r: dict) -> list[str]:
    """One row of the overview: scenario, seed, change, the headline goals (mark and short
    figure), the plan's other metrics (all met, or the missed ones named), all goals met."""
    if r["error"]:
        return [r["scenario"], str(r["seed"]), f"not run: {r['error']}",
                *["–"] * len(HEADLINE), "–", "✗"]  # fmt: skip
    goals, short = r["goals"], r["headline"]
    heads = [f"{_mark(goals[k]['ok'])} {short.get(k, '')}".rstrip() if k in goals else "–"
             for k in HEADLINE]  # fmt: skip
    plan_goals = {k: g for k, g in goals.items() if k not in HEADLINE}
    missed = [k.replace("_", " ") for k, g in plan_goals.items() if not g["ok"]]
    plan_cell = (f"✓ {len(plan_goals)}/{len(plan_goals)}" if not missed
                 else f"✗ missed: {', '.join(missed)}")  # fmt: skip
    note = f" (= {r['same_as']})" if r["same_as"] else ""
    return [f"{r['scenario']}{note}", str(r["seed"]), r["change"], *heads, plan_cell,
            _mark(r["ok"])]  # fmt: skip


def markdown(rows: list[dict]) -> str:
    """The matrix as Markdown: the overview (headline goals, plan metrics) and every goal with
    its figure."""
    met = sum(r["ok"] for r in rows)
    lines = [
        "# Replay matrix",
        "",
        f"{len(rows)} runs (scenario × seed); {met} met every goal. A run's days: "
        "reports/replay/matrix/<scenario>-seed<n>/replay_summary.md.",
        "",
        "| scenario | seed | change | " + " | ".join(HEADLINE.values())
        + " | plan metrics | all goals |",
        "|---|---:|---|" + "---|" * (len(HEADLINE) + 2),
    ]  # fmt: skip
    for r in rows:
        lines.append("| " + " | ".join(_cell(c) for c in overview_cells(r)) + " |")
    lines += ["", "## Every goal", "", "| scenario | seed | goal | met | figure |",
              "|---|---:|---|---|---|"]  # fmt: skip
    for r in rows:
        for name, g in (r.get("goals") or {}).items():
            lines.append(f"| {r['scenario']} | {r['seed']} | {name.replace('_', ' ')} | "
                         f"{_mark(g['ok'])} | {_cell(g['value'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_matrix(rows: list[dict], folder: Path) -> list[Path]:
    """replay_matrix.json and .md in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "replay_matrix.md"
    target.write_text(markdown(rows))
    return [write_json({"runs": rows, "all_ok": all(r["ok"] for r in rows)},
                       folder / "replay_matrix.json"), target]  # fmt: skip


# -- entry point ----------------------------------------------------------------------------------
def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from pipeline.cli import check_overrides

    problem = check_overrides(overrides)
    if problem:
        raise ConfigError(problem)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="replay_matrix"):
        return compose("config", overrides=overrides)


def _replay(cfg: DictConfig) -> dict:
    """One replay, the caller's MLflow tracking URI restored after it."""
    import mlflow

    from monitoring.replay import run_replay

    previous = mlflow.get_tracking_uri()
    try:
        return run_replay(cfg)
    finally:
        mlflow.set_tracking_uri(previous)


def main(argv: Sequence[str] | None = None,
         replay: Callable[[DictConfig], dict] = _replay) -> int:  # fmt: skip
    """Run the matrix; the exit code: 0 every goal met, 1 one missed or a run failed, 2 a bad
    argument."""
    from pipeline.cli import configure_logging, set_console_level
    from pipeline.config import register_configs

    configure_logging()
    set_console_level(logging.ERROR, keep="monitoring.replay")
    register_configs()
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        base = _compose(list(args.overrides))
        runs = plan(args, _compose)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reports = Path(OmegaConf.select(base, "paths.reports"))
    log.info("matrix: %d run(s): %s", len(runs), ", ".join(r.key for r in runs))
    rows = run_all(runs, reports, args.force, replay, keep=args.keep)
    written = write_matrix(rows, reports / REPORT_DIR)
    text = markdown(rows)
    print(text[: text.index("## Every goal")].rstrip())
    print(f"\nEvery goal with its figure: {written[1]}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
