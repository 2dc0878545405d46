"""One factory for training modules, keyed by ``model_type``; a diffusion_cond(_inpaint) config whose
``training`` has ``arc`` gets the ARC post-training module instead of diffusion training, as upstream."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.training.arc_factory import create_arc_training_module
from stable_audio_ops.training.autoencoder import create_autoencoder_training_module
from stable_audio_ops.training.clap import create_clap_training_module
from stable_audio_ops.training.diffusion import create_diffusion_cond_training_module
from stable_audio_ops.training.diffusion_autoencoder import create_diffusion_autoencoder_training_module
from stable_audio_ops.training.diffusion_uncond import create_diffusion_uncond_training_module
from stable_audio_ops.training.lm import create_lm_training_module

TrainingModuleBuilder = Callable[..., pl.LightningModule]


def _diffusion_cond_module(model_config: dict, model: nn.Module, source: str = "<model config>") -> pl.LightningModule:
    training = model_config.get("training")
    if isinstance(training, dict) and "arc" in training:
        return create_arc_training_module(model_config, model, source=source)
    return create_diffusion_cond_training_module(model_config, model, source=source)


TRAINING_MODULES: dict[str, TrainingModuleBuilder] = {
    "autoencoder": create_autoencoder_training_module,
    "diffusion_cond": _diffusion_cond_module,
    "diffusion_cond_inpaint": _diffusion_cond_module,
    "diffusion_uncond": create_diffusion_uncond_training_module,
    "diffusion_autoencoder": create_diffusion_autoencoder_training_module,
    "lm": create_lm_training_module,
    "clap": create_clap_training_module,
}


def create_training_module_from_config(
    model_config: dict, model: nn.Module, source: str = "<model config>"
) -> pl.LightningModule:
    """The Lightning module that trains ``model`` as ``model_config['training']`` describes."""
    root = ConfigNode(model_config, source)
    model_type = root.get("model_type", "a string")
    builder = lookup(TRAINING_MODULES, model_type, "model type for training", root, key="model_type")
    return builder(model_config, model, source=source)
