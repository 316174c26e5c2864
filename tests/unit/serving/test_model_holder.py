"""Hot swap: the holder loads and self-checks a version fully before swapping the reference,
keeps the old model on any failure, and the poll and the admin reload share that one path
(serving.model_holder), with a fake registry and stub models."""

from __future__ import annotations

import logging
import threading

import pandas as pd
import pytest

from serving.errors import ReloadFailed, SelfCheckFailed
from serving.model_holder import ModelHolder, RegistryPoller, example_contracts, self_check
from tests.unit.serving.fakes import EXAMPLE, FakeSource, StubPricer, candidate


@pytest.fixture
def source():
    return FakeSource()


@pytest.fixture
def holder(source):
    return ModelHolder(source)


def test_first_reload_loads_the_alias_version_after_its_self_check(holder, source):
    outcome = holder.reload()
    assert (outcome.previous_version, outcome.version, outcome.reloaded) == (None, "1", True)
    model = holder.current
    assert model.version == "1" and model.run_id == "run-1"
    assert model.underlyings == {"SPY", "_SPX"}
    assert model.info()["model_name"] == "options-pricer" and model.info()["alias"] == "production"


def test_same_version_is_not_loaded_again(holder, source):
    holder.reload()
    outcome = holder.reload()
    assert (outcome.previous_version, outcome.version, outcome.reloaded) == ("1", "1", False)
    assert source.loads == ["1"]


def test_promotion_then_rollback_swap_the_model(holder, source):
    holder.reload()
    source.point("2")
    assert holder.reload().reloaded and holder.serving == "2"
    source.point("1")  # rollback: the alias goes back
    outcome = holder.reload()
    assert (outcome.previous_version, outcome.version) == ("2", "1") and holder.serving == "1"


def test_an_in_flight_request_keeps_the_model_it_started_with(holder, source):
    holder.reload()
    in_flight = holder.current  # what a request takes at its start
    source.point("2")
    holder.reload()
    assert in_flight.version == "1" and holder.current.version == "2"
    frame = pd.DataFrame(example_contracts(EXAMPLE))
    assert in_flight.pricer.predict(None, frame)["iv"].iloc[0] == pytest.approx(
        0.21 + 600 / 610 / 1000
    )


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(holder, source):
    holder.reload()
    source.point("2")
    source.broken["2"] = OSError("artifact booster.ubj is missing")
    with pytest.raises(ReloadFailed) as info:
        holder.reload()
    message = str(info.value)
    assert "v2 of options-pricer (@production) was not loaded" in message
    assert "OSError: artifact booster.ubj is missing" in message and "still serving v1" in message
    assert holder.serving == "1" and holder.last_error == message


def test_a_version_that_fails_its_self_check_is_refused(holder, source):
    holder.reload()
    source.point("2")
    wrong = StubPricer("1").predict(None, EXAMPLE)  # offline answers of another model
    source.candidates["2"] = candidate("2", offline=wrong)
    with pytest.raises(ReloadFailed, match="differ from the model's own prediction"):
        holder.reload()
    assert holder.serving == "1"


def test_no_version_holding_the_alias_is_a_failure_that_keeps_the_model(holder, source):
    holder.reload()
    source.point(None)
    with pytest.raises(ReloadFailed, match="no version of options-pricer holds the alias @production; still serving v1"):  # fmt: skip
        holder.reload()
    assert holder.serving == "1"


def test_an_unreachable_registry_is_a_failure_that_keeps_the_model(holder, source):
    holder.reload()
    source.unreachable = True
    with pytest.raises(ReloadFailed, match="registry did not answer .* still serving v1"):
        holder.reload()


def test_nothing_loaded_yet_says_so(source):
    source.point(None)
    holder = ModelHolder(source)
    with pytest.raises(ReloadFailed, match="no model is loaded"):
        holder.reload()
    assert holder.current is None and "holds the alias" in holder.last_error


