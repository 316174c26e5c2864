"""The registry protocol (pipeline.registry) against a real sqlite MLflow store.

One store per module (creating a sqlite store runs MLflow's migrations, ~5 s here), holding three
runs that each logged a tiny "models from code" pyfunc; every test uses its own registered-model
name in it, so tests stay independent. The CLI tests copy that store to tmp_path/mlflow.db and run
`python -m pipeline.promote|history paths.root=<tmp_path>` in subprocesses.
"""

from __future__ import annotations

import re
import shutil
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.registry import Registry, RegistryRefusal, RegistryUnavailable
from tests.helpers import run_module

pytestmark = pytest.mark.integration

MODEL_CODE = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Echo(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return model_input


mlflow.models.set_model(Echo())
"""


@dataclass
class Store:
    root: Path
    uri: str
    run_ids: list[str]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    root = tmp_path_factory.mktemp("registry_store")
    uri = f"sqlite:///{root}/mlflow.db"
    code = root / "echo_model.py"
    code.write_text(MODEL_CODE)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        exp = MlflowClient(uri).create_experiment("registry", (root / "mlartifacts").as_uri())
        run_ids = []
        for _ in range(3):
            with mlflow.start_run(experiment_id=exp) as run:
                mlflow.pyfunc.log_model(
                    name="model", python_model=str(code), pip_requirements=["mlflow"]
                )
            run_ids.append(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(previous)
    return Store(root, uri, run_ids)


@pytest.fixture
def registry(store, request) -> Registry:
    """A Registry on the module's store under a model name of this test's own."""
    return Registry("pricer-" + re.sub(r"\W+", "-", request.node.name), MlflowClient(store.uri))


def register(registry: Registry, store: Store, i: int = 0) -> str:
    run_id = store.run_ids[i % len(store.run_ids)]
    mv = registry.register_candidate(
        f"runs:/{run_id}/model", run_id, tags={"holdout_end": "2026-03-31"}
    )
    assert registry.check_consistency() == []
    return str(mv.version)


def promoted(registry: Registry, store: Store, i: int, **kwargs) -> str:
    """Register candidate i, record a passing verdict and promote it."""
    version = register(registry, store, i)
    registry.record_verdict(version, True, ["beats the baselines"], {"candidate.iv_rmse": 0.01})
    registry.promote(**kwargs)
    assert registry.check_consistency() == []
    return version


def stages(registry: Registry) -> dict[str, tuple[str, list[str]]]:
    return {r["version"]: (r["stage"], r["aliases"]) for r in registry.state()}


def refused(registry: Registry, call, match: str) -> str:
    """Assert `call()` raises RegistryRefusal matching `match` and changes nothing."""
    before, history = registry.state(), registry.history()
    with pytest.raises(RegistryRefusal, match=match) as info:
        call()
    assert registry.state() == before and registry.history() == history
    assert registry.check_consistency() == []
    return str(info.value)


def test_register_stages_the_candidate_and_archives_the_previous_one(registry, store):
    v1 = register(registry, store, 0)
    assert stages(registry) == {v1: ("Staging", ["staging"])}
    assert registry.resolve("staging").tags["holdout_end"] == "2026-03-31"
    v2 = register(registry, store, 1)
    assert stages(registry) == {v1: ("Archived", []), v2: ("Staging", ["staging"])}
    assert registry.resolve("staging").run_id == store.run_ids[1]
    assert registry.resolve("production") is None
    assert [(e["action"], e["from_version"], e["to_version"]) for e in registry.history()] == [
        ("register", None, v1),
        ("register", v1, v2),
    ]
    refused(
        registry, lambda: registry.register_candidate("runs:/nope/model", "nope"), "cannot register"
    )
    # the runs:/ URI was resolved to MLflow 3's logged model: consumers can load it by alias
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store.uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{registry.name}@staging")
    finally:
        mlflow.set_tracking_uri(previous)
    assert model.predict([[1.5]]) == [[1.5]]


def test_verdict_round_trip_and_re_evaluation(registry, store):
    version = register(registry, store)
    assert registry.verdict(version) is None
    registry.record_verdict(version, False, ["too slow"], {"x": float("nan")})
    assert registry.verdict(version) | {"evaluated_at": None} == {
        "verdict": "failed",
        "passed": False,
        "reasons": ["too slow"],
        "evaluated_at": None,
        "metrics": {"x": None},
    }
    registry.record_verdict(version, True, ["fine now"])
    assert registry.verdict(version)["passed"] and registry.verdict(version)["reasons"] == [
        "fine now"
    ]
    with pytest.raises(RegistryRefusal, match="no version 99"):
        registry.record_verdict("99", True, [])


def test_promote_refusals_change_nothing(registry, store):
    refused(registry, lambda: registry.promote(), "no registered model")
    v1 = register(registry, store, 0)
    msg = refused(registry, lambda: registry.promote(), "no gate verdict")
    assert "registry.force=true" in msg
    registry.record_verdict(v1, False, ["IV RMSE 2.1 vol points is worse than Production's"])
    msg = refused(registry, lambda: registry.promote(), "failed the gate")
    assert "worse than Production" in msg
    refused(registry, lambda: registry.promote(force=True), "force needs a reason")
    refused(registry, lambda: registry.promote(force=True, reason="   "), "force needs a reason")
    v2 = register(registry, store, 1)
    registry.record_verdict(v1, True, ["ok"])  # passing, but no longer the Staging candidate
    refused(
        registry,
        lambda: registry.promote(version=v1),
        f"v{v1} .* is in stage Archived, not Staging",
    )
    refused(registry, lambda: registry.promote(version="42"), "does not exist")
    registry.record_verdict(v2, True, ["ok"])
    registry.promote()
    refused(registry, lambda: registry.promote(), "nothing in Staging")


def test_force_with_a_reason_promotes_and_is_recorded(registry, store, monkeypatch):
    monkeypatch.setenv("USER", "quant-on-call")
    version = register(registry, store)
    registry.record_verdict(version, False, ["parity breaches 3% > 1%"])
    entry = registry.promote(force=True, reason="hotfix: vendor feed changed")
    assert entry["forced"] is True and entry["gate"] == "failed"
    assert stages(registry) == {version: ("Production", ["production"])}
    last = registry.history()[-1]
    assert last == entry
    assert (last["user"], last["reason"], last["to_version"]) == (
        "quant-on-call",
        "hotfix: vendor feed changed",
        version,
    )
    assert registry.check_consistency() == []


def test_promote_and_rollback(registry, store, monkeypatch):
    monkeypatch.setenv("USER", "alice")
    v1 = promoted(registry, store, 0, reason="first model")
    assert stages(registry) == {v1: ("Production", ["production"])}
    v2 = promoted(registry, store, 1, user="bob")
    assert stages(registry) == {
        v1: ("Archived", ["previous-production"]),
        v2: ("Production", ["production"]),
    }
    assert str(registry.resolve("production").version) == v2
    assert str(registry.resolve("previous-production").version) == v1
    assert registry.resolve("staging") is None

    refused(registry, lambda: registry.rollback(), "rollback needs a reason")
    entry = registry.rollback(reason="v2 misprices short-dated puts")
    assert stages(registry) == {v1: ("Production", ["production"]), v2: ("Archived", [])}
    assert registry.check_consistency() == []
    # one rollback undoes one promotion: a second would redeploy the version just rolled back
    msg = refused(registry, lambda: registry.rollback(reason="again"), "nothing to roll back to")
    assert "would redeploy" in msg

    history = registry.history()
    assert [(e["action"], e["from_version"], e["to_version"], e["user"]) for e in history] == [
        ("register", None, v1, "alice"),
        ("promote", None, v1, "alice"),
        ("register", None, v2, "alice"),
        ("promote", v1, v2, "bob"),
        ("rollback", v2, v1, "alice"),
    ]
    assert history[-1] == entry and entry["reason"] == "v2 misprices short-dated puts"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e["at"]) for e in history)
    assert [e["forced"] for e in history] == [False] * 5

    # the next promotion sets previous-production again, so rollback works again
    v3 = promoted(registry, store, 2)
    assert stages(registry)[v1] == ("Archived", ["previous-production"])
    registry.rollback(reason="v3 too")
    assert stages(registry) == {
        v1: ("Production", ["production"]),
        v2: ("Archived", []),
        v3: ("Archived", []),
    }


def test_rollback_with_nothing_to_roll_back_to_is_refused(registry, store):
    refused(registry, lambda: registry.rollback(reason="x"), "no registered model")
    promoted(registry, store, 0)
    msg = refused(registry, lambda: registry.rollback(reason="x"), "nothing to roll back to")
    assert "set when a promotion replaces a Production version" in msg


def test_no_stage_deprecation_warnings_reach_users(registry, store):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        promoted(registry, store, 0)
        promoted(registry, store, 1)
        registry.rollback(reason="check")
        registry.state()


@pytest.fixture
def dead_uri(monkeypatch) -> str:
    """An http tracking URI on a closed local port, with MLflow told not to retry."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("command", ["promote", "rollback", "register", "history", "state"])
def test_unreachable_registry(dead_uri, store, command):
    registry = Registry("options-pricer", MlflowClient(dead_uri))
    calls = {
        "promote": lambda: registry.promote(),
        "rollback": lambda: registry.rollback(reason="x"),
        "register": lambda: registry.register_candidate("runs:/abc/model", "abc"),
        "history": registry.history,
        "state": registry.state,
    }
    with pytest.raises(RegistryUnavailable, match=re.escape(f"model registry at {dead_uri}")):
        calls[command]()


class Flaky:
    """Wraps a client method so that its n-th call (1-based) raises, or every call from the n-th."""

    def __init__(self, method, n: int, forever: bool = False):
        self.method, self.n, self.forever, self.calls = method, n, forever, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n or (self.forever and self.calls > self.n):
            raise ConnectionError("store went away")
        return self.method(*args, **kwargs)


@pytest.mark.parametrize(
    ("method", "n"),
    [
        ("transition_model_version_stage", 2),  # archiving the old Production version
        ("set_registered_model_alias", 2),  # previous-production
        ("delete_registered_model_alias", 1),  # removing staging from the promoted version
        ("set_registered_model_tag", 1),  # the history entry, the very last step
    ],
)
def test_promote_failing_midway_restores_the_previous_state(
    registry, store, monkeypatch, method, n
):
    promoted(registry, store, 0)
    v2 = register(registry, store, 1)
    registry.record_verdict(v2, True, ["ok"])
    before, history = registry.state(), registry.history()
    monkeypatch.setattr(registry.client, method, Flaky(getattr(registry.client, method), n))
    with pytest.raises(
        RegistryUnavailable,
        match="promote failed at .*store went away.*previous state was restored",
    ):
        registry.promote()
    assert registry.state() == before and registry.history() == history
    assert registry.check_consistency() == []
    registry.promote()  # the blip is over: the same promotion now goes through
    assert str(registry.resolve("production").version) == v2


def test_register_failing_midway_removes_the_half_registered_version(registry, store, monkeypatch):
    v1 = register(registry, store, 0)
    before = registry.state()
    flaky = Flaky(registry.client.set_registered_model_alias, 1)
    monkeypatch.setattr(registry.client, "set_registered_model_alias", flaky)
    with pytest.raises(RegistryUnavailable, match="register failed at .*alias 'staging'.*restored"):
        register(registry, store, 1)
    assert registry.state() == before and str(registry.resolve("staging").version) == v1
    assert registry.check_consistency() == []


def test_a_store_that_stays_down_is_reported_and_detected(registry, store, monkeypatch):
    promoted(registry, store, 0)
    v2 = register(registry, store, 1)
    registry.record_verdict(v2, True, ["ok"])
    # the first change lands, then the store is gone for good: nothing can be undone
    flaky = Flaky(registry.client.transition_model_version_stage, 2, forever=True)
    monkeypatch.setattr(registry.client, "transition_model_version_stage", flaky)
    with pytest.raises(
        RegistryUnavailable, match="could not undo: .*move v2 from stage Staging to Production"
    ):
        registry.promote()
    monkeypatch.undo()
    problems = registry.check_consistency()
    assert "2 versions in stage Production (v1, v2); expected one at most" in problems


@pytest.fixture
def cli_root(store, tmp_path) -> Path:
    """tmp_path holding a copy of the module's store as mlflow.db, with an `options-pricer`
    candidate in Staging that has no gate verdict."""
    shutil.copy(store.root / "mlflow.db", tmp_path / "mlflow.db")
    registry = Registry("options-pricer", MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    registry.register_candidate(f"runs:/{store.run_ids[0]}/model", store.run_ids[0])
    return tmp_path


def test_promote_cli_refuses_with_one_line(cli_root):
    proc = run_module("pipeline.promote", f"paths.root={cli_root}", timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: v1 has no gate verdict"), proc.stderr


def test_history_cli_prints_the_tables(cli_root):
    proc = run_module("pipeline.history", f"paths.root={cli_root}", timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (
        "Promotion history of 'options-pricer'" in out
        and "Current state of 'options-pricer'" in out
    )
    assert re.search(r"^1\s+\S+\s+register\s+none → v1\s", out, re.M), out
    assert re.search(r"^1\s+Staging\s+staging\s+-\s+[0-9a-f]{32}", out, re.M), out
