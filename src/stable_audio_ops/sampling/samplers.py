"""Diffusion samplers as pure functions, plus one registry of sampler names per diffusion objective.

Every sampler has the shape ``sample_<name>(model_fn, x, schedule, *, callback=None, ...) -> x``:
``model_fn`` is a plain callable with the conditioning and guidance options already bound (see
:func:`stable_audio_ops.inference.generation.sample_diffusion`), so the model never learns which
sampler drives it and a sampler can be tested against an analytic model.

Three families, each with its own ``model_fn`` contract:

- **k-diffusion** (``sample_heun`` ... ``sample_dpmpp_3m_sde``, ``sample_dpm_fast``,
  ``sample_dpm_adaptive``): ``model_fn(x, sigma[B]) -> denoised x0`` in Karras units
  (``x = x0 + sigma * eps``). A v-objective network becomes such a denoiser through
  :func:`v_denoiser`. Re-implemented from the published algorithms (k-diffusion 0.1.1 semantics); the
  package is not a dependency.
- **v-DDIM** (:func:`sample_v_ddim`): ``model_fn(x, t[B]) -> v`` on a t schedule without the endpoint.
- **rectified flow** (:func:`sample_rf_euler`, ``_rk4``, ``_dpmpp``, ``_pingpong``):
  ``model_fn(x, t[B]) -> v = eps - x0`` on a t schedule ending at 0.

Stochastic samplers draw their noise from the ``generator`` argument (a ``torch.Generator`` the caller
controls). The SDE samplers (``dpmpp-2m-sde``, ``dpmpp-3m-sde``) take it, as k-diffusion does, from one
Brownian path over the schedule (:mod:`stable_audio_ops.sampling.brownian`) whose seed is drawn from that
generator, so a seed gives the same audio as stable-audio-tools; ``noise_sampler`` replaces the path.

``callback`` receives one dict per step: ``i``, ``x`` (the current state), ``sigma`` or ``t`` and
``denoised`` (the current clean estimate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stable_audio_ops.config.schema import lookup
from stable_audio_ops.sampling.brownian import NoiseSampler, brownian_tree_noise
from stable_audio_ops.sampling.schedules import sigma_to_t, t_to_alpha_sigma

ModelFn = Callable[..., Any]
Callback = Callable[[dict], None] | None


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _append_dims(x: torch.Tensor, ndim: int) -> torch.Tensor:
    return x[(...,) + (None,) * (ndim - x.ndim)]


def _notify(callback: Callback, info: dict) -> None:
    if callback is not None:
        callback(info)


# ----------------------------------------------------------------------------------------------
# Adapters
# ----------------------------------------------------------------------------------------------


def v_denoiser(model_fn: ModelFn, sigma_data: float = 1.0) -> ModelFn:
    """Turn a v-objective network ``model_fn(x, t) -> v`` into a Karras denoiser ``(x, sigma) -> x0``.

    k-diffusion's VDenoiser: ``x0 = c_skip x + c_out * model(c_in x, atan(sigma) 2/pi)`` with
    ``c_skip = sd^2/(sigma^2+sd^2)``, ``c_out = -sigma sd/sqrt(sigma^2+sd^2)``, ``c_in = 1/sqrt(sigma^2+sd^2)``.
    The network therefore sees ``cos(t) x0 + sin(t) eps``, its training distribution.
    """

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
        c_out = -sigma * sigma_data / (sigma ** 2 + sigma_data ** 2) ** 0.5
        c_in = 1 / (sigma ** 2 + sigma_data ** 2) ** 0.5
        c_skip, c_out, c_in = (_append_dims(c, x.ndim) for c in (c_skip, c_out, c_in))
        return model_fn(x * c_in, sigma_to_t(sigma)) * c_out + x * c_skip

    return denoise


def with_classifier_guidance(denoise: ModelFn, cond_fn: Callable[..., torch.Tensor]) -> ModelFn:
    """Classifier guidance for a Karras denoiser: ``x0 += cond_fn(x, sigma, denoised=x0) * sigma^2``.

    ``cond_fn`` returns the gradient of a log-likelihood with respect to ``x``; it runs with
    gradients enabled even inside ``torch.no_grad()`` sampling.
    """

    def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            denoised = denoise(x, sigma)
            grad = cond_fn(x, sigma, denoised=denoised).detach()
        return denoised.detach() + grad * _append_dims(sigma ** 2, x.ndim)

    return guided


# ----------------------------------------------------------------------------------------------
# k-diffusion family: model_fn(x, sigma[B]) -> denoised
# ----------------------------------------------------------------------------------------------


def _to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """Karras ODE derivative dx/dsigma."""
    return (x - denoised) / _append_dims(sigma, x.ndim)


def _ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0):
    """(sigma_down, sigma_up): where to step deterministically and how much fresh noise to add."""
    if not eta:
        return sigma_to, sigma_to.new_zeros(())
    sigma_up = torch.minimum(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def _churn(x, sigma, n_steps, s_churn, s_tmin, s_tmax, s_noise, generator):
    """Karras 'churn': optionally raise the noise level before a step (off by default)."""
    gamma = min(s_churn / n_steps, 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + _randn_like(x, generator) * s_noise * (sigma_hat ** 2 - sigma ** 2) ** 0.5
    return x, sigma_hat


@torch.no_grad()
def sample_heun(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback = None,
                s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Karras et al. (2022) Algorithm 2: Heun's 2nd-order method, Euler on the last step to 0."""
    s_in = x.new_ones([x.shape[0]])
    n = len(sigmas) - 1
    for i in range(n):
        x, sigma_hat = _churn(x, sigmas[i], n, s_churn, s_tmin, s_tmax, s_noise, generator)
        denoised = model_fn(x, sigma_hat * s_in)
        d = _to_d(x, sigma_hat, denoised)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigma_hat, "denoised": denoised})
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = _to_d(x_2, sigmas[i + 1], model_fn(x_2, sigmas[i + 1] * s_in))
            x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_dpm_2(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback = None,
                 s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """DPM-Solver-2-like midpoint method (geometric midpoint in sigma), Euler on the last step."""
    s_in = x.new_ones([x.shape[0]])
    n = len(sigmas) - 1
    for i in range(n):
        x, sigma_hat = _churn(x, sigmas[i], n, s_churn, s_tmin, s_tmax, s_noise, generator)
        denoised = model_fn(x, sigma_hat * s_in)
        d = _to_d(x, sigma_hat, denoised)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigma_hat, "denoised": denoised})
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            d_2 = _to_d(x_2, sigma_mid, model_fn(x_2, sigma_mid * s_in))
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def _lms_coefficient(order: int, t: np.ndarray, i: int, j: int) -> float:
    """Integral over [t_i, t_{i+1}] of the Lagrange basis polynomial of node t_{i-j} (nodes t_i..t_{i-order+1}).

    Integrated exactly with numpy polynomials (k-diffusion uses scipy quadrature; both are exact to
    float64 rounding for these low-degree polynomials).
    """
    poly = np.polynomial.Polynomial([1.0])
    for k in range(order):
        if k == j:
            continue
        poly = poly * np.polynomial.Polynomial([-t[i - k], 1.0]) / (t[i - j] - t[i - k])
    antiderivative = poly.integ()
    return float(antiderivative(t[i + 1]) - antiderivative(t[i]))


