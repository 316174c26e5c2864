"""Wiring tests: dependencies in sync, every config composes, every entry point answers --help."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from mlflow.projects._project_spec import load_project
from omegaconf import OmegaConf

from pipeline.config import CONFIG_DIR, REPO_ROOT, TASKS, check_schema
from pipeline.mlproject import split_overrides
from tests.conftest import compose_config
from tests.helpers import run_module

ENTRY_POINTS = (
    "main",
    "data_fetch",
    "data_validate",
    "feature_engineer",
    "monitor",
    "generate_report",
)


def test_conda_yaml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((REPO_ROOT / "conda.yaml").read_text())
    pip_deps = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(pip_deps) == sorted(project["dependencies"])
    python = next(d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11" and project["requires-python"].startswith(">=3.11,<3.12")


def test_pinned_versions_are_the_measured_ones():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for pin in ("mlflow==3.17.2", "bentoml==1.4.38", "evidently==0.7.23", "pandas>=2.2,<3"):
        assert pin in deps


def _group_options():
    for group_dir in sorted(p for p in CONFIG_DIR.iterdir() if p.is_dir()):
        for option in sorted(group_dir.glob("*.yaml")):
            yield f"{group_dir.name}={option.stem}"


@pytest.mark.parametrize("override", list(_group_options()))
def test_every_config_option_composes_and_resolves(override, tmp_path):
    cfg = compose_config([f"paths.root={tmp_path}", override])
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"


def test_default_tracking_uri_is_absolute_at_the_repo_root():
    cfg = compose_config([])
    assert cfg.mlflow.tracking_uri == f"sqlite:///{REPO_ROOT}/mlflow.db"
    assert cfg.data_fetch.source == "synthetic"


def test_retry_table_is_the_original_plans():
    cfg = compose_config([])
    table = {
        t: (cfg.retry[t].max_retries, cfg.retry[t].backoff, cfg.retry[t].max_delay) for t in TASKS
    }
    assert table == {
        "data_fetch": (5, "exponential", 300),
        "data_validate": (2, "linear", 60),
        "feature_engineer": (3, "linear", 120),
        "model_train": (1, "none", None),
        "model_evaluate": (2, "linear", 60),
        "model_deploy": (3, "exponential", 180),
        "generate_report": (2, "linear", 60),
    }


def test_a_misspelled_key_fails_at_composition():
    with pytest.raises(Exception, match="foo"):
        compose_config(["data_fetch.foo=1"])


def test_an_appended_unknown_key_fails_the_schema_check():
    cfg = compose_config(["+data_fetch.foo=1"])  # Hydra's `+` opens the node...
    with pytest.raises(Exception, match="foo"):
        check_schema(cfg)  # ...the schema check closes it again


def _mlproject():
    return yaml.safe_load((REPO_ROOT / "MLproject").read_text())


def test_mlproject_has_one_entry_point_per_built_task_and_main():
    entry_points = _mlproject()["entry_points"]
    assert set(ENTRY_POINTS) <= set(entry_points)
    for name, ep in entry_points.items():
        assert ep["parameters"]["overrides"]["default"] == ""
        assert ep["command"] == f"python -m pipeline.mlproject pipeline.{name} {{overrides}}"


def run_entry_point(entry_point: str, overrides: str) -> subprocess.CompletedProcess:
    """The entry point's command exactly as `mlflow run . -e <entry_point> -P overrides=...`
    builds it (MLflow's own project loader quotes the parameter) and runs it (`bash -c`, in the
    project directory, `python` being the project's interpreter)."""
    entry = load_project(REPO_ROOT).get_entry_point(entry_point)
    command = entry.compute_command({"overrides": overrides}, storage_dir=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_entry_point_answers_help(entry_point):
    result = run_entry_point(entry_point, "--help")
    assert result.returncode == 0, result.stderr
    assert "options-pricing pipeline" in result.stdout
    assert "data_fetch: cboe, file, synthetic" in result.stdout


def test_a_quoted_override_with_spaces_reaches_hydra_as_one_override():
    overrides = 'registry.reason="rolled back: a b"  registry.version=3 --cfg job -p registry'
    result = run_entry_point("promote", overrides)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert (printed["reason"], str(printed["version"])) == ("rolled back: a b", "3")


def test_the_override_splitting_is_a_shells_without_expansion():
    assert split_overrides([""]) == []
    assert split_overrides(["a=1  b='x y' c=\"p q\" d=[SPY,_SPX] e=$(id) f=*"]) == [
        "a=1", "b=x y", "c=p q", "d=[SPY,_SPX]", "e=$(id)", "f=*"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no closing quotation"):
        split_overrides(['registry.reason="a b'])


def test_bad_quoting_in_overrides_is_one_line_and_exit_2():
    result = run_entry_point("data_fetch", 'registry.reason="a b')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        """error: overrides 'registry.reason="a b': no closing quotation; quote a value with """
        'spaces as key="a b" inside the parameter'
    ]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["data_fetch.foo=1"], "data_fetch.foo"),
        (["+data_fetch.foo=1"], "foo"),
        (["data_fetch=nope"], "data_fetch/nope"),
        (["data_validate.max_bad_row_share=lots"], "max_bad_row_share"),
        (["date=2026-13-45"], "date"),
        (["date=2026-03-01"], "not a trading day"),
        (["data_fetch=cboe", "data_fetch.synthetic.seed=3"], "'data_fetch.synthetic.seed=3'"),
    ],
)
def test_bad_overrides_give_one_line_and_exit_2(args, named, tmp_path):
    result = run_module("pipeline.data_fetch", f"paths.root={tmp_path}", *args, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()
