"""Bottlenecks between the encoder and the decoder, and their registry :data:`BOTTLENECKS`.

The continuous ones (``vae``, ``tanh``, ``l2_norm``, ``wasserstein``) live here; the quantizing ones
(``rvq``, ``rvq_vae``, ``dac_rvq``, ``dac_rvq_vae``, ``fsq``, ``dithered_fsq``) in
:mod:`stable_audio_ops.models.discrete_bottlenecks`. All share one small interface:
``encode(x, return_info=False, **kw)`` returns latents (and an info dict when asked), ``decode(x)`` maps
latents back to decoder input, ``is_discrete`` says whether ``encode`` also yields tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.discrete_bottlenecks import DISCRETE_BOTTLENECKS
from stable_audio_ops.models.vae_sampling import (
    VAE_MIN_STD,
    append_noise_channels,
    split_mean_scale,
    vae_sample,
)

__all__ = ["BOTTLENECKS", "VAE_MIN_STD", "L2NormBottleneck", "TanhBottleneck", "VAEBottleneck",
           "WassersteinBottleneck", "mmd_to_normal", "vae_sample"]


class VAEBottleneck(nn.Module):
    """Splits ``2 * latent_dim`` encoder channels into mean | scale and samples (in eval too)."""

    is_discrete = False
    encoder_channels_per_latent = 2  # the encoder emits mean | scale

    def encode(self, x: torch.Tensor, return_info: bool = False, noise: torch.Tensor | None = None, **kwargs):
        mean, scale = split_mean_scale(x)
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


def _mean_rbf_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over all pairs of ``exp(-mean_d (x_i - y_j)^2 / d)`` (upstream's kernel: the squared
    distance is averaged over channels *and* divided by the channel count)."""
    return torch.exp(-(x[:, None] - y[None]).pow(2).mean(2) / x.shape[-1]).mean()


def mmd_to_normal(latents: torch.Tensor) -> torch.Tensor:
    """Maximum mean discrepancy between the latent frames ``[B, C, T]`` and as many N(0, I) draws."""
    frames = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
    noise = torch.randn_like(frames)
    return (_mean_rbf_kernel(frames, frames) + _mean_rbf_kernel(noise, noise)
            - 2 * _mean_rbf_kernel(frames, noise))


class WassersteinBottleneck(nn.Module):
    """Wasserstein-AE regulariser: in training, ``info["mmd"]`` pulls the latent frames toward N(0, I).

    ``use_tanh`` soft-bounds the latents to ``(-tanh_scale, tanh_scale)`` (after the MMD is measured,
    as upstream). ``decode`` appends ``noise_augment_dim`` fresh N(0, 1) channels, so the decoder's
    ``latent_dim`` is ``latent_dim + noise_augment_dim``; ``noise=`` pins those channels.
    """

    is_discrete = False

    def __init__(self, noise_augment_dim: int = 0, bypass_mmd: bool = False, use_tanh: bool = False,
                 tanh_scale: float = 5.0):
        super().__init__()
        self.noise_augment_dim = int(noise_augment_dim)
        self.bypass_mmd = bool(bypass_mmd)
        self.use_tanh = bool(use_tanh)
        self.tanh_scale = float(tanh_scale)

    def encode(self, x: torch.Tensor, return_info: bool = False, **kwargs):
        info: dict[str, torch.Tensor] = {}
        if self.training and return_info:
            info["mmd"] = x.new_zeros(()) if self.bypass_mmd else mmd_to_normal(x)
        if self.use_tanh:
            x = torch.tanh(x / self.tanh_scale) * self.tanh_scale
        return (x, info) if return_info else x

    def decode(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return append_noise_channels(x, self.noise_augment_dim, noise)


def _build_vae(node: ConfigNode) -> nn.Module:
    return VAEBottleneck()


def _build_tanh(node: ConfigNode) -> nn.Module:
    cfg = node.child("config", {})
    return TanhBottleneck(scale=cfg.get("scale", "a positive number", 1.0))


def _build_l2_norm(node: ConfigNode) -> nn.Module:
    return L2NormBottleneck()


def _build_wasserstein(node: ConfigNode) -> nn.Module:
    cfg = node.child("config", {})
    check_known_keys(cfg, ("noise_augment_dim", "bypass_mmd", "use_tanh", "tanh_scale"))
    return WassersteinBottleneck(
        noise_augment_dim=cfg.get("noise_augment_dim", "a non-negative int", 0),
        bypass_mmd=cfg.get("bypass_mmd", "a bool", False),
        use_tanh=cfg.get("use_tanh", "a bool", False),
        tanh_scale=cfg.get("tanh_scale", "a positive number", 5.0),
    )


# name -> builder(node of the ``bottleneck`` object, i.e. {"type", "config", "requires_grad"})
BOTTLENECKS = {
    "vae": _build_vae,
    "tanh": _build_tanh,
    "l2_norm": _build_l2_norm,
    "wasserstein": _build_wasserstein,
    **DISCRETE_BOTTLENECKS,
}
