"""pipeline.retry: the policy → tenacity translation, checked through recorded waits (no sleeping)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from pipeline.config import CONFIG_DIR, RetryPolicy
from pipeline.errors import ConfigError, TransientError
from pipeline.retry import attempts_made, build_retrying, retries_made


class Flaky(TransientError):
    def __init__(self, msg: str = "blip", retry_after: float | None = None):
        super().__init__(msg)
        if retry_after is not None:
            self.retry_after = retry_after


def always_failing(exc_factory):
    calls = []

    def fn():
        calls.append(1)
        raise exc_factory()

    return fn, calls


def run_policy(policy, exc_factory=Flaky, **kwargs):
    """Run an always-failing function under `policy`; return (recorded waits, calls, retrying)."""
    waits: list[float] = []
    retrying = build_retrying(policy, retry_on=TransientError, sleep=waits.append, **kwargs)
    fn, calls = always_failing(exc_factory)
    with pytest.raises(TransientError):
        retrying(fn)
    return waits, len(calls), retrying


def policy(**kw) -> RetryPolicy:
    base = {
        "max_retries": 5,
        "backoff": "exponential",
        "max_delay": None,
        "base_delay": 1.0,
        "jitter": False,
    }
    return RetryPolicy(**{**base, **kw})


def test_exponential_doubles_from_base_and_caps_at_max_delay():
    waits, calls, _ = run_policy(policy(max_retries=6, base_delay=0.5, max_delay=5.0))
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert calls == 7


def test_exponential_uncapped_when_max_delay_is_none():
    waits, _, _ = run_policy(policy(max_retries=4, base_delay=1.0, max_delay=None))
    assert waits == [1.0, 2.0, 4.0, 8.0]


def test_linear_steps_by_base_delay_and_caps():
    waits, calls, _ = run_policy(
        policy(backoff="linear", max_retries=4, base_delay=5.0, max_delay=12.0)
    )
    assert waits == [5.0, 10.0, 12.0, 12.0]
    assert calls == 5


def test_none_backoff_never_waits():
    waits, calls, _ = run_policy(policy(backoff="none", max_retries=3, base_delay=7.0))
    assert waits == [0.0, 0.0, 0.0]
    assert calls == 4


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_attempts_are_one_plus_max_retries(max_retries):
    waits, calls, retrying = run_policy(policy(max_retries=max_retries, base_delay=0.0))
    assert calls == max_retries + 1
    assert len(waits) == max_retries
    assert attempts_made(retrying) == max_retries + 1
    assert retries_made(retrying) == max_retries


def test_success_after_retries_returns_value_and_counts_attempts():
    waits: list[float] = []
    retrying = build_retrying(policy(base_delay=0.1), retry_on=Flaky, sleep=waits.append)
    outcomes = iter([Flaky(), Flaky(), "ok"])

    def fn(x):
        out = next(outcomes)
        if isinstance(out, Exception):
            raise out
        return f"{out}-{x}"

    assert retrying(fn, 7) == "ok-7"
    assert attempts_made(retrying) == 3
    assert retries_made(retrying) == 2
    assert waits == [0.1, 0.2]


def test_original_exception_surfaces_after_last_attempt():
    retrying = build_retrying(
        policy(max_retries=2, base_delay=0.0), retry_on=Flaky, sleep=lambda s: None
    )
    with pytest.raises(Flaky, match="the last one"):
        retrying(lambda: (_ for _ in ()).throw(Flaky("the last one")))


@pytest.mark.parametrize(
    "backoff,schedule", [("exponential", [1, 2, 4, 8]), ("linear", [1, 2, 3, 4])]
)
def test_jitter_stays_within_half_to_full_wait(backoff, schedule):
    seen: list[list[float]] = []
    for _ in range(50):
        waits, _, _ = run_policy(
            policy(backoff=backoff, max_retries=4, base_delay=1.0, max_delay=3.0, jitter=True)
        )
        seen.append(waits)
    for i, full in enumerate(schedule):
        capped = min(full, 3.0)
        column = [w[i] for w in seen]
        assert all(capped / 2 <= w <= capped for w in column)
        assert len(set(column)) > 1  # actually random


def test_retry_after_raises_the_wait_but_not_above_max_delay():
    waits, _, _ = run_policy(
        policy(max_retries=3, base_delay=0.5, max_delay=10.0),
        exc_factory=lambda: Flaky(retry_after=4.0),
    )
    assert waits == [4.0, 4.0, 4.0]  # 0.5/1/2 raised to the server's 4 s
    waits, _, _ = run_policy(
        policy(max_retries=2, base_delay=0.5, max_delay=10.0),
        exc_factory=lambda: Flaky(retry_after=60.0),
    )
    assert waits == [10.0, 10.0]  # capped
    waits, _, _ = run_policy(
        policy(max_retries=4, base_delay=1.0, max_delay=None),
        exc_factory=lambda: Flaky(retry_after=3.0),
    )
    assert waits == [3.0, 3.0, 4.0, 8.0]  # a floor, not a replacement


def test_unreadable_retry_after_is_ignored():
    waits, _, _ = run_policy(
        policy(max_retries=2, base_delay=1.0), exc_factory=lambda: Flaky(retry_after="soon")
    )
    assert waits == [1.0, 2.0]


def test_non_retryable_exception_passes_straight_through():
    waits: list[float] = []
    retrying = build_retrying(policy(), retry_on=(Flaky,), sleep=waits.append)
    fn, calls = always_failing(lambda: KeyError("not transient"))
    with pytest.raises(KeyError):
        retrying(fn)
    assert len(calls) == 1
    assert waits == []
    assert attempts_made(retrying) == 1


def test_predicate_retry_on():
    waits: list[float] = []
    retrying = build_retrying(
        policy(max_retries=2, base_delay=0.0),
        retry_on=lambda exc: "again" in str(exc),
        sleep=waits.append,
    )
    fn, calls = always_failing(lambda: RuntimeError("again"))
    with pytest.raises(RuntimeError):
        retrying(fn)
    assert len(calls) == 3
    fn, calls = always_failing(lambda: RuntimeError("fatal"))
    with pytest.raises(RuntimeError):
        retrying(fn)
    assert len(calls) == 1


def test_before_sleep_sees_each_retry():
    seen = []
    run_policy(
        policy(max_retries=3, base_delay=0.0),
        before_sleep=lambda rs: seen.append(rs.attempt_number),
    )
    assert seen == [1, 2, 3]


def test_policy_from_the_repo_config_as_dictconfig():
    table = OmegaConf.load(CONFIG_DIR / "retry" / "default.yaml")
    waits, calls, _ = run_policy(table.model_train)  # max_retries 1, backoff none
    assert (waits, calls) == ([0.0], 2)
    node = OmegaConf.structured(
        RetryPolicy(max_retries=2, backoff="linear", max_delay=None, base_delay=2.0, jitter=False)
    )
    waits, calls, _ = run_policy(node)
    assert (waits, calls) == ([2.0, 4.0], 3)


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"backoff": "fibonacci"}, "backoff"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"base_delay": -1.0}, "delays"),
        ({"max_delay": "soon"}, "delays"),
    ],
)
def test_bad_policy_is_a_config_error(bad, match):
    spec = {
        "max_retries": 2,
        "backoff": "linear",
        "max_delay": None,
        "base_delay": 1.0,
        "jitter": False,
    }
    with pytest.raises(ConfigError, match=match):
        build_retrying({**spec, **bad}, retry_on=Flaky)


def test_missing_policy_key_is_a_config_error():
    with pytest.raises(ConfigError, match="backoff"):
        build_retrying({"max_retries": 2}, retry_on=Flaky)
