"""Lightning module that trains an :class:`AudioAutoencoder` the way stable-audio-tools does.

Semantics follow upstream's ``AutoencoderTrainingWrapper`` (manual optimization, GAN alternation,
loss assembly, EMA, logged names) and so does the state-dict layout, so upstream training checkpoints
load strictly and ours load in upstream:
``autoencoder.*``, ``autoencoder_ema.{ema_model,online_model}.*``, ``autoencoder_ema.{initted,step}``,
``discriminator.*``, ``losses_gen.losses.{i}.weight``, ``losses_disc.losses.0.weight``.

Step schedule: odd global steps train the discriminator, even steps the generator (with
``warmup_mode="adv"``, the default, the discriminator also trains during warm-up; before
``warmup_steps`` the adversarial and feature-matching terms are 0). Differences from upstream, none of
which change the numbers that are trained:
- on discriminator steps the autoencoder runs under ``no_grad`` (upstream builds and back-propagates
  through its graph, then throws those gradients away);
- losses are computed in float32 with autocast off, so ``bf16-mixed``/``16-mixed`` never feed
  half-precision audio into STFTs (CPU STFT has no bf16 kernel);
- a scheduler may be configured for only one of the two optimizers (upstream needs both or none).

Training keys of 0.0.20 beyond the basics, each in its own module where it has code of its own:
``teacher_model``/``teacher_model_ckpt`` (:mod:`.distillation`), ``eval_loss_configs``
(:mod:`.eval_losses`), ``num_synthetic_chirps`` (:mod:`.chirps`) and ``decoder_finetune`` (only the
decoder and pretransform are optimised; the encoder runs without gradients). ``decoder_loss`` is refused:
it asks the decoder for a generative loss of its own, which no decoder of 0.0.20 (or of this package) has,
so 0.0.20 fails on it at the first step. docs/autoencoder-training.md has a paragraph per key.

Two speed keys this package adds (upstream has neither; it always checkpoints and runs Snake eagerly):
``gradient_checkpointing`` (default true, upstream's behaviour; false keeps the Oobleck residual units'
activations instead of recomputing them: same gradients, ~20 % less time per step, more memory) and
``compile_snake`` (default false; true runs Snake through ``torch.compile``: ~25 % less time per step on
CPU, outputs within ~1e-7 of eager, needs a C++ compiler and ~10 s of compilation).

Where 0.0.20 (PyPI) differs from 0.0.19 / GitHub 50049e3, this module follows 0.0.20:
- stereo spectral terms: 0.0.19 added ``stft_loss_left`` and ``stft_loss_right`` (MRSTFT of each channel,
  weight ``mrstft / 2`` each); 0.0.20 adds one ``lr_stft_loss``, the MRSTFT of the two-channel signal,
  weight ``mrstft``. Its vendored STFT loss folds channels into the batch and reduces per signal, so the
  term is the mean of the two channel losses and the summed loss is the same number as 0.0.19's; what
  changes is the logged name (``train/lr_stft_loss``) and the checkpoint (one ``losses_gen`` weight buffer
  instead of two, so later terms shift index). Mono runs are unchanged (one ``mrstft_loss``).
- EMA: 0.0.19 updated before every generator step with ``beta 0.9999, update_after_step 1``; 0.0.20 updates
  after the generator's optimizer step, only when the global step (counted after that optimizer step)
  plus one is a multiple of :data:`EMA_EVERY_GLOBAL_STEPS`, with ``beta 0.999, power 3/4,
  update_after_step 2000`` (:data:`EMA_SETTINGS`). The EMA's own ``step`` counts those calls, so the copy
  follows the online weights for the first 2001 updates (about 20 000 global steps) before averaging.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.losses.mel import MultiScaleMelLoss
from stable_audio_ops.models.blocks import use_compiled_snake
from stable_audio_ops.models.bottlenecks import VAEBottleneck, WassersteinBottleneck
from stable_audio_ops.models.discrete_bottlenecks import (
    DACRVQBottleneck,
    DACRVQVAEBottleneck,
    RVQBottleneck,
    RVQVAEBottleneck,
)
from stable_audio_ops.models.discriminators import create_discriminator_from_config
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.oobleck import set_residual_checkpointing
from stable_audio_ops.training.chirps import append_synthetic_chirps, chirp_band
from stable_audio_ops.training.distillation import (
    add_teacher_outputs,
    build_teacher,
    cross_gan_losses,
    distillation_loss_terms,
)
from stable_audio_ops.training.ema import EMA
from stable_audio_ops.training.eval_losses import create_eval_losses, eval_loss_values
from stable_audio_ops.training.losses.core import AuralossLoss, L1Loss, MSELoss, MultiLoss, ValueLoss
from stable_audio_ops.training.losses.spectral import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss
from stable_audio_ops.training.optim import create_optimizer_from_config, create_scheduler_from_config
from stable_audio_ops.training.step_logging import log_step

WARMUP_MODES = ("adv", "full")
# Shown on the progress bar (everything is logged; the bar keeps to what fits on one line).
PROGRESS_BAR_KEYS = ("train/loss", "train/mrstft_loss", "train/discriminator_loss")
# 0.0.20's autoencoder EMA (see the module docstring for how it differs from 0.0.19).
EMA_SETTINGS = {"beta": 0.999, "power": 3 / 4, "update_every": 1, "update_after_step": 2000}
EMA_EVERY_GLOBAL_STEPS = 10


def is_ema_update_step(global_step_after: int) -> bool:
    """Whether 0.0.20 updates the EMA after a generator step that left ``global_step`` at ``global_step_after``.

    0.0.20 tests ``(self.global_step + 1) % 10 == 0`` right after ``opt_gen.step()``, which Lightning has
    already counted; with a discriminator (generators on even steps) that is every 10 global steps, 5 of them
    generator steps.
    """
    return (global_step_after + 1) % EMA_EVERY_GLOBAL_STEPS == 0


def default_loss_config() -> dict:
    """Upstream's loss config when ``training.loss_configs`` is absent (7 STFT scales, 75 % overlap)."""
    scales = [2048, 1024, 512, 256, 128, 64, 32]
    hops = [s // 4 for s in scales]
    return {
        "discriminator": {
            "type": "encodec",
            "config": {"n_ffts": scales, "hop_lengths": hops, "win_lengths": scales, "filters": 32},
            "weights": {"adversarial": 0.1, "feature_matching": 5.0},
        },
        "spectral": {
            "type": "mrstft",
            "config": {"fft_sizes": scales, "hop_sizes": hops, "win_lengths": scales, "perceptual_weighting": True},
            "weights": {"mrstft": 1.0},
        },
        "time": {"type": "l1", "config": {}, "weights": {"l1": 0.0}},
    }


def default_optimizer_configs(lr: float) -> dict:
    """AdamW with betas (0.8, 0.99) for both networks (upstream's default)."""
    adamw = {"type": "AdamW", "config": {"lr": lr, "betas": [0.8, 0.99]}}
    return {"autoencoder": {"optimizer": copy.deepcopy(adamw)}, "discriminator": {"optimizer": copy.deepcopy(adamw)}}


def trim_to_shortest(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the longer of two ``[B, C, T]`` signals to the shorter one (decoder post-padding)."""
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n], b[..., :n]


def bottleneck_loss_terms(bottleneck: nn.Module | None, loss_node: ConfigNode) -> list[nn.Module]:
    """Regularisation terms a bottleneck asks for, in upstream's order (it fixes the state-dict keys
    ``losses_gen.losses.{i}.weight``): KL for the VAE kinds (``bottleneck.weights.kl``, default 1e-6),
    the commitment loss of rvq/rvq_vae (x1), DAC's codebook (x1) and commitment (x0.25) losses, and the
    wasserstein MMD (``bottleneck.weights.mmd``, default 100)."""
    weights = loss_node.child("bottleneck", {}).child("weights", {})
    terms: list[nn.Module] = []
    if isinstance(bottleneck, (VAEBottleneck, RVQVAEBottleneck, DACRVQVAEBottleneck)):
        terms.append(ValueLoss(key="kl", weight=weights.get("kl", "a number", 1e-6), name="kl_loss"))
    if isinstance(bottleneck, RVQBottleneck):  # rvq_vae too (a subclass)
        terms.append(ValueLoss(key="quantizer_loss", weight=1.0, name="quantizer_loss"))
    if isinstance(bottleneck, DACRVQBottleneck) and not bottleneck.quantize_on_decode:
        terms += [ValueLoss(key="vq/codebook_loss", weight=1.0, name="codebook_loss"),
                  ValueLoss(key="vq/commitment_loss", weight=0.25, name="commitment_loss")]
    if isinstance(bottleneck, WassersteinBottleneck):
        terms.append(ValueLoss(key="mmd", weight=weights.get("mmd", "a number", 100.0), name="mmd_loss"))
    return terms


def mel_loss_terms(loss_node: ConfigNode, sample_rate: int) -> list[nn.Module]:
    """The optional ``loss_configs.mel`` term (an extension: 0.0.20 has none): multi-scale log-mel L1.

    ``{"type": "multiscale_mel", "config": {...MultiScaleMelLoss args}, "weights": {"mel": w},
    "start_step": n}``. It holds no weights of its own and comes after every 0.0.20 term, so upstream configs keep
    their state-dict keys. ``start_step`` (default 0) switches it on from that generator step: the demo recipe
    learns pitch with the spectral loss first and timbre with this term afterwards (docs/demo-recipe.md).
    """
    if not loss_node.has("mel"):
        return []
    mel = loss_node.child("mel")
    kind = mel.get("type", "a string", "multiscale_mel")
    if kind != "multiscale_mel":
        raise mel.error(f"unknown value {kind!r}; known: multiscale_mel", "type")
    try:
        module = MultiScaleMelLoss(sample_rate=sample_rate, **dict(mel.get("config", "an object", {})))
    except (TypeError, ValueError) as exc:
        raise mel.error(f"bad mel loss config: {exc}", "config") from exc
    return [AuralossLoss(module, input_key="decoded", target_key="reals", name="mel_loss",
                         weight=mel.child("weights").get("mel", "a number"), decay=mel.get("decay", "a number", 1.0),
                         start_step=mel.get("start_step", "a non-negative int", 0))]


def _audio_from_batch(batch: Any) -> torch.Tensor:
    reals = batch[0] if isinstance(batch, (list, tuple)) else batch
    if reals.ndim == 4 and reals.shape[0] == 1:  # WebDataset adds a leading batch dim
        reals = reals[0]
    if reals.ndim == 2:
        reals = reals.unsqueeze(1)
    return reals


class AutoencoderTrainingModule(pl.LightningModule):
    """GAN + spectral training of an autoencoder (see module docstring for the schedule)."""

    def __init__(
        self,
        autoencoder: nn.Module,
        sample_rate: int = 48000,
        loss_config: dict | None = None,
        optimizer_configs: dict | None = None,
        lr: float | None = 1e-4,
        warmup_steps: int = 0,
        warmup_mode: str = "adv",
        encoder_freeze_on_warmup: bool = False,
        use_ema: bool = False,
        ema_copy: nn.Module | None = None,
        force_input_mono: bool = False,
        latent_mask_ratio: float = 0.0,
        clip_grad_norm: float = 0.0,
        teacher_model: nn.Module | None = None,
        eval_loss_config: dict | None = None,
        decoder_finetune: bool = False,
        num_synthetic_chirps: int = 0,
        source: str = "<model config>",
        path: str = "training",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.autoencoder = autoencoder
        self.sample_rate = int(sample_rate)
        self.warmup_steps = int(warmup_steps)
        if warmup_mode not in WARMUP_MODES:
            raise ConfigNode({}, source, path).error(f"unknown value {warmup_mode!r}; known: adv, full", "warmup_mode")
        self.warmup_mode = warmup_mode
        self.encoder_freeze_on_warmup = bool(encoder_freeze_on_warmup)
        self.force_input_mono = bool(force_input_mono)
        self.latent_mask_ratio = float(latent_mask_ratio)
        self.clip_grad_norm = float(clip_grad_norm)
        self.lr = lr
        self.teacher_model = teacher_model
        self.decoder_finetune = bool(decoder_finetune)
        self.num_synthetic_chirps = int(num_synthetic_chirps)
        if self.num_synthetic_chirps > 0:
            try:
                chirp_band(sample_rate)
            except ValueError as exc:
                raise ConfigNode({}, source, path).error(str(exc), "num_synthetic_chirps") from exc

        if optimizer_configs is None:
            if lr is None:
                raise ConfigNode({}, source, path).error(
                    "missing required key (expected a number): set training.learning_rate or "
                    "training.optimizer_configs", "learning_rate"
                )
            optimizer_configs = default_optimizer_configs(lr)
        self.optimizer_configs = optimizer_configs
        self._opt_node = ConfigNode(optimizer_configs, source, f"{path}.optimizer_configs")

        self.loss_config = loss_config if loss_config is not None else default_loss_config()
        loss_node = ConfigNode(self.loss_config, source, f"{path}.loss_configs")
        spectral = loss_node.child("spectral")
        time = loss_node.child("time")
        stft_args = dict(spectral.get("config", "an object", {}))
        stft_decay = spectral.get("decay", "a number", 1.0)
        mrstft_weight = spectral.child("weights").get("mrstft", "a number")
        out_channels = int(autoencoder.out_channels)

        try:
            if out_channels == 2:
                self.sdstft = SumAndDifferenceSTFTLoss(sample_rate=sample_rate, **stft_args)
                self.lrstft = MultiResolutionSTFTLoss(sample_rate=sample_rate, **stft_args)
            else:
                self.sdstft = MultiResolutionSTFTLoss(sample_rate=sample_rate, **stft_args)
                self.lrstft = None
        except (TypeError, ValueError) as exc:
            raise spectral.error(f"bad spectral loss config: {exc}", "config") from exc

        # Discriminator and the terms that read its outputs (order matters: it is the state-dict order).
        self.use_disc = loss_node.has("discriminator")
        gen_terms: list[nn.Module] = []
        if self.use_disc:
            disc_node = loss_node.child("discriminator")
            self.discriminator = _build_discriminator(disc_node, out_channels, self.sample_rate)
            disc_weights = disc_node.child("weights")
            gen_terms += [
                ValueLoss(key="loss_adv", weight=disc_weights.get("adversarial", "a number"), name="loss_adv"),
                ValueLoss(
                    key="feature_matching_distance",
                    weight=disc_weights.get("feature_matching", "a number"),
                    name="feature_matching_loss",
                ),
            ]
        else:
            self.discriminator = None
        # Discriminator steps never touch the autoencoder's parameters, and decoder_finetune never the
        # encoder's: DDP must not wait for their grads.
        self.ddp_find_unused_parameters = self.use_disc or self.decoder_finetune

        if self.teacher_model is not None:
            gen_terms += distillation_loss_terms(self.sdstft, mrstft_weight, stft_decay, loss_node)
        else:
            gen_terms.append(
                AuralossLoss(self.sdstft, input_key="decoded", target_key="reals", name="mrstft_loss",
                             weight=mrstft_weight, decay=stft_decay)
            )
        if out_channels == 2 and self.teacher_model is None:
            # 0.0.20: one term on both channels (0.0.19 had stft_loss_left/right at half weight each).
            gen_terms.append(
                AuralossLoss(self.lrstft, input_key="decoded", target_key="reals", name="lr_stft_loss",
                             weight=mrstft_weight, decay=stft_decay)
            )
        time_weights = time.child("weights", {})
        time_decay = time.get("decay", "a number", 1.0)
        l1 = time_weights.get("l1", "a number", 0.0)
        if l1 > 0:
            gen_terms.append(L1Loss("reals", "decoded", weight=l1, name="l1_time_loss", decay=time_decay))
        l2 = time_weights.get("l2", "a number", 0.0)
        if l2 > 0:
            gen_terms.append(MSELoss("reals", "decoded", weight=l2, name="l2_time_loss", decay=time_decay))
        gen_terms += bottleneck_loss_terms(getattr(autoencoder, "bottleneck", None), loss_node)
        gen_terms += mel_loss_terms(loss_node, self.sample_rate)

        self.losses_gen = MultiLoss(gen_terms)
        if self.use_disc:
            self.losses_disc = MultiLoss([ValueLoss(key="loss_dis", weight=1.0, name="discriminator_loss")])

        self.use_ema = bool(use_ema)
        self.autoencoder_ema = None
        if self.use_ema:
            if ema_copy is None:
                try:
                    ema_copy = copy.deepcopy(autoencoder)
                except RuntimeError as exc:
                    raise ValueError(
                        "use_ema needs ema_copy (a second model built from the same config) when the "
                        f"autoencoder cannot be deep-copied: {exc}"
                    ) from exc
            self.autoencoder_ema = EMA(self.autoencoder, ema_model=ema_copy, **EMA_SETTINGS)
        self.eval_losses = create_eval_losses(
            ConfigNode(eval_loss_config if eval_loss_config is not None else {}, source, f"{path}.eval_loss_configs"),
            self.sample_rate,
        )

    def train(self, mode: bool = True):
        """Lightning puts every submodule in train mode at fit start; the teacher stays frozen in eval."""
        super().train(mode)
        if self.teacher_model is not None:
            self.teacher_model.eval()
        return self

    # --- optimizers ---------------------------------------------------------------------------
    def configure_optimizers(self):
        def build(name: str, params) -> dict:
            node = self._opt_node.child(name)
            entry: dict[str, Any] = {"optimizer": create_optimizer_from_config(node.child("optimizer"), params)}
            if node.has("scheduler"):
                scheduler = create_scheduler_from_config(node.child("scheduler"), entry["optimizer"])
                entry["lr_scheduler"] = {"scheduler": scheduler, "interval": "step"}
            return entry

        entries = [build("autoencoder", self.generator_parameters())]
        if self.use_disc:
            entries.append(build("discriminator", self.discriminator.parameters()))
        return entries

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generator optimizer trains: the whole autoencoder, or with ``decoder_finetune`` only the
        decoder and the pretransform (0.0.20's choice; the bottleneck and encoder stay as they are)."""
        if not self.decoder_finetune:
            return list(self.autoencoder.parameters())
        params = list(self.autoencoder.decoder.parameters())
        if getattr(self.autoencoder, "pretransform", None) is not None:
            params += list(self.autoencoder.pretransform.parameters())
        return params

    def _optimizers_and_schedulers(self):
        optimizers = self.optimizers()
        if not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        schedulers = self.lr_schedulers()
        if schedulers is None:
            schedulers = []
        elif not isinstance(schedulers, (list, tuple)):
            schedulers = [schedulers]
        by_optimizer = {id(s.optimizer): s for s in schedulers}
        opt_gen = optimizers[0]
        opt_disc = optimizers[1] if self.use_disc else None
        sched_gen = by_optimizer.get(id(opt_gen.optimizer))
        sched_disc = by_optimizer.get(id(opt_disc.optimizer)) if opt_disc is not None else None
        return opt_gen, opt_disc, sched_gen, sched_disc

    # --- training -----------------------------------------------------------------------------
    def is_discriminator_step(self, step: int) -> bool:
        warmed_up = step >= self.warmup_steps
        return bool(self.use_disc and step % 2 == 1 and (self.warmup_mode == "adv" or warmed_up))

    def _reconstruct(self, reals: torch.Tensor, warmed_up: bool, model: nn.Module | None = None,
                     training: bool = True) -> dict[str, torch.Tensor]:
        """Encode and decode ``reals`` with ``model`` (the trained autoencoder by default) into the loss info.

        ``training`` applies the training-only parts: latent masking (``latent_mask_ratio``)."""
        model = self.autoencoder if model is None else model
        encoder_input = reals
        if self.force_input_mono and encoder_input.shape[1] > 1:
            encoder_input = encoder_input.mean(dim=1, keepdim=True)
        info: dict[str, torch.Tensor] = {"reals": reals, "encoder_input": encoder_input}
        if self.decoder_finetune or (warmed_up and self.encoder_freeze_on_warmup):
            with torch.no_grad():
                latents, encoder_info = model.encode(encoder_input, return_info=True)
        else:
            latents, encoder_info = model.encode(encoder_input, return_info=True)
        info.update(encoder_info)
        info["latents"] = latents  # after the update: DAC bottlenecks report their projections as "latents"
        if training and self.latent_mask_ratio > 0.0:
            mask = torch.rand_like(latents) < self.latent_mask_ratio
            latents = torch.where(mask, torch.zeros_like(latents), latents)
        info["decoder_latents"] = latents
        decoded = model.decode(latents)
        decoded, reals = trim_to_shortest(decoded, reals)
        # Losses in float32 whatever the autocast precision (see module docstring).
        info["decoded"] = decoded.float()
        info["reals"] = reals.float()
        if "kl" in info:
            info["kl"] = info["kl"].float()
        return info

    def training_step(self, batch, batch_idx):
        reals = append_synthetic_chirps(_audio_from_batch(batch), self.sample_rate, self.num_synthetic_chirps)
        step = int(self.global_step)
        warmed_up = step >= self.warmup_steps
        disc_step = self.is_discriminator_step(step)
        opt_gen, opt_disc, sched_gen, sched_disc = self._optimizers_and_schedulers()

        distilling = self.teacher_model is not None
        if disc_step:
            with torch.no_grad():
                info = self._reconstruct(reals, warmed_up)
                if distilling and warmed_up:
                    add_teacher_outputs(info, self.autoencoder, self.teacher_model)
            with torch.autocast(device_type=self.device.type, enabled=False):
                loss_dis, _, _ = self.discriminator.loss(info["reals"], info["decoded"])
                if distilling and warmed_up:
                    loss_dis = loss_dis + cross_gan_losses(self.discriminator, info)["loss_dis"]
                info["loss_dis"] = loss_dis
                loss, losses = self.losses_disc(info)
            opt_disc.zero_grad()
            self.manual_backward(loss)
            if self.clip_grad_norm > 0.0:
                torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.clip_grad_norm)
            opt_disc.step()
            if sched_disc is not None:
                sched_disc.step()
            log = {"train/disc_lr": opt_disc.param_groups[0]["lr"]}
        else:
            info = self._reconstruct(reals, warmed_up)
            cross_log: dict[str, torch.Tensor] = {}
            if distilling:
                add_teacher_outputs(info, self.autoencoder, self.teacher_model)
            with torch.autocast(device_type=self.device.type, enabled=False):
                if self.use_disc:
                    if warmed_up:
                        _, loss_adv, fm = self.discriminator.loss(info["reals"], info["decoded"])
                        if distilling:
                            cross = cross_gan_losses(self.discriminator, info)
                            loss_adv = loss_adv + cross.pop("loss_adv")
                            fm = fm + cross.pop("feature_matching_distance")
                            cross.pop("loss_dis")
                            cross_log = {f"train/{name}": value.detach() for name, value in cross.items()}
                    else:
                        loss_adv = fm = torch.zeros((), device=reals.device)
                    info["loss_adv"], info["feature_matching_distance"] = loss_adv, fm
                loss, losses = self.losses_gen(info, step=step)
            opt_gen.zero_grad()
            self.manual_backward(loss)
            if self.clip_grad_norm > 0.0:
                torch.nn.utils.clip_grad_norm_(self.autoencoder.parameters(), self.clip_grad_norm)
            opt_gen.step()
            # After the step and every 10 global steps, as 0.0.20 (0.0.19: before every generator step).
            if self.autoencoder_ema is not None and is_ema_update_step(step + 1):
                self.autoencoder_ema.update()
            if sched_gen is not None:
                sched_gen.step()
            log = {
                "train/loss": loss.detach(),
                "train/latent_std": info["latents"].detach().float().std(),
                "train/data_std": info["encoder_input"].detach().float().std(),
                "train/gen_lr": opt_gen.param_groups[0]["lr"],
                **cross_log,
            }
        for name, value in losses.items():
            log[f"train/{name}"] = value.detach()
        log_step(self, log, step + 1, reals.shape[0], PROGRESS_BAR_KEYS)
        return loss.detach()

    # --- validation (only with a validation dataset) ----------------------------------------------
    def validation_step(self, batch, batch_idx):
        """``val/mrstft_loss``, ``val/l1_time_loss`` and the ``eval_loss_configs`` metrics of the model that
        would be exported (the EMA copy when EMA is on, as 0.0.20 scores it), without latent masking."""
        reals = _audio_from_batch(batch)
        with torch.no_grad():
            info = self._reconstruct(reals, warmed_up=True, model=self.inference_model(), training=False)
            with torch.autocast(device_type=self.device.type, enabled=False):
                values = {
                    "val/mrstft_loss": self.sdstft(info["reals"], info["decoded"]),
                    "val/l1_time_loss": torch.nn.functional.l1_loss(info["decoded"], info["reals"]),
                    **eval_loss_values(self.eval_losses, info["decoded"], info["reals"]),
                }
        self.log_dict(values, on_epoch=True, sync_dist=True, batch_size=reals.shape[0])
        return values

    # --- helpers for callbacks and export ---------------------------------------------------------
    def inference_model(self) -> nn.Module:
        """The model to demo/export: the EMA copy when EMA is on, else the trained model."""
        return self.autoencoder_ema.ema_model if self.autoencoder_ema is not None else self.autoencoder


