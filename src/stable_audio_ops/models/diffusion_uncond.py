"""``diffusion_uncond``: an unconditional v-diffusion backbone (ADP U-Net, DiT or the Dance Diffusion U-Net ``DAU1d``)
+ optional pretransform.

Layout as upstream: ``DiffusionModelWrapper.model`` is a backbone wrapper (:class:`UNet1DUncondWrapper`
or :class:`DiTUncondWrapper`) whose ``model`` is the network, so the checkpoint keys are
``model.model.*`` (``pretransform.model.*`` when a pretransform is configured); ``DAU1d`` is held unwrapped
(keys ``model.net.*``, ``model.timestep_embed.weight``), as upstream. The objective of this
model type is always v-diffusion. Backbones plug in through :data:`UNCOND_BACKBONES`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.models.adp import UNet1d, hold_unet
from stable_audio_ops.models.adp_factory import build_unet1d, halve_parameters
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config
from stable_audio_ops.models.dance_unet import build_dau1d
from stable_audio_ops.models.diffusion_factory import dit_kwargs_from_config
from stable_audio_ops.models.dit import DiffusionTransformer


class UNet1DUncondWrapper(nn.Module):
    """Holds the U-Net as ``model``; ``forward(x, t) = UNet1d(x, time=t)``."""

    def __init__(self, unet: UNet1d):
        super().__init__()
        hold_unet(self, unet)

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model(x, t, **kwargs)


class DiTUncondWrapper(nn.Module):
    """Holds a :class:`DiffusionTransformer` without conditioning as ``model``; ``forward(x, t)`` is one
    unguided pass (the timestep embedding is the only global token). Fresh weights are halved, as upstream."""

    def __init__(self, dit: DiffusionTransformer):
        super().__init__()
        self.model = dit
        self.io_channels = dit.io_channels
        self.downsampling_ratio = dit.patch_size
        halve_parameters(self.model)

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model(x, t, **kwargs)


def build_adp_uncond_backbone(cfg: ConfigNode) -> UNet1DUncondWrapper:
    return UNet1DUncondWrapper(build_unet1d(cfg))


def build_dit_uncond_backbone(cfg: ConfigNode) -> DiTUncondWrapper:
    """Upstream passes ``config`` to the DiT with ``in_channels`` as its ``io_channels``."""
    return DiTUncondWrapper(DiffusionTransformer(**dit_kwargs_from_config(cfg, channels_key="in_channels")))


# ``model.type`` -> builder(node of ``model.config``); each wrapper has io_channels and downsampling_ratio
UNCOND_BACKBONES: dict[str, Callable[[ConfigNode], nn.Module]] = {
    "adp_uncond_1d": build_adp_uncond_backbone,
    "dit": build_dit_uncond_backbone,
    "DAU1d": build_dau1d,
}
_CHANNELS_KEY = {"DAU1d": "io_channels"}  # the backbone's config key for its channel count (default in_channels)


class DiffusionModelWrapper(nn.Module):
    """Unconditional diffusion model (+ optional pretransform). ``forward(x, t) -> v``."""

    diffusion_objective = "v"

    def __init__(self, model: nn.Module, io_channels: int, sample_size: int, sample_rate: int,
                 min_input_length: int, pretransform: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.io_channels = io_channels
        self.sample_size = sample_size
        self.sample_rate = sample_rate
        self.min_input_length = min_input_length
        self.pretransform = pretransform

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model(x, t, **kwargs)


def build_diffusion_uncond(root: ConfigNode) -> DiffusionModelWrapper:
    """``model_type: diffusion_uncond`` (root node of the whole model config)."""
    sample_rate = root.get("sample_rate", "a positive int")
    sample_size = root.get("sample_size", "a positive int")
    model = root.child("model")
    check_known_keys(model, ("type", "config", "pretransform"))
    backbone_type = model.get("type", "a string")
    backbone = lookup(UNCOND_BACKBONES, backbone_type, "diffusion_uncond backbone type", model)(model.child("config"))
    io_channels = backbone.io_channels
    pretransform = None
    min_input_length = backbone.downsampling_ratio
    if model.has("pretransform") and model.data["pretransform"] is not None:
        pretransform = create_pretransform_from_config(model.data["pretransform"], sample_rate,
                                                       model.child("pretransform"))
        min_input_length *= pretransform.downsampling_ratio
        if pretransform.encoded_channels != io_channels:
            raise model.error(f"is {io_channels} but the pretransform gives {pretransform.encoded_channels} "
                              "channels", f"config.{_CHANNELS_KEY.get(backbone_type, 'in_channels')}")
    if sample_size % min_input_length:
        raise root.error(f"{sample_size} is not a multiple of the model's minimum length {min_input_length}",
                         "sample_size")
    return DiffusionModelWrapper(backbone, io_channels=io_channels, sample_size=sample_size, sample_rate=sample_rate,
                                 min_input_length=min_input_length, pretransform=pretransform)


__all__ = ["UNCOND_BACKBONES", "DiTUncondWrapper", "DiffusionModelWrapper", "UNet1DUncondWrapper",
           "build_diffusion_uncond", "build_unet1d", "halve_parameters"]
