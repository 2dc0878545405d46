"""Nodes of the diffusion_uncond pipeline that the other pipelines do not already have: one library call each
(settings from ``conf/base/parameters_diffusion_uncond.yml``; nodes hold no defaults; artifact locations from
``conf/base/catalog_diffusion_uncond.yml``).

Pre-encoding, the latent dataset config, the model config and training are the latent_diffusion pipeline's nodes
with the ``diffusion_uncond`` parameters (:mod:`pipelines.diffusion_uncond.pipeline`). Here: the unwrap, the
judgement (generated clips beside real test clips and noise: pitched accuracy and KID,
:mod:`stable_audio_ops.evaluation.pitched`) and registration.

MLflow: the model trains in a nested run ``diffusion_uncond.name`` of the Kedro run (as the DiT); the report,
evaluation and metrics go to the Kedro run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipelines.datasets import WriteInto, staged_file
from pipelines.parameters import Parameters
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data.audio_io import write_audio
from stable_audio_ops.evaluation.judge import load_dataset_clips, split_reference
from stable_audio_ops.evaluation.pitched import (
    flat_metrics,
    judge_unconditional,
    midi_range,
    unconditional_report_table,
)
from stable_audio_ops.inference.generation import generate_diffusion_uncond
from stable_audio_ops.models.loading import load_local_model
from stable_audio_ops.tracking.registration import register_autoencoder, register_latent_diffusion
from stable_audio_ops.training.tracked import LossReport, unwrap_trained_model

log = logging.getLogger(__name__)

# reported as diffusion_uncond.first_loss / final_loss: means over the first / last tenth of train/loss
LOSSES = LossReport(windowed="train/loss")


def unwrap_diffusion_uncond(training_result: dict[str, Any], model_config: dict[str, Any]
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> model-only safetensors (EMA backbone, config embedded), staged for the
    ``diffusion_uncond_model`` dataset; returns (model record, loss metrics)."""
    return unwrap_trained_model(training_result, model_config, staged_file("diffusion_uncond.safetensors"),
                                artifact_path="diffusion_uncond", losses=LOSSES)


def generate_clips(model: torch.nn.Module, *, num_clips: int, batch_size: int, steps: int, sample_size: int,
                   seed: int) -> torch.Tensor:
    """``num_clips`` unconditional clips ``[N, C, T]`` in batches, batch ``i`` seeded ``seed + i`` (reproducible)."""
    batches = []
    for i, start in enumerate(range(0, num_clips, batch_size)):
        batches.append(generate_diffusion_uncond(model, steps=steps, batch_size=min(batch_size, num_clips - start),
                                                 sample_size=sample_size, seed=seed + i, progress=False).float().cpu())
    return torch.cat(batches)


def report(results: Mapping[str, Mapping[str, float]], generation: Mapping[str, Any], midi: tuple[int, int],
           judged: Mapping[str, int]) -> str:
    """The Markdown report: the judges' table and how to read it."""
    return "\n".join([
        "# diffusion_uncond report", "",
        f"{judged['generated']} clips generated without conditioning ({generation['seconds']} s, "
        f"{generation['steps']} sampler steps, seed {generation['seed']}), judged beside {judged['real']} real "
        f"held-out test clips (ceiling) and RMS-matched white noise (floor); KID/FD against {judged['reference']} "
        "other real test clips (aiSFX embedding).", "",
        unconditional_report_table(results),
        f"pitched_acc_<judge>: share of clips whose f0 (ACF / CREPE-tiny) lies within ±50 cents of an equal-tempered "
        f"note in MIDI {midi[0]}..{midi[1]}; unpitched clips (no f0) count as not pitched. kid: lower is closer to "
        "the real notes (the real row is the two-samples floor).", "",
    ])


