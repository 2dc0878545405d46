"""The autoencoder inside a latent diffusion checkpoint, written out as an unwrapped autoencoder file.

Why: fine-tuning must pre-encode its data with the pretrained model's OWN pretransform (latents from any other
autoencoder mean nothing to that DiT). Pre-encoding takes an unwrapped autoencoder; a Stable Audio Open folder
holds one only inside ``model.safetensors`` (``pretransform.model.*``) with its config under
``model.pretransform.config``. This turns that into an ``autoencoder`` checkpoint (config embedded) that loads
strictly, so pre-encoding, its checks and its ``details.json`` work unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    save_model_checkpoint,
)
from stable_audio_ops.models.factory import create_model_from_config

PRETRANSFORM_PREFIX = "pretransform.model."


def pretransform_autoencoder_config(diffusion_config: Mapping[str, Any], source: str = "<model config>") -> dict:
    """The ``autoencoder`` model config of a diffusion model's ``autoencoder`` pretransform."""
    root = ConfigNode(dict(diffusion_config), source)
    pretransform = root.child("model").child("pretransform", None)
    if pretransform.data is None:
        raise pretransform.error("the model has no pretransform: fine-tuning pre-encodes with the pretrained "
                                 "model's autoencoder pretransform")
    kind = pretransform.get("type", "a string")
    if kind != "autoencoder":
        raise pretransform.error(f"pretransform type {kind!r} cannot pre-encode (only 'autoencoder')", "type")
    return {"model_type": "autoencoder", "sample_rate": root.get("sample_rate", "a positive int"),
            "audio_channels": root.get("audio_channels", "a positive int", 2),
            "sample_size": root.get("sample_size", "a positive int", 65536),
            "model": copy.deepcopy(pretransform.get("config", "an object"))}


def write_pretransform_autoencoder(checkpoint: str | Path, diffusion_config: Mapping[str, Any],
                                   output_path: str | Path, source: str = "<model config>") -> Path:
    """Write the pretransform weights of ``checkpoint`` as an unwrapped autoencoder (config embedded), checked
    by a strict load first; returns the written path."""
    config = pretransform_autoencoder_config(diffusion_config, source)
    state = {k[len(PRETRANSFORM_PREFIX):]: v for k, v in load_ckpt_state_dict(checkpoint).items()
             if k.startswith(PRETRANSFORM_PREFIX)}
    model = create_model_from_config(copy.deepcopy(config), source=source)
    load_state_dict_checked(model, state, strict=True, what=f"{checkpoint} (pretransform.model.*) -> autoencoder")
    return save_model_checkpoint({k: state[k].contiguous() for k in model.state_dict()}, output_path,
                                 model_config=config)


__all__ = ["PRETRANSFORM_PREFIX", "pretransform_autoencoder_config", "write_pretransform_autoencoder"]
