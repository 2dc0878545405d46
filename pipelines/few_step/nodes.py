"""Nodes of the few_step pipeline: one library call each (settings from ``conf/base/parameters_few_step.yml``;
nodes hold no defaults; artifact locations from ``conf/base/catalog_few_step.yml``).

Data flow: the unwrapped latent-diffusion DiT (``latent_diffusion_model``) is the teacher. The student config is
its config with ``rf_denoiser`` and an ARC ``training`` section whose discriminator body (and, with
``ode_warmup``, teacher) is loaded from the teacher's file; the student starts from the same file
(``--pretrained-ckpt-path``, strict) and post-trains on the latent-diffusion latents in a nested MLflow run; the
final checkpoint is unwrapped (EMA backbone) into a plain diffusion_cond model; it is registered with the
teacher's registered version as a tag.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.datasets import WriteInto, staged_file
from pipelines.parameters import Parameters
from stable_audio_ops.models.loading import local_checkpoint, read_config_for
from stable_audio_ops.tracking.few_step import register_few_step_student
from stable_audio_ops.training.arc_recipe import arc_student_config
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

log = logging.getLogger(__name__)

# reported as few_step.first_gen_loss / final_gen_loss: the generator's relativistic loss, first / last tenth
LOSSES = LossReport(windowed="train/gen_loss")


def build_few_step_config(teacher_model: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The student's config: the teacher's own (embedded in its file), ``rf_denoiser``, ARC training."""
    p = Parameters(params, "few_step")
    checkpoint = local_checkpoint(teacher_model["path"])
    teacher_config, where = read_config_for(checkpoint)
    return arc_student_config(teacher_config, checkpoint, optimizer=p["optimizer"],
                              discriminator_optimizer=p["discriminator_optimizer"], discriminator=p["discriminator"],
                              noise_dist=p["noise_dist"], ode_warmup=p["ode_warmup"], use_ema=bool(p["use_ema"]),
                              cfg_dropout_prob=float(p["cfg_dropout_prob"]), pre_encoded=True, source=where)


def train_few_step(model_config: dict[str, Any], latent_dataset_config: dict[str, Any],
                   teacher_model: Mapping[str, Any], params: Mapping[str, Any]) -> WriteInto:
    """ARC post-training from the teacher's weights in its own process (nested MLflow run ``name``); run when
    the catalog saves ``few_step_training_result``."""
    p = Parameters(params, "few_step")
    name, train, extra = p["name"], p["train"], {"pretrained_ckpt_path": teacher_model["path"]}

    def train_into(run_dir: Path) -> dict[str, Any]:
        return train_in_process(model_config, latent_dataset_config, name=name, run_dir=run_dir, train=train,
                                nested_run=True, extra_flags=extra)

    return train_into


def export_few_step(training_result: dict[str, Any],
                    model_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> the plain student (EMA backbone, config embedded; discriminator and teacher
    dropped), staged for the ``few_step_model`` dataset; plus the generator-loss metrics."""
    return unwrap_trained_model(training_result, model_config, staged_file("few_step.safetensors"),
                                artifact_path="few_step", losses=LOSSES)


def register_few_step(student_model: Mapping[str, Any], teacher_model: Mapping[str, Any],
                      params: Mapping[str, Any], evaluation_params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the student (alias ``challenger``) tagged with the teacher's registered version."""
    p = Parameters(params, "few_step")
    teacher_name = Parameters(evaluation_params, "evaluation")["registry.latent_diffusion_name"]
    return register_few_step_student(student_model["path"], p["registry.name"], teacher_path=teacher_model["path"],
                                     teacher_name=teacher_name, sampling=p["sampling"],
                                     training_run_id=student_model.get("mlflow_run_id"))
