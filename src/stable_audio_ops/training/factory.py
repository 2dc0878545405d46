"""One factory for training modules, keyed by ``model_type`` (autoencoder now; diffusion types later)."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.training.autoencoder import create_autoencoder_training_module
from stable_audio_ops.training.diffusion import create_diffusion_cond_training_module

TrainingModuleBuilder = Callable[..., pl.LightningModule]

TRAINING_MODULES: dict[str, TrainingModuleBuilder] = {
    "autoencoder": create_autoencoder_training_module,
    "diffusion_cond": create_diffusion_cond_training_module,
    "diffusion_cond_inpaint": create_diffusion_cond_training_module,
}


def create_training_module_from_config(
    model_config: dict, model: nn.Module, source: str = "<model config>"
) -> pl.LightningModule:
    """The Lightning module that trains ``model`` as ``model_config['training']`` describes."""
    root = ConfigNode(model_config, source)
    model_type = root.get("model_type", "a string")
    builder = lookup(TRAINING_MODULES, model_type, "model type for training", root, key="model_type")
    return builder(model_config, model, source=source)
