"""Nodes of the autoencoder pipeline: train in its own process, then unwrap."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from stable_audio_ops.training.launch import launch_training_process
from stable_audio_ops.training.unwrap import unwrap_checkpoint

log = logging.getLogger(__name__)


def _active_run_id() -> str | None:
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def train_autoencoder(
    model_config: dict[str, Any], dataset_config: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Train the autoencoder as a separate process that logs into this Kedro run's MLflow run."""
    train = dict(params["train"])
    threads = train.pop("threads", None)
    run_id = _active_run_id()
    flags = {
        "name": params["name"],
        **train,
        "logger": "mlflow" if run_id else "none",
        "mlflow_tracking_uri": mlflow.get_tracking_uri() if run_id else None,
        "mlflow_run_id": run_id,
    }
    result = launch_training_process(
        model_config, dataset_config, save_dir=Path(params["run_dir"]) / "checkpoints", flags=flags, threads=threads
    )
    return {
        "checkpoint_path": str(result.checkpoint_path),
        "save_dir": str(result.save_dir),
        "mlflow_run_id": run_id,
        "max_steps": train.get("max_steps"),
    }


def unwrap_autoencoder(
    training_result: dict[str, Any], model_config: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wrapped training checkpoint -> model-only safetensors (EMA weights when trained with EMA)."""
    output = unwrap_checkpoint(model_config, training_result["checkpoint_path"], params["unwrapped_path"])
    info = {
        "path": str(output),
        "size_bytes": Path(output).stat().st_size,
        "trained_from": training_result["checkpoint_path"],
        "mlflow_run_id": training_result.get("mlflow_run_id"),
    }
    metrics: dict[str, Any] = {}
    run_id = training_result.get("mlflow_run_id")
    if run_id:
        latest = mlflow.tracking.MlflowClient().get_run(run_id).data.metrics
        for key in ("train/loss", "train/mrstft_loss", "train/kl_loss"):
            if key in latest:
                metrics[f"final_{key.split('/')[-1]}"] = {"value": float(latest[key]), "step": 0}
        mlflow.log_artifact(str(output), artifact_path="autoencoder")
    log.info("autoencoder: unwrapped model written to %s", output)
    return info, metrics
