"""Nodes of the evaluation pipeline: register -> test clips -> judge the autoencoder and the generator ->
promote -> report.

The clips come from data_preparation's test split (``test_dataset_config``): clips, and for the demo
notes caption combinations, that training never saw. Registration comes first so every evaluated model
is a registry version (``challenger``) before its metrics are known; the promotion node then moves
``champion`` by the rule in ``parameters_evaluation.yml`` — never for a version below its promotion
floors or an autoencoder whose output does not depend on its input — and writes why.

These nodes only wire library calls (judges and generation: ``stable_audio_ops.evaluation``; registry,
lineage and promotion: ``stable_audio_ops.tracking``) to the catalog and the parameters, which hold every
setting (no defaults here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.evaluation import plots
from pipelines.parameters import Parameters
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.evaluation import autoencoder as autoencoder_judge
from stable_audio_ops.evaluation import generation as generation_judge
from stable_audio_ops.evaluation.clap_score import load_clap_judge
from stable_audio_ops.evaluation.input_dependence import collapse_reason
from stable_audio_ops.evaluation.judge import (
    JudgeReference,
    LabelledClip,
    load_dataset_clips,
    prepare_reference,
)
from stable_audio_ops.evaluation.report import build_metrics
from stable_audio_ops.evaluation.selection import split_evaluation_clips
from stable_audio_ops.inference.entry import CONDITIONED_MODEL_TYPES
from stable_audio_ops.models.checkpoints import read_embedded_model_config
from stable_audio_ops.tracking import promotion, registration
from stable_audio_ops.tracking.history import loss_history
from stable_audio_ops.tracking.loading import load_model

log = logging.getLogger(__name__)

__all__ = ["build_metrics", "build_report", "decide_promotions", "evaluate_autoencoder", "evaluate_generation",
           "load_evaluation_clips", "make_plots", "register_autoencoder", "register_latent_diffusion"]


# --------------------------------------------------------------------------- registration


def register_autoencoder(autoencoder_model: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the unwrapped autoencoder (new version -> ``challenger``; identical weights -> reused)."""
    p = Parameters(params, "evaluation.registry")
    return registration.register_autoencoder(autoencoder_model["path"], p["autoencoder_name"],
                                             training_run_id=autoencoder_model.get("mlflow_run_id"))