@torch.no_grad()
def sample_lms(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback = None,
               order: int = 4) -> torch.Tensor:
    """Linear multistep (Adams-Bashforth in sigma) of up to ``order`` past derivatives."""
    s_in = x.new_ones([x.shape[0]])
    sigmas_np = sigmas.detach().cpu().double().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model_fn(x, sigmas[i] * s_in)
        ds.append(_to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        cur_order = min(i + 1, order)
        coeffs = [_lms_coefficient(cur_order, sigmas_np, i, j) for j in range(cur_order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=False))
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *,
                              callback: Callback = None, eta: float = 1.0, s_noise: float = 1.0,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral sampling with DPM-Solver++(2S) single-step second-order updates."""
    s_in = x.new_ones([x.shape[0]])

    def sigma_fn(t):
        return t.neg().exp()

    def t_fn(sigma):
        return sigma.log().neg()

    for i in range(len(sigmas) - 1):
        denoised = model_fn(x, sigmas[i] * s_in)
        sigma_down, sigma_up = _ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if sigma_down == 0:
            x = x + _to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = t_fn(sigmas[i]), t_fn(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (sigma_fn(s) / sigma_fn(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model_fn(x_2, sigma_fn(s) * s_in)
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + _randn_like(x, generator) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *,
                    callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M): multistep 2nd order in log-sigma; first and last (to 0) steps are 1st order."""
    s_in = x.new_ones([x.shape[0]])

    def sigma_fn(t):
        return t.neg().exp()

    def t_fn(sigma):
        return sigma.log().neg()

    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model_fn(x, sigmas[i] * s_in)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - t_fn(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def _sde_noise(x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator | None) -> NoiseSampler:
    """k-diffusion's default for its SDE samplers: a Brownian tree from the smallest positive sigma to the
    largest, its seed drawn from ``generator`` when the sampler starts."""
    return brownian_tree_noise(x, sigmas[sigmas > 0].min(), sigmas.max(), generator=generator)


@torch.no_grad()
def sample_dpmpp_2m_sde(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback = None,
                        eta: float = 1.0, s_noise: float = 1.0, solver_type: str = "midpoint",
                        generator: torch.Generator | None = None,
                        noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (``solver_type`` midpoint or heun); the last step returns the denoised x0.

    Noise: ``noise_sampler`` or a Brownian tree seeded from ``generator`` (see :func:`_sde_noise`)."""
    if solver_type not in {"heun", "midpoint"}:
        raise ValueError(f"solver_type must be 'heun' or 'midpoint', got {solver_type!r}")
    noise_sampler = noise_sampler or _sde_noise(x, sigmas, generator)
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    h_last = None
    for i in range(len(sigmas) - 1):
        denoised = model_fn(x, sigmas[i] * s_in)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() \
                    * s_noise
            h_last = h
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(model_fn: ModelFn, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback = None,
                        eta: float = 1.0, s_noise: float = 1.0,
                        generator: torch.Generator | None = None,
                        noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: third-order multistep with Brownian noise (as :func:`sample_dpmpp_2m_sde`);
    the last step returns x0."""
    noise_sampler = noise_sampler or _sde_noise(x, sigmas, generator)
    s_in = x.new_ones([x.shape[0]])
    denoised_1 = denoised_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model_fn(x, sigmas[i] * s_in)
        _notify(callback, {"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                d = (denoised - denoised_1) / (h_1 / h)
                x = x + (h_eta.neg().expm1() / h_eta + 1) * d
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() \
                    * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


class _DPMSolver:
    """DPM-Solver (Lu et al., 2022) in k-diffusion's parameterisation: time ``lambda = -log sigma``.

    Shared by :func:`sample_dpm_fast` (fixed orders) and :func:`sample_dpm_adaptive` (embedded
    error estimate with a PID step-size controller).
    """

    def __init__(self, model_fn: ModelFn, callback: Callback, generator: torch.Generator | None):
        self.model_fn = model_fn
        self.callback = callback
        self.generator = generator
        self.nfe = 0

    @staticmethod
    def t(sigma):
        return -sigma.log()

    @staticmethod
    def sigma(t):
        return t.neg().exp()

    def eps(self, cache: dict, key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if key not in cache:
            sigma = self.sigma(t) * x.new_ones([x.shape[0]])
            cache[key] = (x - self.model_fn(x, sigma)) / self.sigma(t)
            self.nfe += 1
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        return x - self.sigma(t_next) * h.expm1() * eps

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (x - self.sigma(s2) * (r2 * h).expm1() * eps
              - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def ancestral(self, s, t, t_end, eta):
        """Target time and noise amount of an ancestral step from ``s`` to ``t``."""
        if not eta:
            return t, 0.0
        sd, _ = _ancestral_step(self.sigma(s), self.sigma(t), eta)
        t_ = torch.minimum(t_end, self.t(sd))
        return t_, (self.sigma(t) ** 2 - self.sigma(t_) ** 2) ** 0.5

    def fast(self, x, t_start, t_end, nfe, eta, s_noise):
        m = math.floor(nfe / 3) + 1
        ts = torch.linspace(float(t_start), float(t_end), m + 1, device=x.device)
        orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
        for i, order in enumerate(orders):
            cache: dict = {}
            t, t_next = ts[i], ts[i + 1]
            t_next_, su = self.ancestral(t, t_next, t_end, eta)
            eps = self.eps(cache, "eps", x, t)
            _notify(self.callback, {"x": x, "i": i, "t": t, "sigma": self.sigma(t), "sigma_hat": self.sigma(t),
                                    "denoised": x - self.sigma(t) * eps})
            step = {1: self.step_1, 2: self.step_2, 3: self.step_3}[order]
            x = step(x, t, t_next_, cache)
            if eta:
                x = x + su * s_noise * _randn_like(x, self.generator)
        return x

    def adaptive(self, x, t_start, t_end, order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety,
                 eta, s_noise):
        if order not in {2, 3}:
            raise ValueError(f"order should be 2 or 3, got {order}")
        forward = t_end > t_start
        if not forward and eta:
            raise ValueError("eta must be 0 for reverse sampling")
        pid = _PIDStepSizeController(abs(h_init) * (1 if forward else -1), pcoeff, icoeff, dcoeff,
                                     1.5 if eta else order, accept_safety)
        atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
        s, x_prev = t_start, x
        info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}
        while (s < t_end - 1e-5) if forward else (s > t_end + 1e-5):
            cache: dict = {}
            t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
            t_, su = self.ancestral(s, t, t_end, eta)
            eps = self.eps(cache, "eps", x, s)
            denoised = x - self.sigma(s) * eps
            if order == 2:
                x_low = self.step_1(x, s, t_, cache)
                x_high = self.step_2(x, s, t_, cache)
            else:
                x_low = self.step_2(x, s, t_, cache, r1=1 / 3)
                x_high = self.step_3(x, s, t_, cache)
            delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
            error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
            if pid.propose_step(error):
                x_prev = x_low
                x = x_high + su * s_noise * _randn_like(x, self.generator) if eta else x_high
                s = t
                info["n_accept"] += 1
            else:
                info["n_reject"] += 1
            info["nfe"] += order
            info["steps"] += 1
            _notify(self.callback, {"x": x, "i": info["steps"] - 1, "t": s, "sigma": self.sigma(s),
                                    "sigma_hat": self.sigma(s), "denoised": denoised, "error": error,
                                    "h": pid.h, **info})
        return x, info


class _PIDStepSizeController:
    """PID controller for adaptive ODE step sizes (k-diffusion's defaults: pure integral control)."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order=1, accept_safety=0.81, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs: list[float] = []

    def propose_step(self, error) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


def _check_sigma_range(sigma_min: float, sigma_max: float) -> None:
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must be > 0")


@torch.no_grad()
def sample_dpm_fast(model_fn: ModelFn, x: torch.Tensor, sigma_min: float, sigma_max: float, n: int, *,
                    callback: Callback = None, eta: float = 0.0, s_noise: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """DPM-Solver-Fast: ``n`` model evaluations split into 3rd-order steps uniform in log sigma."""
    _check_sigma_range(sigma_min, sigma_max)
    solver = _DPMSolver(model_fn, callback, generator)
    t_start, t_end = solver.t(torch.tensor(float(sigma_max))), solver.t(torch.tensor(float(sigma_min)))
    return solver.fast(x, t_start, t_end, n, eta, s_noise)


@torch.no_grad()
def sample_dpm_adaptive(model_fn: ModelFn, x: torch.Tensor, sigma_min: float, sigma_max: float, *,
                        callback: Callback = None, order: int = 3, rtol: float = 0.05, atol: float = 0.0078,
                        h_init: float = 0.05, pcoeff: float = 0.0, icoeff: float = 1.0, dcoeff: float = 0.0,
                        accept_safety: float = 0.81, eta: float = 0.0, s_noise: float = 1.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """DPM-Solver-23 with adaptive step size (error control by ``rtol``/``atol``)."""
    _check_sigma_range(sigma_min, sigma_max)
    solver = _DPMSolver(model_fn, callback, generator)
    t_start, t_end = solver.t(torch.tensor(float(sigma_max))), solver.t(torch.tensor(float(sigma_min)))
    x, _ = solver.adaptive(x, t_start, t_end, order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety,
                           eta, s_noise)
    return x


# ----------------------------------------------------------------------------------------------
# v-objective DDIM: model_fn(x, t[B]) -> v
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_v_ddim(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, *, callback: Callback = None,
                  eta: float = 0.0, cfg_pp: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """v-diffusion DDIM over ``ts`` (no endpoint); returns the clean prediction at the last time.

    With ``cfg_pp`` the model is called with ``return_info=True`` and must return ``(v, info)``; the
    noise estimate then uses ``info["uncond_output"]`` (CFG++), the clean estimate the guided ``v``.
    """
    s_in = x.new_ones([x.shape[0]])
    ts = ts.to(x.device)
    alphas, sigmas = t_to_alpha_sigma(ts)
    steps = len(ts)
    pred = x
    for i in range(steps):
        if cfg_pp:
            out = model_fn(x, s_in * ts[i], return_info=True)
            v, info = out if isinstance(out, tuple) else (out, {})
            v_eps = info.get("uncond_output", v)
        else:
            v = model_fn(x, s_in * ts[i])
            v_eps = v
        pred = x * alphas[i] - v * sigmas[i]
        eps = x * sigmas[i] + v_eps * alphas[i]
        _notify(callback, {"x": x, "i": i, "t": ts[i], "sigma": sigmas[i], "denoised": pred})
        if i < steps - 1:
            ddim_sigma = eta * (sigmas[i + 1] ** 2 / sigmas[i] ** 2).sqrt() * (1 - alphas[i] ** 2 / alphas[i + 1] ** 2).sqrt()
            adjusted_sigma = (sigmas[i + 1] ** 2 - ddim_sigma ** 2).sqrt()
            x = pred * alphas[i + 1] + eps * adjusted_sigma
            if eta:
                x = x + _randn_like(x, generator) * ddim_sigma
    return pred


# ----------------------------------------------------------------------------------------------
# Rectified flow: x_t = (1 - t) x0 + t eps, model_fn(x, t[B]) -> v = eps - x0
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_rf_euler(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, *,
                    callback: Callback = None) -> torch.Tensor:
    """Euler steps ``x += (t_next - t) v`` down a schedule ending at 0."""
    ts = ts.to(x.device)
    for i in range(len(ts) - 1):
        t_curr, t_next = ts[i], ts[i + 1]
        t_vec = t_curr * torch.ones((x.shape[0],), dtype=x.dtype, device=x.device)
        v = model_fn(x, t_vec)
        _notify(callback, {"x": x, "i": i, "t": t_vec, "sigma": t_vec, "denoised": x - t_curr * v})
        x = x + (t_next - t_curr) * v
    return x


@torch.no_grad()
def sample_rf_rk4(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, *,
                  callback: Callback = None) -> torch.Tensor:
    """Classic 4th-order Runge-Kutta; the last stage is evaluated at ``max(t_next, 1e-5)``.

    The model is never trained at t = 0 exactly, so the final stage stays just above it.
    """
    s_in = x.new_ones([x.shape[0]])
    ts = ts.to(x.device)
    for i in range(len(ts) - 1):
        t_curr, t_next = ts[i], ts[i + 1]
        dt = t_next - t_curr
        k1 = model_fn(x, t_curr * s_in)
        _notify(callback, {"x": x, "i": i, "t": t_curr, "sigma": t_curr, "denoised": x - t_curr * k1})
        k2 = model_fn(x + dt / 2 * k1, (t_curr + dt / 2) * s_in)
        k3 = model_fn(x + dt / 2 * k2, (t_curr + dt / 2) * s_in)
        k4 = model_fn(x + dt * k3, t_next.clamp(min=1e-5) * s_in)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


@torch.no_grad()
def sample_rf_dpmpp(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, *,
                    callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M) for rectified flow (data prediction ``x0 = x - t v``, log-SNR ``log((1-t)/t)``).

    The first-order factor ``-expm1(-h)`` is computed directly as ``(t_next - t) / ((1 - t_next) t)``
    so that t = 1 and t = 0 stay finite; the first and last steps are first order.
    """
    ts = ts.to(x.device)

    def log_snr(t):
        return ((1 - t).clamp(min=1e-10) / t.clamp(min=1e-10)).log()

    old_denoised = None
    for i in range(len(ts) - 1):
        t_curr, t_next = ts[i], ts[i + 1]
        v = model_fn(x, t_curr.expand(x.shape[0]))
        denoised = x - t_curr * v
        _notify(callback, {"x": x, "i": i, "t": t_curr, "sigma": t_curr, "denoised": denoised})
        alpha_next = 1 - t_next
        coeff = (t_next - t_curr) / ((1 - t_next).clamp(min=1e-10) * t_curr.clamp(min=1e-10))
        if old_denoised is None or t_next == 0:
            target = denoised
        else:
            h = log_snr(t_next) - log_snr(t_curr)
            r = (log_snr(t_curr) - log_snr(ts[i - 1])) / h
            target = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (t_next / t_curr.clamp(min=1e-10)) * x - alpha_next * coeff * target
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_rf_pingpong(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, *, callback: Callback = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Ping-pong sampling for distilled (``rf_denoiser``) models.

    Each step jumps to the clean estimate ``x0 = x - t v`` and re-noises it to the next level with
    fresh noise: ``x = (1 - t_next) x0 + t_next * noise``; the last step (t_next = 0) returns x0.
    """
    ts = ts.to(x.device)
    for i in range(len(ts) - 1):
        t_curr, t_next = ts[i].to(x.dtype), ts[i + 1].to(x.dtype)
        t_vec = t_curr * torch.ones((x.shape[0],), dtype=x.dtype, device=x.device)
        denoised = x - t_curr * model_fn(x, t_vec)
        _notify(callback, {"x": x, "i": i, "t": t_curr, "sigma": t_curr, "sigma_hat": t_curr, "denoised": denoised})
        x = (1 - t_next) * denoised + t_next * _randn_like(x, generator)
    return x


# ----------------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------------

# How sample_diffusion must drive a sampler:
#   "k"        k-diffusion sampler over polyexponential sigmas, model wrapped by v_denoiser
#   "k-fast"   DPM-Solver-Fast: (sigma_min, sigma_max, n=steps) instead of a sigma list
#   "k-adaptive" adaptive DPM-Solver: (sigma_min, sigma_max), the step count is chosen by error control
#   "v-shift"  v-DDIM on build_schedule(..., dist_shift=model's sampling shift)  (0.0.20 "euler")
#   "v-linear" v-DDIM on a linear t schedule (0.0.20 "v-ddim" / "v-ddim-cfgpp")
#   "rf"       rectified-flow sampler on build_schedule(..., include_endpoint=True, dist_shift)
FAMILIES = ("k", "k-fast", "k-adaptive", "v-shift", "v-linear", "rf")


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler: the function, how to drive it, and options fixed by its name."""

    name: str
    family: str
    fn: Callable[..., torch.Tensor]
    options: dict = field(default_factory=dict)
    stochastic: bool = False


def _spec(name, family, fn, stochastic=False, **options) -> SamplerSpec:
    if family not in FAMILIES:
        raise ValueError(f"unknown sampler family {family!r}; known: {', '.join(FAMILIES)}")
    return SamplerSpec(name, family, fn, options, stochastic)


V_SAMPLERS: dict[str, SamplerSpec] = {s.name: s for s in (
    _spec("euler", "v-shift", sample_v_ddim),
    _spec("v-ddim", "v-linear", sample_v_ddim),
    _spec("v-ddim-cfgpp", "v-linear", sample_v_ddim, cfg_pp=True),
    _spec("dpmpp-2m", "k", sample_dpmpp_2m),
    _spec("dpmpp-2m-sde", "k", sample_dpmpp_2m_sde, stochastic=True),
    _spec("dpmpp-3m-sde", "k", sample_dpmpp_3m_sde, stochastic=True),
    _spec("k-heun", "k", sample_heun),
    _spec("k-lms", "k", sample_lms),
    _spec("k-dpmpp-2s-ancestral", "k", sample_dpmpp_2s_ancestral, stochastic=True),
    _spec("k-dpm-2", "k", sample_dpm_2),
    _spec("k-dpm-fast", "k-fast", sample_dpm_fast),
    _spec("k-dpm-adaptive", "k-adaptive", sample_dpm_adaptive, rtol=0.01, atol=0.01),
)}

RF_SAMPLERS: dict[str, SamplerSpec] = {s.name: s for s in (
    _spec("euler", "rf", sample_rf_euler),
    _spec("rk4", "rf", sample_rf_rk4),
    _spec("dpmpp", "rf", sample_rf_dpmpp),
    _spec("pingpong", "rf", sample_rf_pingpong, stochastic=True),
)}

# 0.0.20 routes both flow objectives to the same four samplers; only the default differs.
SAMPLERS: dict[str, dict[str, SamplerSpec]] = {
    "v": V_SAMPLERS,
    "rectified_flow": RF_SAMPLERS,
    "rf_denoiser": RF_SAMPLERS,
}

DEFAULT_SAMPLER: dict[str, str] = {"v": "euler", "rectified_flow": "euler", "rf_denoiser": "pingpong"}


def get_sampler(diffusion_objective: str, sampler_type: str | None = None) -> SamplerSpec:
    """The sampler registered as ``sampler_type`` for an objective (``None`` = the objective's default).

    Unknown objectives or names raise :class:`~stable_audio_ops.errors.UnknownTypeError` (a
    ``ValueError``) listing the known names.
    """
    registry = lookup(SAMPLERS, diffusion_objective, "diffusion objective", key="diffusion_objective")
    name = DEFAULT_SAMPLER[diffusion_objective] if sampler_type is None else sampler_type
    return lookup(registry, name, f"sampler for diffusion objective {diffusion_objective!r}", key="sampler_type")
