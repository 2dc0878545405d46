"""Batch collation with upstream's ``collation_fn`` semantics.

Items are tuples ``(audio, metadata, ...)``; the batch transposes them position by position:
tensors are stacked, Python numbers and numpy arrays become one numpy array, anything else
(the metadata dicts) stays a tuple. So a batch is ``[audio [B, C, N], (dict, dict, ...)]`` and
training code unpacks it as ``reals, metadata = batch``. Metadata is deliberately not collated
key-by-key: conditioners read per-item values (prompts, padding masks) from the dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def collation_fn(samples: Sequence[Sequence[Any]]) -> list[Any]:
    """Collate a list of item tuples into a list with one entry per tuple position."""
    result: list[Any] = []
    for column in zip(*samples, strict=True):
        first = column[0]
        if isinstance(first, torch.Tensor):
            result.append(torch.stack(column))
        elif isinstance(first, (int, float, np.ndarray)):
            result.append(np.array(column))
        else:
            result.append(column)
    return result
