"""Lightning module that trains ``diffusion_uncond`` models (ADP U-Net or DiT backbone) like upstream.

Semantics follow stable-audio-tools 0.0.20's ``DiffusionUncondTrainingWrapper``: latents from the frozen
pretransform (or pre-encoded latents divided by its ``scale``), ``t`` from a scrambled Sobol sequence, the
v-objective (the only objective of this model type), MSE loss, Adam at ``training.learning_rate``, and an EMA of
the backbone (``beta 0.9999, power 3/4, update_every 1, update_after_step 1``, updated in ``on_before_zero_grad``).

It is :class:`~stable_audio_ops.training.diffusion.DiffusionCondTrainingModule` without conditioning (no
conditioner, no classifier-free-guidance dropout, no inpainting), so timestep sampling, losses, EMA placement,
validation and logging are the diffusion_cond module's. State-dict layout is upstream's: ``diffusion.model.*``
(``diffusion.pretransform.*``), ``diffusion_ema.ema_model.*``, ``diffusion_ema.online_model.*`` (ema-pytorch's
default ``include_online_model=True`` stores the backbone twice), ``diffusion_ema.initted``, ``diffusion_ema.step``
and ``losses.losses.0.weight``.

Additions over 0.0.20 (its configs mean the same here): ``training.optimizer_configs.diffusion`` (optimizer and
scheduler, as diffusion_cond), ``training.use_ema`` (default true, as upstream's always-on EMA),
``timestep_sampler``/``timestep_sampler_options``, ``log_loss_info``, and a validation loop when a validation set is
given. Not supported: 0.0.20's ``training.lora_config`` (an error says so rather than training without it).
"""

from __future__ import annotations

from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.training.diffusion import DiffusionCondTrainingModule
from stable_audio_ops.training.timesteps import TIMESTEP_SAMPLERS

# 0.0.20's DiffusionUncondTrainingWrapper EMA (unchanged since 0.0.19; diffusion_cond moved to beta 0.999).
UNCOND_EMA_SETTINGS = {"beta": 0.9999, "power": 3 / 4, "update_every": 1, "update_after_step": 1}


class DiffusionUncondTrainingModule(DiffusionCondTrainingModule):
    """Trains a ``DiffusionModelWrapper`` (``forward(x, t)``): the diffusion_cond module without conditioning."""

    def batch_conditioning(self, metadata) -> dict:
        return {}

    def predict(self, noised, t, conditioning, cfg_dropout_prob):
        return self.diffusion(noised, t)


def create_diffusion_uncond_training_module(model_config: dict, model: nn.Module,
                                            source: str = "<model config>") -> DiffusionUncondTrainingModule:
    """Read ``training`` of a diffusion_uncond config (0.0.20's keys and defaults) and build the module."""
    root = ConfigNode(model_config, source)
    training = root.child("training", {})
    for key in ("lora_config", "lora"):
        if training.has(key):
            raise training.error("LoRA fine-tuning of diffusion_uncond models is not supported by this version; "
                                 "remove the key", key)
    training.choice("timestep_sampler", TIMESTEP_SAMPLERS, "uniform")
    return DiffusionUncondTrainingModule(
        model,
        lr=training.get("learning_rate", "a positive number", None),
        optimizer_configs=training.get("optimizer_configs", "an object", None),
        use_ema=training.get("use_ema", "a bool", True),
        log_loss_info=training.get("log_loss_info", "a bool", False),
        pre_encoded=training.get("pre_encoded", "a bool", False),
        cfg_dropout_prob=0.0,
        timestep_sampler=training.get("timestep_sampler", "a string", "uniform"),
        timestep_sampler_options=training.get("timestep_sampler_options", "an object", None),
        source=source,
        path="training",
        ema_settings=UNCOND_EMA_SETTINGS,
        ema_include_online_model=True,
    )


__all__ = ["UNCOND_EMA_SETTINGS", "DiffusionUncondTrainingModule", "create_diffusion_uncond_training_module"]