def register_latent_diffusion(latent_diffusion_model: Mapping[str, Any], autoencoder_registration: Mapping[str, Any],
                              params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the unwrapped latent diffusion model with the autoencoder version it was trained on."""
    p = Parameters(params, "evaluation.registry")
    return registration.register_latent_diffusion(
        latent_diffusion_model["path"], p["latent_diffusion_name"], autoencoder_name=p["autoencoder_name"],
        autoencoder_registration=autoencoder_registration,
        training_run_id=latent_diffusion_model.get("mlflow_run_id"))


# --------------------------------------------------------------------------- data


def load_evaluation_clips(test_dataset_config: Mapping[str, Any],
                          params: Mapping[str, Any]) -> dict[str, list[LabelledClip]]:
    """The test split (never trained on) divided into a judge reference (probe + KID) and held-out clips
    (the captions judged)."""
    split = Parameters(params, "evaluation").sub("split")
    options = {"holdout_fraction": split["holdout_fraction"], "seed": split["seed"],
               "max_reference_clips": split["max_reference_clips"]}
    clips = load_dataset_clips(validate_dataset_config(test_dataset_config, "test_dataset_config"))
    parts = split_evaluation_clips(clips, **options)
    log.info("evaluation clips (test split): %d reference, %d held out (of %d)", len(parts["reference"]),
             len(parts["heldout"]), len(clips))
    return parts


# --------------------------------------------------------------------------- judges shared by both models


def _judge_reference(clips: Mapping[str, list[LabelledClip]], p: Parameters) -> JudgeReference:
    return prepare_reference(clips["reference"], p["judges.embedder"])


def _judge_options(p: Parameters) -> dict[str, Any]:
    """Keyword arguments of ``judge_sets``: the same judges for reconstructions and generations; with
    ``evaluation.clap_model`` (a trained clap model, e.g. the clap pipeline's) also the CLAP score."""
    options = {"pitch_judges": tuple(p["judges.pitch_judges"]), "crepe_model": str(p["judges.crepe_model"]),
               "kid_subsets": int(p["judges.kid_subsets"]), "kid_subset_size": int(p["judges.kid_subset_size"])}
    if p["clap_model"]:
        options["clap"] = load_clap_judge(str(p["clap_model"]))
    return options


# --------------------------------------------------------------------------- the two models


def evaluate_autoencoder(autoencoder_model: Mapping[str, Any], clips: Mapping[str, list[LabelledClip]],
                         params: Mapping[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Reconstructions of held-out test clips, judged three ways (distances, input dependence, the
    generation judges), plus a few of them for the comparison figure."""
    p = Parameters(params, "evaluation")
    model = load_model(autoencoder_model["path"], model_types=("autoencoder",),
                       purpose="evaluated as the autoencoder").model
    return autoencoder_judge.evaluate_autoencoder(
        model, clips["heldout"], _judge_reference(clips, p), max_clips=p["autoencoder.max_clips"],
        batch_size=int(p["autoencoder.batch_size"]), judge_options=_judge_options(p),
        example_count=int(p["plots.spectrogram_examples"]))


def evaluate_generation(latent_diffusion_model: Mapping[str, Any], clips: Mapping[str, list[LabelledClip]],
                        params: Mapping[str, Any]) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Generate notes for held-out test captions and judge them beside real clips (ceiling) and noise (floor);
    returns the per-set results and a few (generated, real) examples for the figures."""
    p = Parameters(params, "evaluation")
    gen = p.sub("generation")
    loaded = load_model(latent_diffusion_model["path"], device=str(gen["device"]),
                        model_types=CONDITIONED_MODEL_TYPES, purpose="evaluated on captions")
    return generation_judge.evaluate_generator(
        loaded.model, clips["heldout"], _judge_reference(clips, p), num_captions=gen["num_captions"],
        steps=int(gen["steps"]), cfg_scale=float(gen["cfg_scale"]), batch_size=int(gen["batch_size"]),
        seed=int(gen["seed"]), sampler=gen["sampler"], calibration=tuple(p["judges.calibration"]),
        judge_options=_judge_options(p), example_count=int(p["plots.spectrogram_examples"]),
        device=loaded.device, model_type=loaded.model_type)


# --------------------------------------------------------------------------- promotion + report


def decide_promotions(autoencoder_registration: Mapping[str, Any], latent_diffusion_registration: Mapping[str, Any],
                      autoencoder_metrics: Mapping[str, float], generation_results: Mapping[str, Mapping[str, float]],
                      params: Mapping[str, Any]) -> dict[str, Any]:
    """Move ``champion`` for each model whose challenger passes its floors and wins under the configured rule;
    say why. A collapsed autoencoder, and a diffusion model trained on an autoencoder that is not
    promotable, are never promoted."""
    rules = Parameters(params, "evaluation").sub("promotion")
    return promotion.decide_promotions(
        autoencoder_registration, latent_diffusion_registration, autoencoder_metrics, generation_results["model"],
        rules={kind: rules[kind] for kind in ("autoencoder", "latent_diffusion")},
        floors=rules["floors"] or {}, collapse=collapse_reason(autoencoder_metrics))


def build_report(autoencoder_metrics: Mapping[str, float], generation_results: Mapping[str, Mapping[str, float]],
                 promotion: Mapping[str, Any], dataset_split: Mapping[str, Any]):
    """metrics.json, the MLflow metrics and the Markdown report, which embeds the figures of :func:`make_plots`
    (links relative to the report, as the catalog places them)."""
    return build_metrics(autoencoder_metrics, generation_results, promotion, dataset_split,
                         figures=list(plots.REPORT_FIGURES.values()))


def make_plots(generation_examples: Sequence[Mapping[str, Any]], reconstruction_examples: Sequence[Mapping[str, Any]],
               generation_results: Mapping[str, Mapping[str, float]], autoencoder_model: Mapping[str, Any],
               latent_diffusion_model: Mapping[str, Any]):
    """The report figures: spectrogram grid, metric bars, training loss curves, and real | reconstruction |
    generated per test caption (a collapsed autoencoder shows as one repeated picture in the middle column)."""
    histories = {"autoencoder": loss_history(autoencoder_model.get("mlflow_run_id")),
                 "latent_diffusion": loss_history(latent_diffusion_model.get("mlflow_run_id"))}
    starts = {"autoencoder": discriminator_start(autoencoder_model["path"])}
    return (plots.spectrogram_grid(generation_examples), plots.metric_bars(generation_results),
            plots.loss_curves(histories, starts), plots.comparison_grid(reconstruction_examples, generation_examples))


def discriminator_start(model_path: str) -> int | None:
    """The step the autoencoder's adversarial losses switch on (``training.warmup_steps`` of the config embedded
    in the unwrapped model), or None when it has no such config or no warm-up."""
    config = read_embedded_model_config(model_path) or {}
    training = config.get("training")
    steps = training.get("warmup_steps") if isinstance(training, Mapping) else None
    return int(steps) if isinstance(steps, int) and steps > 0 else None
