"""ARC post-training of a rectified-flow ``diffusion_cond`` model (upstream ``training/arc.py``).

ARC (adversarial relativistic-contrastive) turns a trained rectified-flow DiT into a few-step generator, the
method behind Stable Audio Open Small. The student (initialised from the trained model) no longer regresses a
velocity target; it is trained adversarially so that ONE Euler jump to ``t = 0`` from any noise level gives a
clean sample the discriminator cannot tell from data. Afterwards it generates with the ``pingpong`` sampler
(denoise to ``x0``, re-noise to the next level, repeat for a handful of steps).

Each batch (manual optimisation; even optimizer steps train the generator, odd ones the discriminator):

1. latents ``x`` of the batch (same path as diffusion training), ``t ~ noise_dist.generator``,
   ``x_t = (1 - t) x + t e``; the student predicts ``v`` and ``x0_hat = x_t - t v``;
2. real ``x`` and fake ``x0_hat`` are re-noised to ``t_gan ~ noise_dist.discriminator`` with the SAME noise, and
   scored by the discriminator: a DiT body run up to ``dit_hidden_layer`` and a convolutional head over its
   hidden states (:mod:`stable_audio_ops.models.arc`);
3. generator step: ``w_g * softplus(D(real) - D(fake))`` (only the student is stepped; EMA of its backbone is
   updated first); discriminator step (student under ``no_grad``): ``w_d * softplus(-(D(real) - D(fake)))``
   plus, with ``contrastive``, the same loss between real latents with their own prompts and with the prompts
   rolled by one item (teaches the discriminator to check prompt adherence), plus, with
   ``include_grad_penalties``, approximate R1/R2 penalties ``mean_b sum (D(y + 0.05 n) - D(y))^2`` for real and
   fake inputs, halved. Only the discriminator body and head are stepped.

With ``ode_warmup``, the first ``warmup_steps`` optimizer steps instead regress the student's one-jump estimate
onto the end points of the teacher's DPM-Solver++ trajectories (``sampling_steps`` log-SNR-uniform steps at
CFG ``cfg``, refreshed every ``refresh_rate`` steps), started from their intermediate states.

State-dict layout as upstream's ``ARCTrainingWrapper``: ``diffusion.*``, ``diffusion_ema.*`` (EMA of the
backbone, ``include_online_model=False``), ``teacher_model.*`` (when a teacher is configured),
``discriminator.*`` (a whole model, conditioner and pretransform included) and ``discriminator_head.*``. So an
ARC checkpoint unwraps through the ordinary ``diffusion_cond`` rule into a plain model.

EMA of the student backbone follows the PyPI release 0.0.20 (:data:`EMA_SETTINGS`): ``beta 0.9995, power 3/4,
update_every 1, update_after_step 1`` (0.0.19: ``beta 0.9999``), one update per generator step: on adversarial
steps after the student's forward and before its optimizer step, on ODE warm-up steps after the optimizer step
(both releases place it so). Discriminator steps never update it. The warm-up ``1 - (1 + e) ** -3/4`` only reaches
0.9995 after 25,200 updates, so the two releases give bit-identical EMA weights up to 25,199 generator steps
(about 50,000 optimizer steps); beyond that 0.0.20 averages over about 2,000 generator steps instead of 10,000.

Deliberate differences from upstream (none changes what a correct configuration learns):
- on generator steps the discriminator's parameters do not collect gradients (Lightning's
  ``toggle_optimizer``; upstream computes and then discards them);
- the contrastive term rolls prompts on a copy of the metadata (upstream edits it in place, which gives the
  last item the second item's prompt instead of the first's);
- ``trim_config`` trims the padding masks (used by inpainting masks) together with the latents;
- the teacher stays in eval mode for the whole run (Lightning's ``train()`` would otherwise flip it back).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.models.arc import relativistic_losses
from stable_audio_ops.sampling.samplers import sample_rf_dpmpp
from stable_audio_ops.sampling.schedules import logsnr_uniform_rf_schedule
from stable_audio_ops.training.arc_noise import NoiseDist
from stable_audio_ops.training.diffusion import (
    diffusion_input,
    ema_or_online_backbone,
    state_dict_with_ema_backbone,
)
from stable_audio_ops.training.ema import EMA
from stable_audio_ops.training.inpainting import random_inpaint_mask
from stable_audio_ops.training.optim import create_optimizer_from_config, create_scheduler_from_config
from stable_audio_ops.training.step_logging import log_step

R1_NOISE_STD = 0.05
MIN_TRIM_LENGTH = 128
ROLLED_KEYS = ("prompt",)
PROGRESS_BAR_KEYS = ("train/gen_loss", "train/dis_loss", "train/ode_mse_loss")
# 0.0.20's ARC EMA (0.0.19: beta 0.9999); see the module docstring.
EMA_SETTINGS = {"beta": 0.9995, "power": 3 / 4, "update_every": 1, "update_after_step": 1}


@dataclass(frozen=True)
class ODEWarmup:
    """``training.arc.ode_warmup``: regression onto teacher trajectories before the adversarial phase."""

    warmup_steps: int = 0
    refresh_rate: int = 1
    sampling_steps: int = 20
    cfg: float = 4.0


@dataclass(frozen=True)
class ARCSettings:
    """What ``training`` / ``training.arc`` say about the ARC run (read by :mod:`.arc_factory`)."""

    dit_hidden_layer: int
    gen_weight: float = 1.0
    dis_weight: float = 1.0
    contrastive_weight: float = 1.0
    contrastive: bool = False
    include_grad_penalties: bool = False
    use_ema: bool = True
    pre_encoded: bool = False
    cfg_dropout_prob: float = 0.1
    clip_grad_norm: float = 0.0
    trim_prob: float = 0.0
    inpaint_mask_kwargs: Mapping[str, Any] | None = None
    ode_warmup: ODEWarmup | None = None


def renoise(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(1 - t) x + t noise`` with a per-item ``t``: the rectified-flow interpolation."""
    tt = t.to(x.dtype)[:, None, None]
    return x * (1 - tt) + noise * tt


