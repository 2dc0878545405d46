"""Nodes of the autoencoder pipeline: train in its own process, then unwrap (one library call each).

The training process logs into this Kedro run's MLflow run (kedro-mlflow opens it), so the run holds
the data metrics, the autoencoder's loss history and the unwrapped model together. Where the run folder and
the model file live is the catalog's business (``autoencoder_training_result``, ``autoencoder_model``):
training is handed over as a writer of the run folder, the unwrapped file as a staged file
(:mod:`pipelines.datasets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.datasets import WriteInto, staged_file
from pipelines.parameters import Parameters
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

# the autoencoder's loss terms, reported as autoencoder.final_loss / final_mrstft_loss / final_kl_loss
LOSSES = LossReport(latest=("train/loss", "train/mrstft_loss", "train/kl_loss"))


def train_autoencoder(model_config: dict[str, Any], dataset_config: dict[str, Any],
                      params: Mapping[str, Any], section: str = "autoencoder") -> WriteInto:
    """Training as a separate process that logs into this Kedro run's MLflow run, run when the catalog saves
    ``autoencoder_training_result`` (into that dataset's run folder). ``section`` names ``params`` in errors
    (the lm pipeline trains its discrete autoencoder from ``lm.autoencoder``)."""
    p = Parameters(params, section)
    name, train = p["name"], p["train"]

    def train_into(run_dir: Path) -> dict[str, Any]:
        return train_in_process(model_config, dataset_config, name=name, run_dir=run_dir, train=train)

    return train_into


def unwrap_autoencoder(training_result: dict[str, Any],
                       model_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wrapped training checkpoint -> model-only safetensors (EMA weights when trained with EMA), staged for the
    ``autoencoder_model`` dataset; returns (model record, loss metrics)."""
    return unwrap_trained_model(training_result, model_config, staged_file("autoencoder.safetensors"),
                                artifact_path="autoencoder", losses=LOSSES)
