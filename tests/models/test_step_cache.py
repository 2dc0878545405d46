"""StepCache: a result is reused only while the very same inputs come in again."""

from __future__ import annotations

import torch

from stable_audio_ops.models.step_cache import StepCache, cached


def test_reuses_for_the_same_tensor_object_only() -> None:
    cache, calls = StepCache(), []
    cond = torch.ones(3)

    def compute() -> torch.Tensor:
        calls.append(1)
        return cond * 2

    first = cache.get("embed", (cond, None, 7), compute)
    assert cache.get("embed", (cond, None, 7), compute) is first and len(calls) == 1
    cache.get("embed", (cond.clone(), None, 7), compute)  # equal values, new tensor: recomputed
    cache.get("embed", (cond, None, 8), compute)  # a plain value that changed: recomputed
    assert len(calls) == 3 and (cache.hits, cache.misses) == (1, 3)


def test_no_cache_computes_every_time() -> None:
    calls = []
    for _ in range(2):
        cached(None, "x", (), lambda: calls.append(1))
    assert len(calls) == 2
