"""Build models from stable-audio-tools model configs: the table of model types.

:data:`MODEL_TYPES` maps ``model_type`` to a builder taking the root :class:`ConfigNode` of the whole
config; a new model family plugs in by adding one entry. The builders live beside their models:

- ``autoencoder``: :mod:`.autoencoder_factory` (with the encoder/decoder/bottleneck/pretransform
  registries; the Oobleck builders are in :mod:`.oobleck`, the bottlenecks in :mod:`.bottlenecks`);
- ``diffusion_cond`` / ``diffusion_cond_inpaint``: :mod:`.diffusion_factory`;
- ``diffusion_uncond``: :mod:`.diffusion_uncond`; ``diffusion_autoencoder``: :mod:`.diffusion_autoencoder`;
- ``lm``: :mod:`.lm`.

The part registries and builders are re-exported here, so ``from stable_audio_ops.models.factory import
ENCODERS, create_pretransform_from_config, ...`` keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from stable_audio_ops.config.model_config import load_model_config, validate_model_config
from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.models.autoencoder import AudioAutoencoder as AudioAutoencoder
from stable_audio_ops.models.autoencoder_factory import (
    DECODERS,
    ENCODERS,
    PRETRANSFORMS,
    build_autoencoder,
    build_autoencoder_model,
    build_autoencoder_pretransform,
    create_pretransform_from_config,
)
from stable_audio_ops.models.bottlenecks import BOTTLENECKS
from stable_audio_ops.models.bottlenecks import VAEBottleneck as VAEBottleneck
from stable_audio_ops.models.clap import build_clap
from stable_audio_ops.models.diffusion_autoencoder import build_diffusion_autoencoder
from stable_audio_ops.models.diffusion_factory import build_diffusion_cond
from stable_audio_ops.models.diffusion_uncond import build_diffusion_uncond
from stable_audio_ops.models.lm import build_lm
from stable_audio_ops.models.oobleck import OobleckDecoder as OobleckDecoder
from stable_audio_ops.models.oobleck import OobleckEncoder as OobleckEncoder
from stable_audio_ops.models.oobleck import build_oobleck_decoder, build_oobleck_encoder
from stable_audio_ops.models.pretransforms import AutoencoderPretransform as AutoencoderPretransform

# (``X as X`` imports: model classes this module used to import, kept importable from here.)

# model_type -> builder(root node of the whole model config)
MODEL_TYPES: dict[str, Callable[[ConfigNode], nn.Module]] = {
    "autoencoder": build_autoencoder_model,
    "diffusion_cond": build_diffusion_cond,
    # Same wrapper: inpainting inputs are ordinary input-concat conditioning (inpaint_mask, inpaint_masked_input).
    "diffusion_cond_inpaint": build_diffusion_cond,
    "diffusion_uncond": build_diffusion_uncond,  # adp_uncond_1d U-Net or dit (training: training.diffusion_uncond)
    "diffusion_autoencoder": build_diffusion_autoencoder,  # encoder + ADP U-Net decoder (training.diffusion_autoencoder)
    "lm": build_lm,  # multi-codebook token LM over a discrete pretransform (models.lm, training.lm)
    "clap": build_clap,  # 0.0.20's contrastive audio-text model (models.clap; training.clap)
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
    "build_autoencoder", "build_autoencoder_model", "build_autoencoder_pretransform", "build_oobleck_decoder",
    "build_oobleck_encoder", "check_known_keys", "create_model_from_config", "create_model_from_config_path",
    "create_pretransform_from_config",
]
