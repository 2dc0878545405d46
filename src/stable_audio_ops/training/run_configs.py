"""The configs a training run reads (model, dataset, optional validation dataset), validated once.

Why here and not in ``config/``: what a *training* run needs of a model config (a ``training`` section, a
``sample_size`` crop) and how a ``pre_encoded`` dataset switches training to latents are training rules.
"""

from __future__ import annotations

import logging

from stable_audio_ops.config.dataset_config import DatasetConfig, PreEncodedConfig, validate_dataset_config
from stable_audio_ops.config.model_config import load_model_config, read_json_file
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.training.options import TrainOptions

log = logging.getLogger(__name__)


def load_configs(options: TrainOptions) -> tuple[dict, DatasetConfig, DatasetConfig | None]:
    """Model, dataset and optional validation dataset configs, validated (errors name the file); the dataset
    configs come back as frozen :data:`DatasetConfig` objects that the loaders take as they are."""
    if not options.model_config:
        raise ConfigError("", "model_config", "no model config given (--model-config)")
    if not options.dataset_config:
        raise ConfigError("", "dataset_config", "no dataset config given (--dataset-config)")
    model_config = load_model_config(options.model_config)
    if "training" not in model_config:
        raise ConfigError(options.model_config, "training", "missing required key (train.py needs a training section)")
    if "sample_size" not in model_config:
        raise ConfigError(options.model_config, "sample_size", "missing required key (the training crop length)")
    dataset_config = validate_dataset_config(read_json_file(options.dataset_config, "dataset config"),
                                             options.dataset_config)
    val_config = None
    if options.val_dataset_config:
        val_config = validate_dataset_config(read_json_file(options.val_dataset_config, "dataset config"),
                                             options.val_dataset_config)
    apply_pre_encoded_dataset(model_config, dataset_config, options.model_config, options.dataset_config)
    return model_config, dataset_config, val_config


def apply_pre_encoded_dataset(model_config: dict, dataset_config: DatasetConfig, model_source: str = "",
                              dataset_source: str = "") -> None:
    """A ``pre_encoded`` dataset needs ``training.pre_encoded`` (latents must not be encoded again):
    switched on when the model config leaves it out, an error when it says false."""
    if not isinstance(dataset_config, PreEncodedConfig):
        return
    training = model_config.setdefault("training", {})
    if training.get("pre_encoded") is False:
        raise ConfigError(model_source, "training.pre_encoded", f"is false but {dataset_source or 'the dataset'} "
                          "is a pre_encoded dataset (latents); set it to true")
    if "pre_encoded" not in training:
        log.info("pre_encoded dataset: training.pre_encoded set to true")
        training["pre_encoded"] = True


__all__ = ["apply_pre_encoded_dataset", "load_configs"]