def test_the_poll_does_not_retry_a_failed_version_but_an_admin_reload_does(holder, source):
    holder.reload()
    source.point("2")
    source.broken["2"] = RuntimeError("boom")
    with pytest.raises(ReloadFailed):
        holder.reload(retry_failed=False)
    with pytest.raises(ReloadFailed, match="boom"):
        holder.reload(retry_failed=False)
    assert source.loads == ["1", "2"]  # the poll's second attempt did not load it again
    del source.broken["2"]  # fixed (e.g. the registry's artifacts restored): an admin retries
    assert holder.reload().version == "2" and holder.failed == {}


def test_reloads_are_serialised(source):
    """Two reloads at once load the new version once."""
    gate = threading.Event()

    class SlowSource(FakeSource):
        def load(self, version):
            gate.wait(10)
            return super().load(version)

    slow = SlowSource()
    holder = ModelHolder(slow)
    threads = [threading.Thread(target=holder.reload) for _ in range(2)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert slow.loads == ["1"] and holder.serving == "1"


def test_self_check_passes_when_the_serving_path_matches_the_offline_prediction():
    self_check(candidate("3"))


@pytest.mark.parametrize(
    ("broken", "words"),
    [
        (candidate("3", example=None, offline=None), "no logged input example"),
        (candidate("3", offline=StubPricer("4").predict(None, EXAMPLE)), "differ"),
        (candidate("3", offline=StubPricer("3").predict(None, EXAMPLE).head(1)), "1 example contracts"),
        # the example's _SPX is not in the model's market state: the model itself refuses it
        (candidate("3", pricer=StubPricer("3", underlyings={"SPY"})),
         r"cannot price its own input example: .*row 1: unknown underlying '_SPX'"),
    ],
)  # fmt: skip
def test_self_check_failures_say_why(broken, words):
    with pytest.raises(SelfCheckFailed, match=words):
        self_check(broken)


def test_self_check_fails_on_a_model_that_raises():
    class Raising(StubPricer):
        def predict(self, context, model_input, params=None):
            raise RuntimeError("deliberately broken")

    with pytest.raises(SelfCheckFailed, match="RuntimeError: deliberately broken"):
        self_check(candidate("3", pricer=Raising("3")))


def test_self_check_fails_on_non_finite_answers():
    class NaNs(StubPricer):
        def predict(self, context, model_input, params=None):
            return super().predict(context, model_input).assign(iv=float("nan"))

    with pytest.raises(SelfCheckFailed, match="no finite price"):
        self_check(candidate("3", pricer=NaNs("3")))


def test_example_contracts_are_json_ready():
    rows = example_contracts(EXAMPLE)
    assert rows[0]["expiry"] == "2026-06-19" and rows[1]["option"] is None
    assert isinstance(rows[0]["strike"], float)


def test_the_poller_loads_at_once_then_follows_the_alias(source, caplog):
    holder = ModelHolder(source)
    poller = RegistryPoller(holder, poll_s=0)
    with caplog.at_level(logging.INFO, logger="serving.model"):
        poller.poll_once()
        source.point("2")
        source.broken["2"] = RuntimeError("boom")
        poller.poll_once()
        poller.poll_once()  # the same failure: not logged again, not loaded again
        source.point("1")
        poller.poll_once()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "now serving v1 (was none)"
    assert sum("boom" in m for m in messages) == 1
    assert source.loads == ["1", "2"] and holder.serving == "1"


def test_the_poller_thread_loads_the_model_in_the_background(source):
    holder = ModelHolder(source)
    poller = RegistryPoller(holder, poll_s=0.05).start()
    try:
        for _ in range(200):
            if holder.serving == "1":
                break
            threading.Event().wait(0.05)
        source.point("2")
        for _ in range(200):
            if holder.serving == "2":
                break
            threading.Event().wait(0.05)
        assert holder.serving == "2"
    finally:
        poller.stop()
