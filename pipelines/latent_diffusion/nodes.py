"""Nodes of the latent_diffusion pipeline: thin wrappers around library functions.

MLflow: the DiT trains in a NESTED run of the Kedro run (``latent_diffusion``), so its ``train/loss``
history and ``demos/`` artifacts do not mix with the autoencoder's, which log into the parent run.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

import mlflow
from stable_audio_ops.inference.pre_encode import AUTOENCODER_TYPES, pre_encode_dataset
from stable_audio_ops.models.loading import local_checkpoint, read_config_for
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.training.launch import launch_training_process
from stable_audio_ops.training.unwrap import unwrap_checkpoint

log = logging.getLogger(__name__)


def _autoencoder_config(autoencoder_model: dict[str, Any]) -> dict[str, Any]:
    """The autoencoder's model config, as the loader finds it (embedded in the file, or beside it)."""
    return read_config_for(local_checkpoint(autoencoder_model["path"]))[0]


def pre_encode_latents(autoencoder_model: dict[str, Any], dataset_config: dict[str, Any],
                       params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Encode the prepared dataset with the unwrapped autoencoder; returns (pre_encoded dataset config, summary)."""
    options = params["pre_encode"]
    loaded = load_model(autoencoder_model["path"], model_types=AUTOENCODER_TYPES, purpose="pre-encoded")
    model, ae_config = loaded.model, loaded.config
    latents_dir = Path(params["latents_dir"])
    if latents_dir.exists():  # this folder is the pipeline's own output: never mix in latents of an older run
        shutil.rmtree(latents_dir)
    source = copy.deepcopy(dataset_config)
    source["random_crop"] = bool(options.get("random_crop", False))
    # the prepared config is the training loader's (drop_last: true); pre-encoding must cover every clip,
    # or the last partial batch of train clips silently never reaches the DiT
    source["drop_last"] = False
    result = pre_encode_dataset(
        model, ae_config, source, latents_dir, batch_size=int(options["batch_size"]),
        sample_size=int(options["sample_size"]), num_workers=int(options.get("num_workers", 0)),
        latent_mode=options.get("latent_mode", "sample"), seed=options.get("seed"),
        model_config_path=autoencoder_model["path"], dataset_config_path="prepared_dataset_config",
        args=options, progress=True)
    stack = np.stack([np.load(p) for p in sorted(result.rank_dir.glob("*.npy"))])
    summary = {"count": result.count, "latent_shape": list(result.latent_shape or ()),
               "latent_std": float(stack.std()), "latent_mean": float(stack.mean()),
               "downsampling_ratio": int(model.downsampling_ratio), "latents_dir": str(latents_dir),
               "autoencoder": autoencoder_model["path"]}
    latent_dataset = {"dataset_type": "pre_encoded", "random_crop": False, "drop_last": True,
                      "datasets": [{"id": f"{dataset_config['datasets'][0]['id']}_latents",
                                    "path": str(latents_dir)}]}
    log.info("latent_diffusion: %d latents %s (std %.3f) in %s", result.count, result.latent_shape,
             summary["latent_std"], latents_dir)
    return latent_dataset, summary


def build_model_config(dit_config: dict[str, Any], autoencoder_model: dict[str, Any],
                       latents_summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The DiT config that trains: its pretransform IS the trained autoencoder's config (never drifts),
    channels/rate follow it, ``sample_size`` is the pre-encoded length and ``latent_scale`` sets the scale."""
    config = copy.deepcopy(dit_config)
    ae_config = _autoencoder_config(autoencoder_model)
    model = config["model"]
    pretransform = model.setdefault("pretransform", {"type": "autoencoder"})
    pretransform["config"] = copy.deepcopy(ae_config["model"])
    latent_dim = int(ae_config["model"]["latent_dim"])
    model["io_channels"] = latent_dim
    model["diffusion"]["config"]["io_channels"] = latent_dim
    config["sample_rate"] = ae_config["sample_rate"]
    config["audio_channels"] = ae_config.get("audio_channels", 2)
    config["sample_size"] = int(params["pre_encode"]["sample_size"])
    scale = params.get("latent_scale")
    if scale == "auto":
        pretransform["scale"] = round(float(latents_summary["latent_std"]), 6) or 1.0
    elif scale is not None:
        pretransform["scale"] = float(scale)
    return config


def train_latent_diffusion(model_config: dict[str, Any], latent_dataset_config: dict[str, Any],
                           autoencoder_model: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Train the DiT in its own process, logging into a nested MLflow run of this Kedro run."""
    train = dict(params["train"])
    threads = train.pop("threads", None)
    parent = mlflow.active_run()
    run_id = None
    if parent is not None:
        run_id = mlflow.start_run(run_name=params["name"], nested=True).info.run_id
    status = "FAILED"
    try:
        flags = {
            "name": params["name"],
            **train,
            "pretransform_ckpt_path": autoencoder_model["path"],
            "logger": "mlflow" if run_id else "none",
            "mlflow_tracking_uri": mlflow.get_tracking_uri() if run_id else None,
            "mlflow_run_id": run_id,
        }
        result = launch_training_process(model_config, latent_dataset_config,
                                         save_dir=Path(params["run_dir"]) / "checkpoints", flags=flags,
                                         threads=threads)
        status = "FINISHED"
    finally:
        if run_id is not None:
            mlflow.end_run(status=status)
    return {"checkpoint_path": str(result.checkpoint_path), "save_dir": str(result.save_dir),
            "mlflow_run_id": run_id, "max_steps": train.get("max_steps")}


def unwrap_latent_diffusion(training_result: dict[str, Any], model_config: dict[str, Any],
                            params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> model-only safetensors (EMA backbone, config embedded)."""
    output = unwrap_checkpoint(model_config, training_result["checkpoint_path"], params["unwrapped_path"])
    run_id = training_result.get("mlflow_run_id")
    info = {"path": str(output), "size_bytes": Path(output).stat().st_size,
            "trained_from": training_result["checkpoint_path"], "mlflow_run_id": run_id,
            "model_type": model_config["model_type"], "sample_size": model_config["sample_size"],
            "sample_rate": model_config["sample_rate"]}
    metrics: dict[str, Any] = {}
    if run_id:
        client = mlflow.tracking.MlflowClient()
        history = client.get_metric_history(run_id, "train/loss")
        if history:
            values = [m.value for m in sorted(history, key=lambda m: m.step)]
            window = max(1, len(values) // 10)
            metrics["first_loss"] = {"value": float(np.mean(values[:window])), "step": 0}
            metrics["final_loss"] = {"value": float(np.mean(values[-window:])), "step": 0}
        client.log_artifact(run_id, str(output), artifact_path="latent_diffusion")
    log.info("latent_diffusion: unwrapped model written to %s", output)
    return info, metrics
