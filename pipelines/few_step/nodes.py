"""Nodes of the few_step pipeline: one library call each (settings from ``conf/base/parameters_few_step.yml``;
nodes hold no defaults; artifact locations from ``conf/base/catalog_few_step.yml``).

Data flow: the unwrapped latent-diffusion DiT (``latent_diffusion_model``) is the teacher. The student config is
its config with ``rf_denoiser`` and an ARC ``training`` section whose discriminator body (and, with
``ode_warmup``, teacher) is loaded from the teacher's file; the student starts from the same file
(``--pretrained-ckpt-path``, strict) and post-trains on the latent-diffusion latents in a nested MLflow run; the
final checkpoint is unwrapped (EMA backbone) into a plain diffusion_cond model. Teacher and student then generate
for the evaluation pipeline's held-out test captions (its clips, judges, seeds, batch size and device; the
teacher with the evaluation's steps, CFG and sampler, the student with ``few_step.sampling``), timed per note and
judged in one table; the goal (``few_step.goal``) is decided against the teacher's numbers. The student is
registered with the teacher's registered version, its scores and the verdict as tags, and becomes ``champion``
only when it meets the goal, passes the generators' floors and beats the current champion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.datasets import WriteInto, staged_file
from pipelines.evaluation.nodes import _judge_options, _judge_reference
from pipelines.parameters import Parameters
from stable_audio_ops.evaluation.few_step import Contender, compare_teacher_student, few_step_report
from stable_audio_ops.evaluation.judge import LabelledClip
from stable_audio_ops.inference.entry import CONDITIONED_MODEL_TYPES
from stable_audio_ops.models.loading import local_checkpoint, read_config_for
from stable_audio_ops.tracking.few_step import (
    few_step_goal,
    promote_few_step_student,
    register_few_step_student,
)
from stable_audio_ops.tracking.loading import load_model
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


def _contender(model: Mapping[str, Any], device: str, role: str, steps: Any, cfg_scale: Any,
               sampler: str | None) -> Contender:
    loaded = load_model(model["path"], device=device, model_types=CONDITIONED_MODEL_TYPES,
                        purpose=f"judged as the few-step {role}")
    return Contender(loaded.model, steps=int(steps), cfg_scale=float(cfg_scale), sampler=sampler,
                     model_type=loaded.model_type, device=loaded.device)


def evaluate_few_step(teacher_model: Mapping[str, Any], student_model: Mapping[str, Any],
                      clips: Mapping[str, list[LabelledClip]], params: Mapping[str, Any],
                      evaluation_params: Mapping[str, Any]) -> dict[str, Any]:
    """Teacher (the evaluation's steps, CFG and sampler) and student (``few_step.sampling``) generate for the
    evaluation's held-out test captions from the same seeds; both are timed per note and judged by the
    evaluation's judges beside its calibration sets."""
    e, sampling = Parameters(evaluation_params, "evaluation"), Parameters(params, "few_step").sub("sampling")
    gen = e.sub("generation")
    teacher = _contender(teacher_model, str(gen["device"]), "teacher", gen["steps"], gen["cfg_scale"], gen["sampler"])
    student = _contender(student_model, str(gen["device"]), "student", sampling["steps"], sampling["cfg_scale"],
                         sampling["sampler_type"])
    return compare_teacher_student(teacher, student, clips["heldout"], _judge_reference(clips, e),
                                   num_captions=gen["num_captions"], batch_size=int(gen["batch_size"]),
                                   seed=int(gen["seed"]), calibration=tuple(e["judges.calibration"]),
                                   judge_options=_judge_options(e))


def judge_few_step_goal(comparison: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Does the student meet ``few_step.goal`` against its teacher (margins per metric, minimum speed-up)?"""
    p = Parameters(params, "few_step")
    rows = comparison["rows"]
    return few_step_goal(rows["teacher"], rows["student"], comparison["speedup"], p["goal"], source=p.source)


def report_few_step(comparison: Mapping[str, Any],
                    goal: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, float]], str]:
    """The comparison and its verdict as JSON, as MLflow metrics (``few_step_evaluation.*``) and as Markdown."""
    return few_step_report(comparison, goal)


def register_few_step(student_model: Mapping[str, Any], teacher_model: Mapping[str, Any],
                      comparison: Mapping[str, Any], goal: Mapping[str, Any], params: Mapping[str, Any],
                      evaluation_params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the student (alias ``challenger``) tagged with the teacher's registered version, its scores
    (``eval.<name>``, the speed-up included) and the goal verdict (``goal.*``)."""
    p = Parameters(params, "few_step")
    teacher_name = Parameters(evaluation_params, "evaluation")["registry.latent_diffusion_name"]
    return register_few_step_student(student_model["path"], p["registry.name"], teacher_path=teacher_model["path"],
                                     teacher_name=teacher_name, sampling=p["sampling"],
                                     training_run_id=student_model.get("mlflow_run_id"),
                                     metrics=_student_metrics(comparison), goal=goal)


def promote_few_step(registration: Mapping[str, Any], comparison: Mapping[str, Any], goal: Mapping[str, Any],
                     params: Mapping[str, Any], evaluation_params: Mapping[str, Any]) -> dict[str, Any]:
    """Move ``champion`` to the student only when it meets its goal, passes the generators' floors
    (``evaluation.promotion.floors.latent_diffusion``) and beats the champion under ``few_step.promotion``."""
    floors = Parameters(evaluation_params, "evaluation")["promotion.floors"] or {}
    return promote_few_step_student(registration, _student_metrics(comparison), goal,
                                    rule=Parameters(params, "few_step")["promotion"],
                                    floors=floors.get("latent_diffusion"))


def _student_metrics(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The student's row plus the speed-up over its teacher: what its registry version records."""
    return {**comparison["rows"]["student"], "speedup": comparison["speedup"]}
