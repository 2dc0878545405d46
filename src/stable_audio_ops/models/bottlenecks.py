"""Continuous bottlenecks between the encoder and the decoder (``vae``, ``tanh``, ``l2_norm``).

All share one small interface: ``encode(x, return_info=False, **kw)`` returns latents (and an info
dict when asked), ``decode(x)`` maps latents back to decoder input, ``is_discrete`` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode

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


class VAEBottleneck(nn.Module):
    """Splits ``2 * latent_dim`` encoder channels into mean | scale and samples (in eval too)."""

    is_discrete = False

    def encode(self, x: torch.Tensor, return_info: bool = False, noise: torch.Tensor | None = None, **kwargs):
        if x.shape[1] % 2:
            raise ValueError(f"VAE bottleneck needs an even channel count (mean|scale), got {x.shape[1]}")
        mean, scale = x.chunk(2, dim=1)
        latents, kl = vae_sample(mean, scale, noise=noise)
        return (latents, {"kl": kl}) if return_info else latents

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


class TanhBottleneck(nn.Module):
    """Soft-bounds latents to ``(-scale, scale)``: ``tanh(x / scale) * scale``; decode is identity."""

    is_discrete = False

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)

    def encode(self, x: torch.Tensor, return_info: bool = False, **kwargs):
        x = torch.tanh(x / self.scale) * self.scale
        return (x, {}) if return_info else x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


class L2NormBottleneck(nn.Module):
    """Projects latents onto the unit sphere over channels, on encode *and* decode (upstream does both)."""

    is_discrete = False

    def encode(self, x: torch.Tensor, return_info: bool = False, **kwargs):
        x = F.normalize(x, dim=1)
        return (x, {}) if return_info else x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


def _build_vae(node: ConfigNode) -> nn.Module:
    return VAEBottleneck()


def _build_tanh(node: ConfigNode) -> nn.Module:
    cfg = node.child("config", {})
    return TanhBottleneck(scale=cfg.get("scale", "a positive number", 1.0))


def _build_l2_norm(node: ConfigNode) -> nn.Module:
    return L2NormBottleneck()


# name -> builder(node of the ``bottleneck`` object, i.e. {"type", "config", "requires_grad"})
BOTTLENECKS = {
    "vae": _build_vae,
    "tanh": _build_tanh,
    "l2_norm": _build_l2_norm,
}
