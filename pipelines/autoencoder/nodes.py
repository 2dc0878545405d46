"""Nodes of the autoencoder pipeline: train in its own process, then unwrap (one library call each).

The training process logs into this Kedro run's MLflow run (kedro-mlflow opens it), so the run holds
the data metrics, the autoencoder's loss history and the unwrapped model together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.parameters import Parameters
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

# the autoencoder's loss terms, reported as autoencoder.final_loss / final_mrstft_loss / final_kl_loss
LOSSES = LossReport(latest=("train/loss", "train/mrstft_loss", "train/kl_loss"))


def train_autoencoder(model_config: dict[str, Any], dataset_config: dict[str, Any],
                      params: Mapping[str, Any]) -> dict[str, Any]:
    """Train the autoencoder as a separate process that logs into this Kedro run's MLflow run."""
    p = Parameters(params, "autoencoder")
    return train_in_process(model_config, dataset_config, name=p["name"], run_dir=p["run_dir"], train=p["train"])


def unwrap_autoencoder(training_result: dict[str, Any], model_config: dict[str, Any],
                       params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wrapped training checkpoint -> model-only safetensors (EMA weights when trained with EMA)."""
    return unwrap_trained_model(training_result, model_config, Parameters(params, "autoencoder")["unwrapped_path"],
                                artifact_path="autoencoder", losses=LOSSES)