def _build_discriminator(node: ConfigNode, out_channels: int, sample_rate: int) -> nn.Module:
    # Upstream always feeds the discriminator the autoencoder's output channels (and DAC's the sample rate).
    return create_discriminator_from_config(node.data, node, in_channels=out_channels, sample_rate=sample_rate)


# 0.0.20 training keys and loss blocks that change training but are not implemented here: refused rather
# than ignored. (key, whether a value means "on", why).
UNSUPPORTED_TRAINING_KEYS = (
    ("stride_curriculum", lambda v: v is not None, "it needs encoders/decoders that take override_stride, "
     "which no 0.0.20 encoder type has"),
    ("tail_masking_max_patches", lambda v: bool(v), "it zeroes the last patches of a patched pretransform's "
     "input, which is not implemented here"),
)
UNSUPPORTED_LOSS_BLOCKS = {
    "mrmel": "the DAC-style mel loss of 0.0.20 is not implemented here; loss_configs.mel is this package's "
             "multi-scale log-mel loss",
    "hubert": "it needs pretrained HuBERT/WavLM weights from torchaudio, which this package does not load",
    "clap": "it needs a pretrained CLAP model",
    "contrastive": "it needs 0.0.20's LatentAudioCritic (and T5Gemma for text), not implemented here",
    "jepa": "it needs 0.0.20's LatentJEPA, not implemented here",
    "generative": "it needs 0.0.20's latent diffusion critic, not implemented here",
    "semantic_regressors": "it needs torchaudio's prototype chroma transforms, not implemented here",
}


