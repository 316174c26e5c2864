"""Deploy incidents: one file per incident, written whole and never over another one; the report
reads them all; a refused reload is recorded as the failing check with the service's reason."""

from __future__ import annotations

import datetime as dt
import json
import logging
from types import SimpleNamespace

from pipeline import generate_report as gr
from pipeline.model_deploy import _roll_out, incident_files, write_incident
from pipeline.report_sections import next_actions
from tests.unit.pipeline.test_generate_report import _artifacts

DAY = dt.date(2026, 3, 31)


def test_incidents_on_the_same_day_get_a_file_each(tmp_path):
    folder = tmp_path / "reports" / "deployment"
    first = write_incident({"failed_version": "3"}, folder, DAY)
    second = write_incident({"failed_version": "4"}, folder, DAY)
    third = write_incident({"failed_version": "5"}, folder, DAY)
    assert [p.name for p in (first, second, third)] == [
        "incident_20260331.json",
        "incident_20260331_2.json",
        "incident_20260331_3.json",
    ]
    assert json.loads(first.read_text()) == {"failed_version": "3"}  # not overwritten
    assert json.loads(second.read_text()) == {"failed_version": "4"}
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in (first, second, third)]
    assert [(d, n) for d, n, _ in incident_files(folder)] == [(DAY, 1), (DAY, 2), (DAY, 3)]


def test_a_name_taken_meanwhile_is_never_overwritten(tmp_path):
    folder = tmp_path / "deployment"
    folder.mkdir()
    (folder / "incident_20260331.json").write_text("written by another run\n")
    path = write_incident({"failed_version": "3"}, folder, DAY)
    assert path.name == "incident_20260331_2.json"
    assert (folder / "incident_20260331.json").read_text() == "written by another run\n"


def test_the_report_reads_every_incident_of_a_day(tmp_path):
    a = _artifacts(tmp_path)
    folder = a.reports_dir / "deployment"
    for version in ("3", "4"):
        write_incident({"failed_version": version, "rollback": None}, folder, DAY)
    write_incident({"failed_version": "9"}, folder, DAY + dt.timedelta(days=1))  # after the date
    data = gr.collect(a, DAY, None)
    assert [(i["date"], i["file"], i["failed_version"]) for i in data.incidents] == [
        ("2026-03-31", "incident_20260331.json", "3"),
        ("2026-03-31", "incident_20260331_2.json", "4"),
    ]
    actions = [line for line in next_actions(data) if "deploy incident" in line]
    assert [line.rsplit(" ", 1)[-1] for line in actions] == [
        "reports/deployment/incident_20260331.json",
        "reports/deployment/incident_20260331_2.json",
    ]
    inputs = {p.name for p in gr.input_files(a, DAY)}
    assert {"incident_20260331.json", "incident_20260331_2.json"} <= inputs
    assert "incident_20260401.json" not in inputs


class RefusingService:
    """The pricing service serving v2 that refuses to load v3 (POST /admin/reload → 409)."""

    url = "http://127.0.0.1:1"

    def model(self):
        return {"version": "2", "fallback": None}

    def reload(self):
        return 409, {"version": "2", "error": (
            "v3 of options-pricer (@production) was not loaded: v3 failed on its input example: "
            "OSError: cannot read /srv/mlartifacts/9/artifacts/booster.ubj; still serving v2")}  # fmt: skip


def test_a_refused_reload_is_the_failed_check_with_the_services_reason():
    ctx = SimpleNamespace(log=logging.getLogger("tests.deploy"))
    health = _roll_out(ctx, RefusingService(), SimpleNamespace(name="options-pricer"),
                       SimpleNamespace(version="3"))  # fmt: skip
    assert not health.passed
    assert health.checks == [
        "reload: the service refused v3 (409): v3 of options-pricer (@production) was not "
        "loaded: v3 failed on its input example: OSError: cannot read …/booster.ubj; "
        "still serving v2"
    ]
