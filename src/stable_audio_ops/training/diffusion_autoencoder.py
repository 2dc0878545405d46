"""Lightning module that trains ``diffusion_autoencoder`` models like 0.0.20's ``DiffusionAutoencoderTrainingWrapper``.

One step: encode the audio (encoder + bottleneck, with its info), nearest-upsample the latents to the audio length,
draw ``t`` from a scrambled Sobol sequence, noise the audio with the v-objective and regress ``v`` with the
U-Net conditioned on the latents by input concatenation (:meth:`DiffusionAutoencoder.diffusion_conditioning`).
Loss: MSE on ``v`` + the bottleneck's regularisers at their default weights
(:func:`~stable_audio_ops.training.autoencoder.bottleneck_loss_terms`, e.g. KL 1e-6 for ``vae``) + with
``training.use_reconstruction_loss`` 0.1 x multi-resolution STFT between the audio and the one-step prediction
``x0 = alpha x_t - sigma v`` (sum-and-difference for stereo). Adam at ``training.learning_rate``. The whole
autoencoder has an EMA (``beta 0.9999, power 3/4, update_every 1, update_after_step 1``, updated in
``on_before_zero_grad``), which is what gets exported.

State-dict layout is upstream's: ``diffae.*``, ``diffae_ema.ema_model.*`` (no online copy), ``diffae_ema.initted``,
``diffae_ema.step`` and ``losses.losses.{i}.*``; the training timestep sampler and ``noise_and_target`` are the
diffusion_cond module's (:mod:`stable_audio_ops.training.timesteps`).

Differences from 0.0.20: with ``use_reconstruction_loss`` and no pretransform (this version builds no
diffusion_autoencoder with one) the STFT term compares the prediction itself with the audio; upstream only sets
the predicted audio when a pretransform exists and so fails on a missing key. ``training.use_ema: false`` (an
addition; upstream always averages) trains without EMA and exports the online weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.losses.core import AuralossLoss, MSELoss, MultiLoss
from stable_audio_ops.losses.spectral import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss
from stable_audio_ops.models.diffusion_autoencoder import DiffusionAutoencoder
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.autoencoder import bottleneck_loss_terms
from stable_audio_ops.training.diffusion import VALIDATION_TIMESTEPS, default_optimizer_configs
from stable_audio_ops.training.ema import EMA
from stable_audio_ops.training.optim import create_optimizer_from_config
from stable_audio_ops.training.timesteps import SobolUniform, noise_and_target

log = logging.getLogger(__name__)

# 0.0.20's DiffusionAutoencoderTrainingWrapper EMA.
DIFFAE_EMA_SETTINGS = {"beta": 0.9999, "power": 3 / 4, "update_every": 1, "update_after_step": 1}
RECONSTRUCTION_SCALES = (2048, 1024, 512, 256, 128, 64, 32)
RECONSTRUCTION_WEIGHT = 0.1


def reconstruction_loss(sample_rate: int, channels: int) -> AuralossLoss:
    """0.0.20's optional reconstruction term: perceptually weighted MRSTFT over 7 scales (hop = 25 %) at 0.1."""
    kwargs = {"fft_sizes": list(RECONSTRUCTION_SCALES), "hop_sizes": [s // 4 for s in RECONSTRUCTION_SCALES],
              "win_lengths": list(RECONSTRUCTION_SCALES), "perceptual_weighting": True, "sample_rate": sample_rate}
    module = SumAndDifferenceSTFTLoss(**kwargs) if channels == 2 else MultiResolutionSTFTLoss(**kwargs)
    return AuralossLoss(module, "audio_reals", "audio_pred", name="mrstft_loss", weight=RECONSTRUCTION_WEIGHT)


class DiffusionAutoencoderTrainingModule(pl.LightningModule):
    """Trains a :class:`DiffusionAutoencoder` (see the module docstring)."""

    def __init__(self, model: DiffusionAutoencoder, lr: float | None, ema_copy: nn.Module | None = None,
                 use_ema: bool = True, use_reconstruction_loss: bool = False,
                 validation_timesteps: Sequence[float] = VALIDATION_TIMESTEPS, source: str = "<model config>",
                 path: str = "training"):
        super().__init__()
        node = ConfigNode({}, source, path)
        if lr is None:
            raise node.error("missing required key (expected a positive number)", "learning_rate")
        self.diffae = model
        self.diffae_ema: EMA | None = None
        if use_ema:
            self.diffae_ema = EMA(model, ema_model=ema_copy, include_online_model=False, **DIFFAE_EMA_SETTINGS)
        self.optimizer_config = default_optimizer_configs(lr)["diffusion"]["optimizer"]
        self.timesteps = SobolUniform()
        self.use_reconstruction_loss = bool(use_reconstruction_loss)
        terms = [MSELoss("v", "targets", weight=1.0, name="mse_loss"),
                 *bottleneck_loss_terms(model.bottleneck, ConfigNode({}, source, f"{path}.loss_configs"))]
        if self.use_reconstruction_loss:
            terms.append(reconstruction_loss(model.sample_rate, model.io_channels))
        self.losses = MultiLoss(terms)
        self.validation_timesteps = tuple(float(t) for t in validation_timesteps)

    def configure_optimizers(self):
        return create_optimizer_from_config(self.optimizer_config,
                                            [p for p in self.diffae.parameters() if p.requires_grad])

    def conditioning(self, reals: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """Latents of ``reals`` (with the bottleneck's info) upsampled to the audio length, as upstream's step:
        the encoder output as the bottleneck returns it, without ``bottleneck.decode``."""
        latents, info = self.diffae.encode(reals, return_info=True)
        info["latents"] = latents
        if latents.shape[-1] != reals.shape[-1]:
            latents = F.interpolate(latents, size=reals.shape[-1], mode="nearest")
        return latents, info

    def training_step(self, batch, batch_idx):
        reals = batch[0] if isinstance(batch, (list, tuple)) else batch
        if reals.ndim == 4 and reals.shape[0] == 1:  # WebDataset adds a leading batch dim
            reals = reals[0]
        cond, info = self.conditioning(reals)
        t = self.timesteps(reals.shape[0], reals.device)
        noise = torch.randn_like(reals)
        noised, targets = noise_and_target(reals, t, "v", noise=noise)
        v = self.diffae.diffusion(noised, t, input_concat_cond=cond)
        info.update({"v": v.float(), "targets": targets.float(), "audio_reals": reals})
        if self.use_reconstruction_loss:
            angle = t[:, None, None] * torch.pi / 2
            info["audio_pred"] = noised * torch.cos(angle) - v * torch.sin(angle)
        loss, losses = self.losses(info)

        values = {"train/std_data": reals.detach().std(), "train/latent_std": info["latents"].detach().std()}
        values.update({f"train/{name}": value.detach() for name, value in losses.items()})
        self.log_dict({"train/loss": loss.detach()}, prog_bar=True, on_step=True, batch_size=reals.shape[0])
        self.log_dict(values, on_step=True, batch_size=reals.shape[0])
        return loss

    def on_before_zero_grad(self, *args: Any, **kwargs: Any) -> None:
        """One EMA update per optimizer step, before the step changes the weights (upstream's hook)."""
        if self.diffae_ema is not None:
            self.diffae_ema.update()

    def validation_step(self, batch, batch_idx):
        """v-MSE at fixed noise levels (only with a validation dataset; upstream has no validation here)."""
        reals = batch[0] if isinstance(batch, (list, tuple)) else batch
        if reals.ndim == 4 and reals.shape[0] == 1:
            reals = reals[0]
        with torch.no_grad():
            cond, _ = self.conditioning(reals)
            values = {}
            for value in self.validation_timesteps:
                t = torch.full((reals.shape[0],), value, device=reals.device)
                noised, targets = noise_and_target(reals, t, "v")
                v = self.diffae.diffusion(noised, t, input_concat_cond=cond)
                values[f"val/loss_{value:.1f}"] = F.mse_loss(v.float(), targets.float())
            values["val/avg_loss"] = torch.stack(list(values.values())).mean()
        self.log_dict(values, on_epoch=True, sync_dist=True, batch_size=reals.shape[0])
        return values

    def inference_model(self) -> DiffusionAutoencoder:
        """The autoencoder to encode/decode with: the EMA copy when EMA is on (what upstream exports)."""
        return self.diffae_ema.ema_model if self.diffae_ema is not None else self.diffae

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Unwrapped model weights (upstream's ``export_model``: the EMA model)."""
        return self.inference_model().state_dict()


def create_diffusion_autoencoder_training_module(model_config: Mapping[str, Any], model: nn.Module,
                                                 source: str = "<model config>"
                                                 ) -> DiffusionAutoencoderTrainingModule:
    """Read ``training`` of a diffusion_autoencoder config (0.0.20's keys) and build the module.

    The EMA copy is a freshly built model loaded with ``model``'s weights, as upstream's factory does (a
    ``deepcopy`` of weight-normed modules can fail)."""
    root = ConfigNode(dict(model_config), source)
    training = root.child("training", {})
    use_ema = training.get("use_ema", "a bool", True)
    ema_copy = None
    if use_ema:
        ema_copy = create_model_from_config(dict(model_config), source=source)
        ema_copy.load_state_dict(model.state_dict())
    return DiffusionAutoencoderTrainingModule(
        model,
        lr=training.get("learning_rate", "a positive number", None),
        ema_copy=ema_copy,
        use_ema=use_ema,
        use_reconstruction_loss=training.get("use_reconstruction_loss", "a bool", False),
        source=source,
        path="training",
    )


__all__ = ["DIFFAE_EMA_SETTINGS", "DiffusionAutoencoderTrainingModule", "create_diffusion_autoencoder_training_module",
           "reconstruction_loss"]
