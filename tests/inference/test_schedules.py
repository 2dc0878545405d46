from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.inference import schedules as sch


def test_default_sampling_shift_is_0020s_length_independent_logsnr_shift():
    shift = sch.default_sampling_dist_shift()
    assert isinstance(shift, sch.LogSNRShift)
    assert (shift.rate, shift.anchor_logsnr, shift.logsnr_end) == (0, -6.2, 2.0)
    t = torch.linspace(1, 0, 9)
    torch.testing.assert_close(shift.shift(t, 64), shift.shift(t, 4096))


def test_rf_schedule_has_exact_endpoints_and_logsnr_spacing():
    ts = sch.build_schedule(8, dist_shift=sch.default_sampling_dist_shift(), seq_len=64, include_endpoint=True)
    assert ts.shape == (9,)
    assert ts[0].item() == 1.0 and ts[-1].item() == 0.0
    assert bool((ts[1:] < ts[:-1]).all())
    # Interior points are uniform in log-SNR between -6.2 and 2.
    lin = torch.linspace(1, 0, 9)[1:-1]
    torch.testing.assert_close(ts[1:-1], torch.sigmoid(-(2.0 - lin * 8.2)))
    logsnr = torch.log((1 - ts[1:-1]) / ts[1:-1])
    torch.testing.assert_close(logsnr.diff(), torch.full((6,), 8.2 / 8), atol=1e-4, rtol=0)


def test_v_schedule_excludes_the_endpoint():
    ts = sch.build_schedule(6, dist_shift=sch.default_sampling_dist_shift(), seq_len=64, include_endpoint=False)
    assert ts.shape == (6,)
    assert ts[0].item() == 1.0
    assert ts[-1].item() == pytest.approx(1 / (1 + math.exp(2.0 - 8.2 / 6)), rel=1e-6)
    assert bool((ts > 0).all()) and bool((ts[1:] < ts[:-1]).all())


def test_schedule_starts_at_sigma_max_for_audio_to_audio():
    for shift in (None, sch.default_sampling_dist_shift(), sch.DistributionShift()):
        ts = sch.build_schedule(10, sigma_max=0.4, dist_shift=shift, seq_len=512, include_endpoint=True)
        assert ts[0].item() == pytest.approx(0.4)
        assert ts[-1].item() == 0.0
        assert bool((ts[1:] < ts[:-1]).all())
    shifted = sch.build_schedule(8, sigma_max=0.4, dist_shift=sch.default_sampling_dist_shift(), include_endpoint=True)
    logsnr = torch.log((1 - shifted[:-1]) / shifted[:-1])
    torch.testing.assert_close(logsnr.diff(), torch.full((7,), logsnr.diff()[0].item()), atol=1e-4, rtol=0)
    # below sigmoid(-2) the default shift has no preimage: the walk falls back to a linear grid
    low = sch.build_schedule(4, sigma_max=0.01, dist_shift=sch.default_sampling_dist_shift(), include_endpoint=True)
    torch.testing.assert_close(low, torch.tensor([0.01, 0.0075, 0.005, 0.0025, 0.0]))
    lin = sch.build_schedule(4, sigma_max=0.8, include_endpoint=True)
    torch.testing.assert_close(lin, torch.tensor([0.8, 0.6, 0.4, 0.2, 0.0]))


def test_build_schedule_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps"):
        sch.build_schedule(0)


def test_logsnr_shift_rate_lowers_the_start_per_doubling():
    shift = sch.LogSNRShift(anchor_length=1000, anchor_logsnr=-6.0, rate=1.0)
    assert shift.logsnr_start(1000) == pytest.approx(-6.0)
    assert shift.logsnr_start(4000) == pytest.approx(-8.0)
    with pytest.raises(ValueError, match="sequence length"):
        shift.shift(torch.tensor([0.5]), None)


def test_training_distribution_shift_matches_the_upstream_formula_and_pushes_toward_noise():
    shift = sch.DistributionShift(base_shift=0.5, max_shift=1.15, min_length=256, max_length=4096)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    for length in (100, 256, 1000, 4096, 10_000):
        mu = shift.mu(length)
        upstream = 1 - math.exp(mu) / (math.exp(mu) + (1 / (1 - t) - 1))
        torch.testing.assert_close(shift.shift(t, length), upstream)
        assert bool((shift.shift(t, length) > t).all())
    assert shift.mu(100) == pytest.approx(-0.5) and shift.mu(10_000) == pytest.approx(-1.15)
    ends = shift.shift(torch.tensor([0.0, 1.0]), 1000)
    assert ends.tolist() == [0.0, 1.0]
    # longer sequences are shifted further toward noise
    assert bool((shift.shift(t, 4096) > shift.shift(t, 256)).all())
    sine = sch.DistributionShift(use_sine=True).shift(t, 256)
    torch.testing.assert_close(sine, torch.sin(shift.shift(t, 256) * math.pi / 2))


