"""The model config an ``lm`` model trains with, derived from its own config and the trained discrete autoencoder.

Why a function of its own (as :mod:`stable_audio_ops.config.latent_diffusion` for the DiT): the LM config shipped
in ``model_configs/`` cannot know the autoencoder it will tokenize with. Deriving the pretransform, sample rate and
channels from the trained autoencoder means the tokenizer that trains IS the one that wrote the token files.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def lm_model_config(lm_config: Mapping[str, Any], autoencoder_config: Mapping[str, Any], *, sample_size: int,
                    pre_encoded: bool = True) -> dict[str, Any]:
    """``lm_config`` with the autoencoder as its ``pretransform`` (``config`` = the autoencoder's ``model``
    section), ``sample_rate`` / ``audio_channels`` the autoencoder's, ``sample_size`` the pre-encoded clip length
    and ``training.pre_encoded`` set (token files, not audio). The inputs are not modified. (Whether the
    autoencoder quantizes is checked where it matters: pre-encoding with ``is_discrete`` and building the model.)"""
    config = copy.deepcopy(dict(lm_config))
    model = config.setdefault("model", {})
    pretransform = model.setdefault("pretransform", {"type": "autoencoder"})
    pretransform["config"] = copy.deepcopy(autoencoder_config["model"])
    config["sample_rate"] = autoencoder_config["sample_rate"]
    config["audio_channels"] = autoencoder_config.get("audio_channels", 2)  # upstream's default channel count
    config["sample_size"] = int(sample_size)
    config.setdefault("training", {})["pre_encoded"] = bool(pre_encoded)
    return config


__all__ = ["lm_model_config"]
