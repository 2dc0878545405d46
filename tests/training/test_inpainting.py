"""random_inpaint_mask: mask types, probabilities, padding-aware placement."""

from __future__ import annotations

import random

import pytest
import torch

from stable_audio_ops.training.inpainting import MaskType, item_inpaint_mask, random_inpaint_mask


def test_full_mask_generates_everything() -> None:
    x = torch.randn(4, 3, 50)
    masked, mask = random_inpaint_mask(x, mask_type_probabilities=[0, 1, 0])
    assert mask.shape == (4, 1, 50) and mask.sum() == 0 and masked.abs().sum() == 0


def test_causal_mask_keeps_a_prefix_of_the_real_region_only() -> None:
    rng = random.Random(0)
    padding = torch.zeros(8, 40)
    padding[:, :30] = 1
    x = torch.randn(8, 2, 40)
    masked, mask = random_inpaint_mask(x, padding, mask_type_probabilities=[0, 0, 1], rng=rng)
    for row in mask[:, 0]:
        keep = int(row[:30].sum())
        assert torch.equal(row[:keep], torch.ones(keep)) and row[keep:30].sum() == 0
        assert row[30:].sum() == 10  # padding after the real audio is left as provided, as upstream
    assert torch.equal(masked, x * mask)


def test_random_segments_fall_inside_the_real_region() -> None:
    rng = random.Random(1)
    for _ in range(50):
        mask = item_inpaint_mask(100, real_length=40, mask_type=MaskType.RANDOM_SEGMENTS, max_mask_segments=4, rng=rng)
        assert mask[40:].sum() == 60 and mask[:40].sum() < 40


def test_empty_real_region_keeps_everything_and_probabilities_are_validated() -> None:
    assert item_inpaint_mask(10, 0, MaskType.CAUSAL_MASK).sum() == 10
    x = torch.randn(2, 1, 10)
    with pytest.raises(ValueError, match="3 values"):
        random_inpaint_mask(x, mask_type_probabilities=[0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        random_inpaint_mask(x, mask_type_probabilities=[0.5, 0.5, 0.5])


def test_default_probabilities_mostly_full_masks() -> None:
    rng = random.Random(3)
    _, mask = random_inpaint_mask(torch.randn(400, 1, 16), rng=rng)
    full = (mask.sum(dim=(1, 2)) == 0).float().mean()
    assert 0.72 < full < 0.88  # default [0.1, 0.8, 0.1]
