"""Nodes of the fine_tune pipeline: one library call each (settings from ``conf/base/parameters_fine_tune.yml``;
nodes hold no defaults; artifact locations from ``conf/base/catalog_fine_tune.yml``).

Data flow: the pretrained model (a Stable Audio Open-style folder, a checkpoint or ``models:/``) is resolved to
local files and an identity; its autoencoder pretransform is written out and encodes the prepared train split;
the fine-tune config is the base's own config plus the fine-tune settings; training starts from the base weights
(``--pretrained-ckpt-path``, strict) in a nested MLflow run; the result is exported as a merged model and, for
LoRA, an adapter; the base and the fine-tuned model are judged on the same held-out captions; the merged model
and/or the adapter alone (naming its base) are registered with the base, adapter, data and run as lineage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pipelines.datasets import WriteInto, staged_file
from pipelines.evaluation.nodes import evaluate_generation
from pipelines.parameters import Parameters
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.inference.pre_encode import pre_encode_training_set
from stable_audio_ops.models.pretransform_file import write_pretransform_autoencoder
from stable_audio_ops.tracking.pretrained import resolve_pretrained_model
from stable_audio_ops.tracking.registration import fine_tune_registry_kinds, register_fine_tune_versions
from stable_audio_ops.training.fine_tune import export_adapter, fine_tune_model_config, lora_config_of
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

log = logging.getLogger(__name__)

LOSSES = LossReport(windowed="train/loss")  # reported as fine_tune.first_loss / final_loss
BASE_IDENTITY_KEYS = ("source", "weights_file_sha256", "registry")


def resolve_base_model(params: Mapping[str, Any]) -> dict[str, Any]:
    """The pretrained model's weights file, config and identity (nothing downloads; ``models:/`` sources are
    copied out of the local registry)."""
    base = resolve_pretrained_model(Parameters(params, "fine_tune")["base_model"])
    log.info("fine_tune: base model %s (%s, weights sha256 %s)", base["source"], base["path"],
             base["weights_file_sha256"][:12])
    return base


def extract_pretransform(base_model: Mapping[str, Any]) -> dict[str, Any]:
    """The base's autoencoder pretransform as an unwrapped autoencoder file (staged for the catalog)."""
    path = write_pretransform_autoencoder(base_model["path"], base_model["model_config"],
                                          staged_file("pretransform.safetensors"), base_model["config_source"])
    return {"path": str(path), "model_type": "autoencoder", "extracted_from": base_model["path"]}


def pre_encode_latents(pretransform_model: Mapping[str, Any], dataset_config: dict[str, Any],
                       params: Mapping[str, Any]) -> WriteInto:
    """Encoding of the prepared (train) dataset with the base's own pretransform, run when the catalog saves
    the ``fine_tune_latents`` folder."""
    options = Parameters(params, "fine_tune").sub("pre_encode")
    training_set = validate_dataset_config(dataset_config, "prepared_dataset_config")
    return partial(pre_encode_training_set, pretransform_model["path"], training_set,
                   sample_size=int(options["sample_size"]), batch_size=int(options["batch_size"]),
                   num_workers=int(options["num_workers"]), random_crop=bool(options["random_crop"]),
                   latent_mode=options["latent_mode"], seed=options["seed"], args=options.to_dict())


def build_fine_tune_config(base_model: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The base's config with the fine-tune's mode, LoRA, optimizer, EMA, checkpointing and crop length."""
    p = Parameters(params, "fine_tune")
    fine_tune_registry_kinds(p["registry.register"], p["mode"], p.source)  # a wrong choice fails before training
    return fine_tune_model_config(base_model["model_config"], mode=p["mode"], lora=p["lora"],
                                  optimizer=p["optimizer"], sample_size=int(p["pre_encode.sample_size"]),
                                  use_ema=bool(p["use_ema"]), gradient_checkpointing=bool(p["gradient_checkpointing"]),
                                  text_encoder_path=p["text_encoder_path"], source=p.source)


def train_fine_tune(model_config: dict[str, Any], latent_dataset_config: dict[str, Any],
                    base_model: Mapping[str, Any], params: Mapping[str, Any]) -> WriteInto:
    """Training from the base weights in its own process (nested MLflow run ``name``); run when the catalog
    saves ``fine_tune_training_result``."""
    p = Parameters(params, "fine_tune")
    name, train, extra = p["name"], p["train"], {"pretrained_ckpt_path": base_model["path"]}

    def train_into(run_dir: Path) -> dict[str, Any]:
        return train_in_process(model_config, latent_dataset_config, name=name, run_dir=run_dir, train=train,
                                nested_run=True, extra_flags=extra)

    return train_into


def export_fine_tuned(training_result: dict[str, Any], model_config: dict[str, Any],
                      base_model: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The merged unwrapped model (adapters folded in), the adapter file (LoRA; ``path`` None in full mode)
    and the loss metrics."""
    model, metrics = unwrap_trained_model(training_result, model_config, staged_file("fine_tuned.safetensors"),
                                          artifact_path="fine_tune", losses=LOSSES)
    lora = lora_config_of(model_config)
    adapter: dict[str, Any] = {"path": None, "lora_config": None}
    if lora is not None:
        identity = {k: base_model[k] for k in BASE_IDENTITY_KEYS}
        path = export_adapter(model_config, training_result["checkpoint_path"], staged_file("adapter.safetensors"),
                              base_model=identity)
        adapter = {"path": str(path), "lora_config": lora.to_dict(), "base_model": identity}
    return model, adapter, metrics


def evaluate_against_base(base_model: Mapping[str, Any], fine_tuned_model: Mapping[str, Any],
                          clips: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation pipeline's generation judges on the same held-out captions for the base and the
    fine-tuned model (the merged file), with the real clips' and noise's scores beside them."""
    base, _ = evaluate_generation({"path": base_model["path"]}, clips, params)
    tuned, _ = evaluate_generation(fine_tuned_model, clips, params)
    delta = {k: tuned["model"][k] - v for k, v in base["model"].items()
             if isinstance(v, (int, float)) and isinstance(tuned["model"].get(k), (int, float))}
    return {"base": base["model"], "fine_tuned": tuned["model"], "delta": delta,
            **{name: values for name, values in tuned.items() if name != "model"}}


def register_fine_tune(fine_tuned_model: Mapping[str, Any], adapter: Mapping[str, Any], base_model: Mapping[str, Any],
                       evaluation: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the merged model and/or the adapter alone (``registry.register``: merged | adapter | both), each
    with the same lineage (base, mode, adapter, data, training run) and scores."""
    p = Parameters(params, "fine_tune")
    return register_fine_tune_versions(fine_tuned_model["path"], adapter, register=p["registry.register"],
                                       merged_name=p["registry.name"], adapter_name=p["registry.adapter_name"],
                                       base_model=base_model, mode=p["mode"],
                                       training_run_id=fine_tuned_model.get("mlflow_run_id"),
                                       metrics=evaluation["fine_tuned"])
