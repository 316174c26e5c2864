"""serving.service.load_settings: the service composes configs/ without pipeline.config (it imports
only the pricing core, .importlinter) and must still read what the typed schema reads."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import warnings

import pytest
from hydra.core.config_store import ConfigStore

from pipeline.config import REPO_ROOT
from tests.conftest import compose_config

with warnings.catch_warnings():  # BentoML's own deprecation notices (see test_service.py)
    warnings.simplefilter("ignore")
    import serving.service as service

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pathspec.*")

# a fresh process: this one has pipeline.config's schema registered (tests/conftest.py)
FRESH = """
import dataclasses, json, sys
from serving.service import load_settings
settings = load_settings({})
values = {k: [v, type(v).__name__] for k, v in dataclasses.asdict(settings).items()}
print(json.dumps([values, sorted(m for m in sys.modules if m.startswith("pipeline"))]))
"""


def test_the_settings_are_what_the_typed_config_says_without_importing_it():
    done = subprocess.run([sys.executable, "-c", FRESH], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    values, imported = json.loads(done.stdout.strip().splitlines()[-1])
    cfg = compose_config([])  # pipeline.config's schema: types every key
    expected = {"tracking_uri": cfg.mlflow.tracking_uri, **cfg.serving}
    assert set(values) == set(expected) == {f.name for f in dataclasses.fields(service.Settings)}
    for key, value in expected.items():
        assert values[key] == [value, type(value).__name__], key
    assert "pipeline.config" not in imported
    assert values["poll_s"][1] == "float" and values["port"][1] == "int"


def test_the_environment_overrides_the_config():
    settings = service.load_settings({"MLFLOW_TRACKING_URI": "http://registry.test",
                                      "SERVING_MODEL_NAME": "other", "SERVING_ALIAS": "staging",
                                      "SERVING_POLL_S": "2.5", "SERVING_STATE_DIR": "/states"})  # fmt: skip
    chosen = (settings.tracking_uri, settings.model_name, settings.alias, settings.poll_s)
    assert chosen == ("http://registry.test", "other", "staging", 2.5)
    assert settings.state_dir == "/states" and settings.port == 3000  # the rest: configs/
    with pytest.raises(ValueError, match="SERVING_POLL_S='soon' is not a number of seconds"):
        service.load_settings({"SERVING_POLL_S": "soon"})


@pytest.mark.parametrize(
    ("line", "words"),
    [("polls_s: 5", "polls_s"), ("port: three-thousand", "port")],
)
def test_a_misspelled_or_mistyped_serving_key_fails_naming_it(tmp_path, monkeypatch, line, words):
    shutil.copytree(REPO_ROOT / "configs", tmp_path / "configs")
    group = tmp_path / "configs" / "serving" / "default.yaml"
    key = line.split(":")[0]
    kept = [l for l in group.read_text().splitlines() if not l.startswith(f"{key}:")]  # noqa: E741
    group.write_text("\n".join(kept + [line]) + "\n")
    monkeypatch.setattr(service, "REPO_ROOT", tmp_path)
    # without pipeline.config's schema (the service's own case), so that Settings is what refuses
    monkeypatch.delitem(ConfigStore.instance().repo, "config_schema.yaml", raising=False)
    with pytest.raises(Exception, match=words):
        service.load_settings({})
