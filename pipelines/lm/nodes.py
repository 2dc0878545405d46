"""Nodes of the lm pipeline that the other pipelines do not already have: one library call each (settings from
``conf/base/parameters_lm.yml``; nodes hold no defaults; artifact locations from ``conf/base/catalog_lm.yml``).

Training the tokenizer, unwrapping it, pre-encoding, the token dataset config and training the LM are the
autoencoder and latent_diffusion pipelines' nodes with the ``lm`` parameters (:mod:`pipelines.lm.pipeline`). Here:
the LM config over the trained tokenizer, the unwrap, the judgement (held-out token perplexity, generated clips,
report) and registration.

MLflow: the tokenizer trains in the Kedro run's run (as the autoencoder pipeline's autoencoder), the LM in a nested
run ``lm.name`` (as the DiT); the report, evaluation and metrics go to the Kedro run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.datasets import WriteInto, staged_file
from pipelines.parameters import Parameters
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.config.lm import lm_model_config
from stable_audio_ops.data.audio_io import write_audio
from stable_audio_ops.evaluation.judge import load_dataset_clips
from stable_audio_ops.evaluation.lm import clip_checks, heldout_token_perplexity, lm_report
from stable_audio_ops.evaluation.pitched import flat_metrics, judge_unconditional, midi_range
from stable_audio_ops.inference.lm_generation import generate_lm_audio
from stable_audio_ops.models.loading import load_local_model, local_checkpoint, read_config_for
from stable_audio_ops.tracking.registration import register_autoencoder, register_latent_diffusion
from stable_audio_ops.training.tracked import LossReport, unwrap_trained_model

log = logging.getLogger(__name__)

# reported as lm.first_loss / final_loss: means over the first / last tenth of train/loss (cross-entropy)
LOSSES = LossReport(windowed="train/loss")


def build_lm_config(lm_config: dict[str, Any], autoencoder_model: Mapping[str, Any],
                    params: Mapping[str, Any]) -> dict[str, Any]:
    """The LM config that trains: its pretransform IS the trained tokenizer's config, its ``sample_size`` the
    pre-encoded clip length, and it reads token files (``training.pre_encoded``)."""
    p = Parameters(params, "lm")
    autoencoder_config = read_config_for(local_checkpoint(autoencoder_model["path"]))[0]
    return lm_model_config(lm_config, autoencoder_config, sample_size=int(p["pre_encode.sample_size"]))


def unwrap_lm(training_result: dict[str, Any], model_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> model-only safetensors (config embedded), staged for the ``lm_model`` dataset;
    returns (model record, loss metrics)."""
    return unwrap_trained_model(training_result, model_config, staged_file("lm.safetensors"), artifact_path="lm",
                                losses=LOSSES)


def evaluate_lm(lm_model: Mapping[str, Any], test_dataset_config: dict[str, Any], params: Mapping[str, Any]
                ) -> tuple[dict[str, Any], dict[str, dict[str, float]], str, WriteInto]:
    """Token perplexity of the LM on every held-out test clip, and ``generation.num_clips`` clips generated from
    a fixed seed, checked finite and non-silent and judged pitched or not beside real clips and noise
    (:func:`judge_pitched`): (evaluation JSON, MLflow metrics, Markdown report, the writer of
    the ``lm_generated`` folder)."""
    p = Parameters(params, "lm").sub("evaluation")
    gen = p.sub("generation")
    loaded = load_local_model(lm_model["path"], None, "cpu", model_types=("lm",), purpose="judged by the lm pipeline")
    model = loaded.model.eval()
    perplexity = heldout_token_perplexity(model, validate_dataset_config(test_dataset_config, "test_dataset_config"),
                                          sample_size=int(loaded.config["sample_size"]),
                                          batch_size=int(p["batch_size"]), num_workers=int(p["num_workers"]))
    audio = generate_lm_audio(model, sample_size=int(gen["sample_size"]), batch_size=int(gen["num_clips"]),
                              temperature=float(gen["temperature"]), top_k=int(gen["top_k"]),
                              top_p=float(gen["top_p"]), seed=int(gen["seed"]), progress=False)
    clips = clip_checks(audio)
    rate = int(loaded.config["sample_rate"])
    generation = {**gen.to_dict(), "seconds": round(audio.shape[-1] / rate, 3)}
    pitched = judge_pitched(audio, rate, test_dataset_config, p.sub("pitched"))
    evaluation = {"perplexity": perplexity, "clips": clips, "generation": generation, "pitched": pitched,
                  "all_clips_ok": all(c["finite"] and not c["silent"] for c in clips)}
    metrics = {k: {"value": float(perplexity[k]), "step": 0}
               for k in ("cross_entropy", "perplexity", "uniform_cross_entropy")}
    metrics["clips_ok"] = {"value": float(evaluation["all_clips_ok"]), "step": 0}
    metrics.update({f"pitched.{k}": {"value": v, "step": 0} for k, v in flat_metrics(pitched["results"]).items()})
    log.info("lm: held-out cross-entropy %.3f nats (uniform %.3f), perplexity %.2f; %d clips, all ok: %s",
             perplexity["cross_entropy"], perplexity["uniform_cross_entropy"], perplexity["perplexity"], len(clips),
             evaluation["all_clips_ok"])

    def write_clips(folder: Path) -> None:
        for i, clip in enumerate(audio):
            write_audio(folder / f"clip_{i}.wav", clip, rate)

    return evaluation, metrics, lm_report(perplexity, clips, generation, pitched=pitched), write_clips


def judge_pitched(audio: torch.Tensor, rate: int, test_dataset_config: dict[str, Any],
                  p: Parameters) -> dict[str, Any]:
    """Do the generated tokens decode to notes? The pitched accuracy of the generated clips beside
    ``max_real_clips`` test clips (ceiling) and noise matched to them (floor); pitch only (too few clips for KID)."""
    real = load_dataset_clips(validate_dataset_config(test_dataset_config, "test_dataset_config"))
    picked = np.random.default_rng(int(p["seed"])).permutation(len(real))[: int(p["max_real_clips"])]
    real = [real[i] for i in sorted(picked)]
    low, high = midi_range(real, p["midi_range"])
    results = judge_unconditional([(clip.float().numpy(), rate) for clip in audio], [(a, sr) for a, sr, _ in real],
                                  midi_low=low, midi_high=high, pitch_judges=tuple(p["pitch_judges"]),
                                  crepe_model=str(p["crepe_model"]), cents=float(p["cents"]), embedder=None,
                                  seed=int(p["seed"]))
    return {"results": results, "midi_range": [low, high], "cents": float(p["cents"])}


def register_lm(autoencoder_model: Mapping[str, Any], lm_model: Mapping[str, Any], evaluation: Mapping[str, Any],
                params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the tokenizer, then the LM (alias ``challenger`` each) tagged with the tokenizer's registered
    version (verified by its weights) and the held-out ``eval.cross_entropy`` / ``eval.perplexity``."""
    p = Parameters(params, "lm").sub("registry")
    autoencoder = register_autoencoder(autoencoder_model["path"], p["autoencoder_name"],
                                       training_run_id=autoencoder_model.get("mlflow_run_id"))
    scores = {f"eval.{k}": f"{float(evaluation['perplexity'][k]):.6g}" for k in ("cross_entropy", "perplexity")}
    lm = register_latent_diffusion(lm_model["path"], p["name"], autoencoder_name=p["autoencoder_name"],
                                   autoencoder_registration=autoencoder, artifact_name="lm",
                                   training_run_id=lm_model.get("mlflow_run_id"), tags=scores)
    return {"autoencoder": autoencoder, "lm": {**lm, **scores}}
