"""Validation metrics of eval_loss_configs: librosa's mel filterbank, SI-SDR, the mel-scale STFT loss."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.losses.metrics import MelSTFTLoss, SISDRLoss, slaney_mel_filterbank


@pytest.mark.parametrize(("sample_rate", "n_fft", "n_mels"), [(16000, 512, 40), (44100, 2048, 128)])
def test_mel_filterbank_equals_librosa_default(sample_rate, n_fft, n_mels):
    librosa = pytest.importorskip("librosa")
    expected = torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels))
    ours = slaney_mel_filterbank(sample_rate, n_fft, n_mels)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)


def test_sisdr_is_scale_invariant_and_measures_noise_in_db():
    torch.manual_seed(0)
    target = torch.randn(2, 1, 8000)
    loss = SISDRLoss()
    assert float(-loss(3.0 * target, target)) > 60.0
    noise = torch.randn_like(target)
    noise = noise - (noise * target).sum(-1, keepdim=True) / target.pow(2).sum(-1, keepdim=True) * target
    noise = noise * (target.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True)) * 0.1  # 20 dB below
    assert float(-loss(target + noise, target)) == pytest.approx(20.0, abs=0.01)
    assert float(loss(2.0 * (target + noise), target)) == pytest.approx(float(loss(target + noise, target)), abs=1e-4)
    assert loss.__class__(reduction="none")(target + noise, target).shape == (2, 1)


def test_mel_stft_loss_is_zero_for_a_match_and_grows_with_the_error():
    t = torch.arange(4096) / 16000
    clean = (0.5 * torch.sin(2 * torch.pi * 440 * t)).expand(1, 1, -1)
    loss = MelSTFTLoss(16000, fft_size=512, hop_size=128, n_mels=40)
    assert float(loss(clean, clean)) == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    noise = torch.randn_like(clean)
    assert 0 < float(loss(clean + 0.01 * noise, clean)) < float(loss(clean + 0.1 * noise, clean))
    with pytest.raises(ValueError, match="n_mels must be in 1..fft_size"):
        MelSTFTLoss(16000, fft_size=256, n_mels=512)
