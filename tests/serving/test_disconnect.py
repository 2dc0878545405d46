"""Clients that give up are not served anyway: uvicorn on 127.0.0.1, real HTTP clients that time out.

Before: a burst of clients that disconnected kept the single model worker busy for every one of their
generations, and the next real request waited behind all of them (27 s instead of 0.12 s in the probe).
Now a disconnect cancels the request: dropped while queued, and a running call whose clients are all gone
stops at the next sampler step.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import uvicorn_server

pytestmark = pytest.mark.slow

BURST = 12
ABANDONED = {"seconds_total": 1.0, "steps": 200}  # a few seconds per call of 4 on one core
NORMAL = {"seconds_total": 0.125, "steps": 3}


def _give_up(base: str, seed: int, after_s: float) -> str:
    """POST a long generation and close the connection after ``after_s`` (a client-side timeout)."""
    try:
        with httpx.Client(timeout=after_s) as client:
            return str(client.post(f"{base}/v1/generate", json={**ABANDONED, "seed": seed}).status_code)
    except httpx.TimeoutException:
        return "gave up"


def _timed(base: str) -> tuple[int, float]:
    started = time.perf_counter()
    res = httpx.post(f"{base}/v1/generate", json={**NORMAL, "seed": 1}, timeout=300)
    return res.status_code, time.perf_counter() - started


def test_work_of_disconnected_clients_is_dropped_and_the_next_request_is_served_at_once():
    with uvicorn_server("--max-seconds", "1.0", "--max-steps", "200", "--max-batch", "4", "--queue-size", "64",
                        "--batch-window-ms", "20") as base:
        code, baseline = _timed(base)
        assert code == 200
        with ThreadPoolExecutor(BURST) as pool:
            outcomes = list(pool.map(lambda i: _give_up(base, i, 1.0), range(BURST)))
        assert outcomes == ["gave up"] * BURST  # every client left before its audio was ready
        code, after_burst = _timed(base)
        stats = httpx.get(f"{base}/v1/stats").json()

    assert code == 200
    # without cancellation this request waits for 3 calls of 200 steps (tens of seconds on one core)
    assert after_burst < 3.0 + 3 * baseline, (after_burst, baseline, stats)
    batcher = stats["batcher"]
    assert batcher["abandoned_calls"] >= 1 and batcher["failed_calls"] == 0, batcher
    assert batcher["items"] < BURST + 2, batcher  # queued work of the burst never reached the model
    assert stats["queued_items"] == 0 and stats["running_items"] == 0
