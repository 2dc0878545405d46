"""MultiLoss: weighted sum of terms, skipping terms whose inputs are absent or whose start step is not reached."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.losses.core import MultiLoss, ValueLoss


def test_a_term_counts_only_from_its_start_step():
    losses = MultiLoss([ValueLoss("a", weight=1.0), ValueLoss("b", weight=2.0, start_step=3)])
    info = {"a": torch.tensor(1.0), "b": torch.tensor(10.0)}

    total, terms = losses(info, step=2)
    assert list(terms) == ["a"] and float(total) == 1.0  # before its start: neither computed nor added
    total, terms = losses(info, step=3)
    assert list(terms) == ["a", "b"] and float(total) == pytest.approx(21.0)
    # without a step (validation, upstream callers) every term counts, as before
    total, terms = losses(info)
    assert list(terms) == ["a", "b"] and float(total) == pytest.approx(21.0)
