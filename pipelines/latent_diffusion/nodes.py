"""Nodes of the latent_diffusion pipeline: one library call each (settings from
``conf/base/parameters_latent_diffusion.yml`` only; nodes hold no defaults; artifact locations from the catalog).

Data flow: the unwrapped autoencoder encodes the train split into the ``latents`` folder; the latents' summary
(their std sets ``latent_scale: auto``) and the pre-encoded dataset config are read back from that folder; the
DiT config is derived from the autoencoder; the DiT trains and is unwrapped.

MLflow: the DiT trains in a NESTED run of the Kedro run (``latent_diffusion``), so its ``train/loss``
history and ``demos/`` artifacts do not mix with the autoencoder's, which log into the parent run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pipelines.datasets import WriteInto, staged_file
from pipelines.parameters import Parameters
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.config.latent_diffusion import latent_diffusion_config
from stable_audio_ops.data.pre_encoded import pre_encoded_dataset_config, summarize_latents
from stable_audio_ops.inference.pre_encode import pre_encode_training_set
from stable_audio_ops.models.loading import local_checkpoint, read_config_for
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

log = logging.getLogger(__name__)

# reported as latent_diffusion.first_loss / final_loss: means over the first / last tenth of train/loss
LOSSES = LossReport(windowed="train/loss")


def pre_encode_latents(autoencoder_model: dict[str, Any], dataset_config: dict[str, Any],
                       params: Mapping[str, Any], section: str = "latent_diffusion",
                       is_discrete: bool = False) -> WriteInto:
    """Encoding of the prepared (train) dataset with the unwrapped autoencoder, run when the catalog saves the
    ``latents`` folder (a fresh folder each time: latents of an older run never mix in). ``is_discrete`` writes
    token indices instead (the lm pipeline, whose parameters are ``section`` ``lm``)."""
    options = Parameters(params, section).sub("pre_encode")
    training_set = validate_dataset_config(dataset_config, "prepared_dataset_config")
    return partial(pre_encode_training_set, autoencoder_model["path"], training_set,
                   sample_size=int(options["sample_size"]), batch_size=int(options["batch_size"]),
                   num_workers=int(options["num_workers"]), random_crop=bool(options["random_crop"]),
                   latent_mode=options["latent_mode"], seed=options["seed"], args=options.to_dict(),
                   is_discrete=is_discrete)


def summarize_latent_folder(latents: Path) -> dict[str, Any]:
    """Count, shape, mean and std of the latents as training will read them."""
    summary = summarize_latents(latents)
    log.info("latent_diffusion: %d latents %s (std %.3f) in %s", summary["count"], summary["latent_shape"],
             summary["latent_std"], latents)
    return summary


def latent_dataset_config(latents: Path, dataset_config: dict[str, Any]) -> dict[str, Any]:
    """The ``pre_encoded`` dataset config over the latents folder (id: the prepared dataset's + ``_latents``)."""
    prepared = validate_dataset_config(dataset_config, "prepared_dataset_config")
    return pre_encoded_dataset_config(latents, f"{prepared.datasets[0].id}_latents")


def build_model_config(dit_config: dict[str, Any], autoencoder_model: dict[str, Any],
                       latents_summary: dict[str, Any], params: Mapping[str, Any],
                       section: str = "latent_diffusion") -> dict[str, Any]:
    """The DiT config that trains: its pretransform IS the trained autoencoder's config (never drifts),
    channels/rate follow it, ``sample_size`` is the pre-encoded length and ``latent_scale`` sets the scale.
    The diffusion_uncond pipeline builds its unconditional DiT so (``section`` ``diffusion_uncond``)."""
    p = Parameters(params, section)
    autoencoder_config = read_config_for(local_checkpoint(autoencoder_model["path"]))[0]  # embedded or beside it
    return latent_diffusion_config(dit_config, autoencoder_config,
                                   sample_size=p["pre_encode.sample_size"], latent_scale=p["latent_scale"],
                                   latent_std=latents_summary["latent_std"])


def train_latent_diffusion(model_config: dict[str, Any], latent_dataset_config: dict[str, Any],
                           autoencoder_model: dict[str, Any], params: Mapping[str, Any],
                           section: str = "latent_diffusion") -> WriteInto:
    """Training of the DiT in its own process, logging into a nested MLflow run of this Kedro run; run when the
    catalog saves ``latent_diffusion_training_result`` (into that dataset's run folder). Any model over a
    pre-encoded dataset and the autoencoder as pretransform trains so: the lm pipeline's LM (``section`` ``lm``)."""
    p = Parameters(params, section)
    name, train, extra = p["name"], p["train"], {"pretransform_ckpt_path": autoencoder_model["path"]}

    def train_into(run_dir: Path) -> dict[str, Any]:
        return train_in_process(model_config, latent_dataset_config, name=name, run_dir=run_dir, train=train,
                                nested_run=True, extra_flags=extra)

    return train_into


def unwrap_latent_diffusion(training_result: dict[str, Any],
                            model_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> model-only safetensors (EMA backbone, config embedded), staged for the
    ``latent_diffusion_model`` dataset; returns (model record, loss metrics)."""
    return unwrap_trained_model(training_result, model_config, staged_file("latent_diffusion.safetensors"),
                                artifact_path="latent_diffusion", losses=LOSSES)
