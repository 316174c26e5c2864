"""A version must price its logged input example offline before it becomes Production
(pipeline.deploy_checks.offline_check / promotion_check), a missing version is said to be missing,
and what goes into refusals and incidents carries no traceback or machine path. Stub pyfunc
models stand in for MLflow's loader here; tests/integration/test_promote_offline.py loads real ones."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.deploy_checks import offline_check, promotion_check, public_text
from pipeline.model import packaging
from pipeline.registry_rules import RegistryRefusal, promotion
from tests.unit.pipeline.test_registry_rules import snap
from tests.unit.serving.fakes import EXAMPLE


class StubModel:
    """A loaded pyfunc model: `input_example` and `predict`, answering `answer(frame)`."""

    def __init__(self, answer, example=EXAMPLE):
        self.input_example, self._answer = example, answer

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._answer(frame)


def priced(iv=0.2, price=1.5):
    return lambda frame: pd.DataFrame({"iv": iv, "price": price}, index=frame.index)


def broken(frame):
    raise RuntimeError("deliberately broken model")


@pytest.fixture
def load(monkeypatch):
    """load(model) makes packaging.served_model return `model` (or raise it, an exception)."""

    def _load(model):
        def served_model(uri, state_dir, max_state_age_days):
            if isinstance(model, Exception):
                raise model
            return model

        monkeypatch.setattr(packaging, "served_model", served_model)

    return _load


def test_a_version_pricing_its_example_passes(load):
    load(StubModel(priced()))
    health = offline_check("models:/options-pricer/3", "3")
    assert health.passed and health.checks == [
        "offline: v3 priced its 2 input example contracts (IV 0.2000 to 0.2000)"
    ]


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (StubModel(broken), "v3 failed on its input example: RuntimeError: deliberately broken"),
        (StubModel(priced(iv=float("nan"))), "priced 2 of its 2 input example contracts out of range"),
        (StubModel(priced(price=-1.0)), "row 0: iv 0.2, price -1"),
        (StubModel(priced(iv=0.0)), "IV must be finite and > 0"),
        (StubModel(lambda f: f), "returned columns"),  # an echo: no iv/price
        (StubModel(priced(), example=None), "v3 has no logged input example"),
        (OSError("[Errno 2] No such file: '/srv/mlartifacts/7/artifacts/booster.ubj'"),
         "v3 could not be loaded: OSError: [Errno 2] No such file: '…/booster.ubj'"),
    ],
)  # fmt: skip
def test_a_version_failing_offline_says_why(load, model, words):
    load(model)
    health = offline_check("models:/options-pricer/3", "3")
    assert not health.passed and len(health.checks) == 1
    assert health.checks[0].startswith("offline: ") and words in health.checks[0]


def test_the_promotion_check_refuses_with_the_reason_and_that_force_does_not_help(load):
    load(StubModel(broken))
    check = promotion_check("options-pricer")
    with pytest.raises(RegistryRefusal) as info:
        check("3")
    message = str(info.value)
    assert message.startswith("v3 of 'options-pricer' cannot become Production: offline: v3 failed")
    assert "RuntimeError: deliberately broken model" in message
    assert "Nothing was changed" in message and "not this check" in message
    load(StubModel(priced()))
    check("3")  # a working version passes


def test_public_text_drops_tracebacks_and_machine_paths():
    raw = (
        "v3 failed: OSError reading /home/ann/repo/mlartifacts/1/booster.ubj\n"
        "Traceback (most recent call last):\n"
        '  File "/home/ann/repo/pipeline/model/pyfunc_model.py", line 50, in load_context\n'
        "    self.booster.load_model(path)\n"
        "xgboost.core.XGBoostError: cannot open file:///home/ann/repo/mlartifacts/1/booster.ubj"
    )
    assert public_text(raw) == (
        "v3 failed: OSError reading …/booster.ubj "
        "xgboost.core.XGBoostError: cannot open file://…/booster.ubj"
    )
    kept = "registry sqlite:///home/ann/mlflow.db; GET http://127.0.0.1:3000/admin/reload"
    assert (
        public_text(kept)
        == "registry sqlite:///…/mlflow.db; GET http://127.0.0.1:3000/admin/reload"
    )
    assert public_text("x" * 400).endswith("…") and len(public_text("x" * 400)) == 300


# -- a missing version ------------------------------------------------------------------------
STATE = snap({"1": "Archived", "2": "Production", "3": "Staging"},
             {"production": "2", "staging": "3"}, verdicts={"3": True})  # fmt: skip


def test_a_missing_version_is_said_not_to_exist_and_the_existing_ones_are_listed():
    with pytest.raises(RegistryRefusal) as info:
        promotion(STATE, "42", True, "hotfix")
    message = str(info.value)
    assert message == (
        "v42 of 'options-pricer' does not exist: its versions are "
        "v1 (Archived), v2 (Production), v3 (Staging)"
    )
    assert "not Staging" not in message
    with pytest.raises(RegistryRefusal, match="v1 of 'options-pricer' is in stage Archived, not Staging"):  # fmt: skip
        promotion(STATE, "1", False, None)  # a version that exists still gets its stage named


def test_a_model_without_versions_says_so():
    with pytest.raises(RegistryRefusal, match="does not exist: the model has no versions yet"):
        promotion(snap({}, {}), "1", False, None)


def test_many_versions_list_the_newest():
    many = snap({str(v): "Archived" for v in range(1, 26)}, {})
    with pytest.raises(RegistryRefusal) as info:
        promotion(many, "99", False, None)
    assert "v16 (Archived), v17" in str(info.value) and str(info.value).endswith(
        "v25 (Archived) and 15 older"
    )
    assert "v15 " not in str(info.value)
