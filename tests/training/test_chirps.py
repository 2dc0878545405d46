"""Synthetic chirps (num_synthetic_chirps): shape, band, level, and the sample-rate check."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.training.chirps import append_synthetic_chirps, chirp_band, random_linear_chirps


def test_chirps_are_appended_and_identical_across_channels():
    batch = torch.zeros(2, 2, 4000)
    out = append_synthetic_chirps(batch, 16000, 3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (5, 2, 4000) and torch.equal(out[:2], batch)
    assert torch.allclose(out[2:, 0], out[2:, 1], atol=1e-3)  # the same sweep, independent dither
    assert append_synthetic_chirps(batch, 16000, 0) is batch


def test_chirps_sweep_inside_the_band_at_the_drawn_levels():
    sample_rate, length = 16000, 16000
    fmin, fmax = chirp_band(sample_rate)
    assert (fmin, fmax) == (100.0, 7200.0)
    chirps = random_linear_chirps(16, 1, length, sample_rate, generator=torch.Generator().manual_seed(1))
    peaks = chirps.abs().amax(dim=-1).squeeze(1)
    assert bool(((peaks > 10 ** (-24 / 20) * 0.95) & (peaks < 10 ** (-6 / 20) * 1.05)).all())
    power = torch.fft.rfft(chirps.squeeze(1) * torch.hann_window(length)).abs().pow(2)
    freqs = torch.fft.rfftfreq(length, 1 / sample_rate)
    outside = power[:, (freqs < 0.7 * fmin) | (freqs > 1.2 * fmax)].sum(-1) / power.sum(-1)
    assert float(outside.max()) < 0.02
    # the frequency moves from one end of the sweep to the other: compare the first and last 1024 samples
    window = torch.hann_window(1024)
    bins = torch.fft.rfftfreq(1024, 1 / sample_rate)
    start = bins[torch.fft.rfft(chirps[:, 0, :1024] * window).abs().argmax(-1)]
    end = bins[torch.fft.rfft(chirps[:, 0, -1024:] * window).abs().argmax(-1)]
    octaves = torch.log2(end / start).abs()
    assert bool(((start > 0.8 * fmin) & (end > 0.8 * fmin) & (start < 1.1 * fmax) & (end < 1.1 * fmax)).all())
    assert int((octaves > 1.5).sum()) >= 8, octaves  # most span 2+ octaves (those near a band edge are cut)


def test_chirps_need_a_band_above_100_hz():
    with pytest.raises(ValueError, match="sample rate above 222 Hz"):
        chirp_band(200)
