"""The one place that turns a `RetryPolicy` into a tenacity `Retrying`.

Every retry in the platform (a task body under the runtime, one Cboe GET) goes through
`build_retrying`, so the config table in `configs/retry/` means the same thing everywhere:

- attempts: at most ``1 + max_retries`` (``max_retries=0`` runs once, never retries);
- wait before retry n (n = 1, 2, ...): ``exponential`` = base * 2**(n-1), ``linear`` = base * n,
  ``none`` = 0;
- ``jitter``: "equal jitter" — the wait is drawn uniformly from [w/2, w], so concurrent clients
  spread out but never retry immediately (full jitter can draw ~0 and hammer a rate-limited server);
- every wait is capped at ``max_delay`` (None = uncapped);
- an exception with a ``retry_after`` attribute (seconds, e.g. from an HTTP ``Retry-After``) makes
  the wait at least that long, still capped at ``max_delay``;
- ``reraise=True``: after the last attempt the original exception surfaces, not tenacity's
  RetryError.

The schedule itself comes from tenacity's wait strategies; only the jitter/retry-after/cap rule is
ours. Count what happened with `attempts_made` / `retries_made`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import tenacity
from tenacity import RetryCallState
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

BACKOFF_KINDS = ("exponential", "linear", "none")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def _field(policy: Any, name: str, default: Any = ...) -> Any:
    """Read one policy field from a dataclass, an OmegaConf DictConfig or a plain mapping."""
    if isinstance(policy, Mapping):
        if name in policy:
            return policy[name]
    elif hasattr(policy, name):
        return getattr(policy, name)
    if default is ...:
        raise ConfigError(f"retry policy has no '{name}' (got {policy!r})")
    return default


def _check_policy(policy: Any) -> tuple[int, str, float | None, float, bool]:
    """(max_retries, backoff, max_delay, base_delay, jitter), or a ConfigError naming the bad field."""
    max_retries = _field(policy, "max_retries")
    backoff = _field(policy, "backoff")
    max_delay = _field(policy, "max_delay", None)
    base_delay = _field(policy, "base_delay", 1.0)
    jitter = _field(policy, "jitter", True)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"retry policy max_retries={max_retries!r}: expected an integer >= 0")
    if backoff not in BACKOFF_KINDS:
        raise ConfigError(
            f"retry policy backoff={backoff!r}: expected one of {list(BACKOFF_KINDS)}"
        )
    try:
        base_delay = float(base_delay)
        max_delay = None if max_delay is None else float(max_delay)
    except (TypeError, ValueError):
        raise ConfigError(
            f"retry policy delays must be numbers (base_delay={base_delay!r}, max_delay={max_delay!r})"
        ) from None
    if base_delay < 0 or (max_delay is not None and max_delay < 0):
        raise ConfigError(
            f"retry policy delays must be >= 0 (base_delay={base_delay}, max_delay={max_delay})"
        )
    return max_retries, backoff, max_delay, base_delay, bool(jitter)


class PolicyWait(wait_base):
    """tenacity's schedule, then equal jitter, then ``retry_after`` as a floor, then the cap."""

    def __init__(self, schedule: wait_base, *, max_delay: float | None, jitter: bool):
        self.schedule = schedule
        self.max_delay = max_delay
        self.jitter = jitter

    def _cap(self, seconds: float) -> float:
        return seconds if self.max_delay is None else min(seconds, self.max_delay)

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._cap(float(self.schedule(retry_state)))
        if self.jitter and wait > 0:
            wait = random.uniform(wait / 2, wait)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # a garbled server hint must not break the retry itself
            with contextlib.suppress(TypeError, ValueError):
                hint = float(retry_after)
                if math.isfinite(hint):
                    wait = max(wait, hint)
        return max(0.0, self._cap(wait))


def _schedule(backoff: str, base_delay: float) -> wait_base:
    if backoff == "exponential":
        return tenacity.wait_exponential(multiplier=base_delay, exp_base=2)
    if backoff == "linear":
        # tenacity computes start + increment * (attempt - 1) = base * n for the n-th retry
        return tenacity.wait_incrementing(start=base_delay, increment=base_delay)
    return tenacity.wait_none()


def _retry_condition(retry_on: RetryOn) -> retry_base:
    if isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        return tenacity.retry_if_exception_type(retry_on)
    if isinstance(retry_on, tuple):
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on):
            raise TypeError(f"retry_on tuple must hold exception classes, got {retry_on!r}")
        return tenacity.retry_if_exception_type(retry_on)
    if callable(retry_on):
        return tenacity.retry_if_exception(retry_on)
    raise TypeError(f"retry_on must be exception classes or a predicate, got {retry_on!r}")


def _log_before_sleep(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning(
        "attempt %d failed (%s: %s); retrying in %.2fs",
        retry_state.attempt_number,
        type(exc).__name__,
        exc,
        wait,
    )


def build_retrying(
    policy: Any,
    *,
    retry_on: RetryOn,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """A tenacity `Retrying` for `policy`.

    Inputs: `policy` — a `pipeline.config.RetryPolicy`, an OmegaConf node with the same keys, or a
    mapping; `retry_on` — an exception class, a tuple of them, or a predicate on the exception
    (anything else propagates at once); `sleep` — injected by tests to record waits instead of
    sleeping; `before_sleep` — called with tenacity's RetryCallState before each wait (default: a
    WARNING on this module's logger naming the attempt, the error and the wait).
    Output: call it as ``retrying(fn, *args)``; a bad policy raises ConfigError here, not mid-run.
    """
    max_retries, backoff, max_delay, base_delay, jitter = _check_policy(policy)
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(1 + max_retries),
        wait=PolicyWait(_schedule(backoff, base_delay), max_delay=max_delay, jitter=jitter),
        retry=_retry_condition(retry_on),
        sleep=sleep,
        before_sleep=before_sleep or _log_before_sleep,
        reraise=True,
    )


def attempts_made(retrying: tenacity.Retrying) -> int:
    """Attempts the last call through `retrying` made (1 = succeeded or failed first time; 0 = never called).

    Reads tenacity's ``statistics["attempt_number"]``, which tenacity keeps per thread: ask from
    the thread that made the call.
    """
    return int(retrying.statistics.get("attempt_number", 0))


def retries_made(retrying: tenacity.Retrying) -> int:
    """Retries (attempts after the first) the last call through `retrying` made."""
    return max(attempts_made(retrying) - 1, 0)
