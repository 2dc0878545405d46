"""The model config of an ARC post-training run that starts from a trained rectified-flow DiT.

Why a function: the few-step student is the teacher's own architecture with ``diffusion_objective:
rf_denoiser`` (what Stable Audio Open Small ships; it makes ``pingpong`` the default sampler) and a ``training``
section that asks for ARC with the teacher's weights as the discriminator body (and, for ``ode_warmup``, as the
teacher). The student itself starts from the same file through ``--pretrained-ckpt-path``. A Kedro node, a
script or a notebook all build it the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_audio_ops.config.schema import ConfigNode

RF_OBJECTIVES = ("rectified_flow", "rf_denoiser")


def arc_student_config(teacher_config: Mapping[str, Any], teacher_path: str | Path, *,
                       optimizer: Mapping[str, Any], discriminator_optimizer: Mapping[str, Any],
                       discriminator: Mapping[str, Any], noise_dist: Mapping[str, Any] | None = None,
                       ode_warmup: Mapping[str, Any] | None = None, use_ema: bool = True,
                       cfg_dropout_prob: float = 0.1, pre_encoded: bool = True,
                       source: str = "<teacher config>") -> dict[str, Any]:
    """The teacher's config with ``rf_denoiser`` and an ARC ``training`` section (see the module docstring).

    ``discriminator`` is ``training.arc.discriminator`` (``dit_hidden_layer``, ``type``, ``config``, ...);
    ``optimizer`` / ``discriminator_optimizer`` are ``{type, config}`` optimizer entries. The teacher's demo
    settings are dropped (its CFG scales and step counts are for the teacher's sampler).
    """
    root = ConfigNode(dict(teacher_config), source)
    objective = root.child("model").child("diffusion").get("diffusion_objective", "a string", "v")
    if objective not in RF_OBJECTIVES:
        raise root.error(f"ARC post-training needs a rectified-flow teacher ({' or '.join(RF_OBJECTIVES)}), got "
                         f"{objective!r}", "model.diffusion.diffusion_objective")
    config = copy.deepcopy(dict(teacher_config))
    config["model"]["diffusion"]["diffusion_objective"] = "rf_denoiser"
    teacher = str(teacher_path)
    arc: dict[str, Any] = {"use_model_as_discriminator": True, "discriminator_base_ckpt": teacher,
                           "discriminator": copy.deepcopy(dict(discriminator)),
                           "noise_dist": dict(noise_dist or {})}
    if ode_warmup:
        arc.update(use_model_as_teacher=True, teacher_model_ckpt=teacher, ode_warmup=dict(ode_warmup))
    config["training"] = {
        "use_ema": bool(use_ema),
        "pre_encoded": bool(pre_encoded),
        "cfg_dropout_prob": float(cfg_dropout_prob),
        "optimizer_configs": {"diffusion": {"optimizer": copy.deepcopy(dict(optimizer))},
                              "discriminator": {"optimizer": copy.deepcopy(dict(discriminator_optimizer))}},
        "arc": arc,
    }
    return config


__all__ = ["arc_student_config"]
