"""One source of defaults: the YAML in configs/ holds every value; the dataclasses in
pipeline/config.py only type the keys.

A value in a dataclass would be a second default that can silently disagree with the YAML (as
breach_days 1 vs 2 once did), so every field must be MISSING, bar the documented exceptions. And
every option of every config group must compose with no key left MISSING: the YAML sets them all.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from omegaconf import MISSING, OmegaConf

from pipeline import config
from pipeline.config import CONFIG_DIR
from tests.conftest import compose_config

# (dataclass, field) → its allowed default, and why (see DataFetchConfig): each source's file sets
# its own block; the other sources' blocks are None ("not this source"), which no file sets
EXCEPTIONS = {
    ("DataFetchConfig", "synthetic"): None,
    ("DataFetchConfig", "cboe"): None,
    ("DataFetchConfig", "file"): None,
}
SCHEMAS = [
    cls
    for _, cls in inspect.getmembers(config, inspect.isclass)
    if dataclasses.is_dataclass(cls) and cls.__module__ == config.__name__
]
OPTIONS = [
    f"{group.name}={option.stem}"
    for group in sorted(p for p in CONFIG_DIR.iterdir() if p.is_dir())
    for option in sorted(group.glob("*.yaml"))
]


def default_of(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def test_every_schema_field_is_missing_or_a_documented_exception():
    assert len(SCHEMAS) > 20  # the walk found the schema classes
    found = {}
    for cls in SCHEMAS:
        for f in dataclasses.fields(cls):
            key = (cls.__name__, f.name)
            expected = EXCEPTIONS.get(key, MISSING)
            if default_of(f) != expected:
                found[f"{cls.__name__}.{f.name}"] = default_of(f)
    assert not found, (
        f"defaults in pipeline/config.py (move them to configs/*.yaml, type the field as "
        f"MISSING): {found}"
    )


def test_the_exceptions_are_still_fields():
    names = {(cls.__name__, f.name) for cls in SCHEMAS for f in dataclasses.fields(cls)}
    assert set(EXCEPTIONS) <= names


@pytest.mark.parametrize("option", ["(root)", *OPTIONS])
def test_the_yaml_sets_every_key(option):
    cfg = compose_config([] if option == "(root)" else [option])
    assert not OmegaConf.missing_keys(cfg), f"{option}: keys no YAML file sets"


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.startswith("data_fetch=")])
def test_each_source_file_sets_its_own_block(option):
    fetch = compose_config([option]).data_fetch
    assert fetch[fetch.source] is not None
