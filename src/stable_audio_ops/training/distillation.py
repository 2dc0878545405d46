"""Autoencoder distillation (``training.teacher_model`` + ``training.teacher_model_ckpt``), as 0.0.20.

A frozen teacher autoencoder (built from the full model config in ``teacher_model``, weights from
``teacher_model_ckpt``) guides the student so the two stay interchangeable: a diffusion model trained
on the teacher's latents keeps working with the student's encoder and decoder. The generator loss
replaces the plain spectral terms with four, each at ``0.25 * spectral.weights.mrstft``:

- ``mrstft_loss``: student reconstruction vs the input;
- ``mrstft_loss_distill``: student reconstruction vs the teacher's reconstruction;
- ``mrstft_loss_own_latents_teacher``: the student's latents decoded by the teacher, vs the input;
- ``mrstft_loss_teacher_latents_own``: the teacher's latents decoded by the student, vs the input.

Optional ``loss_configs.latent_distillation`` (``weights.l1``/``weights.l2``, ``decay``) adds L1/MSE
between student and teacher latents (0.0.19, the GitHub code, always added an MSE at
``0.25 * mrstft``; 0.0.20 made it this opt-in block). With a discriminator, after warm-up, three
cross terms join the GAN losses at 0.25 each: teacher-decoded student latents and student-decoded
teacher latents judged against the input, and the student reconstruction judged against the teacher's.

Difference from 0.0.20: there both cross decodings run under ``no_grad``, so their spectral and
adversarial terms add a constant to the loss and train nothing. Here gradients flow through them into
the student (the teacher's own weights stay frozen): the student encoder learns to produce latents the
teacher decodes well, and the student decoder learns to decode the teacher's latents, which is what
those terms are named for. The teacher is kept in eval mode (Lightning's ``train()`` would otherwise
switch it back). The checkpoint holds its weights as ``teacher_model.*``, as 0.0.20's does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.losses.core import AuralossLoss, L1Loss, LossTerm, MSELoss
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import load_weights_into

CROSS_WEIGHT = 0.25
# (name, input key, target key) of the four spectral terms, in 0.0.20's order (it fixes state-dict keys).
SPECTRAL_TERMS = (
    ("mrstft_loss", "decoded", "reals"),
    ("mrstft_loss_distill", "decoded", "teacher_decoded"),
    ("mrstft_loss_own_latents_teacher", "own_latents_teacher_decoded", "reals"),
    ("mrstft_loss_teacher_latents_own", "teacher_latents_own_decoded", "reals"),
)
# (log name, fakes key, reals key) of the adversarial cross terms.
CROSS_GAN_TERMS = (
    ("loss_adv_cross_own_latents_teacher", "own_latents_teacher_decoded", "reals"),
    ("loss_adv_cross_teacher_latents_own", "teacher_latents_own_decoded", "reals"),
    ("loss_adv_cross_decoded_vs_teacher", "decoded", "teacher_decoded"),
)
# Attributes a teacher must share with the student for the cross terms to be defined.
MATCHING = (("latent_dim", "model.latent_dim"), ("downsampling_ratio", "model.downsampling_ratio"),
            ("in_channels", "model.io_channels"), ("out_channels", "model.io_channels"))


def build_teacher(training: ConfigNode, student: nn.Module) -> nn.Module | None:
    """The frozen teacher ``training`` names, weights loaded strictly; ``None`` without ``teacher_model``."""
    ckpt = training.get("teacher_model_ckpt", "a string", None)
    if not training.has("teacher_model") or training.data["teacher_model"] is None:
        if ckpt is not None:
            raise training.error("given without training.teacher_model (the teacher's model config), so no "
                                 "distillation would happen; add teacher_model or remove this key",
                                 "teacher_model_ckpt")
        return None
    node = training.child("teacher_model")
    node.choice("model_type", ("autoencoder",))
    teacher = create_model_from_config(node.data, source=f"{training.source}: {node.path}")
    if ckpt is None:
        raise training.error("missing required key (expected a string: the teacher's weights, a model checkpoint "
                             "file or model folder); 0.0.20 requires it with teacher_model too", "teacher_model_ckpt")
    if not Path(ckpt).expanduser().exists():
        raise training.error(f"no such file or folder: {ckpt}", "teacher_model_ckpt")
    load_weights_into(teacher, ckpt, what=f"{training.source}: training.teacher_model_ckpt ({ckpt})")
    for attr, key in MATCHING:
        ours, theirs = getattr(student, attr), getattr(teacher, attr)
        if ours != theirs:
            raise node.error(f"the teacher's {attr} is {theirs} but the student's is {ours}; distillation compares "
                             "and swaps their latents and audio, so they must match", key)
    return teacher.eval().requires_grad_(False)


def distillation_loss_terms(sdstft: nn.Module, mrstft_weight: float, decay: float,
                            loss_node: ConfigNode) -> list[LossTerm]:
    """The spectral terms that replace ``mrstft_loss`` (and stereo left/right) under distillation, then the
    optional ``latent_distillation`` L1/MSE, in 0.0.20's order."""
    weight = CROSS_WEIGHT * mrstft_weight
    terms: list[LossTerm] = [
        AuralossLoss(sdstft, input_key=inp, target_key=target, name=name, weight=weight, decay=decay)
        for name, inp, target in SPECTRAL_TERMS
    ]
    if loss_node.has("latent_distillation"):
        latent = loss_node.child("latent_distillation")
        weights = latent.child("weights", {})
        latent_decay = latent.get("decay", "a number", 1.0)
        l1 = weights.get("l1", "a non-negative number", 0.0)
        l2 = weights.get("l2", "a non-negative number", 0.0)
        if l1 > 0:
            terms.append(L1Loss("latents", "teacher_latents", weight=l1, name="latent_distill_l1", decay=latent_decay))
        if l2 > 0:
            terms.append(MSELoss("latents", "teacher_latents", weight=l2, name="latent_distill_l2",
                                 decay=latent_decay))
    return terms


