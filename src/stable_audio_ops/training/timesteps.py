"""Training timestep samplers for diffusion (``training.timestep_sampler``), upstream's semantics.

A sampler draws ``t`` in [0, 1] per batch item (0 = clean data, 1 = pure noise). After drawing, the
model's training ``distribution_shift_options`` (if any) warp ``t`` by the latent length, and with
probability ``p_one_shot`` an item gets ``t = 1`` (trains the one-step-from-noise case used by
few-step models). All of it lives here so the training module only asks for "the t of this batch".

Samplers (registry :data:`TIMESTEP_SAMPLERS`):
- ``uniform``: scrambled 1-D Sobol sequence (low discrepancy, so every batch covers [0, 1] evenly);
- ``logit_normal``: ``sigmoid(N(0, 1))`` (concentrates on mid noise levels);
- ``trunc_logit_normal``: logit-normal with the lowest 7.5 % (in t) cut off, rescaled to [0, 1) and
  flipped (``1 - t``), so training emphasises HIGH noise and never sees t near 1 from the low end;
- ``log_snr``: ``log SNR ~ N(mean_logsnr, std_logsnr)`` (defaults -1.2, 2.0), ``t = sigmoid(-log SNR)``,
  clamped to [1e-4, 1 - 1e-4].

Deliberate difference: upstream passes ``reals.shape[2]`` as the sequence length of the shift,
which is the AUDIO length when latents are encoded on the fly (and the latent length only for
pre-encoded data); here it is always the length of the diffusion input (latent frames), which is
what the shift's ``min_length``/``max_length`` defaults (256/4096 frames) are meant for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from stable_audio_ops.config.schema import ConfigNode, lookup

LOGSNR_CLAMP = 1e-4
TRUNC_LEFT = 0.075


class SobolUniform:
    """Scrambled Sobol draws in [0, 1); one engine per training module (its state is the sequence)."""

    def __init__(self, seed: int | None = None):
        self.engine = torch.quasirandom.SobolEngine(1, scramble=True, seed=seed)

    def __call__(self, batch_size: int, device: torch.device | str = "cpu", **_: Any) -> torch.Tensor:
        return self.engine.draw(batch_size)[:, 0].to(device=device, dtype=torch.float32)


def logit_normal(batch_size: int, device: torch.device | str = "cpu", **_: Any) -> torch.Tensor:
    return torch.sigmoid(torch.randn(batch_size, device=device))


def truncated_logit_normal(batch_size: int, device: torch.device | str = "cpu", left_trunc: float = TRUNC_LEFT,
                           **_: Any) -> torch.Tensor:
    """Logit-normal restricted to ``t >= left_trunc`` by inverse-CDF sampling, rescaled to [0, 1), flipped."""
    normal = torch.distributions.Normal(0.0, 1.0)
    low = normal.cdf(torch.logit(torch.tensor(left_trunc)))
    u = normal.cdf(torch.randn(batch_size))
    u = low + (1.0 - low) * u  # uniform over the kept part of the CDF
    u = u.clamp(max=1.0 - 1e-7)  # icdf(1) is +inf
    samples = torch.sigmoid(normal.icdf(u))
    rescaled = (samples - left_trunc) / (1.0 - left_trunc)
    return (1.0 - rescaled).to(device)


def log_snr_normal(batch_size: int, device: torch.device | str = "cpu", mean_logsnr: float = -1.2,
                   std_logsnr: float = 2.0, **_: Any) -> torch.Tensor:
    logsnr = torch.randn(batch_size, device=device) * std_logsnr + mean_logsnr
    return torch.sigmoid(-logsnr).clamp(LOGSNR_CLAMP, 1 - LOGSNR_CLAMP)


# name -> factory(options node) -> sampler(batch_size, device) -> t [B]
TIMESTEP_SAMPLERS: dict[str, Callable[[ConfigNode], Callable[..., torch.Tensor]]] = {
    "uniform": lambda node: SobolUniform(),
    "logit_normal": lambda node: logit_normal,
    "trunc_logit_normal": lambda node: truncated_logit_normal,
    "log_snr": lambda node: _with_options(log_snr_normal, {
        "mean_logsnr": node.get("mean_logsnr", "a number", -1.2),
        "std_logsnr": node.get("std_logsnr", "a positive number", 2.0),
    }),
}


def _with_options(fn: Callable[..., torch.Tensor], options: Mapping[str, Any]) -> Callable[..., torch.Tensor]:
    def sampler(batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return fn(batch_size, device, **options)

    return sampler


class TimestepSampler:
    """Draw, shift and one-shot-replace the training ``t`` of a batch (see the module docstring)."""

    def __init__(self, name: str = "uniform", options: Mapping[str, Any] | None = None, dist_shift: Any = None,
                 p_one_shot: float = 0.0, source: str = "<model config>", path: str = "training"):
        root = ConfigNode({"timestep_sampler": name}, source, path)
        factory = lookup(TIMESTEP_SAMPLERS, name, "timestep sampler", root, key="timestep_sampler")
        self.name = name
        self.draw = factory(ConfigNode(dict(options or {}), source, f"{path}.timestep_sampler_options"))
        self.dist_shift = dist_shift
        if not 0.0 <= p_one_shot <= 1.0:
            raise root.error(f"must be in [0, 1], got {p_one_shot}", "p_one_shot")
        self.p_one_shot = float(p_one_shot)

    def __call__(self, batch_size: int, seq_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
        t = self.draw(batch_size, device)
        if self.dist_shift is not None:
            t = self.dist_shift.shift(t, int(seq_len))
        if self.p_one_shot > 0:
            t = torch.where(torch.rand_like(t) < self.p_one_shot, torch.ones_like(t), t)
        return t


def noise_and_target(x: torch.Tensor, t: torch.Tensor, objective: str,
                     noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noised input, regression target)`` at ``t`` for an objective, as upstream's training wrappers compute them.

    ``v``: ``x_t = cos(pi t / 2) x + sin(pi t / 2) e``, target ``cos * e - sin * x``;
    ``rectified_flow`` / ``rf_denoiser``: ``x_t = (1 - t) x + t e``, target ``e - x``.
    """
    if noise is None:
        noise = torch.randn_like(x)
    tt = t.to(x.dtype)[:, None, None]
    if objective == "v":
        alpha, sigma = torch.cos(tt * torch.pi / 2), torch.sin(tt * torch.pi / 2)
        return x * alpha + noise * sigma, noise * alpha - x * sigma
    if objective in ("rectified_flow", "rf_denoiser"):
        return x * (1 - tt) + noise * tt, noise - x
    raise ValueError(f"unknown diffusion objective {objective!r}; known: v, rectified_flow, rf_denoiser")
