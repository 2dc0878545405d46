"""Integer-ratio sinc resampling (the ``patched`` pretransform's oversampling)."""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.models.resample import SincResample


def test_upsampling_keeps_a_band_limited_tone_and_downsampling_returns_it() -> None:
    t = torch.arange(400, dtype=torch.float32)
    tone = torch.sin(2 * math.pi * 0.05 * t)[None, None]
    up = SincResample(1, 2)(tone)
    assert up.shape == (1, 1, 800)
    expected_up = torch.sin(2 * math.pi * 0.025 * torch.arange(800, dtype=torch.float32))
    inner = slice(40, -40)  # edges see zero padding
    assert (up[0, 0, inner] - expected_up[inner]).abs().max() < 0.02
    down = SincResample(2, 1)(up)
    assert down.shape == tone.shape
    assert (down[..., 20:-20] - tone[..., 20:-20]).abs().max() < 0.02


def test_downsampling_removes_content_above_the_new_nyquist() -> None:
    t = torch.arange(800, dtype=torch.float32)
    high = torch.sin(2 * math.pi * 0.4 * t)[None]  # above 0.25, the Nyquist after halving the rate
    assert SincResample(2, 1)(high)[..., 20:-20].abs().max() < 0.05


def test_lengths_round_up_and_rates_must_be_positive() -> None:
    assert SincResample(3, 2)(torch.randn(2, 1, 10)).shape == (2, 1, 7)
    assert torch.equal(SincResample(2, 2)(x := torch.randn(1, 5)), x)
    with pytest.raises(ValueError, match="must be positive"):
        SincResample(0, 2)
