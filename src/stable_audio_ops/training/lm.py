"""Lightning module that trains ``lm`` models like stable-audio-tools 0.0.20's ``AudioLanguageModelTrainingWrapper``.

One step: audio -> codes ``[B, K, T]`` with the frozen pretransform (or pre-encoded tokens from the batch,
``training.pre_encoded``, in the pretransform's token layout), conditioning from the batch metadata, teacher-forced
logits over the valid steps of the codebook pattern with classifier-free-guidance dropout 0.1 (the null
conditioning is zeros), and the mean over codebooks of each codebook's cross-entropy over the codes that have a
prediction and are not padding. Optimizer: ``training.optimizer_configs.lm`` (optimizer + optional scheduler), else
AdamW at ``training.learning_rate`` with betas (0.9, 0.95) and weight decay 0.1. Logged: ``train/loss``,
``train/cross_entropy``, ``train/perplexity``, ``train/lr`` and, per codebook, ``cross_entropy_q{k}`` /
``perplexity_q{k}`` (upstream's names).

State-dict layout is upstream's: ``model.*`` (the whole wrapper, so ``model.lm.*``, ``model.pretransform.*``,
``model.conditioner.*``) and with ``training.use_ema`` (default false) ``model_ema.ema_model.*``,
``model_ema.online_model.*``, ``model_ema.initted``, ``model_ema.step`` (ema-pytorch with ``beta 0.99,
update_every 10`` and its other defaults, updated in ``on_before_zero_grad``). Export: the EMA model when EMA is on.

Differences from 0.0.20 (whose LM cannot run, see :mod:`stable_audio_ops.models.lm`): only trainable parameters
reach the optimizer (the frozen pretransform has no optimizer state); a missing ``padding_mask`` counts as all
real; ``cfg_dropout_prob`` can be set in ``training`` (default 0.1, upstream's hard-coded value).

Pre-encoded tokens (``pre_encode --is-discrete``) keep the pretransform's layout per item: ``[Q, T]`` for
dac_rvq / fsq, which a ``pre_encoded`` dataset crops with ``latent_crop_length``; ``[T, Q]`` for rvq /
dithered_fsq, which it would crop on the codebook axis, so those need a dataset without ``latent_crop_length``
(an error says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import DatasetError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.lm import AudioLanguageModelWrapper
from stable_audio_ops.training.diffusion import padding_masks_from_metadata
from stable_audio_ops.training.ema import EMA
from stable_audio_ops.training.optim import configure_optimizer, resolve_optimizer_configs

# 0.0.20's LM EMA: beta 0.99, update_every 10, the rest ema-pytorch's defaults (the EMA class's defaults here)
LM_EMA_SETTINGS = {"beta": 0.99, "update_every": 10}
CFG_DROPOUT_PROB = 0.1


def default_optimizer_configs(lr: float) -> dict:
    """Upstream's default: AdamW at ``learning_rate``, betas (0.9, 0.95), weight decay 0.1."""
    return {"lm": {"optimizer": {"type": "AdamW",
                                 "config": {"lr": lr, "betas": [0.9, 0.95], "weight_decay": 0.1}}}}


def codebook_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                           ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mean over codebooks of each codebook's cross-entropy over its ``mask``-ed codes.

    ``logits [B, K, T, C]``, ``targets``/``mask [B, K, T]``; returns the mean and the per-codebook values
    (detached), as audiocraft's MusicGen solver computes them."""
    if logits.shape[:-1] != targets.shape or mask.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and mask "
                         f"{tuple(mask.shape)} do not match")
    per_codebook = []
    for k in range(targets.shape[1]):
        keep = mask[:, k]
        per_codebook.append(F.cross_entropy(logits[:, k][keep].float(), targets[:, k][keep]))
    total = torch.stack(per_codebook).mean()
    return total, [ce.detach() for ce in per_codebook]


