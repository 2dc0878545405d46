"""MultiScaleMelLoss: sees the hiss that 0.0.20's mrstft does not, and refuses impossible layouts."""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.losses.mel import MultiScaleMelLoss, mel_filterbank
from stable_audio_ops.losses.spectral import MultiResolutionSTFTLoss

SR = 16000


def harmonic_note(f0: float, n: int = 8192) -> torch.Tensor:
    t = torch.arange(n) / SR
    return sum(0.5 / k * torch.sin(2 * math.pi * f0 * k * t) for k in range(1, 9))[None, None]


def demo_mrstft() -> MultiResolutionSTFTLoss:
    ffts = [1024, 512, 256, 128, 64]
    return MultiResolutionSTFTLoss(sample_rate=SR, fft_sizes=ffts, hop_sizes=[f // 4 for f in ffts],
                                   win_lengths=ffts, perceptual_weighting=True)


def test_identical_audio_costs_nothing_and_different_audio_does():
    note = harmonic_note(220.0)
    loss = MultiScaleMelLoss(SR)
    assert float(loss(note, note)) == 0.0
    assert float(loss(harmonic_note(330.0), note)) > 0.1


def test_hiss_40_db_below_the_note_costs_more_than_a_wrong_semitone_unlike_mrstft():
    """The reason the demo recipe carries this term (docs/demo-recipe.md): with mrstft alone, a reconstruction
    full of hiss between the harmonics is nearly as good as a clean one."""
    torch.manual_seed(0)
    note = harmonic_note(220.0)
    hiss = note + 0.01 * 0.5 * torch.randn_like(note)  # white noise 40 dB below the fundamental
    wrong_semitone = harmonic_note(220.0 * 2 ** (1 / 12))
    mel, mrstft = MultiScaleMelLoss(SR), demo_mrstft()
    assert float(mrstft(hiss, note)) < 0.1 * float(mrstft(wrong_semitone, note))
    assert float(mel(hiss, note)) > float(mel(wrong_semitone, note))


def test_gradient_reaches_the_input_and_stereo_channels_are_scored_alike():
    note = harmonic_note(220.0).repeat(2, 2, 1)
    estimate = (note * 0.5).requires_grad_(True)
    MultiScaleMelLoss(SR)(estimate, note).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"window_lengths": [32, 64], "n_mels": [5]}, "equal length"),
    ({"window_lengths": [32], "n_mels": [40]}, "40 mel bands need more than the 17 bins"),
])
def test_impossible_layouts_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiScaleMelLoss(SR, **kwargs)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="differ in shape"):
        MultiScaleMelLoss(SR)(torch.zeros(1, 1, 4096), torch.zeros(1, 1, 2048))


def test_filterbank_bands_sum_to_one_under_unit_sum():
    bank = mel_filterbank(SR, 1024, 64)
    assert bank.shape == (64, 513)
    assert torch.allclose(bank.sum(1), torch.ones(64), atol=1e-5)
