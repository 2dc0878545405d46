"""``diffusion_uncond`` with the ``adp_uncond_1d`` U-Net, and the config reading shared by ADP U-Nets.

Layout as upstream: ``DiffusionModelWrapper.model`` is a :class:`UNet1DUncondWrapper` whose ``model`` is
the :class:`UNet1d`, so the checkpoint keys are ``model.model.*`` (``pretransform.model.*`` when a
pretransform is configured). The objective of this model type is always v-diffusion.
"""

from __future__ import annotations

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.models.adp import UNet1d
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config

# Upstream UNet1d options that change the network in ways not implemented here: key -> why.
_UNSUPPORTED_ADP_KEYS = {
    "use_snake": "snake activations in the ADP U-Net",
    "use_stft": "the STFT front end of the ADP U-Net",
    "use_stft_context": "the STFT front end of the ADP U-Net",
    "context_features": "global feature conditioning of the ADP U-Net",
    "context_embedding_features": "cross-attention in the ADP U-Net (adp_cfg_1d)",
}
_ADP_KEYS = ("in_channels", "channels", "multipliers", "factors", "num_blocks", "attentions", "patch_size",
             "resnet_groups", "use_context_time", "kernel_multiplier_downsample", "use_nearest_upsample",
             "use_skip_scale", "out_channels", "context_features_multiplier", "context_channels",
             "attention_heads", "attention_features", "attention_multiplier", *_UNSUPPORTED_ADP_KEYS)


def build_unet1d(cfg: ConfigNode) -> UNet1d:
    """A :class:`UNet1d` from an ADP ``config`` node, with every inconsistency reported by key path."""
    if not isinstance(cfg.data, dict):
        raise cfg.error(f"expected an object, got {cfg.data!r}")
    for key, value in cfg.data.items():
        if key not in _ADP_KEYS:
            raise cfg.error(f"unknown key; known keys: {', '.join(_ADP_KEYS)}", key)
        if key in _UNSUPPORTED_ADP_KEYS and value not in (None, False):
            raise cfg.error(f"{_UNSUPPORTED_ADP_KEYS[key]} is not supported by this version", key)
    if cfg.get("patch_size", "a positive int", 1) != 1:
        raise cfg.error("only patch_size 1 is supported by this version", "patch_size")

    channels = cfg.get("channels", "a positive int")
    multipliers = _positive_list(cfg, "multipliers")
    levels = len(multipliers) - 1
    factors = _positive_list(cfg, "factors")
    num_blocks = _positive_list(cfg, "num_blocks")
    attentions = cfg.get("attentions", "a list of ints")
    for key, values, want in (("factors", factors, levels), ("num_blocks", num_blocks, levels)):
        if len(values) != want:
            raise cfg.error(f"needs {want} entries (len(multipliers) - 1), got {len(values)}", key)
    if len(attentions) < levels + 1 or any(a < 0 for a in attentions):
        raise cfg.error(f"needs at least {levels + 1} non-negative entries (one per level incl. the bottleneck), "
                        f"got {attentions!r}", "attentions")
    context_channels = cfg.get("context_channels", "a list of ints", [])
    if len(context_channels) > levels + 1 or any(c < 0 for c in context_channels):
        raise cfg.error(f"expected at most {levels + 1} non-negative entries, got {context_channels!r}",
                        "context_channels")
    kernel_multiplier = cfg.get("kernel_multiplier_downsample", "a positive int", 2)
    if kernel_multiplier % 2:
        raise cfg.error("must be even", "kernel_multiplier_downsample")

    groups = cfg.get("resnet_groups", "a positive int", 8)
    heads = cfg.get("attention_heads", "a positive int", None)
    head_features = cfg.get("attention_features", "a positive int", None)
    attention_multiplier = cfg.get("attention_multiplier", "a positive int", None)
    widths = [channels * m for m in multipliers]
    for level, width in enumerate(widths[1:]):
        if width % groups:
            raise cfg.error(f"level {level + 1} has {width} channels, not divisible by resnet_groups={groups}",
                            "resnet_groups")
    # attentions[i] (i < levels) runs at the output width of down block i; attentions[-1] at the bottleneck.
    for i, count in enumerate(list(attentions[:levels]) + [attentions[-1]]):
        if not count:
            continue
        width = widths[i + 1] if i < levels else widths[-1]
        if width % 32:
            raise cfg.error(f"attention at level {i + 1} needs a channel count divisible by 32 (its GroupNorm "
                            f"has 32 groups), got {width}", "attentions")
        if (heads is None and head_features is None) or attention_multiplier is None:
            raise cfg.error("attention levels need attention_heads or attention_features, and "
                            "attention_multiplier", "attentions")

    return UNet1d(
        in_channels=cfg.get("in_channels", "a positive int"),
        channels=channels,
        multipliers=multipliers,
        factors=factors,
        num_blocks=num_blocks,
        attentions=attentions,
        out_channels=cfg.get("out_channels", "a positive int", None),
        resnet_groups=groups,
        use_context_time=cfg.get("use_context_time", "a bool", True),
        kernel_multiplier_downsample=kernel_multiplier,
        use_nearest_upsample=cfg.get("use_nearest_upsample", "a bool", False),
        use_skip_scale=cfg.get("use_skip_scale", "a bool", True),
        context_features_multiplier=cfg.get("context_features_multiplier", "a positive int", 4),
        context_channels=context_channels,
        attention_heads=heads,
        attention_features=head_features,
        attention_multiplier=attention_multiplier,
    )