class LMTrainingModule(pl.LightningModule):
    """Trains an :class:`AudioLanguageModelWrapper` (see the module docstring)."""

    def __init__(self, model: AudioLanguageModelWrapper, lr: float | None = None,
                 optimizer_configs: Mapping[str, Any] | None = None, use_ema: bool = False,
                 ema_copy: nn.Module | None = None, pre_encoded: bool = False,
                 cfg_dropout_prob: float = CFG_DROPOUT_PROB, source: str = "<model config>", path: str = "training"):
        super().__init__()
        node = ConfigNode({}, source, path)
        self._opt_node = resolve_optimizer_configs(optimizer_configs, lr, default_optimizer_configs, "lm", source, path)
        if not 0.0 <= cfg_dropout_prob <= 1.0:
            raise node.error(f"must be in [0, 1], got {cfg_dropout_prob}", "cfg_dropout_prob")
        self.model = model
        self.model.pretransform.requires_grad_(False)
        self.model_ema: EMA | None = None
        if use_ema:
            self.model_ema = EMA(self.model, ema_model=ema_copy, **LM_EMA_SETTINGS)
        self.pre_encoded = bool(pre_encoded)
        self.cfg_dropout_prob = float(cfg_dropout_prob)

    def configure_optimizers(self):
        node = self._opt_node.child("lm")
        return configure_optimizer(node, [p for p in self.model.parameters() if p.requires_grad])

    def batch_codes(self, reals: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T]`` of a batch: tokenized audio, or the pre-encoded tokens themselves."""
        if reals.ndim == 4 and reals.shape[0] == 1:  # WebDataset adds a leading batch dim
            reals = reals[0]
        if not self.pre_encoded:
            return self.model.tokenize(reals)
        try:
            return self.model.codes_from_tokens(reals)
        except ValueError as err:
            hint = ""
            if self.model.tokens_layout == "b t q":
                hint = ("; this pretransform's tokens are [T, Q] per item and a pre_encoded dataset's "
                        "latent_crop_length crops the last axis: leave it unset for these tokens")
            raise DatasetError(f"pre-encoded tokens do not fit the model: {err}{hint}") from err

    def loss(self, codes: torch.Tensor, metadata, cfg_dropout_prob: float
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        conditioner = self.model.conditioner
        cond = conditioner(metadata, self.device) if conditioner is not None else None
        out = self.model.compute_logits(codes, condition_tensors=cond, cfg_dropout_prob=cfg_dropout_prob)
        padding = padding_masks_from_metadata(metadata, codes.shape[-1], codes.device)
        return codebook_cross_entropy(out.logits, codes, out.mask & padding[:, None, :])

    def training_step(self, batch, batch_idx):
        reals, metadata = batch[0], batch[1]
        codes = self.batch_codes(reals)
        loss, per_codebook = self.loss(codes, metadata, self.cfg_dropout_prob)
        values: dict[str, Any] = {"train/cross_entropy": loss.detach(), "train/perplexity": loss.detach().exp(),
                                  "train/lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        for k, ce in enumerate(per_codebook, start=1):
            values[f"cross_entropy_q{k}"] = ce
            values[f"perplexity_q{k}"] = ce.exp()
        self.log_dict({"train/loss": loss.detach()}, prog_bar=True, on_step=True, batch_size=codes.shape[0])
        self.log_dict(values, on_step=True, batch_size=codes.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        """Cross-entropy without CFG dropout (only with a validation dataset; upstream has no validation)."""
        with torch.no_grad():
            codes = self.batch_codes(batch[0])
            loss, _ = self.loss(codes, batch[1], 0.0)
        self.log_dict({"val/cross_entropy": loss}, on_epoch=True, sync_dist=True, batch_size=codes.shape[0])
        return loss

    def on_before_zero_grad(self, *args: Any, **kwargs: Any) -> None:
        if self.model_ema is not None:
            self.model_ema.update()

    def inference_model(self) -> AudioLanguageModelWrapper:
        """The model to generate with: the EMA copy when EMA is on (what upstream exports)."""
        return self.model_ema.ema_model if self.model_ema is not None else self.model

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Unwrapped model weights (upstream's ``export_model``)."""
        return self.inference_model().state_dict()


def create_lm_training_module(model_config: Mapping[str, Any], model: nn.Module,
                              source: str = "<model config>") -> LMTrainingModule:
    """Read ``training`` of an lm config (0.0.20's keys and defaults) and build the module. The EMA copy is a
    freshly built model loaded with ``model``'s weights, as upstream's factory does."""
    root = ConfigNode(dict(model_config), source)
    training = root.child("training", {})
    use_ema = training.get("use_ema", "a bool", False)
    ema_copy = None
    if use_ema:
        ema_copy = create_model_from_config(dict(model_config), source=source)
        ema_copy.load_state_dict(model.state_dict())
    return LMTrainingModule(
        model,
        lr=training.get("learning_rate", "a positive number", None),
        optimizer_configs=training.get("optimizer_configs", "an object", None),
        use_ema=use_ema,
        ema_copy=ema_copy,
        pre_encoded=training.get("pre_encoded", "a bool", False),
        cfg_dropout_prob=training.get("cfg_dropout_prob", "a non-negative number", CFG_DROPOUT_PROB),
        source=source,
        path="training",
    )


__all__ = ["CFG_DROPOUT_PROB", "LMTrainingModule", "LM_EMA_SETTINGS", "codebook_cross_entropy",
           "create_lm_training_module", "default_optimizer_configs"]
