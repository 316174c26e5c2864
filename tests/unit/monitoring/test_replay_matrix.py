"""The replay matrix (monitoring.replay_matrix) with fake replays: its arguments, its plan, resume
and shared runs, the table of goals met and missed with their figures, the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring import replay_matrix as matrix
from monitoring.replay import fresh_root, period, summarise
from pipeline.config import CONFIG_DIR, register_configs
from pipeline.errors import ConfigError

STATS = {"requests": 30, "served": 24, "faults_injected": 6, "faults_by_kind": {"503": 6},
         "symbol_days_faulted": 5, "symbol_days_recovered": 5}  # fmt: skip
MISS_SKILL = {"crush"}  # the fake replay's Production loses ground after these changes


def record(i, date, *, retrain=False, skill=0.7):
    return {"day": i, "date": str(date), "status": "succeeded", "failed_task": None,
            "reason": None, "seconds": 5.0, "task_seconds": {}, "fetch_retries": 0,
            "freshness_lag_days": 0, "production_version": "1", "rmse": 0.008,
            "reference_rmse": 0.008, "rmse_change": 0.0, "drift_share": 0.1,
            "drifted_columns": [], "retrain": retrain,
            "reasons": ["[trigger] feature drift share 77%"] if retrain else [],
            "candidate_version": "2" if retrain else None, "gate": "failed" if retrain else None,
            "holdout_start": str(date) if retrain else None,
            "baseline_prev_iv_rmse": 0.011, "skill_vs_prev_iv": skill}  # fmt: skip


class FakeReplay:
    """Stands in for run_replay: a summary of the scenario's period from made-up days (the shock
    caught on its day; skill 0.7 before, 0.72 after, or 0.9 for MISS_SKILL); counts its calls."""

    def __init__(self, fail: set[str] | None = None):
        self.calls: list[str] = []
        self.fail = fail or set()

    def __call__(self, cfg):
        name = cfg.replay.name
        self.calls.append(f"{name}-seed{cfg.seed}")
        if name in self.fail:
            raise RuntimeError("the market server died")
        days, shock = period(cfg.replay), cfg.replay.shock_day
        after = 0.9 if name in MISS_SKILL else 0.72
        records = [record(i, d, retrain=i == shock, skill=0.7 if i <= shock else after)
                   for i, d in enumerate(days, start=1)]  # fmt: skip
        actions = [{"date": str(days[0]), "version": "1", "gate": "passed", "action": "promote",
                    "when": "before the period"},
                   {"date": str(days[shock - 1]), "version": "2", "gate": "failed",
                    "action": "review failed gate (not promoted)", "when": "evening"}]  # fmt: skip
        return summarise(cfg, days, records, actions, STATS, 1.0, 2.0)


@pytest.fixture
def compose():
    register_configs()
    return matrix._compose


def run(tmp_path, compose, *argv, replay=None, force=False):
    args = matrix.parse_args([f"paths.root={tmp_path}", *argv])
    fake = replay or FakeReplay()
    rows = matrix.run_all(matrix.plan(args, compose), tmp_path / "reports", force or args.force,
                          fake)  # fmt: skip
    return rows, fake


# -- arguments ------------------------------------------------------------------------------------
def test_every_scenario_file_but_the_default_is_in_the_matrix():
    files = {p.stem for p in (CONFIG_DIR / "replay").glob("*.yaml")} - {"default"}
    assert set(matrix.available_scenarios()) == files and len(files) >= 9


def test_the_matrix_arguments_and_the_overrides_for_every_run():
    args = matrix.parse_args(["scenarios=[shock_early,crush]", "seeds=[1,2]", "force=true",
                              "replay.days=25", "keep=false", "model_train.n_estimators=40"])  # fmt: skip
    assert args == matrix.MatrixArgs(("shock_early", "crush"), (1, 2), True,
                                     ("replay.days=25", "model_train.n_estimators=40"), False)  # fmt: skip
    default = matrix.parse_args([])
    assert default.scenarios == tuple(matrix.available_scenarios())
    assert default.seeds == () and default.force is False and default.overrides == ()
    assert default.keep is True
    assert matrix.parse_args(["scenarios=crush", "seeds=3"]).seeds == (3,)


@pytest.mark.parametrize(("bad", "match"), [("scenarios=[crush,nope]", "unknown"),
                                            ("seeds=[a]", "list of integers"),
                                            ("force=maybe", "true or false"),
                                            ("keep=1", "true or false")])  # fmt: skip
def test_bad_matrix_arguments_are_named(bad, match):
    with pytest.raises(ConfigError, match=match):
        matrix.parse_args([bad])


# -- the plan -------------------------------------------------------------------------------------
def test_each_scenario_and_seed_has_its_own_scratch_root(tmp_path, compose):
    runs = matrix.plan(matrix.parse_args([f"paths.root={tmp_path}", "scenarios=[shock_early,crush]",
                                          "seeds=[1,2]"]), compose)  # fmt: skip
    assert [r.key for r in runs] == ["shock_early-seed1", "shock_early-seed2", "crush-seed1",
                                     "crush-seed2"]  # fmt: skip
    roots = {r.cfg.replay.root for r in runs}
    assert roots == {str(tmp_path / "outputs" / "replay-matrix" / r.key) for r in runs}
    assert [r.cfg.seed for r in runs] == [1, 2, 1, 2]
    assert len({r.fingerprint for r in runs}) == 4
    # without seeds: the config's
    assert [r.key for r in matrix.plan(matrix.parse_args(["scenarios=[crush]"]), compose)] == [
        "crush-seed7"
    ]


def test_scenarios_that_compose_to_the_same_replay_share_a_fingerprint(tmp_path, compose):
    runs = matrix.plan(matrix.parse_args([f"paths.root={tmp_path}",
                                          "scenarios=[warmup_60,variance_x4,warmup_30]"]), compose)  # fmt: skip
    assert runs[0].fingerprint == runs[1].fingerprint != runs[2].fingerprint


# -- running, resuming, the table ---------------------------------------------------------------
def test_goals_met_and_missed_are_tabled_with_their_figures(tmp_path, compose):
    rows, fake = run(tmp_path, compose, "scenarios=[shock_early,crush]")
    assert fake.calls == ["shock_early-seed7", "crush-seed7"]
    early, crush = rows
    assert early["status"] == "ran" and early["ok"] and not crush["ok"]
    skill = "production_skill_after_the_shock_within_10pct_of_before"
    assert early["headline"] == {
        "retrain_triggered_by_the_shock_within_1_day": "day 15 (+0)",
        skill: "0.720 vs 0.700 (+2.9%; CI +3%..+3%)",
        "under_2_manual_interventions_a_week": "2 in 7 weeks (0.29/week)",
    }
    assert (
        not crush["goals"][skill]["ok"]
        and crush["headline"][skill] == "0.900 vs 0.700 (+28.6%; CI +29%..+29%)"
    )
    assert crush["goals"][skill]["value"].startswith(
        "IV RMSE / previous-day-IV RMSE 0.900 over the 20 days after the shock"
    )
    assert crush["change"] == "variance ×0.4 (a vol crush) on day 20 (2026-10-30)"
    # each run's summary in reports/replay/matrix/<key>/, with its fingerprint
    saved = json.loads((tmp_path / "reports" / "replay" / "matrix" / "crush-seed7" /
                        "replay_summary.json").read_text())  # fmt: skip
    assert saved["matrix"]["scenario"] == "crush" and saved["matrix"]["fingerprint"]

    written = matrix.write_matrix(rows, tmp_path / "reports" / "replay")
    assert [p.name for p in written] == ["replay_matrix.json", "replay_matrix.md"]
    table = json.loads(written[0].read_text())
    assert table["all_ok"] is False and [r["scenario"] for r in table["runs"]] == ["shock_early",
                                                                                  "crush"]  # fmt: skip
    text = written[1].read_text()
    assert ("| crush | 7 | variance ×0.4 (a vol crush) on day 20 (2026-10-30) | ✓ day 20 (+0) | "
            "✗ 0.900 vs 0.700 (+28.6%; CI +29%..+29%) | ✓ 2 in 8 weeks (0.25/week) | ✓ 4/4 | ✗ |") in text  # fmt: skip
    assert (
        "| shock_early | 7 | production skill after the shock within 10pct of before | ✓ |" in text
    )


def test_a_second_matrix_resumes_and_force_reruns(tmp_path, compose):
    run(tmp_path, compose, "scenarios=[shock_early,crush]")
    rows, fake = run(tmp_path, compose, "scenarios=[shock_early,crush,variance_x2]")
    assert fake.calls == ["variance_x2-seed7"]  # the two summaries already there are reused
    assert [r["status"] for r in rows] == ["resumed", "resumed", "ran"]
    assert rows[1]["headline"] == run(tmp_path, compose, "scenarios=[crush]")[0][0]["headline"]
    rows, fake = run(tmp_path, compose, "scenarios=[crush]", "force=true")
    assert fake.calls == ["crush-seed7"] and rows[0]["status"] == "ran"
    # other settings: another run, not the summary of the old ones
    rows, fake = run(tmp_path, compose, "scenarios=[crush]", "monitor.drift_share=0.5")
    assert fake.calls == ["crush-seed7"] and rows[0]["status"] == "ran"


def test_scenarios_with_the_same_replay_run_once(tmp_path, compose):
    rows, fake = run(tmp_path, compose, "scenarios=[variance_x4,warmup_60]")
    assert fake.calls == ["variance_x4-seed7"]
    assert rows[1]["status"] == "shared" and rows[1]["same_as"] == "variance_x4-seed7"
    assert rows[1]["goals"] == rows[0]["goals"]
    assert "| warmup_60 (= variance_x4-seed7) | 7 |" in matrix.markdown(rows)


def test_a_failed_run_is_a_row_and_the_others_go_on(tmp_path, compose):
    rows, fake = run(tmp_path, compose, "scenarios=[crush,shock_early]",
                     replay=FakeReplay(fail={"crush"}))  # fmt: skip
    assert fake.calls == ["crush-seed7", "shock_early-seed7"]
    assert rows[0] == {"scenario": "crush", "seed": 7, "status": "error", "same_as": None,
                       "error": "RuntimeError: the market server died", "ok": False}  # fmt: skip
    assert rows[1]["ok"]
    assert "| crush | 7 | not run: RuntimeError: the market server died | – | – | – | – | ✗ |" in (
        matrix.markdown(rows)
    )
    # no summary was written for the failed run: the next matrix runs it again
    assert not (tmp_path / "reports" / "replay" / "matrix" / "crush-seed7").exists()


def test_main_writes_the_table_and_exits_1_when_a_goal_is_missed(tmp_path, capsys):
    fake = FakeReplay()
    code = matrix.main([f"paths.root={tmp_path}", "scenarios=[shock_early,crush]"], replay=fake)
    assert code == 1 and fake.calls == ["shock_early-seed7", "crush-seed7"]
    assert (tmp_path / "reports" / "replay" / "replay_matrix.md").exists()
    assert "# Replay matrix" in capsys.readouterr().out
    assert matrix.main([f"paths.root={tmp_path}", "scenarios=[shock_early]"], replay=fake) == 0
    assert len(fake.calls) == 2  # resumed
    assert matrix.main([f"paths.root={tmp_path}", "scenarios=[nope]"], replay=fake) == 2


def test_without_keep_a_run_s_scratch_root_goes_once_its_summary_is_saved(tmp_path, compose):
    def replay(cfg):  # a replay that made its scratch root, as run_replay does
        root = fresh_root(Path(cfg.replay.root))
        (root / "data.parquet").write_text("big")
        return FakeReplay()(cfg)

    args = matrix.parse_args([f"paths.root={tmp_path}", "scenarios=[crush]"])
    runs = matrix.plan(args, compose)
    root = Path(runs[0].cfg.replay.root)
    matrix.run_all(runs, tmp_path / "reports", False, replay, keep=True)
    assert (root / "data.parquet").exists()
    rows = matrix.run_all(runs, tmp_path / "reports", True, replay, keep=False)
    assert not root.exists() and rows[0]["status"] == "ran"
    assert (
        tmp_path / "reports" / "replay" / "matrix" / "crush-seed7" / "replay_summary.md"
    ).exists()
    precious = tmp_path / "precious"  # a directory no replay made stays
    precious.mkdir()
    matrix.remove_root(precious)
    assert precious.exists()
