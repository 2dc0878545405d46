"""Reuse, across the sampler steps of one generation, what depends only on inputs that do not change.

A sampler calls the DiT 50-250 times with the same conditioning tensors: the projected condition
tokens, the cross-attention keys and values of those tokens in every layer, the CFG batch of
``[cond, uncond]`` inputs and the rotary tables are the same at every step. :class:`StepCache` keeps the
last result per name together with the inputs it came from, and hands it back while the *same* input
objects (``is``; plain values by ``==``) come in again. Values are computed exactly as without the cache,
so outputs are bitwise identical; a caller that passes new tensors simply recomputes.

A cache lives for one generation only (:meth:`DiffusionTransformer.reuse_step_invariants
<stable_audio_ops.models.dit.DiffusionTransformer.reuse_step_invariants>`): weights do not change inside
it, and it is dropped afterwards so it neither pins memory nor outlives a weight update.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False  # tensors count as the same input only when they are the same object
    return type(a) is type(b) and a == b


class StepCache:
    """Last result per name, reused while its inputs are the same objects (or equal plain values)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[tuple[Any, ...], Any]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, name: Hashable, inputs: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, or its stored result when ``inputs`` are the ones it was computed from."""
        entry = self._entries.get(name)
        if entry is not None and len(entry[0]) == len(inputs) and all(map(_same, entry[0], inputs)):
            self.hits += 1
            return entry[1]
        value = compute()
        self._entries[name] = (inputs, value)  # keeps the inputs alive, so their identity cannot be reused
        self.misses += 1
        return value


def cached(cache: StepCache | None, name: Hashable, inputs: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()`` through ``cache`` when there is one (inside a generation), else directly."""
    return compute() if cache is None else cache.get(name, inputs, compute)


__all__ = ["StepCache", "cached"]
