"""Noise-level distributions of ARC post-training (``training.arc.noise_dist.generator`` / ``.discriminator``).

Why separate from :mod:`stable_audio_ops.training.timesteps`: ARC draws two noise levels per step, the
student's input level and the level at which real and generated latents are re-noised for the discriminator,
from its own list of names (upstream ``ARCTrainingWrapper.build_noise_dist``), including two degenerate ones.

Names (registry :data:`ARC_NOISE_DISTS`), ``t`` in [0, 1] with 0 = clean:
- ``uniform`` (default): scrambled Sobol draws, one engine shared by both roles, as upstream;
- ``logit_normal``: ``sigmoid(N(0, 1))``;
- ``trunc_logit_normal``: the flipped truncated logit-normal of diffusion training (mass at high noise);
- ``one_shot``: ``t = 1`` (pure noise: trains one-step generation);
- ``denoised``: ``t = 0`` (the discriminator sees clean latents);
- ``logsnr_uniform``: log-SNR uniform in [-6, 2], ``t = sigmoid(-logsnr)`` (the levels of few-step schedules).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.training.timesteps import SobolUniform, logit_normal, truncated_logit_normal

NoiseDist = Callable[[int, torch.device | str], torch.Tensor]

LOGSNR_RANGE = (-6.0, 2.0)


def _logsnr_uniform(batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    low, high = LOGSNR_RANGE
    return torch.sigmoid(-(torch.rand(batch_size, device=device) * (high - low) + low))


def _constant(value: float) -> NoiseDist:
    def draw(batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.full((batch_size,), value, device=device)

    return draw


# name -> factory(shared Sobol engine) -> draw(batch_size, device)
ARC_NOISE_DISTS: dict[str, Callable[[SobolUniform], NoiseDist]] = {
    "uniform": lambda sobol: sobol,
    "logit_normal": lambda sobol: logit_normal,
    "trunc_logit_normal": lambda sobol: truncated_logit_normal,
    "one_shot": lambda sobol: _constant(1.0),
    "denoised": lambda sobol: _constant(0.0),
    "logsnr_uniform": lambda sobol: _logsnr_uniform,
}


def build_noise_dist(noise_dist: ConfigNode, role: str, sobol: SobolUniform) -> NoiseDist:
    """The distribution named at ``noise_dist.<role>`` (``uniform`` when absent)."""
    name = noise_dist.get(role, "a string", "uniform")
    return lookup(ARC_NOISE_DISTS, name, "ARC noise distribution", noise_dist, key=role)(sobol)


__all__ = ["ARC_NOISE_DISTS", "NoiseDist", "build_noise_dist"]
