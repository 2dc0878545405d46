"""Samplers on an analytic problem: Gaussian data, whose exact denoiser is known in closed form.

For data x0 ~ N(mu, S^2) the probability-flow ODE is a linear map, so a deterministic sampler must
send each noise sample to a known point (not just the right distribution); stochastic samplers must
reach the right mean and standard deviation.
"""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.inference import samplers as S
from stable_audio_ops.inference.schedules import (
    build_schedule,
    default_sampling_dist_shift,
    get_sigmas_polyexponential,
    t_to_alpha_sigma,
)

MU = torch.tensor([0.7, -0.3]).view(1, 2, 1)
STD = 0.5


def v_model(x: torch.Tensor, t: torch.Tensor, **_: object) -> torch.Tensor:
    """Exact v prediction for x_t = cos(pi t/2) x0 + sin(pi t/2) eps."""
    a, s = t_to_alpha_sigma(t.view(-1, 1, 1))
    var = a**2 * STD**2 + s**2
    x0 = MU + a * STD**2 / var * (x - a * MU)
    eps = s / var * (x - a * MU)
    return a * eps - s * x0


def rf_model(x: torch.Tensor, t: torch.Tensor, **_: object) -> torch.Tensor:
    """Exact v = eps - x0 prediction for x_t = (1 - t) x0 + t eps."""
    t = t.view(-1, 1, 1)
    var = (1 - t) ** 2 * STD**2 + t**2
    x0 = MU + (1 - t) * STD**2 / var * (x - (1 - t) * MU)
    eps = t / var * (x - (1 - t) * MU)
    return eps - x0


def noise(batch: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 2, 4, generator=torch.Generator().manual_seed(seed))


