"""Accuracy on each synthetic market family, side by side (the README's accuracy table).

    python -m benchmarks.accuracy                      # both families, 60 trading days to 2026-12-03
    python -m benchmarks.accuracy --families ssvi --overrides model_train.fit_rows=reliable

For each family: `main` in its own scratch root (`benchmarks/results/accuracy/<family>/`, kept so
a re-run reuses the fetched days and only retrains), then the holdout evaluation of the candidate
(reports/evaluation_metrics.json) on informative quotes (OTM + ATM): IV RMSE and skill vs the
previous-day-IV baseline with the bootstrap CI, the worst day's ratio to that baseline, the share
inside [bid, ask], and the same by moneyness class and spread-in-vol bucket. The families are
`ssvi` (the default market; hyperparameters and features were chosen on it) and `sabr_jumps`
(data_fetch=synthetic_jumps: SABR smiles, jumps, sticky strike, stale ITM quotes; reported, not
tuned on). Writes benchmarks/results/accuracy.{json,md}. `--shock` puts a vol shock on a holdout
day (variance ×4 with a gap down, strikes listed twice as wide from then on): the worst day's
ratio is the shock day's (results in accuracy_shock.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from pipeline.config import REPO_ROOT

FAMILIES = {"ssvi": "data_fetch=synthetic", "sabr_jumps": "data_fetch=synthetic_jumps"}
RESULTS = REPO_ROOT / "benchmarks" / "results"
GOAL_RATIO, DAY_RATIO = 0.85, 1.5  # issue 12's goals vs the previous-day-IV baseline
END = "2026-12-03"  # the last day: pinned, so a re-run on another day measures the same days
SHOCK_DAY = "2026-11-24"  # the 4th of the default holdout's 10 days (2026-11-19..2026-12-03)
SHOCK = [f"data_fetch.synthetic.shock_dates=[{SHOCK_DAY}]", "data_fetch.synthetic.shock_size=4.0",
         "data_fetch.synthetic.shock_strike_width=2.0"]  # fmt: skip


def run_family(family: str, days: int, overrides: list[str], tag: str = "") -> dict:
    root = RESULTS / "accuracy" / f"{family}{tag}"
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pipeline.main", FAMILIES[family], f"main.days={days}",
           f"paths.root={root}", f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
           "model_deploy.service_url=http://127.0.0.1:9", *overrides]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: the gate may fail; the evaluation is still written
        raise SystemExit(f"{family}: main failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((root / "reports" / "evaluation_metrics.json").read_text())


def figures(summary: dict) -> dict:
    m, ci = summary["metrics"], summary["ci"]
    cand, base = m["candidate"], m["baseline_prev_iv"]
    worst = max((d.get("candidate.ratio_to_prev_iv") or 0.0) for d in summary["days"])
    scopes = {
        scope: {
            "candidate": v["candidate"]["iv_rmse"],
            "baseline_prev_iv": v["baseline_prev_iv"]["iv_rmse"],
            "n": v["candidate"]["n"],
        }
        for scope, v in summary["scopes"].items()
    }
    return {
        "holdout": f"{summary['holdout']['start']}..{summary['holdout']['end']}",
        "rows": summary["holdout"]["rows_scored"],
        "candidate_iv_rmse": cand["iv_rmse"],
        "baseline_prev_iv_rmse": base["iv_rmse"],
        "baseline_hist_vol_rmse": m["baseline_hist_vol"]["iv_rmse"],
        "ratio": cand["iv_rmse"] / base["iv_rmse"],
        "skill": cand["iv_skill_vs_baseline_prev_iv"],
        "skill_ci": ci["candidate"]["iv_skill_vs_baseline_prev_iv"],
        "worst_day_ratio": worst,
        "inside_spread": cand["inside_spread_share"],
        "baseline_inside_spread": base["inside_spread_share"],
        "gate": summary["verdict"]["passed"],
        "scopes": scopes,
    }


def markdown(results: dict[str, dict]) -> str:
    fams = list(results)
    rows = [
        ("holdout", lambda f: f["holdout"]),
        ("rows (OTM+ATM)", lambda f: f"{f['rows']:,}"),
        ("candidate IV RMSE (vol pts)", lambda f: f"{100 * f['candidate_iv_rmse']:.3f}"),
        ("previous-day IV RMSE", lambda f: f"{100 * f['baseline_prev_iv_rmse']:.3f}"),
        ("BS hist-vol RMSE", lambda f: f"{100 * f['baseline_hist_vol_rmse']:.3f}"),
        (f"ratio (goal ≤ {GOAL_RATIO})", lambda f: f"{f['ratio']:.3f}"),
        ("skill, 95% CI", lambda f: f"{f['skill']:+.1%} [{f['skill_ci'][0]:+.1%}, "
                                    f"{f['skill_ci'][1]:+.1%}]"),
        (f"worst day ratio (goal ≤ {DAY_RATIO})", lambda f: f"{f['worst_day_ratio']:.2f}"),
        ("inside [bid, ask]: model / baseline", lambda f: f"{f['inside_spread']:.1%} / "
                                                         f"{f['baseline_inside_spread']:.1%}"),
        ("gate", lambda f: "passed" if f["gate"] else "failed"),
    ]  # fmt: skip
    out = ["| | " + " | ".join(fams) + " |", "|---|" + "---:|" * len(fams)]
    out += [f"| {name} | " + " | ".join(fn(results[f]) for f in fams) + " |" for name, fn in rows]
    scopes = list(next(iter(results.values()))["scopes"])
    out += ["", "IV RMSE by scope (vol points, candidate / previous-day IV, rows):", "",
            "| scope | " + " | ".join(fams) + " |", "|---|" + "---:|" * len(fams)]  # fmt: skip
    for scope in scopes:
        cells = []
        for f in fams:
            s = results[f]["scopes"].get(scope)
            cells.append(f"{100 * s['candidate']:.3f} / {100 * s['baseline_prev_iv']:.3f} "
                         f"({int(s['n']):,})" if s else "–")  # fmt: skip
        out.append(f"| {scope} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--date", default=END, help=f"the last trading day (default {END})")
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument(
        "--shock",
        action="store_true",
        help=f"a vol shock on {SHOCK_DAY} (a "
        "holdout day): variance x4 with a gap down, strikes listed twice as wide",
    )
    args = parser.parse_args()
    overrides, tag = [f"date={args.date}", *args.overrides], ""
    if args.shock:
        overrides += SHOCK
        tag = "_shock"
    results = {f: figures(run_family(f, args.days, overrides, tag)) for f in args.families}
    text = markdown(results)
    print(text)
    (RESULTS / f"accuracy{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"accuracy{tag}.md").write_text(text)


if __name__ == "__main__":
    main()