def jump_to_clean(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """One Euler step from ``t`` to 0 along the predicted velocity: ``x0_hat = x_t - t v``."""
    return x_t - t.to(x_t.dtype)[:, None, None] * v


def rolled_metadata(metadata: Sequence[Mapping[str, Any]], keys: Sequence[str] = ROLLED_KEYS) -> list[dict]:
    """Copies of ``metadata`` where item ``i`` carries item ``i + 1``'s ``keys`` (wrapping around): mismatched
    prompt/audio pairs for the contrastive term."""
    n = len(metadata)
    out = []
    for i, md in enumerate(metadata):
        item = dict(md)
        for key in keys:
            item[key] = metadata[(i + 1) % n][key]
        out.append(item)
    return out


class ARCTrainingModule(pl.LightningModule):
    """Adversarial post-training of ``model`` against ``discriminator`` + ``discriminator_head`` (module docstring)."""

    def __init__(self, model: nn.Module, discriminator: nn.Module, discriminator_head: nn.Module,
                 settings: ARCSettings, optimizer_configs: Mapping[str, Any], gen_noise: NoiseDist,
                 dis_noise: NoiseDist, teacher_model: nn.Module | None = None, source: str = "<model config>"):
        super().__init__()
        self.automatic_optimization = False
        self.diffusion = model
        self.diffusion_objective = model.diffusion_objective
        self.teacher_model = teacher_model
        if teacher_model is not None:
            teacher_model.eval().requires_grad_(False)
        self.discriminator = discriminator
        self.discriminator_head = discriminator_head
        self.settings = settings
        self.gen_noise, self.dis_noise = gen_noise, dis_noise
        self.optimizer_configs = dict(optimizer_configs)
        self._opt_node = ConfigNode(self.optimizer_configs, source, "training.optimizer_configs")
        self.diffusion_ema: EMA | None = None
        if settings.use_ema:
            self.diffusion_ema = EMA(self.diffusion.model, ema_model=copy.deepcopy(self.diffusion.model),
                                     include_online_model=False, **EMA_SETTINGS)
        self._ode: dict[str, Any] | None = None  # the teacher trajectories of ode_warmup

    def train(self, mode: bool = True) -> ARCTrainingModule:
        super().train(mode)
        if self.teacher_model is not None:
            self.teacher_model.eval()
        return self

    # --- optimizers ---------------------------------------------------------------------------
    def discriminator_parameters(self) -> list[nn.Parameter]:
        """What the discriminator optimizer steps: the head, then the discriminator model (body, conditioner)."""
        return [p for p in [*self.discriminator_head.parameters(), *self.discriminator.parameters()]
                if p.requires_grad]

    def configure_optimizers(self):
        def build(name: str, params: list[nn.Parameter]) -> dict:
            node = self._opt_node.child(name)
            entry: dict[str, Any] = {"optimizer": create_optimizer_from_config(node.child("optimizer"), params)}
            if node.has("scheduler"):
                scheduler = create_scheduler_from_config(node.child("scheduler"), entry["optimizer"])
                entry["lr_scheduler"] = {"scheduler": scheduler, "interval": "step"}
            return entry

        student = [p for p in self.diffusion.parameters() if p.requires_grad]
        return [build("diffusion", student), build("discriminator", self.discriminator_parameters())]

    def _optimizers_and_schedulers(self):
        opt_gen, opt_disc = self.optimizers()
        schedulers = self.lr_schedulers()
        if schedulers is None:
            schedulers = []
        elif not isinstance(schedulers, (list, tuple)):
            schedulers = [schedulers]
        by_optimizer = {id(s.optimizer): s for s in schedulers}
        return (opt_gen, opt_disc, by_optimizer.get(id(opt_gen.optimizer)),
                by_optimizer.get(id(opt_disc.optimizer)))

    # --- pieces of a step ---------------------------------------------------------------------
    def score(self, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, Any]) -> torch.Tensor:
        """Discriminator scores ``[B, 1, T']``: DiT hidden states after ``dit_hidden_layer``, then the head."""
        hidden = self.discriminator(x, t, cond=cond, cfg_scale=1.0, exit_layer_ix=self.settings.dit_hidden_layer)
        return self.discriminator_head(hidden.transpose(1, 2))

    def inpaint_inputs(self, x: torch.Tensor, padding_masks: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Inpainting conditioning for this batch (empty without inpainting), shared by every model of the step."""
        if self.settings.inpaint_mask_kwargs is None:
            return {}
        masked, mask = random_inpaint_mask(x, padding_masks=padding_masks, **self.settings.inpaint_mask_kwargs)
        return {"inpaint_mask": [mask], "inpaint_masked_input": [masked]}

    def maybe_trim(self, x: torch.Tensor, padding_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``trim_config``: with probability ``trim_prob`` cut the batch to a random item's real length (>= 128)."""
        if self.settings.trim_prob <= 0 or random.random() >= self.settings.trim_prob:
            return x, padding_masks
        lengths = (padding_masks.sum(dim=1) - 1).tolist()
        length = max(int(random.choice(lengths)), MIN_TRIM_LENGTH)
        return x[:, :, :length], padding_masks[:, :length]

    def ode_warmup_loss(self, x: torch.Tensor, metadata: Sequence[Mapping[str, Any]],
                        padding_masks: torch.Tensor) -> torch.Tensor:
        """MSE between the student's one-jump estimate from a teacher trajectory state and its end point."""
        warmup = self.settings.ode_warmup
        assert warmup is not None and self.teacher_model is not None  # the factory checks both
        if self._ode is None or self.global_step % warmup.refresh_rate == 0:
            inpaint = self.inpaint_inputs(x, padding_masks)
            teacher_cond = {**self.teacher_model.conditioner(list(metadata), self.device), **inpaint}
            ts = logsnr_uniform_rf_schedule(warmup.sampling_steps, device=x.device)
            states: list[torch.Tensor] = []
            teacher = self.teacher_model

            def velocity(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return teacher(x_t, t, cond=teacher_cond, cfg_scale=warmup.cfg)

            target = sample_rf_dpmpp(velocity, torch.randn_like(x), ts,
                                     callback=lambda info: states.append(info["x"]))
            self._ode = {"x": torch.stack(states), "t": ts[:-1], "target": target, "metadata": list(metadata),
                         "inpaint": inpaint}
        ode = self._ode
        cond = {**self.diffusion.conditioner(ode["metadata"], self.device), **ode["inpaint"]}
        batch = ode["target"].shape[0]
        ixs = torch.randint(0, ode["t"].shape[0], (batch,), device=ode["t"].device)
        t = ode["t"][ixs]
        x_t = ode["x"][ixs, torch.arange(batch, device=ixs.device)]
        v = self.diffusion(x_t, t, cond=cond, cfg_dropout_prob=self.settings.cfg_dropout_prob)
        return F.mse_loss(jump_to_clean(x_t, v, t).float(), ode["target"].float())

    # --- the step -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        reals, metadata = batch[0], list(batch[1])
        if reals.ndim == 4 and reals.shape[0] == 1:  # WebDataset adds a leading batch dim
            reals = reals[0]
        step = int(self.global_step)
        opt_gen, opt_disc, sched_gen, sched_disc = self._optimizers_and_schedulers()
        x, padding_masks = diffusion_input(self.diffusion, reals, metadata, self.settings.pre_encoded)

        warmup = self.settings.ode_warmup
        if warmup is not None and step < warmup.warmup_steps:
            with self.toggled_optimizer(opt_gen):
                loss = self.ode_warmup_loss(x, metadata, padding_masks)
                self._generator_update(loss, opt_gen, sched_gen, ema_after_step=True)
            log_step(self, {"train/ode_mse_loss": loss.detach()}, step + 1, x.shape[0], PROGRESS_BAR_KEYS)
            return loss.detach()

        x, padding_masks = self.maybe_trim(x, padding_masks)
        train_gen = step % 2 == 0
        # Only the stepped side's parameters collect gradients (conditioners included).
        with self.toggled_optimizer(opt_gen if train_gen else opt_disc):
            inpaint = self.inpaint_inputs(x, padding_masks)
            cond = {**self.diffusion.conditioner(metadata, self.device), **inpaint}
            disc_cond = {**self.discriminator.conditioner(metadata, self.device), **inpaint}
            t = self.gen_noise(x.shape[0], x.device)
            x_t = renoise(x, torch.randn_like(x), t)
            t_gan = self.dis_noise(x.shape[0], x.device)
            gan_noise = torch.randn_like(x)
            if train_gen:
                log = self._generator_step(x, x_t, t, t_gan, gan_noise, cond, disc_cond, opt_gen, sched_gen)
            else:
                log = self._discriminator_step(x, x_t, t, t_gan, gan_noise, cond, disc_cond, metadata, inpaint,
                                               opt_disc, sched_disc)
        log["train/std_data"] = x.detach().std()
        log_step(self, log, step + 1, x.shape[0], PROGRESS_BAR_KEYS)
        return log.get("train/gen_loss", log.get("train/discriminator_loss"))

    def _generator_update(self, loss: torch.Tensor, opt_gen, sched_gen, ema_after_step: bool = False) -> None:
        """One student step with its EMA update: before the step on adversarial steps, after it on ODE warm-up
        steps (``ema_after_step``), where upstream updates it; the EMA copy therefore lags one step behind in the
        adversarial phase only."""
        if self.diffusion_ema is not None and not ema_after_step:
            self.diffusion_ema.update()
        opt_gen.zero_grad()
        self.manual_backward(loss)
        if self.settings.clip_grad_norm > 0.0:
            torch.nn.utils.clip_grad_norm_(self.diffusion.parameters(), self.settings.clip_grad_norm)
        opt_gen.step()
        if sched_gen is not None:
            sched_gen.step()
        if self.diffusion_ema is not None and ema_after_step:
            self.diffusion_ema.update()

    def _generator_step(self, x, x_t, t, t_gan, gan_noise, cond, disc_cond, opt_gen, sched_gen) -> dict:
        v = self.diffusion(x_t, t, cond=cond, cfg_dropout_prob=self.settings.cfg_dropout_prob)
        fake = jump_to_clean(x_t, v, t)
        fake_scores = self.score(renoise(fake, gan_noise, t_gan), t_gan, disc_cond)
        real_scores = self.score(renoise(x, gan_noise, t_gan), t_gan, disc_cond)
        _, adv = relativistic_losses(real_scores.float(), fake_scores.float())
        loss = adv * self.settings.gen_weight
        self._generator_update(loss, opt_gen, sched_gen)
        return {"train/gen_loss": loss.detach(), "train/adv_loss": adv.detach(),
                "train/gen_lr": opt_gen.param_groups[0]["lr"],
                "train/gen_disc_scores_mean": fake_scores.detach().mean(),
                "train/gen_disc_scores_std": fake_scores.detach().std()}

    def _discriminator_step(self, x, x_t, t, t_gan, gan_noise, cond, disc_cond, metadata, inpaint,
                            opt_disc, sched_disc) -> dict:
        with torch.no_grad():
            fake = jump_to_clean(x_t, self.diffusion(x_t, t, cond=cond), t)
        real_in, fake_in = renoise(x, gan_noise, t_gan), renoise(fake, gan_noise, t_gan)
        real_scores = self.score(real_in, t_gan, disc_cond)
        fake_scores = self.score(fake_in, t_gan, disc_cond)
        dis, _ = relativistic_losses(real_scores.float(), fake_scores.float())
        dis = dis * self.settings.dis_weight
        loss = dis
        log: dict[str, Any] = {}
        if self.settings.include_grad_penalties:
            r1 = self._penalty(real_in, real_scores, t_gan, disc_cond)
            r2 = self._penalty(fake_in, fake_scores, t_gan, disc_cond)
            penalty = (r1 + r2) / 2
            loss = loss + penalty
            log.update({"train/r1_penalty": r1.detach(), "train/r2_penalty": r2.detach(),
                        "train/grad_penalty_loss": penalty.detach()})
        if self.settings.contrastive:
            rolled = {**self.discriminator.conditioner(rolled_metadata(metadata), self.device), **inpaint}
            rolled_scores = self.score(real_in, t_gan, rolled)
            contrastive, _ = relativistic_losses(real_scores.float(), rolled_scores.float())
            contrastive = contrastive * self.settings.dis_weight * self.settings.contrastive_weight
            loss = loss + contrastive
            log["train/contrastive_loss_dis"] = contrastive.detach()
        opt_disc.zero_grad()
        self.manual_backward(loss)
        if self.settings.clip_grad_norm > 0.0:
            torch.nn.utils.clip_grad_norm_(self.discriminator_parameters(), self.settings.clip_grad_norm)
        opt_disc.step()
        if sched_disc is not None:
            sched_disc.step()
        real_scores, fake_scores = real_scores.detach(), fake_scores.detach()
        log.update({"train/dis_loss": dis.detach(), "train/discriminator_loss": loss.detach(),
                    "train/disc_lr": opt_disc.param_groups[0]["lr"],
                    "train/disc_real_scores_mean": real_scores.mean(), "train/disc_fake_scores_mean": fake_scores.mean(),
                    "train/disc_real_scores_std": real_scores.std(), "train/disc_fake_scores_std": fake_scores.std(),
                    "train/disc_margin": (real_scores - fake_scores).mean()})
        return log

    def _penalty(self, inputs: torch.Tensor, scores: torch.Tensor, t: torch.Tensor,
                 cond: Mapping[str, Any]) -> torch.Tensor:
        """Approximate R1/R2: how much the scores move under small input noise (a finite-difference gradient
        norm that needs no double backward)."""
        noised_scores = self.score(inputs + R1_NOISE_STD * torch.randn_like(inputs), t, cond)
        return ((noised_scores.float() - scores.float()) ** 2).sum(dim=[1, 2]).mean()

    # --- helpers for callbacks and export ---------------------------------------------------------
    def inference_backbone(self) -> nn.Module:
        """The student backbone to sample with: the EMA copy when EMA is on (what unwrapping exports)."""
        return ema_or_online_backbone(self.diffusion, self.diffusion_ema)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Unwrapped student weights, as diffusion training exports them (:func:`state_dict_with_ema_backbone`)."""
        return state_dict_with_ema_backbone(self.diffusion, self.diffusion_ema)


__all__ = ["ARCSettings", "ARCTrainingModule", "ODEWarmup", "jump_to_clean", "renoise", "rolled_metadata"]
