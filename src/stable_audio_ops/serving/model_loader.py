"""Resolve a model source (checkpoint file, model folder, or MLflow ``models:/`` URI) to a ready model.

The MLflow part is :func:`stable_audio_ops.tracking.registry.download_registered_model` (re-exported
here). Registry layout (written by ``stable_audio_ops.tracking.registry``): a registered version is an
MLflow pyfunc model folder (``MLmodel`` at its root) whose ``artifacts/`` hold ``model_config.json`` and
``model.safetensors``; a plain logged folder with those two files at its root is accepted too (any single
``*.safetensors`` or ``*.ckpt`` as well; a config embedded in the safetensors metadata replaces a missing
JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.config.model_config import load_model_config
from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    read_embedded_model_config,
)
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.tracking.registry import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    download_registered_model,
    model_files_dir,
)

SERVABLE_MODEL_TYPES = ("diffusion_cond", "diffusion_cond_inpaint")


@dataclass
class LoadedModel:
    """A model in eval mode on its device, plus what the API reports about it."""

    model: torch.nn.Module
    config: dict
    name: str
    source: str
    checkpoint: Path
    device: torch.device
    registry: dict[str, Any] = field(default_factory=dict)  # name/version/alias/run_id for models:/ sources

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))


def resolve_device(device: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _find_checkpoint(folder: Path) -> Path:
    """``model.safetensors`` in ``folder``, else its only ``*.safetensors`` / ``*.ckpt`` file."""
    preferred = folder / WEIGHTS_NAME
    if preferred.is_file():
        return preferred
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".ckpt"))
    if len(candidates) == 1:
        return candidates[0]
    listing = ", ".join(sorted(p.name for p in folder.iterdir())) or "(empty)"
    what = "no" if not candidates else "several"
    raise CheckpointError(f"{folder}: {what} model weights found (expected {WEIGHTS_NAME} or a single "
                          f"*.safetensors/*.ckpt); folder holds: {listing}")


def _read_config(checkpoint: Path, explicit: str | Path | None) -> tuple[dict, str]:
    """Config by priority: explicit JSON, the one embedded in the checkpoint, ``model_config.json`` beside it."""
    if explicit is not None:
        return load_model_config(explicit), str(explicit)
    embedded = read_embedded_model_config(checkpoint)
    if embedded is not None:
        return embedded, f"{checkpoint} (embedded model_config)"
    sibling = checkpoint.parent / CONFIG_NAME
    if sibling.is_file():
        return load_model_config(sibling), str(sibling)
    raise ConfigError(str(checkpoint), "", f"no model config: the checkpoint embeds none, there is no {CONFIG_NAME} "
                      "beside it, and none was given (--model-config / SAO_MODEL_CONFIG)")


def load_model(source: str | Path, *, model_config: str | Path | None = None, device: str = "auto",
               name: str | None = None, tracking_uri: str | None = None) -> LoadedModel:
    """Build the model from its config, load the weights strictly, move it to ``device``, eval mode.

    ``source`` is a ``.safetensors``/``.ckpt`` file, a folder holding one (plus ``model_config.json``),
    or a ``models:/`` URI. Only conditioned diffusion models can be served.
    """
    source = str(source)
    if not source:
        raise ConfigError("serve settings", "model",
                          "no model given: pass --model PATH|models:/NAME@alias or set SAO_MODEL")
    registry: dict[str, Any] = {}
    if source.startswith("models:/"):
        local, registry = download_registered_model(source, tracking_uri)
        default_name = f"{registry['name']}@{registry['alias']}" if registry.get("alias") else \
            f"{registry['name']}/{registry['version']}"
    else:
        local = Path(source).expanduser()
        if not local.exists():
            raise CheckpointError(f"model source {source!r} does not exist")
        default_name = local.stem if local.is_file() else local.name
    checkpoint = _find_checkpoint(model_files_dir(local)) if local.is_dir() else local
    config, config_source = _read_config(checkpoint, model_config)
    model_type = config.get("model_type")
    if model_type not in SERVABLE_MODEL_TYPES:
        raise ConfigError(config_source, "model_type", f"{model_type!r} cannot be served; the generation API "
                          f"needs one of: {', '.join(SERVABLE_MODEL_TYPES)}")
    model = create_model_from_config(config, config_source)
    load_state_dict_checked(model, load_ckpt_state_dict(checkpoint), strict=True, what=str(checkpoint))
    target = resolve_device(device)
    model = model.to(target).eval().requires_grad_(False)
    return LoadedModel(model=model, config=json.loads(json.dumps(config)), name=name or default_name,
                       source=source, checkpoint=checkpoint, device=target, registry=registry)
