"""generate_report on the tiny market: the last step of main, and byte-identical when regenerated
from the same artifacts."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline import generate_report
from pipeline.artifacts import Artifacts
from pipeline.main import run_pipeline
from pipeline.runtime import configure_tracking, execute
from tests.conftest import TINY_DAYS
from tests.integration.test_main_dag import FAST_MODEL

pytestmark = [pytest.mark.integration, pytest.mark.slow]
END = dt.date(2026, 3, 31)


@pytest.fixture
def root(tiny_root):
    return tiny_root


def _report_files(cfg) -> dict[str, bytes]:
    a = Artifacts(cfg.paths, cfg.data_format)
    paths = [generate_report.md_path(a), generate_report.html_path(a),
             generate_report.snapshot_path(a)]  # fmt: skip
    paths += [generate_report.plot_path(a, name) for name in generate_report.PLOTS]
    return {p.name: p.read_bytes() for p in paths}


def test_main_ends_with_the_report_and_it_regenerates_byte_identically(make_cfg, tracking, root):
    cfg = make_cfg(f"paths.root={root}", *TINY_DAYS, *FAST_MODEL)
    configure_tracking(cfg)
    outcomes = run_pipeline(cfg)
    last = outcomes[-1]
    assert (last.task, last.status, last.date) == ("generate_report", "succeeded", END)
    assert (root / "logs" / "reporting_20260331.log").exists()  # the plan's log name
    first = _report_files(cfg)
    md = first["stakeholder_report.md"].decode()
    for section in ("Summary", "Pipeline runs", "Data", "Model vs baselines",
                    "Drift & retraining", "Registry & deployment", "Next actions"):  # fmt: skip
        assert f"\n## {section}\n" in md
    # the data tasks' outputs came with the copied root (reused: they keep their outcome)
    assert "| data_fetch | 25 | 25 | 0 | 0 | 2026-03-31 | succeeded |" in md
    assert "| model_train | 1 | 1 | 0 | 0 | 2026-03-31 | succeeded |" in md
    assert "No monitoring yet" in md
    assert "- approve: make promote (version 1)" in md
    assert "![IV RMSE per model and by maturity](report/model_vs_baselines.png)" in md

    forced = execute(
        generate_report.SPEC,
        make_cfg(f"paths.root={root}", *TINY_DAYS, *FAST_MODEL, "generate_report.force=true"),
        END,
    )
    assert forced.status == "succeeded"
    assert _report_files(cfg) == first  # md, html, registry snapshot and PNGs: the same bytes

    assert execute(generate_report.SPEC, cfg, END).status == "skipped"  # artifacts unchanged
