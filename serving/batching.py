"""Adaptive batching: requests that arrive while the model is busy are priced together.

Pricing one contract costs about as much as pricing a hundred (the model's per-call overhead,
pandas feature code and an XGBoost DMatrix, dominates small batches; see the README's serving
benchmark), so under load the service prices whatever has queued up in one call:

- one worker thread prices; a request hands its validated contracts over and awaits the result;
- when the worker is free it takes every waiting request (in arrival order, up to
  `max_contracts` contracts in total, and only requests that chose the same model version), prices
  them as one frame and splits the answers back, in order;
- a lone request is priced at once: no timer, no added latency when the service is idle; batches
  grow with the load by themselves;
- if a merged batch fails, each request in it is priced alone, so an error reaches only the
  request that caused it.

`max_contracts=1` turns merging off (every request priced alone), for comparison.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

Answer = tuple[np.ndarray, np.ndarray]  # iv, price


@dataclass
class _Job:
    model: object
    items: Sequence
    future: Future


class Batcher:
    """Prices `items` with `price(model, items) -> (iv, price)` on one worker thread, merging the
    requests that wait for it (see the module docstring)."""

    def __init__(self, price: Callable[[object, Sequence], Answer], max_contracts: int):
        self._price = price
        self.max_contracts = max(1, int(max_contracts))
        self._queue: collections.deque[_Job] = collections.deque()
        self._wakeup = threading.Condition()
        self._stopped = False
        self.batches = 0  # merged calls made (for tests and the log)
        self._busy = False  # the worker is pricing a batch
        self._worker = threading.Thread(target=self._run, name="pricing-batcher", daemon=True)
        self._worker.start()

    def submit(self, model, items: Sequence) -> Future:
        """Queue `items` for `model`; the Future resolves to (iv, price) for exactly these items."""
        job = _Job(model, items, Future())
        with self._wakeup:
            if self._stopped:
                raise RuntimeError("the batcher is stopped")
            self._queue.append(job)
            self._wakeup.notify()
        return job.future

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being priced: a caller may price a lone request itself."""
        return not self._busy and not self._queue

    async def price(self, model, items: Sequence) -> Answer:
        return await asyncio.wrap_future(self.submit(model, items))

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        self._worker.join(timeout_s)

    def _next_batch(self) -> list[_Job] | None:
        """The waiting jobs to price together (None once stopped and drained)."""
        with self._wakeup:
            while not self._queue and not self._stopped:
                self._wakeup.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            self._busy = True
            total = len(batch[0].items)
            while self._queue:
                job = self._queue[0]
                if job.model is not batch[0].model or total + len(job.items) > self.max_contracts:
                    break
                batch.append(self._queue.popleft())
                total += len(job.items)
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if len(batch) == 1:
                self._run_alone(batch[0])
            else:
                self._run_merged(batch)
            self._busy = False

    def _run_alone(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(self._price(job.model, job.items))
        except BaseException as exc:  # handed to the request that sent the job
            job.future.set_exception(exc)

    def _run_merged(self, batch: list[_Job]) -> None:
        items = [item for job in batch for item in job.items]
        try:
            iv, price = self._price(batch[0].model, items)
        except Exception:
            for job in batch:  # find out whose contracts failed: each request on its own
                self._run_alone(job)
            return
        self.batches += 1
        start = 0
        for job in batch:
            end = start + len(job.items)
            if job.future.set_running_or_notify_cancel():
                job.future.set_result((iv[start:end], price[start:end]))
            start = end
