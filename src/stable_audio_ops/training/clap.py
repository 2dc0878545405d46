"""Lightning module that trains ``clap`` models like 0.0.20's ``CLAPTrainingWrapper``.

One step: audio -> latents through the model's frozen pretransform (or pre-encoded latents as they are), optional
noise augmentation of the latents (with the audio branch's ``noise_config``: a scrambled-Sobol noise level per
item, half of them set to 0, ``x = (1 - s) x + s noise``), captions from each item's ``prompt``; then
``contrastive`` x symmetric InfoNCE at temperature ``exp(logit_scale_a)`` + ``alignment`` x (1 - cos) +
``uniformity`` x mean of the per-modality uniformities + ``cross_uniformity`` x the audio-text uniformity
(weights: ``training.loss_config``, defaults 1.0 / 0.1 / 0.1 / 0.1; see :mod:`.clap_losses`). Every parameter of
the model trains (the RoBERTa text encoder and the temperature included), with ``training.optimizer_configs.model``
(optimizer + optional scheduler) or Adam at ``training.learning_rate``. A validation set logs upstream's retrieval
metrics (``val/text_to_audio_R@1``, ...) over all its batches.

State dict: the model under ``model.*`` (upstream's attribute), exported as it is (no EMA).

Differences from 0.0.20:
- the contrastive term is computed over this process's batch; 0.0.20's ``inf_cl`` kernel also gathers the other
  ranks' embeddings as negatives under DDP (same value on one process);
- no activation checkpointing around the loss terms (same values, more memory);
- ``training.htsat_dataset`` (pre-processed HTSAT inputs; 0.0.20 has no HTSAT branch in this model) is an error;
- ``training.mask_padding_attention`` masks only the mean pooling (see :mod:`stable_audio_ops.models.clap`);
- a missing ``prompt`` in a batch item is an error that names the item, not a ``KeyError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.clap import CLAP
from stable_audio_ops.training.clap_losses import (
    DEFAULT_LOSS_WEIGHTS,
    alignment,
    contrastive_loss,
    cross_uniformity,
    retrieval_metrics,
    uniformity,
)
from stable_audio_ops.training.optim import configure_optimizer, resolve_optimizer_configs

P_NO_NOISE = 0.5  # share of items whose latents stay clean under noise augmentation (0.0.20)


def default_optimizer_configs(lr: float) -> dict:
    """Adam at ``learning_rate`` (0.0.20's default when no ``optimizer_configs`` are given)."""
    return {"model": {"optimizer": {"type": "Adam", "config": {"lr": lr}}}}


def resize_padding_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, S]`` masks (real part first) -> ``[B, length]``: a frame that covers any real sample is real
    (0.0.20's ceiling rule, unlike nearest resampling)."""
    if mask.shape[-1] == length:
        return mask.bool()
    valid = torch.ceil(mask.float().sum(-1) * length / mask.shape[-1])
    return torch.arange(length, device=mask.device)[None, :] < valid[:, None]


def _unwrap_one(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value


def batch_prompts(metadata: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``prompt`` caption of each batch item (single-element lists unwrapped, as collate wraps them)."""
    prompts = []
    for i, md in enumerate(metadata):
        prompt = _unwrap_one(md.get("prompt")) if isinstance(md, Mapping) else None
        if not isinstance(prompt, str):
            keys = ", ".join(sorted(map(str, md))) if isinstance(md, Mapping) else type(md).__name__
            raise ValueError(f"CLAP training needs a 'prompt' caption per item; batch item {i} has none "
                             f"(keys: {keys}); give the dataset a custom_metadata_module that sets it, e.g. "
                             "stable_audio_ops.data.sidecar_metadata")
        prompts.append(prompt)
    return prompts


def batch_padding_masks(metadata: Sequence[Mapping[str, Any]], samples: int, device: torch.device) -> torch.Tensor:
    """``[B, samples]`` masks from each item's ``padding_mask`` (all real where an item has none)."""
    rows = []
    for md in metadata:
        mask = _unwrap_one(md.get("padding_mask")) if isinstance(md, Mapping) else None
        if mask is None or (hasattr(mask, "__len__") and len(mask) == 0):
            rows.append(torch.ones(samples))
        else:
            rows.append(torch.as_tensor(mask, dtype=torch.float32).reshape(-1))
    lengths = {r.numel() for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"padding masks of different lengths in one batch: {sorted(lengths)}")
    return torch.stack(rows).to(device) > 0.5


class CLAPTrainingModule(pl.LightningModule):
    """Trains a :class:`~stable_audio_ops.models.clap.CLAP` (see the module docstring)."""

    def __init__(self, model: CLAP, lr: float | None = None, optimizer_configs: dict | None = None,
                 loss_config: Mapping[str, float] | None = None, pre_encoded: bool = False,
                 mask_padding_attention: bool = False, source: str = "<model config>", path: str = "training"):
        super().__init__()
        self.model = model
        self._opt_node = resolve_optimizer_configs(optimizer_configs, lr, default_optimizer_configs, "model", source,
                                                   path)
        self.optimizer_configs = self._opt_node.data
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **dict(loss_config or {})}
        self.pre_encoded = bool(pre_encoded)
        self.mask_padding_attention = bool(mask_padding_attention)
        self.noise_config = getattr(model.audio_branch, "noise_config", None)
        self.sobol = torch.quasirandom.SobolEngine(1, scramble=True)
        self._val_audio: list[torch.Tensor] = []
        self._val_text: list[torch.Tensor] = []

    def configure_optimizers(self):
        node = self._opt_node.child("model")
        return configure_optimizer(node, [p for p in self.model.parameters() if p.requires_grad])

    # --- one batch -> embeddings ------------------------------------------------------------------
    def latents(self, audios: torch.Tensor, metadata: Sequence[Mapping[str, Any]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents of a batch (or the pre-encoded latents) and their ``[B, T]`` padding masks."""
        masks = batch_padding_masks(metadata, audios.shape[-1], audios.device)
        pretransform = self.model.pretransform
        if pretransform is not None and not self.pre_encoded:
            with torch.set_grad_enabled(bool(getattr(pretransform, "enable_grad", False)) and torch.is_grad_enabled()):
                audios = pretransform.encode(audios)
        return audios.float(), resize_padding_mask(masks, audios.shape[-1])

    def noised(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """0.0.20's noise augmentation: Sobol noise levels, half of them zero, linear interpolation to noise."""
        levels = self.sobol.draw(latents.shape[0])[:, 0].to(latents.device, latents.dtype)
        levels = torch.where(torch.rand_like(levels) < P_NO_NOISE, torch.zeros_like(levels), levels)
        s = levels[:, None, None]
        return (1 - s) * latents + s * torch.randn_like(latents), levels

    def _split(self, batch) -> tuple[torch.Tensor, Sequence[Mapping[str, Any]]]:
        audios, metadata = batch[0], batch[1]
        if audios.ndim == 4 and audios.shape[0] == 1:  # WebDataset adds a leading batch dim
            audios = audios[0]
            metadata = [{k: _unwrap_one(v) for k, v in md.items()} for md in metadata]
        return audios, metadata

    def embeddings(self, batch, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        audios, metadata = self._split(batch)
        prompts = batch_prompts(metadata)
        latents, masks = self.latents(audios, metadata)
        kwargs: dict[str, Any] = {"mask": masks if self.mask_padding_attention else None}
        if train and self.noise_config is not None:
            latents, kwargs["noise_levels"] = self.noised(latents)
        audio = self.model.get_audio_embedding(latents, **kwargs)
        return audio, self.model.get_text_embedding(prompts)

    # --- training -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        audio, text = self.embeddings(batch, train=True)
        w = self.loss_weights
        zero = audio.new_zeros(())
        terms = {"contrastive_loss": zero, "alignment_loss": zero, "audio_uniformity": zero,
                 "text_uniformity": zero, "uniformity": zero, "cross_uniformity": zero}
        if w["contrastive"] > 0:
            terms["contrastive_loss"] = contrastive_loss(audio, text, self.model.logit_scale_a.exp())
        if w["alignment"] > 0:
            terms["alignment_loss"] = alignment(audio, text) * w["alignment"]
        if w["uniformity"] > 0:
            terms["audio_uniformity"], terms["text_uniformity"] = uniformity(audio), uniformity(text)
            terms["uniformity"] = (terms["audio_uniformity"] + terms["text_uniformity"]) / 2 * w["uniformity"]
        if w["cross_uniformity"] > 0:
            terms["cross_uniformity"] = cross_uniformity(audio, text) * w["cross_uniformity"]
        # as 0.0.20: the contrastive term enters with weight 1 whenever its weight is positive
        loss = terms["contrastive_loss"] + terms["alignment_loss"] + terms["uniformity"] + terms["cross_uniformity"]
        values = {f"train/{k}": v.detach() for k, v in terms.items()}
        values["train/logit_scale"] = self.model.logit_scale_a.detach().exp()
        if self._trainer is not None and self.trainer.optimizers:
            values["train/lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        batch_size = audio.shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, batch_size=batch_size)
        self.log_dict(values, on_step=True, batch_size=batch_size)
        return loss

    # --- validation: retrieval over the whole validation set ----------------------------------------
    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            audio, text = self.embeddings(batch, train=False)
        self._val_audio.append(audio.detach())
        self._val_text.append(text.detach())

    def on_validation_epoch_end(self) -> None:
        if not self._val_audio:
            return
        audio, text = torch.cat(self._val_audio), torch.cat(self._val_text)
        self._val_audio, self._val_text = [], []
        if self.trainer.world_size > 1:
            audio = self.all_gather(audio).flatten(0, 1)
            text = self.all_gather(text).flatten(0, 1)
        metrics = retrieval_metrics(audio, text, self.model.logit_scale_a.detach().exp())
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, rank_zero_only=True)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Unwrapped model weights (upstream's ``export_model``: the trained model, no EMA)."""
        return self.model.state_dict()


def create_clap_training_module(model_config: Mapping[str, Any], model: nn.Module,
                                source: str = "<model config>") -> CLAPTrainingModule:
    """Read ``training`` of a clap config (0.0.20's keys and defaults) and build the module."""
    root = ConfigNode(dict(model_config), source)
    training = root.child("training", {})
    if training.get("htsat_dataset", "a bool", False):
        raise training.error("HTSAT inputs are not supported by this version (0.0.20's clap model has no HTSAT "
                             "audio branch either); remove the key", "htsat_dataset")
    loss_config = training.child("loss_config", {})
    check_known_keys(loss_config, tuple(DEFAULT_LOSS_WEIGHTS))
    weights = {k: loss_config.get(k, "a number", DEFAULT_LOSS_WEIGHTS[k]) for k in DEFAULT_LOSS_WEIGHTS}
    for key, value in weights.items():
        if not math.isfinite(value) or value < 0:
            raise loss_config.error(f"expected a non-negative number, got {value!r}", key)
    return CLAPTrainingModule(
        model,
        lr=training.get("learning_rate", "a positive number", None),
        optimizer_configs=training.get("optimizer_configs", "an object", None),
        loss_config=weights,
        pre_encoded=training.get("pre_encoded", "a bool", False),
        mask_padding_attention=training.get("mask_padding_attention", "a bool", False),
        source=source,
        path="training",
    )


__all__ = ["CLAPTrainingModule", "batch_padding_masks", "batch_prompts", "create_clap_training_module",
           "default_optimizer_configs", "resize_padding_mask"]
