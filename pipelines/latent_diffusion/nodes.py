"""Nodes of the latent_diffusion pipeline: thin wrappers around library functions (settings from
``conf/base/parameters_latent_diffusion.yml`` only; nodes hold no defaults).

MLflow: the DiT trains in a NESTED run of the Kedro run (``latent_diffusion``), so its ``train/loss``
history and ``demos/`` artifacts do not mix with the autoencoder's, which log into the parent run.
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.parameters import Parameters
from stable_audio_ops.inference.pre_encode import AUTOENCODER_TYPES, pre_encode_dataset
from stable_audio_ops.models.loading import local_checkpoint, read_config_for
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

log = logging.getLogger(__name__)

# reported as latent_diffusion.first_loss / final_loss: means over the first / last tenth of train/loss
LOSSES = LossReport(windowed="train/loss")


def _autoencoder_config(autoencoder_model: dict[str, Any]) -> dict[str, Any]:
    """The autoencoder's model config, as the loader finds it (embedded in the file, or beside it)."""
    return read_config_for(local_checkpoint(autoencoder_model["path"]))[0]


def pre_encode_latents(autoencoder_model: dict[str, Any], dataset_config: dict[str, Any],
                       params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Encode the prepared dataset with the unwrapped autoencoder; returns (pre_encoded dataset config, summary)."""
    p = Parameters(params, "latent_diffusion")
    options = p.sub("pre_encode")
    loaded = load_model(autoencoder_model["path"], model_types=AUTOENCODER_TYPES, purpose="pre-encoded")
    model, ae_config = loaded.model, loaded.config
    latents_dir = Path(p["latents_dir"])
    if latents_dir.exists():  # this folder is the pipeline's own output: never mix in latents of an older run
        shutil.rmtree(latents_dir)
    source = copy.deepcopy(dataset_config)
    source["random_crop"] = bool(options["random_crop"])
    # the prepared config is the training loader's (drop_last: true); pre-encoding must cover every clip,
    # or the last partial batch of train clips silently never reaches the DiT
    source["drop_last"] = False
    result = pre_encode_dataset(
        model, ae_config, source, latents_dir, batch_size=int(options["batch_size"]),
        sample_size=int(options["sample_size"]), num_workers=int(options["num_workers"]),
        latent_mode=options["latent_mode"], seed=options["seed"],
        model_config_path=autoencoder_model["path"], dataset_config_path="prepared_dataset_config",
        args=options.to_dict(), progress=True)
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
                       latents_summary: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
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
    p = Parameters(params, "latent_diffusion")
    config["sample_size"] = int(p["pre_encode.sample_size"])
    scale = p["latent_scale"]
    if scale == "auto":
        pretransform["scale"] = round(float(latents_summary["latent_std"]), 6) or 1.0
    elif scale is not None:
        pretransform["scale"] = float(scale)
    return config


def train_latent_diffusion(model_config: dict[str, Any], latent_dataset_config: dict[str, Any],
                           autoencoder_model: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Train the DiT in its own process, logging into a nested MLflow run of this Kedro run."""
    p = Parameters(params, "latent_diffusion")
    return train_in_process(model_config, latent_dataset_config, name=p["name"], run_dir=p["run_dir"],
                            train=p["train"], nested_run=True,
                            extra_flags={"pretransform_ckpt_path": autoencoder_model["path"]})


def unwrap_latent_diffusion(training_result: dict[str, Any], model_config: dict[str, Any],
                            params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> model-only safetensors (EMA backbone, config embedded)."""
    return unwrap_trained_model(training_result, model_config, Parameters(params, "latent_diffusion")["unwrapped_path"],
                                artifact_path="latent_diffusion", losses=LOSSES)
