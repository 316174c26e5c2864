"""The local Evidently workspace behind `make dashboard` (`evidently ui --workspace <path>`).

One project (`monitor.project`) holds one snapshot per monitored day: the day's drift +
regression report (monitoring.drift), timestamped at the business date and tagged with its
metadata `date` and `model_version`. Running a day again replaces that day's snapshot, so the
dashboard's time axis has exactly one point per day.

The project dashboard (created with the project; per-underlying panels added when a new
underlying appears):
- "Drift": the share of drifted features (last value, and over time), the drift score per
  feature over time;
- "Performance": IV RMSE and IV MAE over time (current vs each day's reference side by side in
  the day's report);
- "Per underlying": the IV MAE of each underlying over time, one panel each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from monitoring.drift import ERROR_PREFIX

DRIFT, PERFORMANCE, UNDERLYINGS = "Drift", "Performance", "Per underlying"


def _ws(path: Path):
    from evidently.ui.workspace import Workspace

    Path(path).mkdir(parents=True, exist_ok=True)
    return Workspace(str(path))


def open_project(path: Path, name: str, features: Sequence[str]):
    """(workspace, project): the project named `name`, created with its dashboard if missing."""
    ws = _ws(path)
    found = ws.search_project(name)
    if found:
        return ws, found[0]
    project = ws.create_project(name, description="options-pricer: drift and IV errors per day")
    add_panels(ws, project.id, _base_panels(features))
    return ws, project


def add_panels(ws, project_id, panels) -> None:
    """Add (tab title, panel) pairs to the project's dashboard in one save. (Evidently 0.7.23's
    ProjectDashboard.add_panel lists a panel twice in a tab that already exists.)"""
    from evidently.sdk.models import DashboardTabModel

    model = ws.get_dashboard(project_id)
    for title, panel in panels:
        tab = next((t for t in model.tabs if t.title == title), None)
        if tab is None:
            tab = DashboardTabModel(title=title, panels=[])
            model.tabs.append(tab)
        model.panels.append(panel)
        tab.panels.append(panel.id)
    ws.save_dashboard(project_id, model)


def _base_panels(features: Sequence[str]):
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel

    share = PanelMetric(legend="drift share", metric="DriftedColumnsCount",
                        metric_labels={"value_type": "share"})  # fmt: skip
    return [
        (DRIFT, counter_panel("Share of drifted features (last day)", [share], size="half")),
        (DRIFT, line_plot_panel("Share of drifted features", [share], size="half")),
        (DRIFT, line_plot_panel(
            "Drift score per feature",
            [PanelMetric(legend=c, metric="ValueDrift", metric_labels={"column": c})
             for c in features],
        )),
        (PERFORMANCE, line_plot_panel("IV RMSE", [PanelMetric(legend="RMSE", metric="RMSE")],
                                      size="half")),
        (PERFORMANCE, line_plot_panel(
            "IV MAE", [PanelMetric(legend="MAE", metric="MAE", metric_labels={"value_type": "mean"})],
            size="half",
        )),
    ]  # fmt: skip


def ensure_underlying_panels(ws, project_id, underlyings: Sequence[str]) -> None:
    """One "IV MAE: <underlying>" panel per underlying, added the first time it is seen."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    titles = {p.title for p in ws.get_dashboard(project_id).panels}
    new = [
        (UNDERLYINGS, line_plot_panel(
            f"IV MAE: {u}",
            [PanelMetric(legend=u, metric="MeanValue", metric_labels={"column": f"{ERROR_PREFIX}{u}"})],
            size="half",
        ))
        for u in underlyings
        if f"IV MAE: {u}" not in titles
    ]  # fmt: skip
    if new:
        add_panels(ws, project_id, new)


def snapshots_by_date(ws, project_id) -> dict[str, list[str]]:
    """{YYYY-MM-DD: [snapshot ids]} of the project's snapshots (by their `date` metadata)."""
    out: dict[str, list[str]] = {}
    for sid in ws.list_runs(project_id):
        model = ws.get_run(project_id, sid)
        day = str((model.metadata or {}).get("date", "")) if model else ""
        out.setdefault(day, []).append(str(sid))
    return out


def add_day(path: Path, name: str, snapshot, date: dt.date, features: Sequence[str],
            underlyings: Sequence[str]) -> str:  # fmt: skip
    """Put `snapshot` in the workspace as `date`'s one snapshot (replacing an earlier one of the
    same date); returns its id."""
    ws, project = open_project(path, name, features)
    ensure_underlying_panels(ws, project.id, underlyings)
    for sid in snapshots_by_date(ws, project.id).get(str(date), []):
        ws.delete_run(project.id, sid)
    return str(ws.add_run(project.id, snapshot, name=f"monitor {date}").id)


def dashboard_panels(path: Path, name: str) -> dict[str, list[str]]:
    """{tab title: [panel titles]} of the project's dashboard ({} when there is no project)."""
    ws = _ws(path)
    found = ws.search_project(name)
    if not found:
        return {}
    model = ws.get_dashboard(found[0].id)
    titles = {p.id: p.title for p in model.panels}
    return {t.title: [titles[i] for i in t.panels] for t in model.tabs}


def day_count(path: Path, name: str) -> dict[str, int]:
    """{date: number of snapshots} in the project (tests and `make dashboard` users)."""
    ws = _ws(path)
    found = ws.search_project(name)
    if not found:
        return {}
    return {d: len(ids) for d, ids in snapshots_by_date(ws, found[0].id).items()}
