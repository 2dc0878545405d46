"""Read ADP U-Net configs (``adp_uncond_1d``, ``adp_1d``, ``adp_cfg_1d`` ``config`` objects) into U-Nets,
and build the ``diffusion_cond`` backbones ``adp_cfg_1d`` and ``adp_1d``.

Shared by every model type that holds an audio-diffusion-pytorch U-Net (``diffusion_uncond``,
``diffusion_cond``, ``diffusion_autoencoder``), so the key checks and their error messages are written
once. Every inconsistency is reported by key path instead of surfacing as a shape error mid-forward.
"""

from __future__ import annotations

from typing import Any

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.models.adp import UNet1d, halve_parameters
from stable_audio_ops.models.adp_cond import UNet1DCondWrapper, UNetCFG1d, UNetCFG1DWrapper

# Upstream UNet1d options that change the network in ways not implemented here: key -> why.
_UNSUPPORTED_ADP_KEYS = {
    "use_snake": "snake activations in the ADP U-Net",
    "use_stft": "the STFT front end of the ADP U-Net",
    "use_stft_context": "the STFT front end of the ADP U-Net",
    "use_xattn_time": "the time token in the ADP U-Net's cross-attention",
}
# Conditioning options only some model types can feed: key -> what it is.
_CONDITIONING_KEYS = {
    "context_features": "global feature conditioning (diffusion_cond with adp_1d / adp_cfg_1d)",
    "context_embedding_features": "cross-attention to condition tokens (diffusion_cond with adp_cfg_1d)",
    "context_embedding_max_length": "the condition-token count of adp_cfg_1d's learned null condition",
}
_ADP_KEYS = ("in_channels", "channels", "multipliers", "factors", "num_blocks", "attentions", "patch_size",
             "resnet_groups", "use_context_time", "kernel_multiplier_downsample", "use_nearest_upsample",
             "use_skip_scale", "out_channels", "context_features_multiplier", "context_channels",
             "attention_heads", "attention_features", "attention_multiplier", *_UNSUPPORTED_ADP_KEYS,
             *_CONDITIONING_KEYS)


def build_unet1d(cfg: ConfigNode) -> UNet1d:
    """A :class:`UNet1d` from an ADP ``config`` node, with every inconsistency reported by key path."""
    return UNet1d(**unet1d_kwargs(cfg))


def unet1d_kwargs(cfg: ConfigNode, conditioning: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validated U-Net keyword arguments; ``conditioning`` names the :data:`_CONDITIONING_KEYS` the
    caller's model type can feed (the others are rejected, naming the key)."""
    if not isinstance(cfg.data, dict):
        raise cfg.error(f"expected an object, got {cfg.data!r}")
    for key, value in cfg.data.items():
        if key not in _ADP_KEYS:
            raise cfg.error(f"unknown key; known keys: {', '.join(_ADP_KEYS)}", key)
        if key in _UNSUPPORTED_ADP_KEYS and value not in (None, False):
            raise cfg.error(f"{_UNSUPPORTED_ADP_KEYS[key]} is not supported by this version", key)
        if key in _CONDITIONING_KEYS and key not in conditioning and value is not None:
            raise cfg.error(f"{_CONDITIONING_KEYS[key]} is not available for this model type", key)
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

    kwargs: dict[str, Any] = {key: cfg.get(key, "a positive int") for key in conditioning
                              if cfg.has(key) and cfg.data[key] is not None}
    return dict(
        kwargs,
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


def build_adp_cfg_backbone(node: ConfigNode, diffusion_objective: str) -> UNetCFG1DWrapper:
    """``model.diffusion`` of type ``adp_cfg_1d`` (the objective does not change the network)."""
    cfg = node.child("config")
    kwargs = unet1d_kwargs(cfg, conditioning=tuple(_CONDITIONING_KEYS))
    for key in ("context_embedding_features", "context_embedding_max_length"):
        if key not in kwargs:
            raise cfg.error(f"is required for adp_cfg_1d ({_CONDITIONING_KEYS[key]})", key)
    return UNetCFG1DWrapper(UNetCFG1d(**kwargs))


def build_adp_cond_backbone(node: ConfigNode, diffusion_objective: str) -> UNet1DCondWrapper:
    """``model.diffusion`` of type ``adp_1d``: global features and input-concat channels only."""
    return UNet1DCondWrapper(UNet1d(**unet1d_kwargs(node.child("config"), conditioning=("context_features",))))


def _positive_list(cfg: ConfigNode, key: str) -> list[int]:
    values = cfg.get(key, "a list of ints")
    if not values or any(v <= 0 for v in values):
        raise cfg.error(f"expected a non-empty list of positive ints, got {values!r}", key)
    return list(values)


__all__ = ["build_adp_cfg_backbone", "build_adp_cond_backbone", "build_unet1d", "halve_parameters",
           "unet1d_kwargs"]
