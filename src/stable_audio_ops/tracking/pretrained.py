"""Where a pretrained model for fine-tuning comes from, resolved to local files and an identity. Nothing downloads.

Sources:
- a folder in the layout of the Hugging Face repo ``stabilityai/stable-audio-open-1.0``: ``model_config.json`` +
  ``model.safetensors`` (or ``model.ckpt``);
- an unwrapped checkpoint file (config embedded, or ``model_config.json`` beside it);
- ``models:/NAME@alias`` / ``models:/NAME/version`` from the local MLflow registry (its artifacts are copied
  out of the registry's store, not fetched from a hub).

The identity recorded for lineage is the registered version when there is one, and always the sha256 of the
weights file, so a fine-tuned version names exactly what it was trained from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.loading import (
    CONFIG_NAME,
    WEIGHTS_NAMES,
    local_checkpoint,
    model_files_dir,
    read_config_for,
)
from stable_audio_ops.tracking.lineage import file_sha256
from stable_audio_ops.tracking.registry import download_registered_model

FINE_TUNABLE_TYPES = ("diffusion_cond", "diffusion_cond_inpaint")
SAO_REPO = "https://huggingface.co/stabilityai/stable-audio-open-1.0"


def _missing_weights_error(folder: Path) -> CheckpointError:
    listing = ", ".join(sorted(p.name for p in folder.iterdir())) or "(empty)"
    return CheckpointError(
        f"{folder}: has {CONFIG_NAME} but no weights ({' or '.join(WEIGHTS_NAMES)}); folder holds: {listing}. "
        f"For Stable Audio Open 1.0, accept the licence at {SAO_REPO} while logged in, download model.safetensors "
        f"and model_config.json from its 'Files' tab (or `hf download stabilityai/stable-audio-open-1.0 "
        f"model.safetensors model_config.json --local-dir {folder}` on a machine with network access) and put them "
        f"in {folder}")


def local_weights(source: str | Path) -> Path:
    """The weights file of a local folder or file source; a model folder without weights says what to fetch."""
    path = Path(source).expanduser()
    if path.is_dir():
        folder = model_files_dir(path)
        if (folder / CONFIG_NAME).is_file() and not any((folder / name).is_file() for name in WEIGHTS_NAMES) \
                and not any(p.suffix in (".safetensors", ".ckpt") for p in folder.iterdir()):
            raise _missing_weights_error(folder)
    return local_checkpoint(path)


def resolve_pretrained_model(source: str | Path, *, dst_dir: str | Path | None = None,
                             tracking_uri: str | None = None) -> dict[str, Any]:
    """Local weights, config and identity of a pretrained conditioned diffusion model.

    Returns ``{"source", "path" (weights file), "model_config", "config_source", "weights_file_sha256",
    "registry" (name/version/alias/run_id for ``models:/`` sources, else {})}``. A registered model's files go
    to ``dst_dir`` (default: a temporary folder). Model types other than conditioned diffusion are an error.
    """
    text = str(source)
    if not text:
        raise ConfigError("fine_tune", "base_model", "no pretrained model given: a model folder (model_config.json "
                          "+ model.safetensors), a checkpoint file, or models:/NAME@alias")
    registry: dict[str, Any] = {}
    if text.startswith("models:/"):
        folder, registry = download_registered_model(text, tracking_uri, dst_dir=dst_dir)
        weights = local_weights(folder)
    else:
        weights = local_weights(source)
    config, where = read_config_for(weights)
    if config.get("model_type") not in FINE_TUNABLE_TYPES:
        raise ConfigError(where, "model_type", f"{config.get('model_type')!r} cannot be fine-tuned here; that needs "
                          f"one of: {', '.join(FINE_TUNABLE_TYPES)}")
    return {"source": text, "path": str(weights), "model_config": config, "config_source": where,
            "weights_file_sha256": file_sha256(weights), "registry": registry}


__all__ = ["FINE_TUNABLE_TYPES", "local_weights", "resolve_pretrained_model"]
