"""Training timestep samplers, distribution shift, p_one_shot and the objectives' noise/target."""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.inference.schedules import DistributionShift
from stable_audio_ops.training.timesteps import TimestepSampler, noise_and_target, truncated_logit_normal


def test_uniform_sobol_covers_the_interval_evenly() -> None:
    t = TimestepSampler("uniform")(1024, seq_len=64)
    assert t.shape == (1024,) and t.min() >= 0 and t.max() < 1
    counts = torch.histc(t, bins=8, min=0, max=1)
    assert counts.min() >= 120 and counts.max() <= 136  # quasi-random: far flatter than i.i.d. draws


def test_logit_normal_concentrates_mid_noise() -> None:
    torch.manual_seed(0)
    t = TimestepSampler("logit_normal")(20000, seq_len=64)
    assert abs(t.median().item() - 0.5) < 0.02
    assert ((t > 0.25) & (t < 0.75)).float().mean() > 0.7


def test_trunc_logit_normal_is_flipped_and_rescaled() -> None:
    torch.manual_seed(0)
    t = truncated_logit_normal(20000)
    assert t.min() >= 0 and t.max() <= 1
    # the truncation removes t < 0.075 before flipping: after flipping the mass sits at HIGH noise
    assert t.mean() > 0.5
    assert (t > 0.999).float().mean() < 0.01


def test_log_snr_options_move_the_distribution() -> None:
    torch.manual_seed(0)
    low_snr = TimestepSampler("log_snr", {"mean_logsnr": -4.0, "std_logsnr": 0.5})(4000, 64)
    high_snr = TimestepSampler("log_snr", {"mean_logsnr": 4.0, "std_logsnr": 0.5})(4000, 64)
    assert low_snr.mean() > 0.9 and high_snr.mean() < 0.1
    assert low_snr.max() <= 1 - 1e-4 and high_snr.min() >= 1e-4
    with pytest.raises(ConfigError, match="training.timestep_sampler_options.std_logsnr"):
        TimestepSampler("log_snr", {"std_logsnr": -1})


def test_distribution_shift_uses_the_latent_length_and_p_one_shot_sets_ones() -> None:
    shift = DistributionShift(base_shift=0.5, max_shift=1.15, min_length=256, max_length=4096)
    plain = TimestepSampler("logit_normal")
    torch.manual_seed(0)
    base = plain(2000, 256)
    torch.manual_seed(0)
    short = TimestepSampler("logit_normal", dist_shift=shift)(2000, 256)
    torch.manual_seed(0)
    long = TimestepSampler("logit_normal", dist_shift=shift)(2000, 4096)
    mu = -0.5
    expected = base / (math.exp(mu) * (1 - base) + base)
    assert torch.allclose(short, expected, atol=1e-6)
    assert long.mean() > short.mean() > base.mean()  # longer sequences train at higher noise
    torch.manual_seed(0)
    t = TimestepSampler("uniform", p_one_shot=0.5)(4000, 64)
    assert 0.45 < (t == 1).float().mean() < 0.55
    with pytest.raises(UnknownTypeError, match="known: log_snr, logit_normal, trunc_logit_normal, uniform"):
        TimestepSampler("cosine")


@pytest.mark.parametrize("objective", ["v", "rectified_flow", "rf_denoiser"])
def test_noise_and_target_end_points(objective: str) -> None:
    x, noise = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    zero, target0 = noise_and_target(x, torch.zeros(2), objective, noise=noise)
    one, target1 = noise_and_target(x, torch.ones(2), objective, noise=noise)
    assert torch.allclose(zero, x, atol=1e-6) and torch.allclose(one, noise, atol=1e-6)
    if objective == "v":
        assert torch.allclose(target0, noise, atol=1e-6) and torch.allclose(target1, -x, atol=1e-6)
    else:
        assert torch.allclose(target0, noise - x) and torch.allclose(target1, noise - x)
