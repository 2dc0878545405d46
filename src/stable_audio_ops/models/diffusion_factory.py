"""Build ``diffusion_cond`` / ``diffusion_cond_inpaint`` models from stable-audio-tools model configs.

Every value is read through :class:`ConfigNode`, so a bad config fails at build time with
``<file>: <key.path>: <problem>`` instead of a shape error in the first forward pass. Inconsistent
parts (conditioner widths vs. the DiT's ``cond_token_dim`` / ``global_cond_dim``, latent channels
vs. the pretransform, head layouts the attention cannot use) are caught here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.models.adp_factory import build_adp_cfg_backbone, build_adp_cond_backbone
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config
from stable_audio_ops.models.conditioners import (
    MultiConditioner,
    create_multi_conditioner_from_conditioning_config,
)
from stable_audio_ops.models.diffusion import ConditionedDiffusionModelWrapper, DiTWrapper
from stable_audio_ops.models.dit import DIFFUSION_OBJECTIVES, GLOBAL_COND_TYPES, TIMESTEP_COND_TYPES
from stable_audio_ops.models.transformer import NORM_TYPES, QK_NORMS
from stable_audio_ops.sampling.schedules import create_dist_shift

# upstream keys that only work with their default value here: key -> default
_DEFAULT_ONLY = {
    "transformer_type": "continuous_transformer",
    "timestep_features_type": "learned",
    "causal": False,
    "modular_local_cond_configs": None,
    "local_add_cond_dim": None,
}
_DIT_KEYS = ("io_channels", "patch_size", "embed_dim", "depth", "num_heads", "cond_token_dim", "project_cond_tokens",
             "global_cond_dim", "project_global_cond", "input_concat_dim", "prepend_cond_dim", "global_cond_type",
             "timestep_cond_type", "timestep_embed_dim", "timestep_features_dim", "timestep_features_logsnr")
_TRANSFORMER_KEYS = ("rotary_pos_emb", "cross_attn_rotary_pos_emb", "use_sinusoidal_emb", "use_abs_pos_emb",
                     "abs_pos_emb_max_length", "num_memory_tokens", "final_cross_attn_ix", "zero_init_branch_outputs",
                     "layer_scale", "conformer", "attn_kwargs", "ff_kwargs", "norm_kwargs", "use_checkpointing",
                     "norm_type", "remove_norms", "add_rope", "sliding_window")
_UNSUPPORTED_BACKBONES = {
    "DAU1d": "the Dance Diffusion U-Net (upstream does not accept it for conditioned models either)",
}


def _default_only(node: ConfigNode, key: str, default: Any) -> None:
    if node.has(key) and node.data[key] != default and not (default is None and node.data[key] in ([], {})):
        raise node.error(f"only {default!r} is supported by this implementation, got {node.data[key]!r}", key)


def _sub_kwargs(node: ConfigNode, key: str, spec: dict[str, str], default_only: dict[str, Any]) -> dict[str, Any]:
    sub = node.child(key, {})
    check_known_keys(sub, tuple(spec) + tuple(default_only))
    for k, default in default_only.items():
        _default_only(sub, k, default)
    return {k: sub.get(k, kind) for k, kind in spec.items() if sub.has(k) and sub.data[k] is not None}


def dit_kwargs_from_config(cfg: ConfigNode, channels_key: str = "io_channels") -> dict[str, Any]:
    """Validated ``DiffusionTransformer`` keyword arguments from a DiT ``config`` node.

    ``channels_key`` is the config key of the DiT's input/output channels: ``io_channels`` in
    ``diffusion_cond`` configs, ``in_channels`` in ``diffusion_uncond`` ones (upstream's uncond wrapper
    renames it); errors name the key the user wrote.
    """
    keys = tuple(channels_key if k == "io_channels" else k for k in _DIT_KEYS)
    check_known_keys(cfg, keys + _TRANSFORMER_KEYS + tuple(_DEFAULT_ONLY))
    for key, default in _DEFAULT_ONLY.items():
        _default_only(cfg, key, default)

    kw: dict[str, Any] = {
        "io_channels": cfg.get(channels_key, "a positive int", 32),
        "patch_size": cfg.get("patch_size", "a positive int", 1),
        "embed_dim": cfg.get("embed_dim", "a positive int", 768),
        "depth": cfg.get("depth", "a positive int", 12),
        "num_heads": cfg.get("num_heads", "a positive int", 8),
        "cond_token_dim": cfg.get("cond_token_dim", "a non-negative int", 0),
        "project_cond_tokens": cfg.get("project_cond_tokens", "a bool", True),
        "global_cond_dim": cfg.get("global_cond_dim", "a non-negative int", 0),
        "project_global_cond": cfg.get("project_global_cond", "a bool", True),
        "input_concat_dim": cfg.get("input_concat_dim", "a non-negative int", 0),
        "prepend_cond_dim": cfg.get("prepend_cond_dim", "a non-negative int", 0),
        "global_cond_type": cfg.choice("global_cond_type", GLOBAL_COND_TYPES, "prepend"),
        "timestep_cond_type": cfg.choice("timestep_cond_type", TIMESTEP_COND_TYPES, "global"),
        "timestep_embed_dim": cfg.get("timestep_embed_dim", "a positive int", None),
        "timestep_features_dim": cfg.get("timestep_features_dim", "a positive int", 256),
        "timestep_features_logsnr": cfg.get("timestep_features_logsnr", "a bool", False),
    }
    if kw["timestep_cond_type"] == "input_concat" and kw["timestep_embed_dim"] is None:
        raise cfg.error("is required when timestep_cond_type is 'input_concat'", "timestep_embed_dim")
    if kw["timestep_features_dim"] % 2:
        raise cfg.error("must be even (cos and sin halves)", "timestep_features_dim")

    embed_dim, num_heads = kw["embed_dim"], kw["num_heads"]
    if embed_dim % num_heads:
        raise cfg.error(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}", "num_heads")
    head_dim = embed_dim // num_heads
    rotary = cfg.get("rotary_pos_emb", "a bool", True)
    if rotary and head_dim < 32:
        raise cfg.error(f"rotary embeddings rotate max(head_dim // 2, 32) = 32 features per head, but the head dim "
                        f"is embed_dim / num_heads = {head_dim}; use head dims >= 32 or rotary_pos_emb: false",
                        "num_heads")
    if kw["cond_token_dim"] > 0 and not kw["project_cond_tokens"]:
        kv_dim = kw["cond_token_dim"]
        if kv_dim % head_dim or num_heads % (kv_dim // head_dim):
            raise cfg.error(f"with project_cond_tokens false, cross-attention keys/values keep cond_token_dim "
                            f"{kv_dim}, which must be a multiple of the head dim {head_dim} giving a divisor of "
                            f"num_heads {num_heads} (key/value heads are shared by query heads)", "cond_token_dim")

    for key, kind in (("rotary_pos_emb", "a bool"), ("cross_attn_rotary_pos_emb", "a bool"),
                      ("use_sinusoidal_emb", "a bool"), ("use_abs_pos_emb", "a bool"),
                      ("abs_pos_emb_max_length", "a positive int"), ("num_memory_tokens", "a non-negative int"),
                      ("final_cross_attn_ix", "an int"), ("zero_init_branch_outputs", "a bool"),
                      ("layer_scale", "a bool"), ("conformer", "a bool"), ("use_checkpointing", "a bool"),
                      ("add_rope", "a bool")):
        if cfg.has(key) and cfg.data[key] is not None:
            kw[key] = cfg.get(key, kind)
    norm_type = _norm_type(cfg)
    if norm_type != "layer_norm":
        kw["norm_type"] = norm_type
    window = cfg.get("sliding_window", "a list of ints", None)
    if window is not None:
        if len(window) != 2 or min(window) < 0:
            raise cfg.error(f"expected [left, right], two non-negative ints (flash-attn's window_size), got {window}",
                            "sliding_window")
        kw["sliding_window"] = window
    if kw.get("use_sinusoidal_emb") and kw.get("use_abs_pos_emb"):
        raise cfg.error("use_sinusoidal_emb and use_abs_pos_emb cannot both be true", "use_abs_pos_emb")

    attn = _sub_kwargs(cfg, "attn_kwargs", {"qk_norm": "a string", "qk_norm_eps": "a positive number",
                                            "differential": "a bool", "feat_scale": "a bool"}, {})
    if "qk_norm" in attn and attn["qk_norm"] not in QK_NORMS:
        raise cfg.child("attn_kwargs").error(f"expected one of {', '.join(QK_NORMS)}, got {attn['qk_norm']!r}",
                                             "qk_norm")
    ff = _sub_kwargs(cfg, "ff_kwargs", {"mult": "a positive number", "no_bias": "a bool", "glu": "a bool"},
                     {"use_conv": False, "sinusoidal": False})
    norm = _sub_kwargs(cfg, "norm_kwargs", {"bias": "a bool", "fix_scale": "a bool", "force_fp32": "a bool",
                                            "eps": "a positive number"}, {})
    if norm_type == "rms_norm" and "bias" in norm:
        raise cfg.child("norm_kwargs").error("norm_type 'rms_norm' has no bias (upstream's RMSNorm takes fix_scale, "
                                             "force_fp32 and eps)", "bias")
    for name, sub in (("attn_kwargs", attn), ("ff_kwargs", ff), ("norm_kwargs", norm)):
        if sub:
            kw[name] = sub
    return kw


def _norm_type(cfg: ConfigNode) -> str:
    """``norm_type`` (0.0.20's key), or ``remove_norms: true`` (the fact sheet's name for the same DyT switch,
    which 0.0.20 itself would reject with a TypeError) as ``dyt``; the two must agree when both are given."""
    norm_type = cfg.choice("norm_type", NORM_TYPES, "layer_norm")
    if cfg.get("remove_norms", "a bool", False):
        if cfg.has("norm_type") and norm_type != "dyt":
            raise cfg.error(f"remove_norms: true replaces the norms with DyT, but norm_type is {norm_type!r}",
                            "remove_norms")
        return "dyt"
    return norm_type


def build_dit_backbone(node: ConfigNode, diffusion_objective: str) -> DiTWrapper:
    """``node`` is ``model.diffusion``; the DiT reads ``model.diffusion.config``."""
    return DiTWrapper(diffusion_objective=diffusion_objective, **dit_kwargs_from_config(node.child("config")))


# backbone ``type`` -> builder(node of model.diffusion, objective)
DIFFUSION_BACKBONES: dict[str, Callable[[ConfigNode, str], nn.Module]] = {
    "dit": build_dit_backbone,
    "adp_cfg_1d": build_adp_cfg_backbone,  # ADP U-Net, cross-attention + global features, learned-null CFG
    "adp_1d": build_adp_cond_backbone,  # ADP U-Net, global features + input concat
}

_DIFFUSION_KEYS = ("type", "config", "diffusion_objective", "cross_attention_cond_ids", "global_cond_ids",
                   "input_concat_ids", "prepend_cond_ids", "distribution_shift_options",
                   "sampling_distribution_shift_options", "local_add_cond_ids", "modular_local_cond_configs",
                   "mask_padding_attention", "use_effective_length_for_schedule")


def _shift_options(node: ConfigNode, key: str) -> dict | None:
    options = node.get(key, "an object", None)
    if options is not None:
        create_dist_shift(options, node.child(key))  # validates type and options, naming the key path
    return options


def _conditioner_widths(conditioner: MultiConditioner | None) -> dict[str, int]:
    if conditioner is None:
        return {}
    return {cid: int(getattr(c, "output_dim", 0)) for cid, c in conditioner.conditioners.items()}


def _check_cond_ids(diffusion: ConfigNode, key: str, widths: Mapping[str, int]) -> list[str]:
    ids = diffusion.get(key, "a list of strings", [])
    for i, cid in enumerate(ids):
        if cid not in widths:
            known = ", ".join(widths) or "(no model.conditioning block)"
            raise diffusion.child(key).error(f"{cid!r} is not a configured conditioner id; configured: {known}", i)
    return ids


def build_diffusion_cond(root: ConfigNode) -> ConditionedDiffusionModelWrapper:
    """Builder for ``model_type`` ``diffusion_cond`` and ``diffusion_cond_inpaint`` (same network;
    inpainting differs only in the input-concat conditioning the training/generation code injects)."""
    sample_rate = root.get("sample_rate", "a positive int")
    model = root.child("model")
    check_known_keys(model, ("diffusion", "conditioning", "pretransform", "io_channels"))
    io_channels = model.get("io_channels", "a positive int")
    diffusion = model.child("diffusion")
    check_known_keys(diffusion, _DIFFUSION_KEYS)
    for key, default in (("local_add_cond_ids", None), ("modular_local_cond_configs", None),
                         ("mask_padding_attention", False), ("use_effective_length_for_schedule", False)):
        _default_only(diffusion, key, default)

    backbone_type = diffusion.get("type", "a string")
    if backbone_type in _UNSUPPORTED_BACKBONES:
        raise UnknownTypeError(diffusion.source, diffusion._key_path("type"),
                               f"{backbone_type!r} ({_UNSUPPORTED_BACKBONES[backbone_type]}) is not supported by "
                               f"this version; supported: {', '.join(sorted(DIFFUSION_BACKBONES))}")
    builder = lookup(DIFFUSION_BACKBONES, backbone_type, "diffusion backbone type", diffusion)
    objective = diffusion.choice("diffusion_objective", DIFFUSION_OBJECTIVES, "v")
    backbone = builder(diffusion, objective)

    dit = backbone.model if isinstance(backbone, DiTWrapper) else None
    if dit is not None and dit.io_channels != io_channels:
        raise diffusion.child("config").error(f"is {dit.io_channels} but model.io_channels is {io_channels}",
                                              "io_channels")
    if dit is None and backbone.io_channels != io_channels:
        raise diffusion.child("config").error(f"is {backbone.io_channels} but model.io_channels is {io_channels}",
                                              "in_channels")

    pretransform = None
    if model.has("pretransform") and model.data["pretransform"] is not None:
        pretransform = create_pretransform_from_config(model.data["pretransform"], sample_rate,
                                                       model.child("pretransform"))
        encoded = getattr(pretransform, "encoded_channels", io_channels)
        if encoded != io_channels:
            raise model.error(f"is {io_channels} but the pretransform encodes to {encoded} channels", "io_channels")

    conditioner = None
    if model.has("conditioning") and model.data["conditioning"] is not None:
        conditioner = create_multi_conditioner_from_conditioning_config(
            model.data["conditioning"], model.child("conditioning"), pretransform=pretransform)

    widths = _conditioner_widths(conditioner)
    cross_ids = _check_cond_ids(diffusion, "cross_attention_cond_ids", widths)
    global_ids = _check_cond_ids(diffusion, "global_cond_ids", widths)
    prepend_ids = _check_cond_ids(diffusion, "prepend_cond_ids", widths)
    input_concat_ids = diffusion.get("input_concat_ids", "a list of strings", [])
    if dit is not None:
        _check_widths(diffusion, dit, cross_ids, global_ids, widths, conditioner)
    else:
        _check_unet_widths(diffusion, backbone, cross_ids, global_ids, widths, conditioner)

    min_input_length = pretransform.downsampling_ratio if pretransform is not None else 1
    min_input_length *= dit.patch_size if dit is not None else backbone.downsampling_ratio

    return ConditionedDiffusionModelWrapper(
        backbone, conditioner, io_channels=io_channels, sample_rate=sample_rate, min_input_length=min_input_length,
        diffusion_objective=objective, pretransform=pretransform, cross_attn_cond_ids=cross_ids,
        global_cond_ids=global_ids, input_concat_ids=input_concat_ids, prepend_cond_ids=prepend_ids,
        distribution_shift_options=_shift_options(diffusion, "distribution_shift_options"),
        sampling_distribution_shift_options=_shift_options(diffusion, "sampling_distribution_shift_options"),
    )


def _check_widths(diffusion: ConfigNode, dit: nn.Module, cross_ids: list[str], global_ids: list[str],
                  widths: Mapping[str, int], conditioner: MultiConditioner | None) -> None:
    """Conditioner output widths must match what the DiT projects (pre-encoded ids are not checked)."""
    pre_encoded = set(conditioner.pre_encoded_keys) if conditioner is not None else set()
    cfg = diffusion.child("config")
    cond_token_dim = dit.cond_token_dim
    if cross_ids and cond_token_dim == 0:
        raise cfg.error("is 0 (no cross-attention) but model.diffusion.cross_attention_cond_ids is not empty",
                        "cond_token_dim")
    for cid in cross_ids:
        if cid not in pre_encoded and widths[cid] != cond_token_dim:
            raise cfg.error(f"is {cond_token_dim} but conditioner {cid!r} outputs {widths[cid]}-dim tokens",
                            "cond_token_dim")
    if global_ids and not any(cid in pre_encoded for cid in global_ids):
        total = sum(widths[cid] for cid in global_ids)
        expected = cfg.get("global_cond_dim", "a non-negative int", 0)
        if total != expected:
            raise cfg.error(f"is {expected} but the global conditioners {global_ids} concatenate to {total} dims",
                            "global_cond_dim")


def _check_unet_widths(diffusion: ConfigNode, backbone: nn.Module, cross_ids: list[str], global_ids: list[str],
                       widths: Mapping[str, int], conditioner: MultiConditioner | None) -> None:
    """The ADP U-Net's ``context_embedding_features`` / ``context_features`` against the conditioners."""
    pre_encoded = set(conditioner.pre_encoded_keys) if conditioner is not None else set()
    cfg, unet = diffusion.child("config"), backbone.model
    token_dim = unet.context_embedding_features
    if cross_ids and token_dim is None:
        raise diffusion.error(f"{diffusion.get('type', 'a string')} has no cross-attention; use global_cond_ids or "
                              "input_concat_ids", "cross_attention_cond_ids")
    if token_dim is not None and not cross_ids:
        raise diffusion.error("adp_cfg_1d needs at least one cross-attention conditioner", "cross_attention_cond_ids")
    for cid in cross_ids:
        if cid not in pre_encoded and widths[cid] != token_dim:
            raise cfg.error(f"is {token_dim} but conditioner {cid!r} outputs {widths[cid]}-dim tokens",
                            "context_embedding_features")
    features = cfg.get("context_features", "a positive int", None)
    if bool(global_ids) != (features is not None):
        raise cfg.error("must be set exactly when model.diffusion.global_cond_ids is not empty", "context_features")
    if global_ids and not any(cid in pre_encoded for cid in global_ids):
        total = sum(widths[cid] for cid in global_ids)
        if total != features:
            raise cfg.error(f"is {features} but the global conditioners {global_ids} concatenate to {total} dims",
                            "context_features")


def create_diffusion_cond_from_config(model_config: dict, source: str = "<model config>") -> ConditionedDiffusionModelWrapper:
    """Convenience entry point taking the whole model config dict."""
    return build_diffusion_cond(ConfigNode(model_config, source))


__all__ = ["DIFFUSION_BACKBONES", "build_diffusion_cond", "build_dit_backbone", "create_diffusion_cond_from_config",
           "dit_kwargs_from_config"]