def evaluate_diffusion_uncond(model_record: Mapping[str, Any], test_dataset_config: dict[str, Any],
                              params: Mapping[str, Any]
                              ) -> tuple[dict[str, Any], dict[str, dict[str, float]], str, WriteInto]:
    """Generate ``generation.num_clips`` clips from fixed seeds and judge them against the test split (never
    trained on): (evaluation JSON, MLflow metrics, Markdown report, the writer of the generated-clips folder)."""
    p = Parameters(params, "diffusion_uncond").sub("evaluation")
    gen = p.sub("generation")
    loaded = load_local_model(model_record["path"], None, "cpu", model_types=("diffusion_uncond",),
                              purpose="judged by the diffusion_uncond pipeline")
    audio = generate_clips(loaded.model.eval(), num_clips=int(gen["num_clips"]), batch_size=int(gen["batch_size"]),
                           steps=int(gen["steps"]), sample_size=int(gen["sample_size"]), seed=int(gen["seed"]))
    rate = int(loaded.config["sample_rate"])
    clips = load_dataset_clips(validate_dataset_config(test_dataset_config, "test_dataset_config"))
    reference, heldout = split_reference(clips, holdout_fraction=float(p["holdout_fraction"]), seed=int(p["seed"]))
    if len(reference) < 2 or not heldout:
        raise ValueError(f"diffusion_uncond evaluation: the test split ({len(clips)} clips) gives {len(reference)} "
                         f"reference and {len(heldout)} held-out clips; it needs 2+ clips of each instrument")
    midi = midi_range(clips, p["midi_range"])
    results = judge_unconditional(
        [(clip.numpy(), rate) for clip in audio], [(a, sr) for a, sr, _ in heldout], midi_low=midi[0],
        midi_high=midi[1], pitch_judges=tuple(p["pitch_judges"]), crepe_model=str(p["crepe_model"]),
        cents=float(p["cents"]), reference=[(a, sr) for a, sr, _ in reference], embedder=p["embedder"],
        kid_subsets=int(p["kid_subsets"]), kid_subset_size=int(p["kid_subset_size"]), seed=int(p["seed"]))
    generation = {**gen.to_dict(), "seconds": round(audio.shape[-1] / rate, 3)}
    judged = {"generated": len(audio), "real": len(heldout), "reference": len(reference)}
    evaluation = {"results": results, "generation": generation, "midi_range": list(midi), "clips": judged}
    metrics = {key: {"value": value, "step": 0} for key, value in flat_metrics(results).items()}
    first = f"pitched_acc_{p['pitch_judges'][0]}"
    log.info("diffusion_uncond: %s generated %.2f / real %.2f / noise %.2f; KID generated %s", first,
             results["generated"][first], results["real"][first], results["noise"][first],
             results["generated"].get("kid"))

    def write_clips(folder: Path) -> None:
        for i, clip in enumerate(audio):
            write_audio(folder / f"clip_{i}.wav", clip, rate)

    return evaluation, metrics, report(results, generation, midi, judged), write_clips


def register_diffusion_uncond(autoencoder_model: Mapping[str, Any], model_record: Mapping[str, Any],
                              evaluation: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the autoencoder (the same version the evaluation pipeline registers when the weights match), then
    the model (alias ``challenger``) tagged with the autoencoder's version and its generated-set scores."""
    p = Parameters(params, "diffusion_uncond").sub("registry")
    autoencoder = register_autoencoder(autoencoder_model["path"], p["autoencoder_name"],
                                       training_run_id=autoencoder_model.get("mlflow_run_id"))
    scores = {f"eval.{k}": f"{float(v):.6g}" for k, v in evaluation["results"]["generated"].items()
              if k.startswith("pitched_acc_") or k == "kid"}
    model = register_latent_diffusion(model_record["path"], p["name"], autoencoder_name=p["autoencoder_name"],
                                      autoencoder_registration=autoencoder, artifact_name="diffusion_uncond",
                                      training_run_id=model_record.get("mlflow_run_id"), tags=scores)
    return {"autoencoder": autoencoder, "diffusion_uncond": {**model, **scores}}
