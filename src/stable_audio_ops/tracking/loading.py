"""The one way to load a model: :func:`load_model` for every model type and every source.

``source`` is a local checkpoint file or model folder (see :mod:`stable_audio_ops.models.loading`, which
does the building and strict loading) or a registered MLflow model, ``models:/NAME@alias`` or
``models:/NAME/version``: the alias is resolved to a version, that version's files are downloaded
(:func:`stable_audio_ops.tracking.registry.download_registered_model`) and loaded like a local folder, and
the registry facts (name, version, alias, run id) are kept on the result
(:func:`stable_audio_ops.tracking.registry.load_registered`). A version that holds only a LoRA adapter, or such a
version's folder on disk, loads as its base + the adapter
(:func:`stable_audio_ops.tracking.adapter_versions.load_adapter_version`).

It lives in the tracking layer because only this layer (and the ones above it) may talk to MLflow; the
layers below it (pre-encoding in ``inference``) call the registry-free
:func:`stable_audio_ops.models.loading.load_local_model` with the same arguments. Used by the generate and
pre-encode commands, the server, the MLflow pyfunc and the evaluation / latent-diffusion pipelines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.adapters import attach_adapter
from stable_audio_ops.models.loading import LoadedModel, load_local_model
from stable_audio_ops.tracking.adapter_versions import is_adapter_version, load_adapter_version
from stable_audio_ops.tracking.registry import download_registered_model, load_downloaded, registered_name

REGISTRY_PREFIX = "models:/"


def is_registry_source(source: str | Path) -> bool:
    """True for ``models:/...`` URIs."""
    return str(source).startswith(REGISTRY_PREFIX)


def load_model(source: str | Path, config: str | Path | Mapping[str, Any] | None = None,
               device: str | torch.device = "cpu", *, model_types: Sequence[str] | None = None,
               purpose: str = "loaded here", name: str | None = None, tracking_uri: str | None = None,
               dst_dir: str | Path | None = None, config_source: str | None = None,
               adapter: str | Path | None = None, base_model: str | Path | None = None) -> LoadedModel:
    """Load any model, from a file, a folder or the MLflow registry, strictly, in eval mode on ``device``.

    - ``source``: a ``.safetensors`` / ``.ckpt`` file (config embedded, beside it as ``model_config.json``, or
      given as ``config``), a folder holding ``model_config.json`` + ``model.safetensors`` / ``model.ckpt``
      (an MLflow model folder with them in ``artifacts/`` too), or ``models:/NAME@alias`` /
      ``models:/NAME/version`` from the registry at ``tracking_uri`` (default: MLflow's current URI);
      registry files are downloaded to ``dst_dir`` (default: a new temporary folder).
    - ``config``: a model config JSON path or dict that replaces the embedded / sibling one.
    - ``device``: ``cpu`` (default), ``auto`` (CUDA when available), ``cuda:1``, ...
    - ``model_types``: the model types the caller can use; any other raises a :class:`ConfigError`
      naming the config and saying the model cannot be ``purpose``.
    - ``name``: the id reported by the server (default: ``NAME@alias`` / ``NAME/version``, or the file
      stem / folder name).
    - ``adapter``: a LoRA adapter file (fine-tune pipeline) applied onto the loaded base without merging.
    - an adapter-only registered version (or its folder) loads its recorded base and applies its adapter;
      ``base_model`` (else ``$SAO_BASE_MODEL``) gives that base instead (a folder, file or ``models:/`` URI whose
      weights file has the recorded sha256); a base that cannot be found is an error saying which one is needed.

    Returns a :class:`~stable_audio_ops.models.loading.LoadedModel` (``.model``, ``.config``,
    ``.model_type``, ``.checkpoint``, ``.device``, ``.registry``).
    """
    source_text = str(source)
    if not source_text:
        raise ConfigError("model source", "", "no model given: pass a checkpoint file, a model folder or "
                          "models:/NAME@alias")
    options = dict(model_types=model_types, purpose=purpose, config_source=config_source)
    local, facts = (download_registered_model(source_text, tracking_uri, dst_dir=dst_dir)
                    if is_registry_source(source_text) else (Path(source), None))
    if is_adapter_version(local):
        if adapter is not None:
            raise ConfigError(source_text, "adapter", f"{source_text} holds a LoRA adapter of its own; another "
                              f"({adapter}) cannot be stacked on it: give its base as the model, with that adapter")
        loaded = load_adapter_version(local, config, device, needed_by=source_text, registry=facts,
                                      base_model=base_model, tracking_uri=tracking_uri, dst_dir=dst_dir,
                                      name=name or (registered_name(facts) if facts else None), **options)
    elif facts is not None:
        loaded = load_downloaded(source_text, local, facts, config, device, name=name, **options)
    else:
        loaded = load_local_model(source, config, device, name=name, **options)
    if adapter is not None:
        attach_adapter(loaded.model, adapter)
        loaded.model.requires_grad_(False).eval()
    return loaded


__all__ = ["REGISTRY_PREFIX", "LoadedModel", "is_registry_source", "load_model"]