def refuse_unsupported_keys(training: ConfigNode) -> None:
    """Raise for a 0.0.20 key that would change training but is not implemented (never ignore it)."""
    for key, is_on, why in UNSUPPORTED_TRAINING_KEYS:
        if training.has(key) and is_on(training.data[key]):
            raise training.error(f"not supported: {why}; remove the key", key)
    losses = training.child("loss_configs", {})
    for key, why in UNSUPPORTED_LOSS_BLOCKS.items():
        if losses.has(key):
            raise losses.error(f"not supported: {why}; remove the block", key)


def create_autoencoder_training_module(
    model_config: dict, model: nn.Module, source: str = "<model config>", ema_copy: nn.Module | None = None
) -> AutoencoderTrainingModule:
    """Read ``training`` of an autoencoder config (upstream's factory defaults) and build the module.

    With ``training.use_ema`` and no ``ema_copy``, a second model is built from the config and given
    the same weights (deep-copying weight-normed modules is not reliable).
    """
    root = ConfigNode(model_config, source)
    training = root.child("training", {})
    use_ema = training.get("use_ema", "a bool", False)
    if use_ema and ema_copy is None:
        ema_copy = create_model_from_config(model_config, source=source)
        ema_copy.load_state_dict(model.state_dict())
    refuse_unsupported_keys(training)
    if training.get("decoder_loss", "a bool", False):
        raise training.error(
            "decoder_loss asks the decoder for a generative loss of its own (decode(..., return_loss=True) "
            "with the pretransform output as target); no decoder type of stable-audio-tools 0.0.20 or of this "
            "package has one (0.0.20 fails at the first step), so it cannot be trained; set it to false",
            "decoder_loss",
        )
    set_residual_checkpointing(model, training.get("gradient_checkpointing", "a bool", True))
    if training.get("compile_snake", "a bool", False):
        use_compiled_snake(True)
    optimizer_configs = training.get("optimizer_configs", "an object", None)
    lr = training.get("learning_rate", "a positive number", None)
    loss_configs = training.get("loss_configs", "an object", None)
    return AutoencoderTrainingModule(
        model,
        sample_rate=root.get("sample_rate", "a positive int"),
        loss_config=loss_configs,
        optimizer_configs=optimizer_configs,
        lr=lr,
        warmup_steps=training.get("warmup_steps", "a non-negative int", 0),
        warmup_mode=training.choice("warmup_mode", WARMUP_MODES, "adv"),
        encoder_freeze_on_warmup=training.get("encoder_freeze_on_warmup", "a bool", False),
        use_ema=use_ema,
        ema_copy=ema_copy,
        force_input_mono=training.get("force_input_mono", "a bool", False),
        latent_mask_ratio=training.get("latent_mask_ratio", "a non-negative number", 0.0),
        clip_grad_norm=training.get("clip_grad_norm", "a non-negative number", 0.0),
        teacher_model=build_teacher(training, model),
        eval_loss_config=training.get("eval_loss_configs", "an object", None),
        decoder_finetune=training.get("decoder_finetune", "a bool", False),
        num_synthetic_chirps=training.get("num_synthetic_chirps", "a non-negative int", 0),
        source=source,
        path="training",
    )
