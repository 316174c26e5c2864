"""Start-up fallback (serving.model_holder): when the alias's version fails its load or self-check
and nothing serves yet, the holder serves the `previous-production` version, alerts, and says so in
/model's info; with a fake registry that also resolves `previous-production` and records alerts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from serving.errors import ReloadFailed
from serving.model_holder import FALLBACK_ALIAS, ModelHolder, RegistryPoller
from tests.unit.serving.fakes import FakeSource


@dataclass
class FallbackSource(FakeSource):
    """FakeSource with `previous-production` (held by `fallback_holder`) and an alert sink."""

    holder_of_alias: str | None = "3"
    fallback_holder: str | None = "2"
    alerts: list[tuple[str, dict]] = field(default_factory=list)

    def resolve_fallback(self):
        if self.fallback_holder is None:
            return None
        return self.fallback_holder, f"run-{self.fallback_holder}"

    def alert(self, message: str, details: dict) -> None:
        self.alerts.append((message, details))


@pytest.fixture
def source():
    source = FallbackSource()
    # the failure message carries a machine path: it must not reach /model or the alert
    source.broken["3"] = RuntimeError("deliberately broken model at /srv/models/3/pyfunc_model.py")
    return source


def test_a_broken_production_at_start_up_serves_previous_production_and_alerts(source):
    holder = ModelHolder(source)
    with pytest.raises(ReloadFailed) as info:
        holder.reload()
    assert "v3 of options-pricer (@production) was not loaded" in str(info.value)
    assert "serving the fallback v2 (@previous-production)" in str(info.value)

    model = holder.current
    assert (model.version, model.alias, model.run_id) == ("2", FALLBACK_ALIAS, "run-2")
    fallback = model.info()["fallback"]
    assert fallback["instead_of"] == {"alias": "production", "version": "3"}
    assert "RuntimeError: deliberately broken model" in fallback["reason"]
    assert "/srv/models" not in fallback["reason"]

    ((message, details),) = source.alerts
    assert "options-pricer@production v3 failed" in message and "deliberately broken" in message
    assert "serves v2 (@previous-production)" in message and "/srv/models" not in message
    assert details == {"failed_version": "3", "rolled_back_to": "2"}


def test_a_healthy_model_is_no_fallback_and_a_later_failure_does_not_fall_back(source):
    source.point("2")
    holder = ModelHolder(source)
    holder.reload()
    assert holder.current.info()["fallback"] is None
    source.point("3")  # a broken promotion while v2 serves: v2 keeps serving as Production
    with pytest.raises(ReloadFailed, match="still serving v2"):
        holder.reload()
    assert holder.current.alias == "production" and holder.current.info()["fallback"] is None
    assert source.alerts == []


def test_the_poll_keeps_the_fallback_without_alerting_again(source):
    holder = ModelHolder(source)
    poller = RegistryPoller(holder, poll_s=0)
    poller.poll_once()
    poller.poll_once()
    assert holder.serving == "2" and len(source.alerts) == 1
    assert source.loads == ["3", "2"]  # the broken version is not loaded again by the poll
    with pytest.raises(ReloadFailed, match="serving the fallback v2"):
        holder.reload()  # an admin reload retries it, fails, and keeps the fallback
    assert holder.serving == "2" and holder.current.fallback is not None


def test_a_rollback_to_the_fallback_version_makes_it_production_again(source):
    holder = ModelHolder(source)
    with pytest.raises(ReloadFailed):
        holder.reload()
    source.point("2")  # make rollback: v2 holds @production again
    outcome = holder.reload()
    assert (outcome.version, outcome.reloaded) == ("2", False)
    assert holder.current.alias == "production" and holder.current.info()["fallback"] is None


def test_a_fixed_promotion_replaces_the_fallback(source):
    holder = ModelHolder(source)
    with pytest.raises(ReloadFailed):
        holder.reload()
    source.point("4")
    assert holder.reload().version == "4"
    assert holder.current.alias == "production" and holder.current.fallback is None


def test_no_previous_production_alerts_that_nothing_serves(source):
    source.fallback_holder = None
    holder = ModelHolder(source)
    with pytest.raises(ReloadFailed, match="no model is loaded"):
        holder.reload()
    assert holder.current is None
    ((message, details),) = source.alerts
    assert "no other version holds @previous-production" in message
    assert "serves nothing" in message and details == {"failed_version": "3"}


def test_a_broken_fallback_alerts_that_nothing_serves(source):
    source.broken["2"] = OSError("booster.ubj is missing")
    holder = ModelHolder(source)
    with pytest.raises(ReloadFailed, match="no model is loaded"):
        holder.reload()
    assert holder.current is None
    ((message, _),) = source.alerts
    assert "so did its fallback v2" in message and "booster.ubj is missing" in message
