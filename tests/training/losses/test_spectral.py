"""Behaviour of the 0.0.20 spectral losses beyond the parity numbers: invariants users rely on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stable_audio_ops.training.losses.spectral import (
    MultiResolutionSTFTLoss,
    STFTLoss,
    SumAndDifferenceSTFTLoss,
)
from stable_audio_ops.training.losses.stft import (
    KWeightingFilter,
    design_k_weighting_fir,
    power_sine_tight_window,
    tight_one_sided_complex_stft,
)

SR = 16000
SMALL = {"fft_sizes": [256, 128, 64], "hop_sizes": [64, 32, 16], "win_lengths": [256, 128, 64]}


def _audio(channels: int = 1, length: int = 2048, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SR
    tone = torch.sin(2 * math.pi * 440 * t) * 0.5
    return tone + 0.1 * torch.randn(2, channels, length, generator=gen)


@pytest.mark.parametrize("perceptual", [False, True])
def test_identical_signals_give_zero_loss(perceptual):
    x = _audio()
    loss = MultiResolutionSTFTLoss(sample_rate=SR, perceptual_weighting=perceptual, **SMALL)
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    stereo = _audio(channels=2)
    sd = SumAndDifferenceSTFTLoss(sample_rate=SR, perceptual_weighting=perceptual, **SMALL)
    assert sd(stereo, stereo.clone()).item() == pytest.approx(0.0, abs=1e-7)


def test_default_terms_are_symmetric_and_grow_with_the_error():
    x = _audio()
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=gen)
    loss = MultiResolutionSTFTLoss(sample_rate=SR, perceptual_weighting=True, **SMALL)
    small, large = x + 0.01 * noise, x + 0.3 * noise
    assert loss(x, small).item() == pytest.approx(loss(small, x).item(), rel=1e-6)
    assert 0 < loss(small, x).item() < loss(large, x).item()


def test_loss_is_differentiable_and_gives_finite_gradients():
    x = _audio()
    y = (x + 0.05 * torch.randn_like(x)).requires_grad_(True)
    loss = MultiResolutionSTFTLoss(sample_rate=SR, perceptual_weighting=True, **SMALL)
    loss(y, x).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_tight_stft_preserves_energy_of_an_interior_signal():
    n_fft, hop = 256, 64
    signal = torch.zeros(1, 4096, dtype=torch.float64)
    burst = torch.randn(1, 2048, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    signal[:, 1024:3072] = burst * torch.hann_window(2048, dtype=torch.float64)
    spec = tight_one_sided_complex_stft(signal, n_fft, hop=hop)
    assert spec.shape == (1, n_fft // 2 + 1, (4096 - n_fft) // hop + 1)
    # DC and Nyquist bins count once, interior bins were scaled by sqrt(2) to count twice.
    # (rel 1e-6: the window is computed in float32 as upstream does, then cast.)
    assert spec.abs().pow(2).sum().item() == pytest.approx(signal.pow(2).sum().item(), rel=1e-6)


def test_power_sine_window_is_a_tight_frame():
    n_fft, hop = 512, 128
    window = power_sine_tight_window(n_fft, hop, dtype=torch.float64)
    overlap = sum(torch.roll(window**2, shift) for shift in range(0, n_fft, hop))
    assert torch.allclose(overlap, torch.ones_like(overlap), atol=1e-12)


def test_k_weighting_fir_shape_and_response():
    taps = design_k_weighting_fir(44100)
    assert taps.shape == (257,)

    def gain(freq: float) -> float:
        omega = 2 * np.pi * freq / 44100
        return abs(np.sum(taps * np.exp(-1j * omega * np.arange(257))))

    assert gain(1000.0) == pytest.approx(1.0, abs=1e-9)
    assert 20 * np.log10(gain(10000.0)) == pytest.approx(4.0, abs=0.6)  # the +4 dB high shelf
    # 257 taps at 44.1 kHz cannot resolve the 38 Hz high-pass fully; low frequencies are still cut.
    assert gain(100.0) < 0.8 and gain(0.0) < 0.75


def test_prefilter_keeps_length_and_adds_no_state_dict_keys():
    filt = KWeightingFilter(SR)
    x = _audio(channels=2, length=1000)
    assert filt(x).shape == x.shape
    assert list(filt.state_dict()) == []
    loss = MultiResolutionSTFTLoss(sample_rate=SR, perceptual_weighting=True, **SMALL)
    assert list(loss.state_dict()) == []
    with pytest.raises(ValueError, match="more than 128 samples"):
        filt(torch.zeros(1, 1, 100))


def test_full_output_reports_terms():
    x, y = _audio(seed=0), _audio(seed=1)
    loss = STFTLoss(256, 64, output="full", w_lin_mag=1.0)
    total, sc, log_mag, lin_mag, phase = loss(x, y)
    assert total.item() == pytest.approx((sc.mean() + log_mag + lin_mag).item(), rel=1e-6)
    assert phase == 0.0
    mr_total, *lists = MultiResolutionSTFTLoss(output="full", **SMALL)(x, y)
    assert all(len(values) == 3 for values in lists)
    assert torch.isfinite(mr_total)


def test_optional_terms_run_and_are_finite():
    x, y = _audio(seed=0), _audio(seed=1)
    for kwargs in (
        {"w_phs": 1.0},
        {"w_cep": 1.0},
        {"scale_invariance": True},
        {"residual_loss": True},
        {"mag_distance": "L2", "w_lin_mag": 1.0},
    ):
        value = STFTLoss(256, 64, **kwargs)(x, y)
        assert torch.isfinite(value), kwargs
    per_signal = STFTLoss(256, 64, retain_batch_dim=True)(x, y)
    assert per_signal.shape == (2,)


def test_scale_invariance_ignores_target_gain():
    x = _audio()
    loss = STFTLoss(256, 64, scale_invariance=True, w_log_mag=0.0)
    assert loss(x, 3.0 * x).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fft_size": 256, "hop_size": 64, "win_length": 200}, "win_length"),
        ({"fft_size": 256, "hop_size": 64, "window": "blackman_window"}, "window"),
        ({"fft_size": 256, "hop_size": 64, "scale": "mel", "n_bins": 64}, "scale"),
        ({"fft_size": 255, "hop_size": 64}, "even"),
        ({"fft_size": 256, "hop_size": 200}, "hop_size"),
        ({"fft_size": 256, "hop_size": 64, "perceptual_weighting": True}, "sample_rate"),
        ({"fft_size": 256, "hop_size": 64, "reduction": "max"}, "reduction"),
        ({"fft_size": 256, "hop_size": 64, "mag_distance": "L3"}, "mag_distance"),
    ],
)
def test_unsupported_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        STFTLoss(**kwargs)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        MultiResolutionSTFTLoss(fft_sizes=[256, 128], hop_sizes=[64])
    with pytest.raises(TypeError):
        MultiResolutionSTFTLoss(log_eps=1.0, **SMALL)  # 0.0.20 ignores it; we refuse
    with pytest.raises(ValueError, match="stereo"):
        SumAndDifferenceSTFTLoss(**SMALL)(_audio(), _audio())
    with pytest.raises(ValueError, match="shorter than fft_size"):
        STFTLoss(256, 64)(torch.zeros(1, 1, 128), torch.zeros(1, 1, 128))
