"""The pseudo-QMF bank behind the ``pqmf`` pretransform (unbuildable in 0.0.20 with current SciPy)."""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.models.pqmf import PQMF


@pytest.fixture(scope="module")
def bank() -> PQMF:
    return PQMF(attenuation=100, num_bands=4)


def test_analysis_then_synthesis_reconstructs_the_signal(bank: PQMF) -> None:
    audio = torch.randn(2, 2, 2048, generator=torch.Generator().manual_seed(0))
    bands = bank(audio)
    assert bands.shape == (2, 2, 4, 512)
    restored = bank.inverse(bands)
    assert restored.shape == audio.shape
    inner = slice(200, -200)  # the edges see zero padding
    assert (restored - audio)[..., inner].abs().max() < 0.02


def test_a_tone_lands_in_its_band(bank: PQMF) -> None:
    """Band k of 4 covers k/8 .. (k+1)/8 of the sample rate; a tone at 0.19 fs belongs to band 1."""
    t = torch.arange(4096, dtype=torch.float32)
    energy = bank(torch.sin(2 * math.pi * 0.19 * t)[None, None])[0, 0, :, 100:-100].pow(2).mean(-1)
    assert int(energy.argmax()) == 1 and energy[1] > 1000 * energy[[0, 2, 3]].max()


def test_filters_are_persistent_buffers_and_band_counts_must_be_powers_of_two(bank: PQMF) -> None:
    assert set(bank.state_dict()) == {"filter_bank", "prototype"}
    assert bank.filter_bank.shape[-1] & (bank.filter_bank.shape[-1] - 1) == 0  # power-of-two taps
    with pytest.raises(ValueError, match="power of two"):
        PQMF(100, 6)
