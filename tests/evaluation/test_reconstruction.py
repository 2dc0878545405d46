"""Reconstruction judges: identical audio is perfect, added noise is worse, and the autoencoder path is
deterministic and compares like with like (same rate, channels and length)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stable_audio_ops.evaluation.reconstruction import (
    evaluate_reconstruction,
    log_mel_distance,
    multi_resolution_stft_distance,
    reconstruction_metrics,
    si_sdr,
)
from stable_audio_ops.models.autoencoder import AudioAutoencoder
from stable_audio_ops.models.factory import create_model_from_config

SR = 16000


def note(seconds: float = 0.5, f0: float = 220.0, seed: int = 0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    harmonics = sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = torch.exp(-3 * t)
    return (0.2 * harmonics * envelope).float()[None, None]


def noisy(x: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + level * torch.randn(x.shape, generator=g)


def test_identical_audio_is_a_perfect_reconstruction():
    x = note()
    metrics = reconstruction_metrics(x, x, SR)
    assert metrics["mrstft"][0] == pytest.approx(0.0, abs=1e-5)
    assert metrics["mel_distance_db"][0] == pytest.approx(0.0, abs=1e-5)
    assert metrics["si_sdr_db"][0] > 80.0


def test_more_noise_scores_monotonically_worse_on_every_metric():
    x = note()
    rows = [reconstruction_metrics(noisy(x, level), x, SR) for level in (0.001, 0.01, 0.1)]
    for name in ("mrstft", "mel_distance_db"):
        values = [row[name][0] for row in rows]
        assert 0.0 < values[0] < values[1] < values[2], (name, values)
    sdr = [row["si_sdr_db"][0] for row in rows]
    assert sdr[0] > sdr[1] > sdr[2]
    # SI-SDR of additive white noise equals the SNR (up to the estimate's random projection)
    snr = 10 * np.log10(float(x.square().sum()) / float((noisy(x, 0.01) - x).square().sum()))
    assert sdr[1] == pytest.approx(snr, abs=0.5)


def test_si_sdr_ignores_gain_but_mel_distance_does_not():
    x = note()
    assert float(si_sdr(0.5 * x, x)[0]) > 80.0
    assert float(log_mel_distance(0.5 * x, x, SR)[0]) > 1.0  # bins clamped at the floor hide part of it
    broadband = noisy(torch.zeros(1, 1, SR // 2), 0.1)  # every bin well above the floor: exactly -6 dB
    assert float(log_mel_distance(0.5 * broadband, broadband, SR)[0]) == pytest.approx(20 * np.log10(2.0), abs=0.01)


def test_per_item_metrics_are_computed_per_batch_item():
    clean = note()
    batch = torch.cat([clean, noisy(clean, 0.1)])
    target = torch.cat([clean, clean])
    stft = multi_resolution_stft_distance(batch, target)
    assert stft.shape == (2,) and stft[0] < 1e-5 < stft[1]
    with pytest.raises(ValueError, match="differ in shape"):
        si_sdr(batch, clean)


def _identity_autoencoder(channels: int = 1) -> AudioAutoencoder:
    # No encoder, decoder or bottleneck: decode(encode(x)) == x, so every score must be perfect.
    return AudioAutoencoder(None, None, latent_dim=channels, downsampling_ratio=64, sample_rate=SR,
                            io_channels=channels)


def test_evaluate_reconstruction_of_a_perfect_model_is_perfect_across_rates_channels_and_lengths():
    clips = [note(0.5)[0], note(0.37, f0=330.0)[0, 0]]  # [1, n] and [n], lengths not multiples of 64
    result = evaluate_reconstruction(_identity_autoencoder(), clips, SR)
    assert result["n_clips"] == 2
    assert result["mrstft"] < 1e-5 and result["mel_distance_db"] < 1e-5 and result["si_sdr_db"] > 80.0
    stereo_44k = [np.tile(np.sin(2 * np.pi * 440 * np.arange(22050) / 44100), (2, 1)).astype(np.float32)]
    result = evaluate_reconstruction(_identity_autoencoder(), stereo_44k, 44100)
    assert result["si_sdr_db"] > 80.0


def _tiny_vae() -> AudioAutoencoder:
    enc = {"in_channels": 1, "channels": 4, "c_mults": [1, 2], "strides": [2, 4], "latent_dim": 8, "use_snake": True}
    dec = {"out_channels": 1, "channels": 4, "c_mults": [1, 2], "strides": [2, 4], "latent_dim": 4,
           "use_snake": True, "final_tanh": False}
    config = {"model_type": "autoencoder", "sample_rate": SR, "audio_channels": 1,
              "model": {"encoder": {"type": "oobleck", "config": enc}, "decoder": {"type": "oobleck", "config": dec},
                        "bottleneck": {"type": "vae"}, "latent_dim": 4, "downsampling_ratio": 8, "io_channels": 1}}
    torch.manual_seed(0)
    return create_model_from_config(config)


def test_evaluate_reconstruction_uses_the_vae_mean_so_runs_repeat_and_training_mode_is_restored():
    model = _tiny_vae()
    model.train()
    clips = [note(0.3)[0], note(0.3, f0=110.0)[0]]
    first = evaluate_reconstruction(model, clips, SR, batch_size=1)
    second = evaluate_reconstruction(model, clips, SR, batch_size=2)
    assert model.training
    for key in ("mrstft", "mel_distance_db", "si_sdr_db"):
        assert np.isfinite(first[key])
        assert first[key] == pytest.approx(second[key], rel=1e-4, abs=1e-4)
    # An untrained autoencoder is far from perfect
    assert first["mrstft"] > 0.1 and first["si_sdr_db"] < 10.0
