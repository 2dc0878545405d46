"""Fine-tuning settings of a diffusion model's ``training`` section, and the adapter export.

Why here: fine-tuning is ordinary diffusion training with two extra settings read from the model config, so
the training run (``train.py``, the Kedro node's process) needs no new flags and a checkpoint carries them in
its embedded config:

- ``training.lora`` (rank, alpha, dropout, targets; see :mod:`stable_audio_ops.models.lora`): LoRA mode. The
  pretrained weights are loaded first (``--pretrained-ckpt-path``, strict, upstream keys), then adapters are
  added and everything else is frozen; the optimizer covers only what still requires gradients. Without it:
  full mode (every parameter trains, as before).
- ``training.gradient_checkpointing`` (bool): recompute each transformer block in the backward pass
  (activation memory of one block instead of all of them).

Memory on the precision side is the train flag ``--precision bf16-mixed``; 8-bit AdamW is the optimizer type
``AdamW8bit`` (:mod:`stable_audio_ops.training.optim`) when bitsandbytes is installed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.models.adapters import save_adapter
from stable_audio_ops.models.lora import (
    LoRAConfig,
    apply_lora,
    count_parameters,
    lora_config_from_mapping,
    lora_state_dict,
)
from stable_audio_ops.models.transformer import ContinuousTransformer
from stable_audio_ops.training.unwrap import read_training_checkpoint, select_model_state_dict

log = logging.getLogger(__name__)


def lora_config_of(model_config: Mapping[str, Any], source: str = "<model config>") -> LoRAConfig | None:
    """The ``training.lora`` settings of a model config, or None (full fine-tuning / ordinary training)."""
    training = ConfigNode(dict(model_config), source).child("training", {})
    if not training.has("lora") or training.data["lora"] is None:
        return None
    return lora_config_from_mapping(training.get("lora", "an object"), source, "training.lora")


def enable_gradient_checkpointing(model: nn.Module) -> int:
    """Switch on block recomputation in every transformer of ``model``; returns how many were switched."""
    transformers = [m for m in model.modules() if isinstance(m, ContinuousTransformer)]
    for transformer in transformers:
        transformer.use_checkpointing = True
    return len(transformers)


def apply_fine_tune_settings(model: nn.Module, training: ConfigNode) -> LoRAConfig | None:
    """Apply ``training.lora`` and ``training.gradient_checkpointing`` to ``model`` (in place, before the
    training module copies anything for EMA); returns the LoRA config when adapters were added."""
    if training.get("gradient_checkpointing", "a bool", False):
        if not enable_gradient_checkpointing(model):
            raise training.error("the model has no transformer to checkpoint", "gradient_checkpointing")
    if not training.has("lora") or training.data["lora"] is None:
        return None
    config = lora_config_from_mapping(training.get("lora", "an object"), training.source, f"{training.path}.lora")
    try:
        names = apply_lora(model, config)
    except ValueError as exc:
        raise training.error(str(exc), "lora") from exc
    trainable, total = count_parameters(model)
    log.info("LoRA rank %d on %d layers (%s): %d of %d parameters train (%.2f%%)", config.rank, len(names),
             ", ".join(config.targets), trainable, total, 100.0 * trainable / max(total, 1))
    return config


FINE_TUNE_MODES = ("lora", "full")
# training keys a fine-tune sets itself; the base config's values for them are dropped
REPLACED_TRAINING_KEYS = ("learning_rate", "optimizer_configs", "lora", "gradient_checkpointing", "use_ema",
                          "pre_encoded")


def fine_tune_model_config(base_config: Mapping[str, Any], *, mode: str, lora: Mapping[str, Any] | None,
                           optimizer: Mapping[str, Any], sample_size: int, use_ema: bool,
                           gradient_checkpointing: bool, text_encoder_path: str | None = None,
                           source: str = "fine_tune") -> dict[str, Any]:
    """The config a fine-tune trains with: the pretrained model's config (architecture, pretransform, scale,
    conditioners: exactly what its weights need) with ``sample_size`` = the pre-encoded crop, and a training
    section that keeps the base's other keys (cfg dropout, timestep sampler, demos) but sets the optimizer
    (``{"type", "config"}``), EMA, checkpointing and, in ``lora`` mode, ``training.lora``.

    ``text_encoder_path`` points every T5 conditioner at a local folder (``model_path``), for a T5 that is
    not in the local Hugging Face cache."""
    node = ConfigNode({"mode": mode}, source)
    mode = node.choice("mode", FINE_TUNE_MODES)
    config = copy.deepcopy(dict(base_config))
    config["sample_size"] = int(sample_size)
    training = {k: v for k, v in dict(config.get("training") or {}).items() if k not in REPLACED_TRAINING_KEYS}
    training.update(use_ema=bool(use_ema), gradient_checkpointing=bool(gradient_checkpointing),
                    optimizer_configs={"diffusion": {"optimizer": copy.deepcopy(dict(optimizer))}})
    if mode == "lora":
        training["lora"] = lora_config_from_mapping(lora or {}, source, "lora").to_dict()
    config["training"] = training
    if text_encoder_path:
        for conditioner in config.get("model", {}).get("conditioning", {}).get("configs", []):
            if conditioner.get("type") == "t5":
                conditioner.setdefault("config", {})["model_path"] = str(text_encoder_path)
    return config


def export_adapter(model_config: Mapping[str, Any], ckpt_path: str | Path, output_path: str | Path,
                   base_model: Mapping[str, Any] | None = None, source: str = "<model config>") -> Path:
    """The LoRA tensors of a training checkpoint (EMA backbone when trained with EMA) as an adapter file
    holding its config and ``base_model`` facts; a config without ``training.lora`` is an error."""
    config = lora_config_of(model_config, source)
    if config is None:
        raise ConfigNode(dict(model_config), source).error(
            "no LoRA settings: only a LoRA fine-tune has an adapter to export (use the unwrapped model instead)",
            "training.lora")
    ckpt = read_training_checkpoint(ckpt_path)
    state = select_model_state_dict(dict(model_config), ckpt["state_dict"], source, str(ckpt_path))
    tensors = lora_state_dict(state)
    if not tensors:
        raise ConfigNode(dict(model_config), source).error(
            f"{ckpt_path} holds no LoRA tensors although the config sets training.lora", "training.lora")
    return save_adapter(output_path, tensors, config, base_model)


__all__ = ["FINE_TUNE_MODES", "apply_fine_tune_settings", "enable_gradient_checkpointing", "export_adapter",
           "fine_tune_model_config", "lora_config_of"]
