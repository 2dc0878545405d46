"""Build the ARC post-training module from a ``diffusion_cond`` config whose ``training`` has ``arc``.

Why its own module: reading ``training.arc`` means building up to two more models (teacher, discriminator
body) from configs and checkpoints, checking that they fit, and choosing the head; the step logic in
:mod:`stable_audio_ops.training.arc` stays free of config handling.

``training.arc`` keys (upstream's names and defaults):

- ``teacher_model`` (a model config) or ``use_model_as_teacher`` (reuse the student's config), with
  ``teacher_model_ckpt`` (required then: an unwrapped checkpoint, loaded strictly). Needed by ``ode_warmup``.
- ``discriminator_base_model`` (a model config) or ``use_model_as_discriminator``: the DiT whose hidden states
  the head scores; ``discriminator_base_ckpt`` (optional, strict; without it the body starts from random
  weights, as upstream). One of the two is required: upstream fails with a NameError, here it is a
  ConfigError naming ``training.arc.discriminator_base_model``.
- ``discriminator``: ``dit_hidden_layer`` (required, 0-based block index), ``type`` (``convnext`` | ``conv``),
  ``config`` (head options, :mod:`stable_audio_ops.models.arc`), ``contrastive`` (false),
  ``include_grad_penalties`` (false), ``weights`` (``generator``, ``discriminator``, ``contrastive``: 1.0).
- ``noise_dist``: ``generator`` / ``discriminator`` (:mod:`stable_audio_ops.training.arc_noise`).
- ``ode_warmup``: ``warmup_steps`` (0), ``refresh_rate`` (1), ``sampling_steps`` (20), ``cfg`` (4.0).
- ``sampling``: read but unused by upstream; accepted with a warning.

``training`` keys: ``optimizer_configs`` with both ``diffusion`` and ``discriminator`` (required), ``use_ema``
(true), ``pre_encoded``, ``cfg_dropout_prob`` (0.1), ``clip_grad_norm`` (0), ``trim_config``
(``trim_prob`` 0, ``type`` ``random_item``), ``inpainting`` (always on for ``diffusion_cond_inpaint``).

The student must be a rectified-flow model (``rectified_flow`` or ``rf_denoiser``): the one-jump estimate
``x_t - t v`` is rectified-flow maths. Its objective is left as configured; a config meant for few-step
sampling says ``rf_denoiser`` (what makes ``pingpong`` the default sampler), as Stable Audio Open Small's does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_keys_ignoring, check_known_keys
from stable_audio_ops.models.arc import create_discriminator_head
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import load_weights_into
from stable_audio_ops.training.arc import ARCSettings, ARCTrainingModule, ODEWarmup
from stable_audio_ops.training.arc_noise import build_noise_dist
from stable_audio_ops.training.diffusion import INPAINT_MASK_KEYS
from stable_audio_ops.training.timesteps import SobolUniform

log = logging.getLogger(__name__)

ARC_KEYS = ("teacher_model", "teacher_model_ckpt", "use_model_as_teacher", "discriminator_base_model",
            "discriminator_base_ckpt", "use_model_as_discriminator", "ode_warmup", "noise_dist", "discriminator")
ARC_IGNORED = {"sampling": "read but unused by upstream's ARC"}
DISCRIMINATOR_KEYS = ("dit_hidden_layer", "type", "config", "contrastive", "include_grad_penalties", "weights")
ODE_WARMUP_KEYS = ("warmup_steps", "refresh_rate", "sampling_steps", "cfg")
RF_OBJECTIVES = ("rectified_flow", "rf_denoiser")


def _dit_transformer(model: nn.Module, node: ConfigNode, key: str) -> nn.Module:
    """The ContinuousTransformer inside a diffusion_cond model with a DiT backbone, or an error at ``key``."""
    transformer = getattr(getattr(getattr(model, "model", None), "model", None), "transformer", None)
    if transformer is None or not hasattr(transformer, "layers"):
        raise node.error("must be a diffusion_cond model with a DiT backbone (model.diffusion.type: dit)", key)
    return transformer


def _side_model(arc: ConfigNode, model_config: dict, source: str, config_key: str, reuse_key: str,
                ckpt_key: str, ckpt_required: bool) -> nn.Module | None:
    """Teacher or discriminator body: ``config_key`` (a config) or the student's config when ``reuse_key``,
    weights from ``ckpt_key`` (strict). None when neither is configured."""
    config = arc.get(config_key, "an object", None)
    where = f"{source}: training.arc.{config_key}"
    if config is None and arc.get(reuse_key, "a bool", False):
        config, where = model_config, source
    if config is None:
        return None
    ckpt = arc.get(ckpt_key, "a string", None)
    if ckpt is None and ckpt_required:
        raise arc.error(f"missing required key (expected a checkpoint path): {config_key} / {reuse_key} need "
                        "the model's weights (an unwrapped checkpoint or model folder)", ckpt_key)
    model = create_model_from_config(config, source=where)
    if ckpt is not None:
        load_weights_into(model, Path(ckpt).expanduser(), what=f"training.arc.{ckpt_key} {ckpt}")
    else:
        log.warning("%s: training.arc.%s is not set: the discriminator body starts from random weights",
                    source, ckpt_key)
    return model


def _ode_warmup(arc: ConfigNode) -> ODEWarmup | None:
    if not arc.has("ode_warmup") or arc.data["ode_warmup"] is None:
        return None
    node = arc.child("ode_warmup")
    check_known_keys(node, ODE_WARMUP_KEYS)
    return ODEWarmup(warmup_steps=node.get("warmup_steps", "a non-negative int", 0),
                     refresh_rate=node.get("refresh_rate", "a positive int", 1),
                     sampling_steps=node.get("sampling_steps", "a positive int", 20),
                     cfg=float(node.get("cfg", "a number", 4.0)))


def _trim_prob(training: ConfigNode) -> float:
    node = training.child("trim_config", {})
    check_known_keys(node, ("trim_prob", "type"))
    node.choice("type", ("random_item",), "random_item")
    prob = float(node.get("trim_prob", "a non-negative number", 0.0))
    if prob > 1:
        raise node.error(f"must be in [0, 1], got {prob}", "trim_prob")
    return prob


def _inpaint_mask_kwargs(root: ConfigNode, training: ConfigNode) -> dict[str, Any] | None:
    inpainting = training.get("inpainting", "an object", None)
    if inpainting is None and root.get("model_type", "a string") == "diffusion_cond_inpaint":
        inpainting = {}
    if inpainting is None:
        return None
    mask_kwargs = training.child("inpainting").child("mask_kwargs", {}) if inpainting else ConfigNode({})
    check_known_keys(mask_kwargs, INPAINT_MASK_KEYS)
    return dict(mask_kwargs.data)


def create_arc_training_module(model_config: dict, model: nn.Module, source: str = "<model config>"
                               ) -> ARCTrainingModule:
    """Read ``training`` / ``training.arc`` of ``model_config`` (the module docstring) and build the ARC module
    around ``model`` (the student, already holding its initial weights)."""
    root = ConfigNode(model_config, source)
    training = root.child("training")
    arc = training.child("arc", {})
    check_keys_ignoring(arc, ARC_KEYS, ARC_IGNORED)
    if training.get("lora", "an object", None) is not None:
        raise training.error("LoRA fine-tuning cannot be combined with ARC post-training; remove training.lora",
                             "lora")
    objective = getattr(model, "diffusion_objective", None)
    if objective not in RF_OBJECTIVES:
        raise root.error(f"ARC post-training needs a rectified-flow model ({' or '.join(RF_OBJECTIVES)}), got "
                         f"{objective!r}", "model.diffusion.diffusion_objective")
    _dit_transformer(model, root, "model.diffusion")

    optimizer_configs = training.child("optimizer_configs")
    for name in ("diffusion", "discriminator"):
        optimizer_configs.child(name).child("optimizer")

    teacher = _side_model(arc, model_config, source, "teacher_model", "use_model_as_teacher",
                          "teacher_model_ckpt", ckpt_required=True)
    discriminator = _side_model(arc, model_config, source, "discriminator_base_model",
                                "use_model_as_discriminator", "discriminator_base_ckpt", ckpt_required=False)
    if discriminator is None:
        raise arc.error("missing required key (expected a model config): ARC needs a discriminator body; set "
                        "discriminator_base_model, or use_model_as_discriminator: true to reuse the student's config",
                        "discriminator_base_model")
    transformer = _dit_transformer(discriminator, arc, "discriminator_base_model")

    disc = arc.child("discriminator", {})
    check_known_keys(disc, DISCRIMINATOR_KEYS)
    layer = disc.get("dit_hidden_layer", "a non-negative int")
    if layer >= len(transformer.layers):
        raise disc.error(f"the discriminator DiT has {len(transformer.layers)} blocks (0-based index), got {layer}",
                         "dit_hidden_layer")
    head = create_discriminator_head(disc.get("type", "a string", "convnext"), transformer.dim,
                                     disc.child("config", {}), disc)
    weights = disc.child("weights", {})
    check_known_keys(weights, ("generator", "discriminator", "contrastive"))

    ode_warmup = _ode_warmup(arc)
    if ode_warmup is not None and ode_warmup.warmup_steps > 0 and teacher is None:
        raise arc.error("missing required key (expected a model config): ode_warmup needs a teacher; set "
                        "teacher_model or use_model_as_teacher: true (with teacher_model_ckpt)", "teacher_model")

    cfg_dropout_prob = float(training.get("cfg_dropout_prob", "a non-negative number", 0.1))
    if cfg_dropout_prob > 1:
        raise training.error(f"must be in [0, 1], got {cfg_dropout_prob}", "cfg_dropout_prob")
    settings = ARCSettings(
        dit_hidden_layer=layer,
        gen_weight=float(weights.get("generator", "a number", 1.0)),
        dis_weight=float(weights.get("discriminator", "a number", 1.0)),
        contrastive_weight=float(weights.get("contrastive", "a number", 1.0)),
        contrastive=disc.get("contrastive", "a bool", False),
        include_grad_penalties=disc.get("include_grad_penalties", "a bool", False),
        use_ema=training.get("use_ema", "a bool", True),
        pre_encoded=training.get("pre_encoded", "a bool", False),
        cfg_dropout_prob=cfg_dropout_prob,
        clip_grad_norm=float(training.get("clip_grad_norm", "a non-negative number", 0.0)),
        trim_prob=_trim_prob(training),
        inpaint_mask_kwargs=_inpaint_mask_kwargs(root, training),
        ode_warmup=ode_warmup,
    )
    noise_dist = arc.child("noise_dist", {})
    check_known_keys(noise_dist, ("generator", "discriminator"))
    sobol = SobolUniform()
    return ARCTrainingModule(model, discriminator, head, settings, optimizer_configs.data,
                             gen_noise=build_noise_dist(noise_dist, "generator", sobol),
                             dis_noise=build_noise_dist(noise_dist, "discriminator", sobol),
                             teacher_model=teacher, source=source)


__all__ = ["ARC_KEYS", "create_arc_training_module"]
