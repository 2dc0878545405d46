"""Dynamic batching on asyncio: compatible requests that arrive close together share one model call.

Why: a diffusion step costs nearly the same for 1 or 16 same-length items on an accelerator, so
serving requests one by one wastes most of the device. Requests carry a *key* (everything that must
be equal to share a call: sample length, steps, CFG scale, sampler, ...). The dispatcher takes the
oldest waiting request, waits at most ``window_s`` for more requests with the same key (or until the
call is full), and runs the whole group in a single worker thread, so the event loop stays free and
the model never runs two calls at once. Requests are never split across calls.

Memory is bounded: at most ``queue_size`` items may wait; past that :meth:`DynamicBatcher.submit`
raises :class:`QueueFullError` carrying a ``Retry-After`` estimate (the HTTP layer turns it into 503).

Isolation: when a shared call fails, each of its requests is retried in a call of its own, so one
request the model cannot handle fails alone instead of taking its batch-mates down with it.

Abandoned work is not done: a request whose future is cancelled (client gone, job deleted) is dropped
while it waits, and a running call whose requests are all cancelled is told to stop through the
``should_stop`` it was given (the sampler asks it between steps), so the worker is free for live requests.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFullError(RuntimeError):
    """The wait queue has no room; ``retry_after`` is a whole number of seconds to wait."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(eq=False)
class WorkRequest:
    """One submitted request: ``size`` items that must run in the same model call."""

    key: Hashable
    payload: Any
    size: int
    future: asyncio.Future
    enqueued: float
    state: str = "queued"  # queued -> running -> done | failed | cancelled
    batch_items: int = 0  # items in the model call that ran it (for stats / headers)


@dataclass
class BatcherStats:
    calls: int = 0
    items: int = 0
    requests: int = 0
    failed_calls: int = 0
    retried_alone: int = 0  # requests re-run in a call of their own after their shared call failed
    abandoned_calls: int = 0  # calls that ended early because every request in them was cancelled
    rejected: int = 0
    batch_sizes: Counter = field(default_factory=Counter)  # items per call -> how many calls
    last_call_s: float = 0.0
    mean_call_s: float = 0.0  # exponential moving average

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "items": self.items, "requests": self.requests,
                "failed_calls": self.failed_calls, "retried_alone": self.retried_alone,
                "abandoned_calls": self.abandoned_calls, "rejected": self.rejected,
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "mean_items_per_call": (self.items / self.calls) if self.calls else 0.0,
                "mean_call_s": self.mean_call_s, "last_call_s": self.last_call_s}