def test_flux_shift():
    t = torch.linspace(0, 1, 11)
    torch.testing.assert_close(sch.FluxDistributionShift().shift(t, 500), t)
    flux = sch.FluxDistributionShift(min_length=256, max_length=4096, alpha_min=1.0, alpha_max=4.0)
    assert flux.alpha(256) == pytest.approx(1.0) and flux.alpha(4096) == pytest.approx(4.0)
    assert flux.alpha(1024) == pytest.approx(2.0)  # log-linear in length
    torch.testing.assert_close(flux.shift(t, 4096), 4 * t / (1 + 3 * t))


def test_create_dist_shift_registry_and_errors():
    assert isinstance(sch.create_dist_shift({"type": "logsnr", "rate": 0}), sch.LogSNRShift)
    assert isinstance(sch.create_dist_shift({"base_shift": 0.4}), sch.DistributionShift)  # "full" default
    assert isinstance(sch.create_dist_shift({"type": "none"}), sch.IdentityDistributionShift)
    assert isinstance(sch.create_dist_shift({"type": "flux", "alpha_min": 2, "alpha_max": 2}), sch.FluxDistributionShift)
    with pytest.raises(UnknownTypeError, match="known: flux, full, logsnr, none"):
        sch.create_dist_shift({"type": "cosine"})
    with pytest.raises(ConfigError, match="invalid options for distribution shift 'logsnr'"):
        sch.create_dist_shift({"type": "logsnr", "slope": 2})


def test_polyexponential_sigmas_are_geometric_for_rho_1_and_end_in_zero():
    sigmas = sch.get_sigmas_polyexponential(8, 0.01, 100.0, 1.0)
    assert sigmas.shape == (9,)
    assert sigmas[0].item() == pytest.approx(100.0, rel=1e-5)
    assert sigmas[-2].item() == pytest.approx(0.01, rel=1e-5)
    assert sigmas[-1].item() == 0.0
    ratios = sigmas[1:-1] / sigmas[:-2]
    torch.testing.assert_close(ratios, torch.full((7,), 1e-4 ** (1 / 7)), rtol=1e-5, atol=0)
    curved = sch.get_sigmas_polyexponential(8, 0.01, 100.0, 2.0)
    assert bool((curved[1:-2] < sigmas[1:-2]).all())  # rho > 1 spends more steps at low noise
    with pytest.raises(ValueError, match="sigma_min"):
        sch.get_sigmas_polyexponential(8, 0.0, 100.0)


def test_karras_and_exponential_sigmas():
    k = sch.get_sigmas_karras(10, 0.3, 500.0, rho=7.0)
    assert k[0].item() == pytest.approx(500.0, rel=1e-5) and k[-2].item() == pytest.approx(0.3, rel=1e-5)
    assert k[-1].item() == 0.0 and bool((k[1:] < k[:-1]).all())
    inv = k[:-1] ** (1 / 7)
    torch.testing.assert_close(inv.diff(), torch.full((9,), inv.diff()[0].item()), rtol=1e-4, atol=0)
    torch.testing.assert_close(sch.get_sigmas_exponential(6, 0.01, 100.0), sch.get_sigmas_polyexponential(6, 0.01, 100.0))


def test_vdenoiser_time_mapping_round_trips():
    sigma = torch.tensor([0.01, 1.0, 100.0])
    t = sch.sigma_to_t(sigma)
    torch.testing.assert_close(t[1], torch.tensor(0.5))
    torch.testing.assert_close(sch.t_to_sigma(t), sigma, rtol=1e-4, atol=0)
    alpha, s = sch.t_to_alpha_sigma(t)
    torch.testing.assert_close(sch.alpha_sigma_to_t(alpha, s), t)
    torch.testing.assert_close(s / alpha, sigma, rtol=1e-4, atol=0)  # Karras sigma = noise/signal ratio


def test_logsnr_uniform_rf_schedule():
    ts = sch.logsnr_uniform_rf_schedule(8)
    assert ts[0].item() == 1.0 and ts[-1].item() == 0.0
    logsnr = torch.log((1 - ts[1:-1]) / ts[1:-1])
    torch.testing.assert_close(logsnr.diff(), torch.full((6,), 1.0), atol=1e-4, rtol=0)  # -6 -> 2 in 8 steps
    part = sch.logsnr_uniform_rf_schedule(4, sigma_max=0.5)
    assert part[0].item() == 0.5 and part[-1].item() == 0.0
    assert torch.log((1 - part[1]) / part[1]).item() == pytest.approx(0.5, abs=1e-5)  # 0 -> 2 in 4 steps
    with pytest.raises(ValueError, match="sigma_max"):
        sch.logsnr_uniform_rf_schedule(4, sigma_max=2.0)
