"""Build autoencoders (and the autoencoder pretransforms inside other models) from their config nodes.

Autoencoder and pretransform builders live together because they nest: an autoencoder may sit on a
pretransform that is itself an autoencoder. One registry per kind of part (name -> builder taking the
part's :class:`ConfigNode`), so an unknown name lists the known ones and every bad value is reported as
``<file>: <key.path>: <problem>``. :mod:`stable_audio_ops.models.factory` maps ``model_type`` to
:func:`build_autoencoder_model`; the diffusion builders use :func:`create_pretransform_from_config`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.models.audiocraft_pretrained import build_audiocraft_pretrained_pretransform
from stable_audio_ops.models.autoencoder import AudioAutoencoder
from stable_audio_ops.models.bottlenecks import BOTTLENECKS
from stable_audio_ops.models.dac import build_dac_decoder, build_dac_encoder
from stable_audio_ops.models.dac_pretrained import build_dac_pretrained_pretransform
from stable_audio_ops.models.local_attn import build_local_attn_decoder, build_local_attn_encoder
from stable_audio_ops.models.oobleck import build_oobleck_decoder, build_oobleck_encoder
from stable_audio_ops.models.pretransforms import (
    AutoencoderPretransform,
    build_patched_pretransform,
    build_pqmf_pretransform,
    build_wavelet_pretransform,
)
from stable_audio_ops.models.seanet import build_seanet_decoder, build_seanet_encoder
from stable_audio_ops.models.taae import build_taae_decoder, build_taae_encoder

# builder(node of {"type", "config", "requires_grad", ...}) -> module
ENCODERS: dict[str, Callable[[ConfigNode], nn.Module]] = {
    "oobleck": build_oobleck_encoder, "dac": build_dac_encoder, "seanet": build_seanet_encoder,
    "taae": build_taae_encoder, "local_attn": build_local_attn_encoder,
}
DECODERS: dict[str, Callable[[ConfigNode], nn.Module]] = {
    "oobleck": build_oobleck_decoder, "dac": build_dac_decoder, "seanet": build_seanet_decoder,
    "taae": build_taae_decoder, "local_attn": build_local_attn_decoder,
}


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
    """Catch configs whose parts disagree; upstream builds them and fails at the first forward pass.

    A part whose config calls its latent width something else names that key in ``latent_dim_key``."""
    per_latent = getattr(bottleneck, "encoder_channels_per_latent", 1)
    enc_latent = getattr(encoder, "latent_dim", None)
    if enc_latent is not None and enc_latent != per_latent * latent_dim:
        why = " (this bottleneck needs 2 x latent_dim: mean and scale)" if per_latent == 2 else ""
        raise model.error(f"is {enc_latent} but must be {per_latent * latent_dim}{why}",
                          f"encoder.config.{getattr(encoder, 'latent_dim_key', 'latent_dim')}")
    noise_dim = getattr(bottleneck, "noise_augment_dim", 0)
    dec_latent = getattr(decoder, "latent_dim", None)
    if dec_latent is not None and dec_latent != latent_dim + noise_dim:
        why = f" + noise_augment_dim {noise_dim}" if noise_dim else ""
        raise model.error(f"is {dec_latent} but model.latent_dim is {latent_dim}{why}",
                          f"decoder.config.{getattr(decoder, 'latent_dim_key', 'latent_dim')}")
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
PRETRANSFORMS: dict[str, Callable[[ConfigNode, int], nn.Module]] = {
    "autoencoder": build_autoencoder_pretransform,
    "wavelet": build_wavelet_pretransform,
    "patched": build_patched_pretransform,
    "pqmf": build_pqmf_pretransform,
    "dac_pretrained": build_dac_pretrained_pretransform,
    "audiocraft_pretrained": build_audiocraft_pretrained_pretransform,
}


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


# --- the model type ------------------------------------------------------------------------------

def build_autoencoder_model(root: ConfigNode) -> AudioAutoencoder:
    """``model_type: autoencoder`` (root node of the whole model config)."""
    return build_autoencoder(root.child("model"), root.get("sample_rate", "a positive int"))


__all__ = [
    "DECODERS", "ENCODERS", "PRETRANSFORMS", "build_autoencoder", "build_autoencoder_model",
    "build_autoencoder_pretransform", "create_pretransform_from_config",
]