class DynamicBatcher:
    """Group requests by key within a time window; run each group with ``run_batch`` in one thread.

    ``run_batch(payloads, should_stop=...)`` gets the payloads of one group (same key, total size <=
    ``max_batch``) and must return one result per payload, in order. It should call ``should_stop()``
    now and then (between sampler steps) and give up when it returns True: nobody waits for the result.
    When it raises for a group of several requests, each is run again alone; an exception of a call of
    one request fails that request.
    """

    def __init__(self, run_batch: Callable[..., Sequence[Any]], *, max_batch: int,
                 window_s: float, queue_size: int):
        if max_batch < 1 or queue_size < 1 or window_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and window_s >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self.queue_size = queue_size
        self.stats = BatcherStats()
        self._pending: list[WorkRequest] = []
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running: list[WorkRequest] = []

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._changed = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sao-model")
        self._task = asyncio.get_running_loop().create_task(self._dispatch_forever(), name="sao-batcher")

    async def stop(self) -> None:
        """Fail waiting requests, stop dispatching; a call already running finishes in its thread."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        for request in self._pending:
            if not request.future.done():
                request.state = "cancelled"
                request.future.set_exception(RuntimeError("server is shutting down"))
        self._pending.clear()
        assert self._executor is not None
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._task = None

    # --- submission -------------------------------------------------------------------------------

    @property
    def queued_items(self) -> int:
        return sum(r.size for r in self._pending if not r.future.done())

    @property
    def running_items(self) -> int:
        return sum(r.size for r in self._running)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained enough (at least 1)."""
        calls_ahead = self.queued_items / self.max_batch + 1
        return max(1, math.ceil(calls_ahead * max(self.stats.mean_call_s, 0.1)))

    def submit(self, key: Hashable, payload: Any, size: int = 1) -> WorkRequest:
        """Queue a request; its ``future`` resolves to the result. Raises :class:`QueueFullError`."""
        if self._task is None or self._changed is None:
            raise RuntimeError("batcher is not running")
        if not 1 <= size <= self.max_batch:
            raise ValueError(f"request size {size} must be between 1 and max_batch={self.max_batch}")
        self._drop_finished()
        if self.queued_items + size > self.queue_size:
            self.stats.rejected += 1
            raise QueueFullError(f"generation queue is full ({self.queued_items} of {self.queue_size} items "
                                 "waiting); retry later", self.retry_after())
        loop = asyncio.get_running_loop()
        request = WorkRequest(key=key, payload=payload, size=size, future=loop.create_future(),
                              enqueued=loop.time())
        self._pending.append(request)
        self._changed.set()
        return request

    # --- dispatching ------------------------------------------------------------------------------

    def _drop_finished(self) -> None:
        """Forget requests whose future was cancelled while waiting (client gone, job deleted)."""
        kept = []
        for request in self._pending:
            if request.future.done():
                request.state = "cancelled"
            else:
                kept.append(request)
        self._pending = kept

    def _group_for(self, key: Hashable) -> list[WorkRequest]:
        group, total = [], 0
        for request in self._pending:
            if request.key == key and not request.future.done() and total + request.size <= self.max_batch:
                group.append(request)
                total += request.size
        return group

    async def _wait_for_companions(self, oldest: WorkRequest) -> None:
        """Wait until the oldest request's group is full or its window has passed."""
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        deadline = oldest.enqueued + self.window_s
        while sum(r.size for r in self._group_for(oldest.key)) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0 or oldest.future.done():
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _dispatch_forever(self) -> None:
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        while True:
            self._drop_finished()
            if not self._pending:
                self._changed.clear()
                await self._changed.wait()
                continue
            oldest = self._pending[0]
            await self._wait_for_companions(oldest)
            self._drop_finished()
            group = self._group_for(oldest.key) if not oldest.future.done() else []
            if not group:
                continue
            chosen = set(map(id, group))
            self._pending = [r for r in self._pending if id(r) not in chosen]
            await self._run_group(loop, group)

    async def _run_group(self, loop: asyncio.AbstractEventLoop, group: list[WorkRequest]) -> None:
        """Run ``group`` in one call; if that fails, run each of its requests still waited for alone."""
        try:
            results = await self._call(loop, group)
        except Exception as exc:
            live = [r for r in group if not r.future.done()]
            if len(group) == 1 or not live:
                self._settle(group, error=exc)
                return
            for request in live:
                self.stats.retried_alone += 1
                try:
                    (result,) = await self._call(loop, [request])
                except Exception as alone_exc:  # this request is the one the model cannot take
                    self._settle([request], error=alone_exc)
                else:
                    self._settle([request], results=[result])
        else:
            self._settle(group, results=results)

    @staticmethod
    def _settle(group: list[WorkRequest], results: Sequence[Any] | None = None,
                error: BaseException | None = None) -> None:
        for i, request in enumerate(group):
            request.state = "failed" if error is not None else "done"
            if request.future.done():
                request.state = "cancelled" if request.future.cancelled() else request.state
                continue
            if error is not None:
                request.future.set_exception(error)
            else:
                request.future.set_result(results[i])

    async def _call(self, loop: asyncio.AbstractEventLoop, group: list[WorkRequest]) -> Sequence[Any]:
        """One ``run_batch`` call in the worker thread, with its ``should_stop`` and the counters."""
        items = sum(r.size for r in group)
        for request in group:
            request.state = "running"
            request.batch_items = items
        abandoned = threading.Event()  # set on the event loop, read by the worker thread

        def on_done(_future: asyncio.Future) -> None:
            if all(r.future.done() for r in group):
                abandoned.set()

        for request in group:
            request.future.add_done_callback(on_done)

        def should_stop() -> bool:
            """True once every request of the call is cancelled, or the batcher is stopping."""
            return abandoned.is_set() or self._task is None

        self._running = group
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, functools.partial(
                self.run_batch, [r.payload for r in group], should_stop=should_stop))
            if len(results) != len(group):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(group)} requests")
            return results
        except Exception:
            if abandoned.is_set():
                self.stats.abandoned_calls += 1
            else:
                self.stats.failed_calls += 1
            raise
        finally:
            for request in group:
                request.future.remove_done_callback(on_done)
            self._running = []
            elapsed = time.perf_counter() - started
            self.stats.calls += 1
            self.stats.items += items
            self.stats.requests += len(group)
            self.stats.batch_sizes[items] += 1
            self.stats.last_call_s = elapsed
            alpha = 0.3 if self.stats.calls > 1 else 1.0
            self.stats.mean_call_s = (1 - alpha) * self.stats.mean_call_s + alpha * elapsed
