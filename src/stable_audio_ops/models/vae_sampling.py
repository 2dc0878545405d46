"""The VAE reparameterised sample shared by the ``vae``, ``rvq_vae`` and ``dac_rvq_vae`` bottlenecks.

A module of its own so the continuous and the discrete bottleneck modules can both use it without
importing each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Added to softplus(scale) so the standard deviation never reaches 0 (upstream's constant).
VAE_MIN_STD = 1e-4


def vae_sample(mean: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised sample and KL term, exactly as stable-audio-tools computes them.

    ``std = softplus(scale) + 1e-4``; ``kl = mean_{b,t} sum_c (mean^2 + var - log var - 1)`` (no 1/2).
    ``noise`` pins the standard-normal draw (tests, reproducible encodes); None draws fresh noise.
    """
    stdev = F.softplus(scale) + VAE_MIN_STD
    var = stdev * stdev
    logvar = torch.log(var)
    if noise is None:
        noise = torch.randn_like(mean)
    elif noise.shape != mean.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != latent shape {tuple(mean.shape)}")
    latents = noise.to(mean) * stdev + mean
    kl = (mean * mean + var - logvar - 1).sum(1).mean()
    return latents, kl


def split_mean_scale(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 2C, T]`` encoder output -> (mean, scale), with a clear error for an odd channel count."""
    if x.shape[1] % 2:
        raise ValueError(f"a VAE bottleneck needs an even channel count (mean|scale), got {x.shape[1]}")
    mean, scale = x.chunk(2, dim=1)
    return mean, scale


def append_noise_channels(x: torch.Tensor, count: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Concatenate ``count`` N(0, 1) channels after the latents (``noise_augment_dim`` of upstream's
    wasserstein / dac_rvq / fsq bottlenecks); ``noise`` pins the draw ``[B, count, T]``."""
    if count <= 0:
        return x
    if noise is None:
        noise = torch.randn(x.shape[0], count, x.shape[-1], device=x.device, dtype=x.dtype)
    elif noise.shape != (x.shape[0], count, x.shape[-1]):
        raise ValueError(f"noise shape {tuple(noise.shape)} != {(x.shape[0], count, x.shape[-1])}")
    return torch.cat([x, noise.to(x)], dim=1)
