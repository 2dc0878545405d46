"""DynamicBatcher on its own: grouping, limits, failures and shutdown as a server operator sees them.

``run_batch`` is the batcher's one collaborator: any callable from a list of payloads (and a
``should_stop`` to ask between steps) to a list of results. These tests give it a plain recording function (the HTTP tests in test_app.py run it with the
real model); each test runs its own event loop through ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from stable_audio_ops.serving.batcher import DynamicBatcher, QueueFullError


class Recorder:
    """A ``run_batch`` that records each call's payloads and answers ``payload * 10`` (or raises on "bad")."""

    def __init__(self) -> None:
        self.calls: list[list] = []

    def __call__(self, payloads: Sequence, should_stop=None) -> list:
        self.calls.append(list(payloads))
        if "bad" in payloads:
            raise ValueError("the model failed on 'bad'")
        return [p * 10 for p in payloads]


async def _settle(*requests) -> list:
    return await asyncio.gather(*(r.future for r in requests), return_exceptions=True)


def test_compatible_requests_share_one_call_and_each_gets_its_own_result():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=8, window_s=0.05, queue_size=16)
        await batcher.start()
        a = [batcher.submit("short", n) for n in (1, 2, 3)]
        b = batcher.submit("long", 4)
        results = await _settle(*a, b)
        await batcher.stop()
        return batcher, a, b, results

    batcher, a, b, results = asyncio.run(scenario())
    assert recorder.calls == [[1, 2, 3], [4]]  # one call per key, oldest key first
    assert results == [10, 20, 30, 40]
    assert [r.batch_items for r in a] == [3, 3, 3] and b.batch_items == 1
    assert batcher.stats.as_dict()["batch_sizes"] == {"1": 1, "3": 1}
    assert batcher.stats.as_dict()["mean_items_per_call"] == 2.0


def test_a_request_arriving_later_in_the_window_joins_the_waiting_one():
    recorder = Recorder()

    async def scenario():
        # a long window that a full call cuts short: the test does not depend on timing
        batcher = DynamicBatcher(recorder, max_batch=2, window_s=30.0, queue_size=4)
        await batcher.start()
        first = batcher.submit("k", 1)
        await asyncio.sleep(0.05)  # the dispatcher is now waiting for companions
        second = batcher.submit("k", 2)
        results = await asyncio.wait_for(_settle(first, second), 10)
        await batcher.stop()
        return results

    assert asyncio.run(scenario()) == [10, 20]
    assert recorder.calls == [[1, 2]]


def test_a_call_never_exceeds_max_batch_and_never_splits_a_request():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=4, window_s=0.0, queue_size=16)
        await batcher.start()
        requests = [batcher.submit("k", payload, size) for payload, size in ((1, 3), (2, 3), (3, 1))]
        results = await _settle(*requests)
        with pytest.raises(ValueError, match="request size 5 must be between 1 and max_batch=4"):
            batcher.submit("k", 9, 5)
        await batcher.stop()
        return results, [r.batch_items for r in requests]

    results, items = asyncio.run(scenario())
    assert results == [10, 20, 30]
    # 3 + 3 would not fit in 4: the later 1-item request fills the first call instead
    assert recorder.calls == [[1, 3], [2]] and items == [4, 3, 4]


def test_a_full_queue_raises_queue_full_error_with_retry_after_and_recovers():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=4, window_s=0.0, queue_size=3)
        await batcher.start()
        waiting = batcher.submit("k", 1, 3)  # fills the queue before the dispatcher gets to run
        with pytest.raises(QueueFullError) as info:
            batcher.submit("k", 2, 1)
        await _settle(waiting)
        later = batcher.submit("k", 3, 3)  # the queue drained: new work is accepted again
        result = await later.future
        await batcher.stop()
        return batcher, info.value, result

    batcher, error, result = asyncio.run(scenario())
    assert "generation queue is full (3 of 3 items waiting); retry later" in str(error)
    assert isinstance(error.retry_after, int) and error.retry_after >= 1  # becomes the 503's Retry-After
    assert result == 30 and batcher.stats.rejected == 1


