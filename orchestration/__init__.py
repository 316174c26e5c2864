"""Orchestration on existing engines (phase 3 of the plan).

`task_graph` exports the daily flow's task graph as JSON, `airflow_task` runs one task of it the
way the scheduler would (lock, skips); both run in the project's environment. `airflow/` is a
uv project of its own (Airflow 3) whose DAG reads that JSON and imports nothing of the project.
"""
