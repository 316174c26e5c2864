"""The checkpoint key: keyed by the day itself (not by the `date` keys that chose it), and by the
source of the code the task runs (not by the commit: an edit to a module the task imports
changes it, a README edit or an edit elsewhere does not)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import sys

import pytest

from pipeline import data_fetch
from pipeline.runtime import TaskSpec, checkpoint_key, code_digest, task_params
from tests.conftest import compose_config

DAY, NEXT_DAY = dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def _key(spec: TaskSpec, cfg, day: dt.date) -> str:
    return checkpoint_key(spec, task_params(spec, cfg), day, inputs={})


def test_a_day_fetched_on_its_own_has_the_key_of_that_day_in_a_range():
    # `date=D` alone; a range run ending the next day (main.end_date=${date}); nothing set
    dates = ([f"date={DAY}"], [f"date={NEXT_DAY}"], [])
    alone, in_a_range, unset = (compose_config(["data_fetch=cboe", *d]) for d in dates)
    assert alone.data_fetch.date != in_a_range.data_fetch.date
    assert _key(data_fetch.SPEC, alone, DAY) == _key(data_fetch.SPEC, in_a_range, DAY)
    assert _key(data_fetch.SPEC, alone, DAY) == _key(data_fetch.SPEC, unset, DAY)
    # the day itself still keys it
    assert _key(data_fetch.SPEC, alone, DAY) != _key(data_fetch.SPEC, alone, NEXT_DAY)


def test_the_top_level_date_does_not_key_a_task_that_reads_it():
    spec = dataclasses.replace(data_fetch.SPEC, config_keys=(*data_fetch.SPEC.config_keys, "date"))
    alone, in_a_range = (compose_config([f"date={d}"]) for d in (DAY, NEXT_DAY))
    assert _key(spec, alone, DAY) == _key(spec, in_a_range, DAY)


def test_other_config_still_keys_the_checkpoint():
    base, changed = (compose_config(o) for o in ([], ["data_fetch.symbols=[SPY]"]))
    assert _key(data_fetch.SPEC, base, DAY) != _key(data_fetch.SPEC, changed, DAY)


# -- the code ------------------------------------------------------------------------------------
PACKAGE = "ckpt_sample"  # a repository of its own, on sys.path for the test
SOURCES = {
    "README.md": "# sample\n",
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/task.py": (
        "import json\n\nfrom ckpt_sample import helpers\n\n\n"
        "def run(ctx):\n    from .lazy import late\n\n"
        "    return json.dumps(helpers.value() + late())\n"
    ),
    f"{PACKAGE}/helpers.py": (
        "from ckpt_sample.deep.util import VALUE\n\n\ndef value():\n    return VALUE\n"
    ),
    f"{PACKAGE}/deep/__init__.py": "",
    f"{PACKAGE}/deep/util.py": "VALUE = 1\n",
    f"{PACKAGE}/lazy.py": "def late():\n    return 2\n",
    f"{PACKAGE}/unrelated.py": "X = 3\n",
    "other/__init__.py": "",
    "other/module.py": "Y = 4\n",
}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository whose task module `ckpt_sample.task` imports some of its modules: at the
    top, transitively, and relatively inside a function, and not others."""
    for name, text in SOURCES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[module]


def key_in_a_new_process() -> str:
    """The sample task's checkpoint key as a process started now computes it (a process
    computes the digest of its code once)."""
    code_digest.cache_clear()
    task = importlib.import_module(f"{PACKAGE}.task")
    spec = TaskSpec("sample", task.run, inputs=lambda ctx: [], outputs=lambda ctx: [])
    return checkpoint_key(spec, {"sample": {"x": 1}}, DAY, inputs={})


def _edit(root, name: str) -> None:
    with (root / name).open("a") as fh:
        fh.write("\n# edited\n")


@pytest.mark.parametrize("edited", ["README.md", f"{PACKAGE}/unrelated.py", "other/module.py"])
def test_an_edit_to_what_the_task_does_not_import_keeps_the_key(repo, edited):
    before = key_in_a_new_process()
    _edit(repo, edited)
    assert key_in_a_new_process() == before


@pytest.mark.parametrize(
    "edited",
    [
        f"{PACKAGE}/task.py",  # the task's module
        f"{PACKAGE}/helpers.py",  # imported by it
        f"{PACKAGE}/deep/util.py",  # imported by what it imports
        f"{PACKAGE}/deep/__init__.py",  # loaded on the way to deep.util
        f"{PACKAGE}/lazy.py",  # imported relatively, inside a function
        f"{PACKAGE}/__init__.py",
    ],
)
def test_an_edit_to_a_module_the_task_runs_changes_the_key(repo, edited):
    before = key_in_a_new_process()
    _edit(repo, edited)
    assert key_in_a_new_process() != before


def test_an_uncommitted_edit_changes_the_key_and_undoing_it_restores_it(repo):
    before = key_in_a_new_process()
    helpers = repo / PACKAGE / "helpers.py"
    helpers.write_text(SOURCES[f"{PACKAGE}/helpers.py"] + "\nEXTRA = 1\n")
    assert key_in_a_new_process() != before
    helpers.write_text(SOURCES[f"{PACKAGE}/helpers.py"])
    assert key_in_a_new_process() == before


def test_a_task_of_the_repository_is_keyed_by_its_own_code():
    from pipeline import data_validate, model_train

    specs = (data_fetch.SPEC, data_validate.SPEC, model_train.SPEC)
    cfg = compose_config([])
    same = {"name": "data_fetch", "config_keys": data_fetch.SPEC.config_keys}
    keys = {_key(dataclasses.replace(spec, **same), cfg, DAY) for spec in specs}
    assert len(keys) == len(specs)  # same name and config: only the code differs