def ode_target_from_sigma(x_init: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Where the Karras PF-ODE sends x at sigma_max for Gaussian data."""
    return MU + STD * (x_init - MU) / math.sqrt(STD**2 + sigma_max**2)


K_DETERMINISTIC = ["dpmpp-2m", "k-heun", "k-lms", "k-dpm-2"]


@pytest.mark.parametrize("name", K_DETERMINISTIC)
def test_k_samplers_follow_the_exact_ode_map_with_second_order_convergence(name):
    spec = S.get_sampler("v", name)
    errors = []
    for steps in (60, 120):
        sigmas = get_sigmas_polyexponential(steps, 0.01, 100.0, 1.0)
        x = noise() * sigmas[0]
        out = spec.fn(S.v_denoiser(v_model), x, sigmas)
        errors.append((out - ode_target_from_sigma(x, 100.0)).abs().max().item())
    assert errors[1] < 2e-3
    assert errors[1] < errors[0] / 3  # at least ~2nd order: halving the step cuts the error by >3x


def test_dpm_fast_follows_the_exact_ode_map():
    x = noise() * 100.0
    out = S.get_sampler("v", "k-dpm-fast").fn(S.v_denoiser(v_model), x, 0.01, 100.0, 90)
    torch.testing.assert_close(out, ode_target_from_sigma(x, 100.0), atol=1e-3, rtol=0)


def test_dpm_adaptive_error_follows_its_tolerance():
    spec = S.get_sampler("v", "k-dpm-adaptive")
    assert spec.options == {"rtol": 0.01, "atol": 0.01}  # 0.0.20's settings
    x = noise() * 100.0
    target = ode_target_from_sigma(x, 100.0)
    loose = spec.fn(S.v_denoiser(v_model), x, 0.01, 100.0, **spec.options)
    tight = spec.fn(S.v_denoiser(v_model), x, 0.01, 100.0, rtol=1e-4, atol=1e-4)
    assert (loose - target).abs().max() < 0.1
    assert (tight - target).abs().max() < 3e-3


@pytest.mark.parametrize("name", ["dpmpp-2m-sde", "dpmpp-3m-sde", "k-dpmpp-2s-ancestral"])
def test_stochastic_k_samplers_reach_the_data_distribution(name):
    spec = S.get_sampler("v", name)
    assert spec.stochastic
    sigmas = get_sigmas_polyexponential(40, 0.01, 100.0, 1.0)
    gen = torch.Generator().manual_seed(1)
    x = noise(batch=4000, seed=2) * sigmas[0]
    out = spec.fn(S.v_denoiser(v_model), x, sigmas, generator=gen)
    mean = out.mean(dim=(0, 2), keepdim=True)
    std = out.std(dim=(0, 2))
    torch.testing.assert_close(mean, MU, atol=0.03, rtol=0)
    torch.testing.assert_close(std, torch.full((2,), STD), atol=0.03, rtol=0)


def test_sde_samplers_are_reproducible_with_a_generator_and_differ_across_seeds():
    sigmas = get_sigmas_polyexponential(10, 0.01, 100.0, 1.0)
    x = noise() * sigmas[0]
    den = S.v_denoiser(v_model)
    a = S.sample_dpmpp_2m_sde(den, x, sigmas, generator=torch.Generator().manual_seed(3))
    b = S.sample_dpmpp_2m_sde(den, x, sigmas, generator=torch.Generator().manual_seed(3))
    c = S.sample_dpmpp_2m_sde(den, x, sigmas, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def v_ddim_target(x: torch.Tensor, t_last: float) -> torch.Tensor:
    """Exact ODE map down to t_last, then DDIM's final clean prediction (the posterior mean there)."""
    a, s = math.cos(t_last * math.pi / 2), math.sin(t_last * math.pi / 2)
    return MU + a * STD**2 / math.sqrt(a**2 * STD**2 + s**2) * x


@pytest.mark.parametrize("name", ["euler", "v-ddim"])
def test_v_ddim_follows_the_exact_ode_map_with_first_order_convergence(name):
    spec = S.get_sampler("v", name)
    shift = default_sampling_dist_shift() if spec.family == "v-shift" else None
    errors = []
    for steps in (100, 200):
        ts = build_schedule(steps, dist_shift=shift, seq_len=4, include_endpoint=False)
        x = noise()
        out = spec.fn(v_model, x, ts, **spec.options)
        errors.append((out - v_ddim_target(x, float(ts[-1]))).abs().max().item())
    assert errors[1] < 0.02
    assert errors[1] < errors[0] / 1.8


def test_v_ddim_cfgpp_uses_the_unconditional_output_for_the_noise_estimate():
    ts = build_schedule(6, include_endpoint=False)
    x = noise()

    def same(x, t, return_info=False, **kw):
        v = v_model(x, t)
        return (v, {"uncond_output": v}) if return_info else v

    def shifted(x, t, return_info=False, **kw):
        v = v_model(x, t)
        return (v, {"uncond_output": v + 0.1}) if return_info else v

    plain = S.sample_v_ddim(v_model, x, ts)
    torch.testing.assert_close(S.sample_v_ddim(same, x, ts, cfg_pp=True), plain)
    # One step by hand: the clean estimate uses v, the noise estimate the unconditional output.
    ts2 = ts[:2]
    a, s = t_to_alpha_sigma(ts2)
    v = v_model(x, ts2[0].expand(x.shape[0]))
    x1 = (x * a[0] - v * s[0]) * a[1] + (x * s[0] + (v + 0.1) * a[0]) * s[1]
    expected = x1 * a[1] - v_model(x1, ts2[1].expand(x.shape[0])) * s[1]
    torch.testing.assert_close(S.sample_v_ddim(shifted, x, ts2, cfg_pp=True), expected)


def rf_target(x: torch.Tensor, t_last: float) -> torch.Tensor:
    """Exact flow map down to t_last, then the jump to the posterior mean there (t_last = 0: exact map)."""
    var = (1 - t_last) ** 2 * STD**2 + t_last**2
    return MU + (1 - t_last) * STD**2 / math.sqrt(var) * x


@pytest.mark.parametrize("name,steps,atol", [("euler", 200, 2e-2), ("rk4", 25, 1e-3), ("dpmpp", 25, 2e-3),
                                             ("dpmpp", 100, 2e-3)])
def test_rectified_flow_samplers_follow_the_exact_flow_map(name, steps, atol):
    """On the 0.0.20 schedule the last step jumps from t = sigmoid(-2) to 0; Euler and DPM++ land on the
    posterior mean there, RK4 integrates that last interval too."""
    spec = S.get_sampler("rectified_flow", name)
    ts = build_schedule(steps, dist_shift=default_sampling_dist_shift(), seq_len=4, include_endpoint=True)
    x = noise()
    out = spec.fn(rf_model, x, ts)
    t_last = 0.0 if name == "rk4" else float(ts[-2])
    torch.testing.assert_close(out, rf_target(x, t_last), atol=atol, rtol=0)


def test_rf_euler_step_is_x_plus_dt_times_v():
    ts = torch.tensor([1.0, 0.6, 0.0])
    x = noise()
    expected = x + (0.6 - 1.0) * rf_model(x, torch.ones(x.shape[0]))
    expected = expected + (0.0 - 0.6) * rf_model(expected, torch.full((x.shape[0],), 0.6))
    torch.testing.assert_close(S.sample_rf_euler(rf_model, x, ts), expected)


def test_pingpong_matches_the_analytic_moment_recursion():
    """Ping-pong with the exact posterior mean is linear-Gaussian: its output moments are computable."""
    ts = build_schedule(8, dist_shift=default_sampling_dist_shift(), seq_len=4, include_endpoint=True)
    x = noise(batch=20000, seed=5)
    out = S.sample_rf_pingpong(rf_model, x, ts, generator=torch.Generator().manual_seed(6))
    m, v = torch.zeros(2), torch.ones(2)
    mu = MU.view(2)
    for i in range(len(ts) - 1):
        t, t_next = float(ts[i]), float(ts[i + 1])
        g = (1 - t) * STD**2 / ((1 - t) ** 2 * STD**2 + t**2)
        d_mean, d_var = mu + g * (m - (1 - t) * mu), g**2 * v
        m, v = (1 - t_next) * d_mean, (1 - t_next) ** 2 * d_var + t_next**2
    torch.testing.assert_close(out.mean(dim=(0, 2)), m, atol=0.01, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2)), v.sqrt(), atol=0.01, rtol=0)
    assert float(v.sqrt()[0]) < STD  # the posterior-mean jump shrinks the spread (it is a distilled-model sampler)


