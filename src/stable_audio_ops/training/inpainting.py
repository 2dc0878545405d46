"""Random inpainting masks for training ``diffusion_cond_inpaint`` models (upstream's ``random_inpaint_mask``).

Mask convention (the model sees it through the ``inpaint_mask`` / ``inpaint_masked_input``
input-concat conditioning): **1 = provided (kept), 0 = to generate**. Per batch item one mask type is
drawn with ``mask_type_probabilities`` (default ``[0.1, 0.8, 0.1]``):

- ``RANDOM_SEGMENTS``: 1..``max_mask_segments`` segments are zeroed, each of random length up to
  ``real_length // n_segments``, placed inside the real (unpadded) region; segments may overlap;
- ``FULL_MASK``: all zeros, i.e. plain text-to-audio (this keeps the model usable without audio);
- ``CAUSAL_MASK``: keep a random prefix of the real region (0..real_length frames), generate the rest
  of the real region (padding after it stays 1, as upstream).

An item whose padding mask is all zeros keeps an all-ones mask for the two segment types (nothing
real to hide). Randomness comes from Python's ``random`` (as upstream), or from ``rng`` when given.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence

import torch


class MaskType(enum.IntEnum):
    RANDOM_SEGMENTS = 0
    FULL_MASK = 1
    CAUSAL_MASK = 2


DEFAULT_MASK_TYPE_PROBABILITIES = (0.1, 0.8, 0.1)


def _check_probabilities(probabilities: Sequence[float]) -> list[float]:
    probs = [float(p) for p in probabilities]
    if len(probs) != len(MaskType):
        raise ValueError(f"mask_type_probabilities needs {len(MaskType)} values "
                         f"(RANDOM_SEGMENTS, FULL_MASK, CAUSAL_MASK), got {len(probs)}")
    if any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-4:
        raise ValueError(f"mask_type_probabilities must be non-negative and sum to 1, got {probs}")
    return probs


def item_inpaint_mask(length: int, real_length: int, mask_type: MaskType, max_mask_segments: int = 10,
                      rng: random.Random | None = None) -> torch.Tensor:
    """``[length]`` float mask for one item (see the module docstring)."""
    rng = rng or random
    mask = torch.ones(length)
    if mask_type == MaskType.FULL_MASK:
        return torch.zeros(length)
    real_length = min(int(real_length), length)
    if real_length <= 0:
        return mask
    if mask_type == MaskType.RANDOM_SEGMENTS:
        segments = rng.randint(1, max(1, int(max_mask_segments)))
        longest = max(1, real_length // segments)
        for _ in range(segments):
            seg = rng.randint(1, longest)
            start = rng.randint(0, real_length - seg)
            mask[start:start + seg] = 0
    else:  # CAUSAL_MASK
        keep = rng.randint(0, real_length)
        mask[keep:real_length] = 0
    return mask


def random_inpaint_mask(sequence: torch.Tensor, padding_masks: torch.Tensor | None = None,
                        max_mask_segments: int = 10,
                        mask_type_probabilities: Sequence[float] | None = None,
                        rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sequence * mask, mask)`` with ``mask`` of shape ``[B, 1, T]`` for a ``[B, C, T]`` sequence.

    ``padding_masks`` (``[B, T]``, 1 = real frames) bounds where segments may fall; None = all real.
    """
    b, _, length = sequence.shape
    probs = _check_probabilities(mask_type_probabilities or DEFAULT_MASK_TYPE_PROBABILITIES)
    if max_mask_segments < 1:
        raise ValueError(f"max_mask_segments must be >= 1, got {max_mask_segments}")
    if padding_masks is None:
        real_lengths = [length] * b
    else:
        real_lengths = [int(v) for v in (padding_masks.reshape(b, -1) > 0).sum(dim=-1).tolist()]
    chooser = rng or random
    masks = []
    for i in range(b):
        mask_type = MaskType(chooser.choices(list(MaskType), weights=probs, k=1)[0])
        masks.append(item_inpaint_mask(length, real_lengths[i], mask_type, max_mask_segments, rng))
    mask = torch.stack(masks).unsqueeze(1).to(device=sequence.device, dtype=sequence.dtype)
    return sequence * mask, mask