def _positive_list(cfg: ConfigNode, key: str) -> list[int]:
    values = cfg.get(key, "a list of ints")
    if not values or any(v <= 0 for v in values):
        raise cfg.error(f"expected a non-empty list of positive ints, got {values!r}", key)
    return list(values)


def halve_parameters(module: nn.Module) -> None:
    """Upstream halves fresh U-Net weights (a smaller initial output); loaded checkpoints overwrite this."""
    with torch.no_grad():
        for param in module.parameters():
            param.mul_(0.5)


class UNet1DUncondWrapper(nn.Module):
    """Holds the U-Net as ``model``; ``forward(x, t) = UNet1d(x, time=t)``."""

    def __init__(self, unet: UNet1d, io_channels: int):
        super().__init__()
        self.model = unet
        self.io_channels = io_channels
        halve_parameters(self.model)

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.model(x, t, **kwargs)


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
    model_type = model.get("type", "a string")
    if model_type != "adp_uncond_1d":
        why = {"DAU1d": "the Dance Diffusion U-Net", "dit": "the DiT backbone for unconditional models"}
        bad = model.error(f"{why.get(model_type, repr(model_type))} is not supported for diffusion_uncond by this "
                          "version; supported: adp_uncond_1d", "type")
        raise UnknownTypeError(bad.source, bad.key_path, bad.message)
    unet = build_unet1d(model.child("config"))
    io_channels = unet.in_channels
    pretransform = None
    min_input_length = unet.downsampling_ratio
    if model.has("pretransform") and model.data["pretransform"] is not None:
        pretransform = create_pretransform_from_config(model.data["pretransform"], sample_rate,
                                                       model.child("pretransform"))
        min_input_length *= pretransform.downsampling_ratio
        if pretransform.encoded_channels != io_channels:
            raise model.error(f"is {io_channels} but the pretransform gives {pretransform.encoded_channels} "
                              "channels", "config.in_channels")
    if sample_size % min_input_length:
        raise root.error(f"{sample_size} is not a multiple of the model's minimum length {min_input_length}",
                         "sample_size")
    return DiffusionModelWrapper(UNet1DUncondWrapper(unet, io_channels), io_channels=io_channels,
                                 sample_size=sample_size, sample_rate=sample_rate,
                                 min_input_length=min_input_length, pretransform=pretransform)


__all__ = ["DiffusionModelWrapper", "UNet1DUncondWrapper", "build_diffusion_uncond", "build_unet1d", "halve_parameters"]
