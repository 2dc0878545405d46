"""Lightning module that trains ``diffusion_cond`` / ``diffusion_cond_inpaint`` models like upstream.

Semantics follow stable-audio-tools' ``DiffusionCondTrainingWrapper`` (``training/diffusion.py``): conditioning
from the batch metadata, latents from the frozen pretransform (or pre-encoded latents divided by
the pretransform ``scale``), a training ``t`` from the configured sampler (+ distribution shift +
``p_one_shot``), noise/target per objective, optional inpainting masks, classifier-free-guidance
dropout inside the backbone (``cfg_dropout_prob``), MSE loss, EMA of the backbone updated before
each optimizer step. The state-dict layout is upstream's, so wrapped checkpoints load both ways:
``diffusion.model.*``, ``diffusion.conditioner.*``, ``diffusion.pretransform.*``,
``diffusion_ema.ema_model.model.*`` (EMA of the backbone wrapper only), ``diffusion_ema.initted``,
``diffusion_ema.step`` and ``losses.losses.0.weight``. ``diffusion_uncond`` trains with this module minus the
conditioning (:mod:`stable_audio_ops.training.diffusion_uncond` overrides :meth:`batch_conditioning` and
:meth:`predict`, and passes its own EMA settings).

EMA follows the PyPI release 0.0.20 (:data:`EMA_SETTINGS`): ``beta 0.999, power 3/4, update_every 1,
update_after_step 1``, updated once per optimizer step in ``on_before_zero_grad`` (Lightning calls it between
the step's forward and its backward, so each update sees the weights as the previous step left them). 0.0.19
used ``beta 0.9999`` with the same warm-up, cadence and placement. The warm-up ``1 - (1 + e) ** -3/4`` only
reaches 0.999 after 10,001 updates, so the two releases give bit-identical EMA weights up to 10,000 optimizer
steps; beyond that 0.0.20 averages over about 1,000 steps instead of 10,000 (it follows a still-improving model
more closely).

Deliberate differences (none changes what is learned for upstream's configs):
- the distribution shift uses the latent length (see :mod:`stable_audio_ops.training.timesteps`);
- the pretransform always encodes under ``no_grad`` unless its ``enable_grad`` is set (upstream's
  ``autocast() and set_grad_enabled()`` entered only the second context anyway);
- an empty or missing ``padding_mask`` counts as "all real" instead of failing in ``torch.stack``;
- with ``log_loss_info`` the per-noise-level MSE buckets are computed on this rank only.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.losses.core import MSELoss, MultiLoss
from stable_audio_ops.training.ema import EMA
from stable_audio_ops.training.fine_tune import apply_fine_tune_settings
from stable_audio_ops.training.inpainting import random_inpaint_mask
from stable_audio_ops.training.optim import configure_optimizer, resolve_optimizer_configs
from stable_audio_ops.training.timesteps import TIMESTEP_SAMPLERS, TimestepSampler, noise_and_target

VALIDATION_TIMESTEPS = (0.1, 0.3, 0.5, 0.7, 0.9)
INPAINT_MASK_KEYS = ("max_mask_segments", "mask_type_probabilities")
# 0.0.20's diffusion_cond EMA (0.0.19: beta 0.9999); see the module docstring.
EMA_SETTINGS = {"beta": 0.999, "power": 3 / 4, "update_every": 1, "update_after_step": 1}


def default_optimizer_configs(lr: float) -> dict:
    """Plain Adam at ``learning_rate`` (upstream's default when no optimizer_configs are given)."""
    return {"diffusion": {"optimizer": {"type": "Adam", "config": {"lr": lr}}}}


def padding_masks_from_metadata(metadata: Sequence[Mapping[str, Any]], length: int,
                                device: torch.device | str) -> torch.Tensor:
    """``[B, length]`` bool masks (1 = real frames) from per-item ``padding_mask`` entries.

    Accepts a tensor/list (audio_dir, wds) or a one-element list wrapping it (pre_encoded); masks of
    another length (audio-rate masks with latents) are nearest-resampled to ``length``.
    """
    rows = []
    for md in metadata:
        mask = md.get("padding_mask") if isinstance(md, Mapping) else None
        if isinstance(mask, (list, tuple)) and len(mask) == 1 and not isinstance(mask[0], (int, float, bool)):
            mask = mask[0]
        if mask is None or (hasattr(mask, "__len__") and len(mask) == 0):
            rows.append(torch.ones(length))
            continue
        mask = torch.as_tensor(mask, dtype=torch.float32).reshape(-1)
        if mask.numel() != length:
            mask = F.interpolate(mask[None, None], size=length, mode="nearest")[0, 0]
        rows.append(mask)
    return torch.stack(rows).to(device) > 0.5


def diffusion_input(diffusion: nn.Module, reals: torch.Tensor, metadata: Sequence[Mapping[str, Any]],
                    pre_encoded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents of a batch for ``diffusion`` (a ConditionedDiffusionModelWrapper) and their ``[B, T]`` padding
    masks: encoded by the frozen pretransform, or pre-encoded latents divided by its ``scale``. Shared with the
    ARC module, which must see the data exactly as diffusion training does."""
    pretransform = diffusion.pretransform
    x = reals
    if pretransform is not None:
        if pre_encoded:
            scale = getattr(pretransform, "scale", 1.0)
            if scale != 1.0:
                x = x / scale
        else:
            pretransform.train(pretransform.enable_grad)
            with torch.set_grad_enabled(pretransform.enable_grad):
                x = pretransform.encode(reals)
    x = x.float() if x.dtype != next(diffusion.model.parameters()).dtype else x
    return x, padding_masks_from_metadata(metadata, x.shape[-1], x.device)


def ema_or_online_backbone(diffusion: nn.Module, diffusion_ema: EMA | None) -> nn.Module:
    """The backbone to sample with: the EMA copy when EMA is on (as upstream's demos), else ``diffusion.model``.
    Shared with the ARC module, which keeps its student and EMA under the same names."""
    return diffusion_ema.ema_model if diffusion_ema is not None else diffusion.model


def state_dict_with_ema_backbone(diffusion: nn.Module, diffusion_ema: EMA | None) -> dict[str, torch.Tensor]:
    """Unwrapped model weights: ``diffusion``'s state dict with its backbone (``model.*``) replaced by the EMA
    backbone when EMA is on (what unwrapping a diffusion_cond or ARC checkpoint gives)."""
    state = diffusion.state_dict()
    if diffusion_ema is not None:
        for key, value in diffusion_ema.ema_model.state_dict().items():
            state[f"model.{key}"] = value
    return state


class DiffusionCondTrainingModule(pl.LightningModule):
    """Trains a ConditionedDiffusionModelWrapper (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        lr: float | None = None,
        optimizer_configs: dict | None = None,
        use_ema: bool = True,
        log_loss_info: bool = False,
        pre_encoded: bool = False,
        cfg_dropout_prob: float = 0.1,
        timestep_sampler: str = "uniform",
        timestep_sampler_options: Mapping[str, Any] | None = None,
        p_one_shot: float = 0.0,
        mask_padding: bool = False,
        mask_padding_dropout: float = 0.0,
        inpainting: Mapping[str, Any] | None = None,
        validation_timesteps: Sequence[float] = VALIDATION_TIMESTEPS,
        source: str = "<model config>",
        path: str = "training",
        ema_settings: Mapping[str, Any] = EMA_SETTINGS,
        ema_include_online_model: bool = False,
    ):
        super().__init__()
        node = ConfigNode({}, source, path)
        self.diffusion = model
        self.diffusion_objective = model.diffusion_objective
        self._opt_node = resolve_optimizer_configs(optimizer_configs, lr, default_optimizer_configs, "diffusion",
                                                   source, path)
        self.optimizer_configs = self._opt_node.data

        self.diffusion_ema: EMA | None = None
        if use_ema:
            # EMA of the backbone only; diffusion_cond does not store its online model twice (upstream's
            # layout), the unconditional wrapper does (``diffusion_ema.online_model.*``).
            self.diffusion_ema = EMA(self.diffusion.model, ema_model=copy.deepcopy(self.diffusion.model),
                                     include_online_model=ema_include_online_model, **ema_settings)

        self.log_loss_info = bool(log_loss_info)
        self.pre_encoded = bool(pre_encoded)
        if not 0.0 <= cfg_dropout_prob <= 1.0:
            raise node.error(f"must be in [0, 1], got {cfg_dropout_prob}", "cfg_dropout_prob")
        self.cfg_dropout_prob = float(cfg_dropout_prob)
        self.timesteps = TimestepSampler(timestep_sampler, timestep_sampler_options,
                                         dist_shift=getattr(model, "dist_shift", None), p_one_shot=p_one_shot,
                                         source=source, path=path)
        self.mask_padding = bool(mask_padding)
        self.mask_padding_dropout = float(mask_padding_dropout)
        self.inpaint_mask_kwargs: dict[str, Any] | None = None
        if inpainting is not None:
            mask_kwargs = dict(inpainting.get("mask_kwargs", {}) or {})
            unknown = sorted(set(mask_kwargs) - set(INPAINT_MASK_KEYS))
            if unknown:
                raise ConfigNode(mask_kwargs, source, f"{path}.inpainting.mask_kwargs").error(
                    f"unknown key; known keys: {', '.join(INPAINT_MASK_KEYS)}", unknown[0])
            self.inpaint_mask_kwargs = mask_kwargs
        self.validation_timesteps = tuple(float(t) for t in validation_timesteps)
        self.losses = MultiLoss([MSELoss("output", "targets", weight=1.0,
                                         mask_key="padding_mask" if self.mask_padding else None, name="mse_loss")])

    # --- optimizers ---------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer steps: parameters that require gradients (only the adapters under LoRA, so a
        frozen base costs no optimizer state)."""
        params = [p for p in self.diffusion.parameters() if p.requires_grad]
        if not params:
            raise self._opt_node.error("the model has no trainable parameters (everything is frozen)")
        return params

    def configure_optimizers(self):
        return configure_optimizer(self._opt_node.child("diffusion"), self.trainable_parameters())

    # --- one batch -> model inputs ---------------------------------------------------------------
    def diffusion_input(self, reals: torch.Tensor, metadata: Sequence[Mapping[str, Any]]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents to diffuse and their ``[B, T]`` padding masks."""
        return diffusion_input(self.diffusion, reals, metadata, self.pre_encoded)

    def add_inpainting(self, conditioning: dict, x: torch.Tensor, padding_masks: torch.Tensor) -> None:
        if self.inpaint_mask_kwargs is None:
            return
        masked, mask = random_inpaint_mask(x, padding_masks=padding_masks, **self.inpaint_mask_kwargs)
        conditioning["inpaint_mask"] = [mask]
        conditioning["inpaint_masked_input"] = [masked]

    def batch_conditioning(self, metadata: Sequence[Mapping[str, Any]]) -> dict:
        """Conditioning tensors of a batch (empty without a conditioner; the unconditional module has none)."""
        conditioner = getattr(self.diffusion, "conditioner", None)
        return conditioner(metadata, self.device) if conditioner else {}

    def predict(self, noised: torch.Tensor, t: torch.Tensor, conditioning: dict,
                cfg_dropout_prob: float) -> torch.Tensor:
        """One forward pass of the trained model (the unconditional module overrides it: no conditioning)."""
        return self.diffusion(noised, t, cond=conditioning, cfg_dropout_prob=cfg_dropout_prob)

    def training_step(self, batch, batch_idx):
        reals, metadata = batch[0], batch[1]
        if reals.ndim == 4 and reals.shape[0] == 1:  # WebDataset adds a leading batch dim
            reals = reals[0]
        conditioning = self.batch_conditioning(metadata)
        x, padding_masks = self.diffusion_input(reals, metadata)
        use_padding_mask = self.mask_padding and random.random() > self.mask_padding_dropout

        t = self.timesteps(x.shape[0], x.shape[-1], x.device)
        noised, targets = noise_and_target(x, t, self.diffusion_objective)
        self.add_inpainting(conditioning, x, padding_masks)
        output = self.predict(noised, t, conditioning, self.cfg_dropout_prob)

        info = {"output": output.float(), "targets": targets.float(),
                "padding_mask": padding_masks if use_padding_mask else None}
        loss, losses = self.losses(info)

        log = {"train/loss": loss.detach(), "train/std_data": x.detach().std(),
               "train/lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        log.update({f"train/{name}": value.detach() for name, value in losses.items()})
        if self.log_loss_info:
            log.update(loss_by_noise_level(output.detach().float(), targets.float(), t, self.diffusion_objective))
        self.log_dict({"train/loss": log.pop("train/loss")}, prog_bar=True, on_step=True, batch_size=x.shape[0])
        self.log_dict(log, on_step=True, batch_size=x.shape[0])
        return loss

    def on_before_zero_grad(self, *args: Any, **kwargs: Any) -> None:
        """One EMA update per optimizer step, before the step changes the weights (upstream's hook in both
        releases)."""
        if self.diffusion_ema is not None:
            self.diffusion_ema.update()

    # --- validation (only with a validation dataset) ----------------------------------------------
    def validation_step(self, batch, batch_idx):
        reals, metadata = batch[0], batch[1]
        if reals.ndim == 4 and reals.shape[0] == 1:
            reals = reals[0]
        with torch.no_grad():
            conditioning = self.batch_conditioning(metadata)
            x, padding_masks = self.diffusion_input(reals, metadata)
            values = {}
            for value in self.validation_timesteps:
                t = torch.full((x.shape[0],), value, device=x.device)
                noised, targets = noise_and_target(x, t, self.diffusion_objective)
                cond = dict(conditioning)
                self.add_inpainting(cond, x, padding_masks)
                output = self.predict(noised, t, cond, 0.0)
                values[f"val/loss_{value:.1f}"] = F.mse_loss(output.float(), targets.float())
            values["val/avg_loss"] = torch.stack(list(values.values())).mean()
        self.log_dict(values, on_epoch=True, sync_dist=True, batch_size=x.shape[0])
        return values

    # --- helpers for callbacks and export ---------------------------------------------------------
    def inference_backbone(self) -> nn.Module:
        """The backbone to sample with (:func:`ema_or_online_backbone`)."""
        return ema_or_online_backbone(self.diffusion, self.diffusion_ema)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Unwrapped model weights (:func:`state_dict_with_ema_backbone`)."""
        return state_dict_with_ema_backbone(self.diffusion, self.diffusion_ema)


def loss_by_noise_level(output: torch.Tensor, targets: torch.Tensor, t: torch.Tensor, objective: str = "v",
                        buckets: int = 10) -> dict[str, torch.Tensor]:
    """MSE per noise-level bucket (``model/loss_all_{lower edge}``), buckets of the noise weight sigma in
    [0, 1) (v: ``sin(pi t / 2)``, flows: ``t``), as upstream's ``log_loss_info``."""
    if output.dim() != 3:
        return {}
    sigma = torch.sin(t * torch.pi / 2) if objective == "v" else t
    per_item = F.mse_loss(output, targets, reduction="none").mean(dim=(1, 2))
    out = {}
    for i in range(buckets):
        low, high = i / buckets, (i + 1) / buckets
        sel = (sigma >= low) & (sigma < high)
        if sel.any():
            out[f"model/loss_all_{low:.1f}"] = per_item[sel].mean()
    return out


def create_diffusion_cond_training_module(model_config: dict, model: nn.Module,
                                          source: str = "<model config>") -> DiffusionCondTrainingModule:
    """Read ``training`` of a diffusion_cond(_inpaint) config (upstream's defaults) and build the module.

    ``diffusion_cond_inpaint`` always trains with inpainting masks (``training.inpainting.mask_kwargs``
    or upstream's defaults); ``diffusion_cond`` only when ``training.inpainting`` is present.
    ``training.lora`` / ``training.gradient_checkpointing`` are applied to ``model`` first
    (:mod:`stable_audio_ops.training.fine_tune`), so the EMA copy carries the adapters too.
    """
    root = ConfigNode(model_config, source)
    training = root.child("training", {})
    apply_fine_tune_settings(model, training)
    inpainting = training.get("inpainting", "an object", None)
    if inpainting is None and root.get("model_type", "a string") == "diffusion_cond_inpaint":
        inpainting = {}
    training.choice("timestep_sampler", TIMESTEP_SAMPLERS, "uniform")
    return DiffusionCondTrainingModule(
        model,
        lr=training.get("learning_rate", "a positive number", None),
        optimizer_configs=training.get("optimizer_configs", "an object", None),
        use_ema=training.get("use_ema", "a bool", True),
        log_loss_info=training.get("log_loss_info", "a bool", False),
        pre_encoded=training.get("pre_encoded", "a bool", False),
        cfg_dropout_prob=training.get("cfg_dropout_prob", "a non-negative number", 0.1),
        timestep_sampler=training.get("timestep_sampler", "a string", "uniform"),
        timestep_sampler_options=training.get("timestep_sampler_options", "an object", None),
        p_one_shot=training.get("p_one_shot", "a non-negative number", 0.0),
        mask_padding=training.get("mask_padding", "a bool", False),
        mask_padding_dropout=training.get("mask_padding_dropout", "a non-negative number", 0.0),
        inpainting=inpainting,
        source=source,
        path="training",
    )