def _to_length(audio: torch.Tensor, length: int) -> torch.Tensor:
    if audio.shape[-1] < length:
        raise ValueError(f"distillation: a decoding has {audio.shape[-1]} samples, fewer than the input's {length}")
    return audio[..., :length].float()


def add_teacher_outputs(info: dict[str, torch.Tensor], student: nn.Module, teacher: nn.Module) -> None:
    """Put the teacher's latents and reconstruction and both cross decodings into ``info``.

    Reads ``encoder_input``, ``reals`` and ``decoder_latents`` (the student's latents as decoded, after
    any latent masking). The cross decodings carry gradients to the student when ``info`` does.
    """
    length = info["reals"].shape[-1]
    with torch.no_grad():
        teacher_latents = teacher.encode(info["encoder_input"])
        info["teacher_decoded"] = _to_length(teacher.decode(teacher_latents), length)
    info["teacher_latents"] = teacher_latents
    info["own_latents_teacher_decoded"] = _to_length(teacher.decode(info["decoder_latents"]), length)
    info["teacher_latents_own_decoded"] = _to_length(student.decode(teacher_latents), length)


def cross_gan_losses(discriminator: nn.Module, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The three cross terms' ``(loss_dis, loss_adv, feature_matching)`` sums, each scaled by 0.25, plus
    each unscaled adversarial term under its log name."""
    out: dict[str, torch.Tensor] = {}
    dis = adv = fm = None
    for name, fakes, reals in CROSS_GAN_TERMS:
        d, a, f = discriminator.loss(info[reals], info[fakes])
        out[name] = a
        dis, adv, fm = (d, a, f) if dis is None else (dis + d, adv + a, fm + f)
    out["loss_dis"], out["loss_adv"], out["feature_matching_distance"] = (
        CROSS_WEIGHT * dis, CROSS_WEIGHT * adv, CROSS_WEIGHT * fm)
    return out
