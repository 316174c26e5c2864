"""The layers and what the model ships: the import contracts (.importlinter) can fail, every task
gets the monitoring hooks, and the model's code is the pricing core with its requirements."""

from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from pipeline import runtime, task_hooks
from pipeline.config import REPO_ROOT
from pipeline.model.packaging import REQUIREMENTS, core_sources, staged_core


def core_modules() -> tuple[str, ...]:
    """The pricing core as the `core` contract of .importlinter lists it."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".importlinter")
    return tuple(config["importlinter:contract:core"]["source_modules"].split())


ROOT_PACKAGES = ("pipeline", "monitoring", "serving", "webapp", "stack", "observability",
                 "orchestration")  # fmt: skip


def layer_entries() -> list[str]:
    """Every module or package the `layers` contract of .importlinter names, in any layer."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".importlinter")
    return re.split(r"[\s:|]+", config["importlinter:contract:layers"]["layers"].strip())


def module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_model_ships_the_pricing_core_only():
    shipped = {module_name(p) for p in core_sources()}
    core = core_modules()
    packages = {"pipeline", "pipeline.model"}  # their __init__ files come with their modules
    inside = {
        m for m in shipped if m in packages or any(m == c or m.startswith(c + ".") for c in core)
    }
    outside = shipped - inside
    assert not outside, f"the model would ship {sorted(outside)}"
    assert {"pipeline.model.pricer", "pipeline.features", "pipeline.market_state"} <= shipped
    with staged_core() as folder:
        staged = {module_name(p.relative_to(folder.parent)) for p in folder.rglob("*.py")}
        assert folder.name == "pipeline" and staged == shipped
    assert not folder.exists()  # removed after logging


def imports_the_repository(path: Path) -> bool:
    """Whether the module at `path` imports from any of ROOT_PACKAGES (a package's __init__ that
    imports nothing of the repository cannot break a layer, and needs none)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if not node.level else ["."]
        else:
            continue
        if any(name == "." or name.split(".")[0] in ROOT_PACKAGES for name in names):
            return True
    return False


def test_every_module_is_in_a_layer():
    """A new module outside every layer would escape the contracts (import-linter checks only the
    modules its layers name): each is named, or sits in a package that is."""
    entries = layer_entries()
    assert "serving" in entries and "webapp" in entries
    modules = {
        module_name(path.relative_to(REPO_ROOT)): path
        for package in ROOT_PACKAGES for path in (REPO_ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }  # fmt: skip
    assert {"pipeline.registry", "serving.engine", "webapp.app_data"} <= set(modules)
    outside = sorted(
        name for name, path in modules.items()
        if not any(name == e or name.startswith(e + ".") for e in entries)
        and (path.name != "__init__.py" or imports_the_repository(path))
    )  # fmt: skip
    assert not outside, f"in no layer of .importlinter's layers contract: {outside}"


def canonical(distribution: str) -> str:
    """A distribution's name as pip compares them (exchange_calendars = exchange-calendars)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_the_model_requirements_cover_what_its_code_imports():
    imported = set()
    for relative in core_sources():
        for node in ast.walk(ast.parse((REPO_ROOT / relative).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "pipeline"}
    distributions = packages_distributions()
    required = {canonical(r) for r in REQUIREMENTS}
    missing = {m for m in third_party if not {canonical(d) for d in distributions[m]} & required}
    assert not missing, f"imported by the model's code, not in REQUIREMENTS: {sorted(missing)}"


def task_modules() -> list[str]:
    """The modules that define a task (a TaskSpec)."""
    return sorted(
        f"pipeline.{p.stem}" for p in (REPO_ROOT / "pipeline").glob("*.py")
        if "TaskSpec(" in p.read_text()
    )  # fmt: skip


def test_every_task_module_registers_the_monitoring_hooks():
    assert len(task_modules()) >= 8
    for module in task_modules():
        tree = ast.parse((REPO_ROOT / (module.replace(".", "/") + ".py")).read_text())
        hooks = [
            node for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module == "pipeline"
            and any(alias.name == "task_hooks" for alias in node.names)
        ]  # fmt: skip
        assert hooks, f"{module} does not import pipeline.task_hooks: its failures would not alert"
    assert task_hooks.observe in runtime.observers()


def test_an_observer_hears_each_execution_once(monkeypatch):
    monkeypatch.setattr(runtime, "_OBSERVERS", [])
    heard = []
    runtime.add_observer(heard.append)
    runtime.add_observer(heard.append)  # added twice, called once
    spec = runtime.TaskSpec("demo", run=lambda ctx: None, inputs=list, outputs=list)
    runtime._observe(spec, {}, "2026-03-02", "failed", 0.5, ValueError("boom"))
    assert [(e.task, e.status, str(e.error)) for e in heard] == [("demo", "failed", "boom")]


@pytest.fixture
def repository_copy(tmp_path):
    """lint(edits) → lint-imports' run over a copy of the root packages after `edits` (file →
    line appended); the copy with no edits keeps every contract."""
    for package in ROOT_PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", ".venv"))  # fmt: skip
    command = [str(Path(sys.executable).parent / "lint-imports"), "--config",
               str(REPO_ROOT / ".importlinter"), "--no-cache"]  # fmt: skip

    def lint(edits: dict[str, str]) -> subprocess.CompletedProcess:
        for relative, line in edits.items():
            path = tmp_path / relative
            path.write_text(path.read_text() + f"\n{line}  # noqa\n")
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    kept = lint({})
    assert kept.returncode == 0, kept.stdout[-3000:]
    return lint


@pytest.mark.integration
def test_a_core_module_importing_the_runtime_breaks_the_contracts(repository_copy):
    broken = repository_copy({"pipeline/model/pricer.py": "from pipeline.runtime import execute"})
    assert broken.returncode != 0
    assert (
        "BROKEN" in broken.stdout and "pipeline.model.pricer -> pipeline.runtime" in broken.stdout
    )


@pytest.mark.integration
def test_the_service_importing_the_registry_breaks_the_contracts(repository_copy):
    """The service depends on the pricing core only: a support module (here the registry) is a
    layer above it."""
    broken = repository_copy({"serving/engine.py": "from pipeline.registry import Registry"})
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout and "serving.engine -> pipeline.registry" in broken.stdout