def test_callback_sees_every_step_with_a_clean_estimate():
    seen = []
    ts = build_schedule(5, include_endpoint=True)
    S.sample_rf_euler(rf_model, noise(), ts, callback=seen.append)
    assert [info["i"] for info in seen] == [0, 1, 2, 3, 4]
    assert all(info["denoised"].shape == (64, 2, 4) for info in seen)
    sigmas = get_sigmas_polyexponential(4, 0.01, 100.0)
    seen.clear()
    S.sample_dpmpp_2m(S.v_denoiser(v_model), noise() * 100, sigmas, callback=seen.append)
    assert [float(info["sigma"]) for info in seen] == pytest.approx(sigmas[:-1].tolist())


def test_v_denoiser_feeds_the_network_cos_sin_scaled_input_and_atan_time():
    calls = []

    def net(x, t):
        calls.append((x.clone(), t.clone()))
        return torch.zeros_like(x)

    x = noise(batch=3)
    sigma = torch.full((3,), 2.0)
    out = S.v_denoiser(net)(x, sigma)
    torch.testing.assert_close(calls[0][0], x / math.sqrt(5.0))
    torch.testing.assert_close(calls[0][1], torch.full((3,), math.atan(2.0) * 2 / math.pi))
    torch.testing.assert_close(out, x / 5.0)  # c_skip x with a zero network output


def test_lms_coefficients_integrate_the_lagrange_basis_exactly():
    t = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5]).double().numpy()
    for order in (1, 2, 3, 4):
        i = order - 1
        coeffs = [S._lms_coefficient(order, t, i, j) for j in range(order)]
        assert sum(coeffs) == pytest.approx(t[i + 1] - t[i])  # the basis sums to one
    # Exact for a derivative that is a polynomial of degree < order: f(s) = s^2, order 3.
    i = 2
    coeffs = [S._lms_coefficient(3, t, i, j) for j in range(3)]
    approx = sum(c * t[i - j] ** 2 for j, c in enumerate(coeffs))
    assert approx == pytest.approx((t[i + 1] ** 3 - t[i] ** 3) / 3)


def test_registry_defaults_and_names():
    assert S.get_sampler("v").name == "euler"
    assert S.get_sampler("rectified_flow").name == "euler"
    assert S.get_sampler("rf_denoiser").name == "pingpong"
    assert set(S.SAMPLERS["v"]) == {
        "euler", "v-ddim", "v-ddim-cfgpp", "dpmpp-2m", "dpmpp-2m-sde", "dpmpp-3m-sde", "k-heun", "k-lms",
        "k-dpmpp-2s-ancestral", "k-dpm-2", "k-dpm-fast", "k-dpm-adaptive",
    }
    assert set(S.SAMPLERS["rf_denoiser"]) == {"euler", "rk4", "dpmpp", "pingpong"}


def test_unknown_sampler_error_lists_the_known_names():
    with pytest.raises(UnknownTypeError) as err:
        S.get_sampler("rectified_flow", "dpmpp-2m")
    message = str(err.value)
    assert "'dpmpp-2m'" in message and "euler, pingpong, rk4" in message.replace("dpmpp, ", "")
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnknownTypeError, match="known: rectified_flow, rf_denoiser, v"):
        S.get_sampler("eps")