def test_a_failing_shared_call_is_retried_alone_so_only_the_faulty_request_fails():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=4, window_s=0.0, queue_size=8)
        await batcher.start()
        outcome = await _settle(batcher.submit("k", "bad"), batcher.submit("k", "ok"))
        after = await batcher.submit("k", 5).future
        await batcher.stop()
        return batcher, outcome, after

    batcher, (bad, ok), after = asyncio.run(scenario())
    assert isinstance(bad, ValueError) and "failed on 'bad'" in str(bad)
    assert ok == "okokokokokokokokokok"  # "ok" * 10: served by its own call
    assert recorder.calls == [["bad", "ok"], ["bad"], ["ok"], [5]] and after == 50
    assert batcher.stats.retried_alone == 2 and batcher.stats.failed_calls == 2 and batcher.stats.calls == 4


def test_a_running_call_whose_requests_are_all_cancelled_is_told_to_stop():
    started = threading.Event()
    stops: list[float] = []

    def slow(payloads: Sequence, should_stop) -> list:
        """Stands in for a sampler: 'steps' of 10 ms, asking should_stop after each (the first call 30 s)."""
        steps = 1 if started.is_set() else 3000
        started.set()
        for _ in range(steps):
            if should_stop():
                stops.append(time.perf_counter())
                raise RuntimeError("stopped between steps")
            time.sleep(0.01)
        return [p * 10 for p in payloads]

    async def scenario():
        batcher = DynamicBatcher(slow, max_batch=4, window_s=0.05, queue_size=8)
        await batcher.start()
        gone = [batcher.submit("k", n) for n in (1, 2)]
        while not started.is_set():
            await asyncio.sleep(0.005)
        gone[0].future.cancel()  # one client left: the call goes on for the other
        await asyncio.sleep(0.1)
        assert not stops and batcher.running_items == 2
        gone[1].future.cancel()  # the last one left: nobody waits, the call stops
        cancelled_at = time.perf_counter()
        later = await asyncio.wait_for(batcher.submit("k", 3).future, 60)
        await batcher.stop()
        return batcher, gone, later, cancelled_at

    batcher, gone, later, cancelled_at = asyncio.run(scenario())
    assert stops and stops[0] - cancelled_at < 1.0  # within a few 'steps', not the 30 s of the whole call
    assert later == 30 and [r.state for r in gone] == ["cancelled", "cancelled"]
    assert batcher.stats.abandoned_calls == 1 and batcher.stats.failed_calls == 0 and batcher.stats.retried_alone == 0


def test_run_batch_returning_the_wrong_number_of_results_fails_the_call():
    async def scenario():
        batcher = DynamicBatcher(lambda payloads, should_stop: [], max_batch=4, window_s=0.0, queue_size=8)
        await batcher.start()
        outcome = await _settle(batcher.submit("k", 1), batcher.submit("k", 2))
        await batcher.stop()
        return outcome

    outcome = asyncio.run(scenario())
    assert [str(e) for e in outcome] == ["run_batch returned 0 results for 1 requests"] * 2  # alone, after 0 for 2


def test_a_request_cancelled_while_waiting_never_reaches_the_model():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=4, window_s=0.05, queue_size=8)
        await batcher.start()
        gone = batcher.submit("k", 1)  # e.g. the client disconnected or the job was deleted
        kept = batcher.submit("k", 2)
        gone.future.cancel()
        result = await kept.future
        await batcher.stop()
        return gone, result

    gone, result = asyncio.run(scenario())
    assert result == 20 and recorder.calls == [[2]] and gone.state == "cancelled"


def test_stop_fails_waiting_requests_and_a_stopped_batcher_takes_no_work():
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=4, window_s=30.0, queue_size=8)
        with pytest.raises(RuntimeError, match="batcher is not running"):
            batcher.submit("k", 0)
        await batcher.start()
        waiting = batcher.submit("k", 1)  # waits for companions for up to 30 s
        await asyncio.sleep(0.05)
        await batcher.stop()
        with pytest.raises(RuntimeError, match="batcher is not running"):
            batcher.submit("k", 2)
        return (await _settle(waiting))[0], waiting

    error, waiting = asyncio.run(scenario())
    assert isinstance(error, RuntimeError) and str(error) == "server is shutting down"
    assert waiting.state == "cancelled" and recorder.calls == []


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"queue_size": 0}, {"window_s": -1.0}])
def test_impossible_limits_are_refused_at_construction(kwargs):
    limits = {"max_batch": 4, "window_s": 0.0, "queue_size": 8, **kwargs}
    with pytest.raises(ValueError, match="max_batch and queue_size must be >= 1 and window_s >= 0"):
        DynamicBatcher(Recorder(), **limits)
