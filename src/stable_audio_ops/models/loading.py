"""Load a ready-to-use model from local files: build it from its config, load the weights strictly, eval mode.

This is the registry-free half of :func:`stable_audio_ops.tracking.loading.load_model` (which adds
``models:/`` sources from the MLflow registry and is what front ends call). Everything that loads a model
for inference goes through :func:`load_local_model`, so every source behaves the same and every failure
names the file and what is wrong.

Sources (``source``):

- a checkpoint file (``.safetensors`` / ``.ckpt``) with its model config embedded (what ``unwrap_model.py``
  and the training pipelines write);
- an unwrapped checkpoint file plus a separate config (``config=``: a JSON path or a dict), or with a
  ``model_config.json`` beside it;
- a folder holding ``model_config.json`` and ``model.safetensors`` / ``model.ckpt`` (or any single
  ``*.safetensors`` / ``*.ckpt``); an MLflow pyfunc model folder (``MLmodel`` at its root, files in
  ``artifacts/``, the layout of a registered version) is accepted too.

Which config wins: ``config=`` when given, else the one embedded in the checkpoint, else
``model_config.json`` beside the checkpoint. The weights load strictly: a file that does not fit the
config raises :class:`~stable_audio_ops.errors.CheckpointError` with the missing / unexpected /
shape-mismatched keys (and how to unwrap a training checkpoint given by mistake).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.config.model_config import load_model_config, validate_model_config
from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    read_embedded_model_config,
)
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.meta_init import parameters_on_meta

log = logging.getLogger(__name__)

CONFIG_NAME = "model_config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_NAMES = (WEIGHTS_NAME, "model.ckpt")  # preferred weights in a model folder, in this order
WEIGHTS_SUFFIXES = (".safetensors", ".ckpt")


@dataclass
class LoadedModel:
    """A model in eval mode (gradients off) on its device, plus where it came from."""

    model: torch.nn.Module
    config: dict
    name: str
    source: str
    checkpoint: Path
    device: torch.device
    registry: dict[str, Any] = field(default_factory=dict)  # name/version/alias/run_id for models:/ sources
    config_source: str = ""  # where the config was read from (for messages)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` = CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_files_dir(folder: str | Path) -> Path:
    """Where ``model_config.json`` + weights sit: ``artifacts/`` of an MLflow pyfunc folder, else ``folder``."""
    folder = Path(folder)
    inner = folder / "artifacts"
    if (folder / "MLmodel").is_file() and inner.is_dir():
        return inner
    return folder


def find_checkpoint(folder: str | Path) -> Path:
    """``model.safetensors`` (then ``model.ckpt``) in ``folder``, else its only ``*.safetensors`` / ``*.ckpt``."""
    folder = Path(folder)
    for name in WEIGHTS_NAMES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHTS_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    listing = ", ".join(sorted(p.name for p in folder.iterdir())) or "(empty)"
    what = "no" if not candidates else "several"
    raise CheckpointError(f"{folder}: {what} model weights found (expected {' or '.join(WEIGHTS_NAMES)} or a "
                          f"single *.safetensors/*.ckpt); folder holds: {listing}")


def read_config_for(checkpoint: Path, config: str | Path | Mapping[str, Any] | None = None,
                    config_source: str | None = None) -> tuple[dict, str]:
    """``(config, where it came from)``: ``config`` (a JSON path or a dict), else embedded, else beside the file."""
    if isinstance(config, Mapping):
        source = config_source or f"model config given for {checkpoint}"
        return validate_model_config(copy.deepcopy(dict(config)), source), source
    if config is not None:
        return load_model_config(config), str(config)
    embedded = read_embedded_model_config(checkpoint)
    if embedded is not None:
        source = f"{checkpoint} (embedded model_config)"
        return validate_model_config(embedded, source), source
    sibling = checkpoint.parent / CONFIG_NAME
    if sibling.is_file():
        return load_model_config(sibling), str(sibling)
    raise ConfigError(str(checkpoint), "", f"no model config: the checkpoint embeds none, there is no {CONFIG_NAME} "
                      "beside it, and none was given (config= / --model-config)")


def _check_model_type(config: dict, config_source: str, model_types: Sequence[str] | None, purpose: str) -> None:
    if model_types is None:
        return
    model_type = config.get("model_type")
    if model_type not in model_types:
        raise ConfigError(config_source, "model_type", f"{model_type!r} cannot be {purpose}; that needs one of: "
                          f"{', '.join(model_types)}")


def local_checkpoint(source: str | Path) -> Path:
    """The weights file a local source names: the file itself, or the one found in the folder."""
    path = Path(source).expanduser()
    if not path.exists():
        raise CheckpointError(f"model source {str(source)!r} does not exist")
    return find_checkpoint(model_files_dir(path)) if path.is_dir() else path


def load_weights_into(model: torch.nn.Module, source: str | Path, *, what: str, assign: bool = False) -> Path:
    """Load the weights of a local source (a checkpoint file, or the one in a model folder) into ``model``,
    strictly (any missing, unexpected or mis-shaped key raises, naming ``what``); returns the checkpoint read.

    The one strict-load step of every model load: :func:`load_local_model` fills a model it built, training
    fills a model's pretransform (``--pretransform-ckpt-path``) with it, so both accept the same sources and
    fail the same way."""
    checkpoint = local_checkpoint(source)
    load_state_dict_checked(model, load_ckpt_state_dict(checkpoint), strict=True, assign=assign, what=what)
    return checkpoint


def build_and_load(model_config: dict, where: str, checkpoint: Path) -> torch.nn.Module:
    """Build the model with its parameters on ``meta`` and make the memory-mapped checkpoint tensors its
    parameters (strict, ``assign=True``): peak memory is about one copy of the weights, not two (random init
    plus the file's), and no time goes into a random initialisation that the load overwrites."""
    with parameters_on_meta():
        model = create_model_from_config(model_config, where)
    load_weights_into(model, checkpoint, assign=True,
                      what=f"{checkpoint} ({model_config['model_type']}, config: {where})")
    return model


def load_local_model(source: str | Path, config: str | Path | Mapping[str, Any] | None = None,
                     device: str | torch.device = "cpu", *, model_types: Sequence[str] | None = None,
                     purpose: str = "loaded here", name: str | None = None, config_source: str | None = None,
                     registry: Mapping[str, Any] | None = None) -> LoadedModel:
    """Build the model of a local file or folder from its config, load the weights strictly, move it to
    ``device`` (``auto`` = CUDA when available), eval mode with gradients off.

    ``model_types`` restricts what may be loaded (checked before anything is built; the error says the
    model cannot be ``purpose``, e.g. "served"). ``name`` defaults to the file stem / folder name;
    ``config_source`` names a dict ``config`` in error messages; ``registry`` is kept on the result (the
    registry facts of a ``models:/`` source).
    """
    path = Path(source).expanduser()
    checkpoint = local_checkpoint(path)
    model_config, where = read_config_for(checkpoint, config, config_source)
    _check_model_type(model_config, where, model_types, purpose)
    model = build_and_load(model_config, where, checkpoint)
    target = resolve_device(device)
    model = model.to(target).eval().requires_grad_(False)
    log.debug("loaded %s %s from %s on %s", model_config["model_type"], name or path.name, checkpoint, target)
    return LoadedModel(model=model, config=copy.deepcopy(model_config),
                       name=name or (path.stem if path.is_file() else path.name), source=str(source),
                       checkpoint=checkpoint, device=target, registry=dict(registry or {}), config_source=where)


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "WEIGHTS_NAMES", "LoadedModel", "build_and_load", "find_checkpoint", "load_local_model",
           "load_weights_into", "local_checkpoint", "model_files_dir", "read_config_for", "resolve_device"]
