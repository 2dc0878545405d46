"""Windowed attention shared by the resampling block, ``taae`` and ``local_attn``: chunking the queries gives the
numbers of one band-masked SDPA call (what flash-attn's ``window_size`` computes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stable_audio_ops.models.resampling_transformer import band_mask, windowed_attention


@pytest.mark.parametrize("window", [(3, 5), (0, 0), (7, 0), (40, 40)])
def test_chunked_windowed_attention_equals_one_band_masked_call(window: tuple[int, int]) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 8) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=band_mask(37, *window, q.device))
    torch.testing.assert_close(windowed_attention(q, k, v, window, chunk_size=8), reference)
    torch.testing.assert_close(windowed_attention(q, k, v, window), reference)


def test_no_window_is_full_attention() -> None:
    q, k, v = (torch.randn(1, 2, 10, 4) for _ in range(3))
    torch.testing.assert_close(windowed_attention(q, k, v, None), F.scaled_dot_product_attention(q, k, v))
