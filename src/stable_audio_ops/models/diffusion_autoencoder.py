"""``diffusion_autoencoder``: an encoder (+ bottleneck) whose decoder is a latent-conditioned diffusion U-Net.

Encoding is :meth:`AudioAutoencoder.encode`. Decoding draws noise of the output length and runs a
v-objective DDIM (eta 0) over 0.0.20's t schedule, with the latents nearest-upsampled to the audio
length and concatenated to the U-Net input as context channels. Keys as upstream: ``encoder.*``,
``bottleneck.*`` (when it has weights) and ``diffusion.model.*`` (the ``adp_1d`` :class:`UNet1d` or the ``DAU1d``
Dance Diffusion U-Net, :mod:`stable_audio_ops.models.dance_unet`). Decoder types plug in through
:data:`DIFFUSION_DECODERS`.

A separate ``decoder`` (latents -> diffusion conditioning) is rejected: upstream 0.0.20 cannot use one
either (its decode calls itself), so no checkpoint with one exists.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.models.adp import UNet1d
from stable_audio_ops.models.adp_factory import build_unet1d, halve_parameters
from stable_audio_ops.models.autoencoder import AudioAutoencoder
from stable_audio_ops.models.autoencoder_factory import ENCODERS
from stable_audio_ops.models.bottlenecks import BOTTLENECKS
from stable_audio_ops.models.dance_unet import DAU1DCondWrapper, build_dau1d
from stable_audio_ops.sampling.samplers import sample_v_ddim
from stable_audio_ops.sampling.schedules import build_schedule


class UNet1DCondWrapper(nn.Module):
    """U-Net conditioned by input concatenation: ``forward(x, t, input_concat_cond=[B, C, T'])``.

    The conditioning is nearest-resized to ``x``'s length first (as 0.0.20 does), then passed as the
    U-Net's level-0 context channels.
    """

    def __init__(self, unet: UNet1d):
        super().__init__()
        self.model = unet
        self.downsampling_ratio = unet.downsampling_ratio
        halve_parameters(self.model)

    def forward(self, x: torch.Tensor, t: torch.Tensor, input_concat_cond: torch.Tensor | None = None) -> torch.Tensor:
        channels_list = None
        if input_concat_cond is not None:
            if input_concat_cond.shape[-1] != x.shape[-1]:
                input_concat_cond = F.interpolate(input_concat_cond, size=x.shape[-1], mode="nearest")
            channels_list = [input_concat_cond]
        return self.model(x, t, channels_list=channels_list)


class DiffusionAutoencoder(AudioAutoencoder):
    """Audio -> latents with the encoder; latents -> audio by diffusion (``decode(latents, steps, noise=...)``)."""

    def __init__(self, encoder: nn.Module | None, diffusion: nn.Module, latent_dim: int,
                 downsampling_ratio: int, sample_rate: int, io_channels: int, diffusion_downsampling_ratio: int,
                 bottleneck: nn.Module | None = None):
        super().__init__(encoder, None, latent_dim=latent_dim, downsampling_ratio=downsampling_ratio,
                         sample_rate=sample_rate, io_channels=io_channels, bottleneck=bottleneck)
        self.diffusion = diffusion
        self.min_length = self.downsampling_ratio * int(diffusion_downsampling_ratio)
        if self.encoder is not None:
            halve_parameters(self.encoder)  # upstream: keeps fresh latents away from saturation

    def diffusion_conditioning(self, latents: torch.Tensor, skip_bottleneck: bool = False) -> torch.Tensor:
        """Latents -> the U-Net's context channels at audio rate (bottleneck decode + nearest upsampling)."""
        length = latents.shape[-1] * self.downsampling_ratio
        if self.bottleneck is not None and not skip_bottleneck:
            latents = self.bottleneck.decode(latents)
        if latents.shape[-1] != length:
            latents = F.interpolate(latents, size=length, mode="nearest")
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, steps: int = 100, noise: torch.Tensor | None = None,  # type: ignore[override]
               skip_bottleneck: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents ``[B, latent_dim, L]`` -> audio ``[B, io_channels, L * downsampling_ratio]`` in ``steps`` DDIM steps.

        Without ``noise`` it is drawn as ``randn(B, io_channels, L * ratio)`` (from ``generator`` if
        given), the same draw upstream makes after ``torch.manual_seed``.
        """
        cond = self.diffusion_conditioning(latents, skip_bottleneck=skip_bottleneck)
        shape = (latents.shape[0], self.io_channels, cond.shape[-1])
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=latents.device, dtype=latents.dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        ts = build_schedule(steps, include_endpoint=False, device=latents.device)
        return sample_v_ddim(lambda x, t: self.diffusion(x, t, input_concat_cond=cond), noise, ts)


def build_diffusion_autoencoder(root: ConfigNode) -> DiffusionAutoencoder:
    """``model_type: diffusion_autoencoder`` (root node of the whole model config)."""
    sample_rate = root.get("sample_rate", "a positive int")
    model = root.child("model")
    check_known_keys(model, ("encoder", "decoder", "diffusion", "bottleneck", "pretransform", "latent_dim",
                             "downsampling_ratio", "io_channels"))
    if model.has("decoder") and model.data["decoder"] is not None:
        raise model.error("a separate decoder is not supported (stable-audio-tools 0.0.20 cannot decode with one "
                          "either); remove it", "decoder")
    latent_dim = model.get("latent_dim", "a positive int")
    downsampling_ratio = model.get("downsampling_ratio", "a positive int")
    io_channels = model.get("io_channels", "a positive int")

    if model.has("pretransform") and model.data["pretransform"] is not None:
        # 0.0.20 sizes the decode noise as latent frames x downsampling_ratio at audio rate, which does not
        # fit a pretransform's latent rate; no usable upstream checkpoint can have one.
        raise model.error("a pretransform is not supported for diffusion_autoencoder by this version",
                          "pretransform")
    encoder = _part(model, "encoder", ENCODERS, "encoder type")
    bottleneck = _part(model, "bottleneck", BOTTLENECKS, "bottleneck type")

    diffusion_node = model.child("diffusion")
    check_known_keys(diffusion_node, ("type", "config"))
    diffusion_type = diffusion_node.get("type", "a string")
    if diffusion_type in _UNSUPPORTED_DECODERS:
        bad = diffusion_node.error(f"{_UNSUPPORTED_DECODERS[diffusion_type]} is not supported by this version; "
                                   f"supported: {', '.join(sorted(DIFFUSION_DECODERS))}", "type")
        raise UnknownTypeError(bad.source, bad.key_path, bad.message)
    build = lookup(DIFFUSION_DECODERS, diffusion_type, "diffusion decoder type", diffusion_node)
    diffusion = build(diffusion_node, latent_dim, io_channels)

    per_latent = getattr(bottleneck, "encoder_channels_per_latent", 1)  # 2: mean | scale (vae kinds)
    enc_latent = getattr(encoder, "latent_dim", None)
    if enc_latent is not None and enc_latent != per_latent * latent_dim:
        raise model.error(f"is {enc_latent} but must be {per_latent * latent_dim}", "encoder.config.latent_dim")
    strides = getattr(encoder, "strides", None)
    if strides is not None:
        ratio = math.prod(strides)
        if ratio != downsampling_ratio:
            raise model.error(f"is {downsampling_ratio} but the encoder strides give {ratio}", "downsampling_ratio")

    return DiffusionAutoencoder(encoder, diffusion, latent_dim=latent_dim,
                                downsampling_ratio=downsampling_ratio, sample_rate=sample_rate,
                                io_channels=io_channels, diffusion_downsampling_ratio=diffusion.downsampling_ratio,
                                bottleneck=bottleneck)


def build_adp_decoder(node: ConfigNode, latent_dim: int, io_channels: int) -> UNet1DCondWrapper:
    """``adp_1d``: the U-Net takes the latents as its level-0 context channels."""
    unet = build_unet1d(node.child("config"))
    if unet.context_channels[0] != latent_dim or any(unet.context_channels[1:]):
        raise node.error(f"must be [{latent_dim}] (the latents are the U-Net's input context), got "
                         f"{unet.context_channels}", "config.context_channels")
    if unet.in_channels != io_channels or unet.out_channels != io_channels:
        raise node.error(f"in/out channels must be io_channels={io_channels} (the audio the diffusion "
                         "decoder produces)", "config.in_channels")
    return UNet1DCondWrapper(unet)


def build_dau1d_decoder(node: ConfigNode, latent_dim: int, io_channels: int) -> DAU1DCondWrapper:
    """``DAU1d``: the Dance Diffusion U-Net takes the latents as its ``cond`` channels."""
    unet = build_dau1d(node.child("config"))
    if unet.cond_dim != latent_dim:
        raise node.error(f"must be latent_dim={latent_dim} (the latents are the U-Net's cond channels), got "
                         f"{unet.cond_dim}", "config.cond_dim")
    if unet.io_channels != io_channels:
        raise node.error(f"must be io_channels={io_channels} (the audio the diffusion decoder produces), got "
                         f"{unet.io_channels}", "config.io_channels")
    return DAU1DCondWrapper(unet)


# ``model.diffusion.type`` -> builder(diffusion node, latent_dim, io_channels); the result has downsampling_ratio
DIFFUSION_DECODERS = {"adp_1d": build_adp_decoder, "DAU1d": build_dau1d_decoder}
_UNSUPPORTED_DECODERS = {"dit": "the DiT diffusion decoder"}


def _part(model: ConfigNode, key: str, registry: dict, what: str) -> nn.Module | None:
    """An optional encoder/bottleneck from its registry (None when the key is absent or null)."""
    if not model.has(key) or model.data[key] is None:
        return None
    node = model.child(key)
    check_known_keys(node, ("type", "config", "requires_grad"))
    module = lookup(registry, node.get("type", "a string"), what, node)(node)
    if not node.get("requires_grad", "a bool", True):
        module.requires_grad_(False)
    return module


__all__ = ["DIFFUSION_DECODERS", "DiffusionAutoencoder", "UNet1DCondWrapper", "build_diffusion_autoencoder"]
