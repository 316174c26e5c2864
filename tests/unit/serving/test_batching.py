"""The batcher merges requests that queue up while it is busy, splits the answers back in order,
and confines a failure to the request that caused it (serving.batching)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving.batching import Batcher


class Recorder:
    """price(model, items) → (items × 1, items × 2); records each call's size; the first call
    waits for `release` so that later requests queue up behind it."""

    def __init__(self, fail_on=None):
        self.calls: list[list[int]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_on = fail_on

    def __call__(self, model, items):
        self.started.set()
        self.release.wait(10)
        self.calls.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot price {self.fail_on}")
        values = np.asarray(items, float)
        return values, values * 2


@pytest.fixture
def recorder():
    return Recorder()


def queue_behind_a_busy_worker(batcher, recorder, model, requests):
    """Submit a first request, wait until the worker holds it, queue `requests`, release."""
    first = batcher.submit(model, [0])
    assert recorder.started.wait(10)
    futures = [batcher.submit(model if m is None else m, items) for m, items in requests]
    recorder.release.set()
    return first, futures


def test_a_lone_request_is_priced_at_once(recorder):
    recorder.release.set()
    batcher = Batcher(recorder, max_contracts=100)
    iv, price = batcher.submit("m", [1, 2, 3]).result(10)
    assert list(iv) == [1, 2, 3] and list(price) == [2, 4, 6]
    assert recorder.calls == [[1, 2, 3]]
    batcher.stop()


def test_requests_waiting_for_the_worker_are_priced_in_one_call_and_split_back(recorder):
    batcher = Batcher(recorder, max_contracts=100)
    first, futures = queue_behind_a_busy_worker(
        batcher, recorder, "m", [(None, [1]), (None, [2, 3]), (None, [4])]
    )
    assert list(first.result(10)[0]) == [0]
    assert [list(f.result(10)[0]) for f in futures] == [[1], [2, 3], [4]]
    assert recorder.calls == [[0], [1, 2, 3, 4]]
    assert batcher.batches == 1
    batcher.stop()


def test_a_batch_never_exceeds_max_contracts(recorder):
    batcher = Batcher(recorder, max_contracts=3)
    _, futures = queue_behind_a_busy_worker(
        batcher, recorder, "m", [(None, [1, 2]), (None, [3]), (None, [4, 5])]
    )
    assert [list(f.result(10)[1]) for f in futures] == [[2, 4], [6], [8, 10]]
    assert recorder.calls == [[0], [1, 2, 3], [4, 5]]
    batcher.stop()


def test_max_contracts_1_prices_every_request_alone(recorder):
    batcher = Batcher(recorder, max_contracts=1)
    _, futures = queue_behind_a_busy_worker(batcher, recorder, "m", [(None, [1]), (None, [2])])
    [f.result(10) for f in futures]
    assert recorder.calls == [[0], [1], [2]]
    batcher.stop()


def test_requests_for_different_model_versions_are_not_merged(recorder):
    batcher = Batcher(recorder, max_contracts=100)
    _, futures = queue_behind_a_busy_worker(
        batcher, recorder, "v1", [("v1", [1]), ("v2", [2]), ("v2", [3])]
    )
    [f.result(10) for f in futures]
    assert recorder.calls == [[0], [1], [2, 3]]
    batcher.stop()


def test_a_failing_request_in_a_merged_batch_fails_alone():
    recorder = Recorder(fail_on=2)
    batcher = Batcher(recorder, max_contracts=100)
    _, (good, bad, other) = queue_behind_a_busy_worker(
        batcher, recorder, "m", [(None, [1]), (None, [2]), (None, [3])]
    )
    assert list(good.result(10)[0]) == [1] and list(other.result(10)[0]) == [3]
    with pytest.raises(ValueError, match="cannot price 2"):
        bad.result(10)
    assert recorder.calls == [[0], [1, 2, 3], [1], [2], [3]]  # merged, then each alone
    batcher.stop()


async def _await_price(batcher):
    return await batcher.price("m", [7])


def test_price_is_awaitable(recorder):
    import asyncio

    recorder.release.set()
    batcher = Batcher(recorder, max_contracts=10)
    iv, _ = asyncio.run(_await_price(batcher))
    assert list(iv) == [7]
    batcher.stop()


def test_a_stopped_batcher_refuses_work(recorder):
    batcher = Batcher(recorder, max_contracts=10)
    batcher.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.submit("m", [1])
