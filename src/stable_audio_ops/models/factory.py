"""Build models from stable-audio-tools model configs.

One registry per kind of part (name -> builder taking the part's :class:`ConfigNode`), so an unknown
name lists the known ones and every bad value is reported as ``<file>: <key.path>: <problem>``.
New model families plug in by adding one entry to :data:`MODEL_TYPES` (a builder taking the root
node of the whole config).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from torch import nn

from stable_audio_ops.config.model_config import load_model_config, validate_model_config
from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.models.autoencoder import AudioAutoencoder
from stable_audio_ops.models.bottlenecks import BOTTLENECKS, VAEBottleneck
from stable_audio_ops.models.oobleck import OobleckDecoder, OobleckEncoder
from stable_audio_ops.models.pretransforms import AutoencoderPretransform


def check_known_keys(node: ConfigNode, known: tuple[str, ...]) -> None:
    """Reject keys a constructor would not understand (upstream fails later with a bare TypeError)."""
    if not isinstance(node.data, dict):
        raise node.error(f"expected an object, got {node.data!r}")
    for key in node.data:
        if key not in known:
            raise node.error(f"unknown key; known keys: {', '.join(known)}", key)


def _positive_ints(node: ConfigNode, key: str, default: list[int]) -> list[int]:
    values = node.get(key, "a list of ints", default)
    if not values or any(v <= 0 for v in values):
        raise node.error(f"expected a non-empty list of positive ints, got {values!r}", key)
    return list(values)


def _no_antialias(node: ConfigNode) -> bool:
    if node.get("antialias_activation", "a bool", False):
        raise node.error("anti-aliased activations are not supported (they need alias_free_torch)",
                         "antialias_activation")
    return False


def _oobleck_stages(cfg: ConfigNode) -> tuple[list[int], list[int]]:
    c_mults = _positive_ints(cfg, "c_mults", [1, 2, 4, 8])
    strides = _positive_ints(cfg, "strides", [2, 4, 8, 8])
    if len(c_mults) != len(strides):
        raise cfg.error(f"c_mults has {len(c_mults)} entries but strides has {len(strides)}; they must match",
                        "strides")
    return c_mults, strides


_OOBLECK_ENCODER_KEYS = ("in_channels", "channels", "latent_dim", "c_mults", "strides", "use_snake",
                         "antialias_activation")
_OOBLECK_DECODER_KEYS = ("out_channels", "channels", "latent_dim", "c_mults", "strides", "use_snake",
                         "antialias_activation", "use_nearest_upsample", "final_tanh")


def build_oobleck_encoder(node: ConfigNode) -> OobleckEncoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, _OOBLECK_ENCODER_KEYS)
    c_mults, strides = _oobleck_stages(cfg)
    return OobleckEncoder(
        in_channels=cfg.get("in_channels", "a positive int", 2),
        channels=cfg.get("channels", "a positive int", 128),
        latent_dim=cfg.get("latent_dim", "a positive int", 32),
        c_mults=c_mults,
        strides=strides,
        use_snake=cfg.get("use_snake", "a bool", False),
        antialias_activation=_no_antialias(cfg),
    )


def build_oobleck_decoder(node: ConfigNode) -> OobleckDecoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, _OOBLECK_DECODER_KEYS)
    c_mults, strides = _oobleck_stages(cfg)
    use_nearest_upsample = cfg.get("use_nearest_upsample", "a bool", False)
    if not use_nearest_upsample and any(s % 2 for s in strides):
        # padding ceil(s/2) on a k=2s transposed conv yields L*s - 1 samples for odd s (upstream layout),
        # which breaks reconstruction lengths and chunked decoding.
        raise cfg.error(f"odd strides {strides} need use_nearest_upsample=true (transposed convolutions "
                        "with odd strides return one sample too few)", "strides")
    return OobleckDecoder(
        out_channels=cfg.get("out_channels", "a positive int", 2),
        channels=cfg.get("channels", "a positive int", 128),
        latent_dim=cfg.get("latent_dim", "a positive int", 32),
        c_mults=c_mults,
        strides=strides,
        use_snake=cfg.get("use_snake", "a bool", False),
        antialias_activation=_no_antialias(cfg),
        use_nearest_upsample=use_nearest_upsample,
        final_tanh=cfg.get("final_tanh", "a bool", True),
    )


# builder(node of {"type", "config", "requires_grad", ...}) -> module
ENCODERS: dict[str, Callable[[ConfigNode], nn.Module]] = {"oobleck": build_oobleck_encoder}
DECODERS: dict[str, Callable[[ConfigNode], nn.Module]] = {"oobleck": build_oobleck_decoder}


def _build_part(node: ConfigNode, registry: dict[str, Callable[[ConfigNode], nn.Module]], what: str,
                extra_keys: tuple[str, ...] = ()) -> nn.Module:
    check_known_keys(node, ("type", "config", "requires_grad", *extra_keys))
    builder = lookup(registry, node.get("type", "a string"), what, node)
    module = builder(node)
    if not node.get("requires_grad", "a bool", True):
        module.requires_grad_(False)
    return module


def build_autoencoder(model: ConfigNode, sample_rate: int) -> AudioAutoencoder:
    """``model`` is the node of an autoencoder's ``model`` object (also a pretransform's ``config``)."""
    check_known_keys(model, ("encoder", "decoder", "bottleneck", "latent_dim", "downsampling_ratio",
                             "io_channels", "in_channels", "out_channels", "pretransform"))
    latent_dim = model.get("latent_dim", "a positive int")
    downsampling_ratio = model.get("downsampling_ratio", "a positive int")
    io_channels = model.get("io_channels", "a positive int")
    in_channels = model.get("in_channels", "a positive int", None)
    out_channels = model.get("out_channels", "a positive int", None)

    pretransform = None
    if model.has("pretransform") and model.data["pretransform"] is not None:
        pretransform = create_pretransform_from_config(model.data["pretransform"], sample_rate,
                                                       model.child("pretransform"))
    encoder = _build_part(model.child("encoder"), ENCODERS, "encoder type")
    decoder_node = model.child("decoder")
    decoder = _build_part(decoder_node, DECODERS, "decoder type", extra_keys=("soft_clip",))
    bottleneck = None
    if model.has("bottleneck") and model.data["bottleneck"] is not None:
        bottleneck = _build_part(model.child("bottleneck"), BOTTLENECKS, "bottleneck type")

    _check_consistency(model, encoder, decoder, bottleneck, pretransform, latent_dim, downsampling_ratio)
    return AudioAutoencoder(
        encoder,
        decoder,
        latent_dim=latent_dim,
        downsampling_ratio=downsampling_ratio,
        sample_rate=sample_rate,
        io_channels=io_channels,
        bottleneck=bottleneck,
        pretransform=pretransform,
        in_channels=in_channels,
        out_channels=out_channels,
        soft_clip=decoder_node.get("soft_clip", "a bool", False),
    )


def _check_consistency(model: ConfigNode, encoder: nn.Module, decoder: nn.Module, bottleneck: nn.Module | None,
                       pretransform: nn.Module | None, latent_dim: int, downsampling_ratio: int) -> None:
    """Catch configs whose parts disagree; upstream builds them and fails at the first forward pass."""
    per_latent = 2 if isinstance(bottleneck, VAEBottleneck) else 1
    enc_latent = getattr(encoder, "latent_dim", None)
    if enc_latent is not None and enc_latent != per_latent * latent_dim:
        why = " (a vae bottleneck needs 2 x latent_dim: mean and scale)" if per_latent == 2 else ""
        raise model.error(f"is {enc_latent} but must be {per_latent * latent_dim}{why}",
                          "encoder.config.latent_dim")
    dec_latent = getattr(decoder, "latent_dim", None)
    if dec_latent is not None and dec_latent != latent_dim:
        raise model.error(f"is {dec_latent} but model.latent_dim is {latent_dim}", "decoder.config.latent_dim")
    strides = getattr(encoder, "strides", None)
    if strides is not None:
        ratio = math.prod(strides) * (pretransform.downsampling_ratio if pretransform is not None else 1)
        if ratio != downsampling_ratio:
            raise model.error(f"is {downsampling_ratio} but the encoder strides (and pretransform) give {ratio}",
                              "downsampling_ratio")


# --- pretransforms ---------------------------------------------------------------------------------

def build_autoencoder_pretransform(node: ConfigNode, sample_rate: int) -> AutoencoderPretransform:
    autoencoder = build_autoencoder(node.child("config"), sample_rate)
    return AutoencoderPretransform(
        autoencoder,
        scale=node.get("scale", "a positive number", 1.0),
        model_half=node.get("model_half", "a bool", False),
        iterate_batch=node.get("iterate_batch", "a bool", False),
        chunked=node.get("chunked", "a bool", False),
        enable_grad=node.get("enable_grad", "a bool", False),
    )


# builder(node of the ``pretransform`` object, sample_rate) -> module (pretransforms need the rate)
PRETRANSFORMS: dict[str, Callable[[ConfigNode, int], nn.Module]] = {"autoencoder": build_autoencoder_pretransform}


def create_pretransform_from_config(pretransform_config: dict, sample_rate: int,
                                    node: ConfigNode | None = None) -> nn.Module:
    """Build a pretransform; frozen and in eval mode unless its ``enable_grad`` is true (as upstream)."""
    if node is None:
        node = ConfigNode(pretransform_config, "<pretransform config>", "")
    check_known_keys(node, ("type", "config", "scale", "model_half", "iterate_batch", "chunked", "enable_grad"))
    builder = lookup(PRETRANSFORMS, node.get("type", "a string"), "pretransform type", node)
    pretransform = builder(node, sample_rate)
    enable_grad = node.get("enable_grad", "a bool", False)
    pretransform.enable_grad = enable_grad
    pretransform.eval().requires_grad_(enable_grad)
    return pretransform


# --- model types -----------------------------------------------------------------------------------

def build_autoencoder_model(root: ConfigNode) -> AudioAutoencoder:
    return build_autoencoder(root.child("model"), root.get("sample_rate", "a positive int"))


# model_type -> builder(root node of the whole model config)
def _build_diffusion_cond(root: ConfigNode) -> nn.Module:
    # Imported on use: the diffusion stack (transformer, conditioners) is not needed for autoencoders.
    from stable_audio_ops.models.diffusion_factory import build_diffusion_cond

    return build_diffusion_cond(root)


def _build_diffusion_uncond(root: ConfigNode) -> nn.Module:
    from stable_audio_ops.models.diffusion_uncond import build_diffusion_uncond

    return build_diffusion_uncond(root)


def _build_diffusion_autoencoder(root: ConfigNode) -> nn.Module:
    from stable_audio_ops.models.diffusion_autoencoder import build_diffusion_autoencoder

    return build_diffusion_autoencoder(root)


MODEL_TYPES: dict[str, Callable[[ConfigNode], nn.Module]] = {
    "autoencoder": build_autoencoder_model,
    "diffusion_cond": _build_diffusion_cond,
    # Same wrapper: inpainting inputs are ordinary input-concat conditioning (inpaint_mask, inpaint_masked_input).
    "diffusion_cond_inpaint": _build_diffusion_cond,
    "diffusion_uncond": _build_diffusion_uncond,  # ADP U-Net (adp_uncond_1d); model + parity only, no training yet
    "diffusion_autoencoder": _build_diffusion_autoencoder,  # Oobleck encoder + ADP U-Net decoder; model only
}


def create_model_from_config(model_config: dict, source: str = "<model config>") -> nn.Module:
    """Build the model a stable-audio-tools config describes (random init; load weights separately)."""
    validate_model_config(model_config, source)
    root = ConfigNode(model_config, source)
    model_type = root.get("model_type", "a string")
    if model_type not in MODEL_TYPES:
        raise UnknownTypeError(source, "model_type", f"model_type {model_type!r} is not supported by this "
                               f"version; supported: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[model_type](root)


def create_model_from_config_path(path: str | Path) -> nn.Module:
    """Read a model config JSON and build it; errors name the file."""
    return create_model_from_config(load_model_config(path), str(path))


__all__ = [
    "BOTTLENECKS", "DECODERS", "ENCODERS", "MODEL_TYPES", "PRETRANSFORMS",
    "build_autoencoder", "create_model_from_config", "create_model_from_config_path",
    "create_pretransform_from_config",
]
