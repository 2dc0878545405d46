"""Nodes of the clap pipeline: one library call each (settings from ``conf/base/parameters_clap.yml``; nodes hold
no defaults; artifact locations from ``conf/base/catalog_clap.yml``).

Data flow: a small random RoBERTa is written once with ``save_pretrained`` (the clap text branch loads from a
local folder only; nothing downloads) -> the demo clap config (``model_configs/clap_demo.json``) gets that folder
as its text model -> training on the prepared train split, whose sidecar metadata gives every clip its caption as
``prompt``, in its own process through the train launcher (logging into this Kedro run's MLflow run) -> the final
checkpoint is unwrapped into a plain clap model, the file ``evaluation.clap_model`` points at.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.datasets import WriteInto, staged_file
from pipelines.parameters import Parameters
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.clap_text import save_random_roberta
from stable_audio_ops.training.tracked import LossReport, train_in_process, unwrap_trained_model

# reported as clap.final_loss / clap.final_contrastive_loss
LOSSES = LossReport(latest=("train/loss", "train/contrastive_loss"))
TEMPLATE = "conf/base/model_configs/clap_demo.json"


def build_text_encoder(params: Mapping[str, Any]) -> WriteInto:
    """The random RoBERTa of ``clap.text_encoder``, written into the ``clap_text_encoder`` folder."""
    options = dict(Parameters(params, "clap")["text_encoder"])

    def write(folder: Path) -> dict[str, Any]:
        save_random_roberta(folder, **options)
        return {"path": str(folder), **options}

    return write


def build_clap_config(template: Mapping[str, Any], text_encoder: Mapping[str, Any]) -> dict[str, Any]:
    """The demo clap config with the text encoder's folder as its RoBERTa; its text ``context_length`` must fit
    the encoder's ``max_length`` (an error naming both otherwise)."""
    config = copy.deepcopy(dict(template))
    text = config["model"]["text"]
    length = int(text.get("context_length", 77))
    if length > int(text_encoder["max_length"]):
        raise ConfigError(TEMPLATE, "model.text.context_length",
                          f"{length} tokens, but the clap text encoder (parameters_clap.yml: "
                          f"clap.text_encoder.max_length) takes at most {text_encoder['max_length']}")
    text["model"]["config"]["name"] = str(text_encoder["path"])
    return config


def train_clap(model_config: dict[str, Any], dataset_config: dict[str, Any], params: Mapping[str, Any]) -> WriteInto:
    """Training as a separate process that logs into this Kedro run's MLflow run, run when the catalog saves
    ``clap_training_result`` (into that dataset's run folder)."""
    p = Parameters(params, "clap")
    name, train = p["name"], p["train"]

    def train_into(run_dir: Path) -> dict[str, Any]:
        return train_in_process(model_config, dataset_config, name=name, run_dir=run_dir, train=train)

    return train_into


def export_clap(training_result: dict[str, Any], model_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training checkpoint -> the plain clap model (config embedded), staged for the ``clap_model`` dataset;
    plus the final losses."""
    return unwrap_trained_model(training_result, model_config, staged_file("clap.safetensors"),
                                artifact_path="clap", losses=LOSSES)
