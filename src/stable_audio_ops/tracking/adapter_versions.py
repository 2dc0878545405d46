"""Registered versions that hold only a LoRA adapter and name their base: ``models:/NAME@alias`` of one loads as
base + adapter wherever a model URI is accepted (generate, the server, the MLflow pyfunc, evaluation).

Why: an adapter for Stable Audio Open is megabytes, a merged copy gigabytes; with one base registered (or kept in
a local folder) once, each fine-tune costs the registry only its adapter.

Layout: the MLflow pyfunc folder every version has (:func:`~stable_audio_ops.tracking.registry.log_pyfunc_version`)
whose ``artifacts/`` hold ``adapter.safetensors`` (the adapter file as the fine-tune wrote it) and
``base_model.json`` (:func:`base_reference`: a registered ``models:/NAME/VERSION``, pinned, never an alias that
moves; or the absolute path of a local weights file; the sha256 of the base's weights file either way). There is
no ``model.safetensors``: the base provides the weights and the config.

Finding the base (:func:`find_base`): an explicit base first (``base_model=`` in Python, else
``$SAO_BASE_MODEL``), else the recorded one. Whatever is found must have the recorded weights-file sha256, so an
adapter is never applied to another model that happens to have the same name, version or path (registry
versions are numbered per store). When it cannot be found, the error names the base, its sha256 and how to
provide it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.adapters import attach_adapter, read_adapter
from stable_audio_ops.models.loading import LoadedModel, load_local_model, model_files_dir
from stable_audio_ops.tracking.lineage import state_dict_sha256
from stable_audio_ops.tracking.pretrained import resolve_pretrained_model
from stable_audio_ops.tracking.registry import (
    CHALLENGER,
    RegisteredVersion,
    existing_version,
    log_pyfunc_version,
)

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.safetensors"
BASE_FILE = "base_model.json"
BASE_MODEL_ENV = "SAO_BASE_MODEL"
VERSION_KIND_TAG = "version_kind"  # "adapter" on these versions, "merged" on merged fine-tunes
ADAPTER_MODEL_DESCRIPTION = (
    "stable-audio-ops LoRA adapters: each version holds only adapter.safetensors and base_model.json (the base: a "
    "registered models:/NAME/VERSION or a local weights file, with its sha256) in artifacts/; loading "
    "models:/NAME@alias loads that base and applies the adapter. Tags name the base, the adapter config, the data "
    "and the training run.")


def base_reference(base_model: Mapping[str, Any]) -> dict[str, str]:
    """What an adapter version records about its base, from the fine-tune's resolved base
    (:func:`~stable_audio_ops.tracking.pretrained.resolve_pretrained_model`): ``kind`` registered (``uri`` pinned
    to the version, ``registry_uri`` the store it was in) or local (``path``, absolute), the ``source`` as given
    and the ``weights_file_sha256``."""
    registry = base_model.get("registry") or {}
    reference = {"source": str(base_model["source"]), "weights_file_sha256": str(base_model["weights_file_sha256"])}
    if registry:
        import mlflow

        reference.update(kind="registered", uri=f"models:/{registry['name']}/{registry['version']}",
                         registry_uri=mlflow.get_registry_uri())
    else:
        reference.update(kind="local", path=str(Path(base_model["path"]).expanduser().resolve()))
    return reference


def describe_base(reference: Mapping[str, str]) -> str:
    """The base in words: its pinned URI or path (and the source it was fine-tuned from when that differs)."""
    where = reference.get("uri") or reference.get("path") or reference.get("source", "?")
    given = reference.get("source")
    return f"{where} (given as {given!r})" if given and given != where else str(where)


def is_adapter_version(folder: str | Path) -> bool:
    """True for a folder in the adapter-version layout (the version's root or its ``artifacts/``)."""
    path = Path(folder)
    if not path.is_dir():
        return False
    files = model_files_dir(path)
    return (files / ADAPTER_FILE).is_file() and (files / BASE_FILE).is_file()


def read_base_reference(folder: str | Path) -> dict[str, str]:
    """``base_model.json`` of an adapter version folder; a file without ``kind`` / sha256 is an error naming it."""
    path = model_files_dir(Path(folder)) / BASE_FILE
    try:
        reference = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read the adapter version's base reference: {exc}") from exc
    for key in ("kind", "weights_file_sha256", "uri" if reference.get("kind") == "registered" else "path"):
        if not reference.get(key):
            raise ConfigError(str(path), key, "missing: an adapter version names its base by kind, uri or path, "
                              "and weights_file_sha256")
    return reference


def register_adapter_version(adapter_path: str | Path, name: str, *, base_model: Mapping[str, Any],
                             tags: Mapping[str, Any] | None = None, alias: str | None = CHALLENGER,
                             training_run_id: str | None = None, tracking_uri: str | None = None) -> RegisteredVersion:
    """Register the adapter file alone as a new version of ``name``, naming ``base_model`` (the fine-tune's resolved
    base, :func:`base_reference`); tagged ``version_kind=adapter``, ``base_model_uri`` / ``base_model_path`` and
    ``tags``. The pyfunc's input example runs once while logging, so the base must be findable then. The same
    adapter tensors registered again return that version (``new=False``, tags updated)."""
    adapter = read_adapter(adapter_path)  # refuses a file that is not an adapter
    reference = base_reference(base_model)
    config = dict(base_model["model_config"])
    model_type = str(config["model_type"])
    weights_sha = state_dict_sha256(adapter.tensors)
    location = {"base_model_uri": reference["uri"]} if "uri" in reference else {"base_model_path": reference["path"]}
    version_tags = {VERSION_KIND_TAG: "adapter", **location, **{k: str(v) for k, v in (tags or {}).items()}}
    existing = existing_version(name, weights_sha, model_type, version_tags, tracking_uri)
    if existing is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="sao-register-adapter-") as tmp:
        staged = Path(tmp)
        shutil.copyfile(adapter_path, staged / ADAPTER_FILE)
        (staged / BASE_FILE).write_text(json.dumps(reference, indent=2), encoding="utf-8")
        description = (f"LoRA adapter (rank {adapter.config.rank}, targets {', '.join(adapter.config.targets)}) for "
                       f"the base {describe_base(reference)}, weights file sha256 {reference['weights_file_sha256']}. "
                       f"Loading this version loads that base and applies the adapter without merging; set "
                       f"{BASE_MODEL_ENV} to a local copy of the base to use one.")
        return log_pyfunc_version(name, {"adapter": staged / ADAPTER_FILE, "base_model": staged / BASE_FILE},
                                  model_type=model_type, config=config, weights_sha256=weights_sha,
                                  tags={"source_path": str(adapter_path), **version_tags}, description=description,
                                  model_description=ADAPTER_MODEL_DESCRIPTION, alias=alias,
                                  artifact_name="fine_tuned_adapter", tracking_uri=tracking_uri,
                                  training_run_id=training_run_id)


def _base_error(needed_by: str, reference: Mapping[str, str], problem: str) -> CheckpointError:
    sha = reference["weights_file_sha256"]
    if reference["kind"] == "registered":
        restore = (f"restore {reference['uri']} in the registry at {_current_registry()} (it was registered in "
                   f"{reference.get('registry_uri', '?')}: set MLFLOW_TRACKING_URI to that store if it is another)")
    else:
        restore = f"put the base's weights back at {reference['path']}"
    return CheckpointError(
        f"{needed_by} is a LoRA adapter for the base {describe_base(reference)} (weights file sha256 {sha}), which "
        f"{problem}. Provide the base: {restore}, or set {BASE_MODEL_ENV} (Python: load_model(..., base_model=...)) "
        f"to a model folder, checkpoint file or models:/ URI whose weights file has sha256 {sha}")


def _current_registry() -> str:
    import mlflow

    return mlflow.get_registry_uri()


def find_base(reference: Mapping[str, str], *, needed_by: str, base_model: str | Path | None = None,
              tracking_uri: str | None = None, dst_dir: str | Path | None = None) -> dict[str, Any]:
    """The base of an adapter version as local files (:func:`resolve_pretrained_model`'s record): ``base_model`` or
    ``$SAO_BASE_MODEL`` when set, else the recorded registered version or local file; its weights-file sha256
    must equal the recorded one. Errors (:func:`_base_error`) name ``needed_by``, the base and how to provide it."""
    sha = reference["weights_file_sha256"]
    dst = Path(dst_dir) / "base" if dst_dir is not None else None
    explicit = base_model or os.environ.get(BASE_MODEL_ENV) or None
    if explicit:
        how = "base_model=" if base_model else f"${BASE_MODEL_ENV}"
        try:
            base = resolve_pretrained_model(explicit, dst_dir=dst, tracking_uri=tracking_uri)
        except (CheckpointError, ConfigError) as exc:
            raise _base_error(needed_by, reference, f"is not what {how} {str(explicit)!r} gives: {exc}") from exc
        if base["weights_file_sha256"] != sha:
            raise _base_error(needed_by, reference, f"is not what {how} {str(explicit)!r} gives: its weights file "
                              f"{base['path']} has sha256 {base['weights_file_sha256']}")
        return base
    if reference["kind"] == "registered":
        try:
            base = resolve_pretrained_model(reference["uri"], dst_dir=dst, tracking_uri=tracking_uri)
        except (CheckpointError, ConfigError) as exc:
            raise _base_error(needed_by, reference, f"cannot be loaded: {exc}") from exc
        found_at = f"{reference['uri']} in the registry at {_current_registry()}"
    else:
        path = Path(reference["path"])
        if not path.is_file():
            raise _base_error(needed_by, reference, f"is missing (no file at {path})")
        base = resolve_pretrained_model(path, dst_dir=dst, tracking_uri=tracking_uri)
        found_at = str(path)
    if base["weights_file_sha256"] != sha:
        raise _base_error(needed_by, reference, f"is not the model now at {found_at}: its weights file has sha256 "
                          f"{base['weights_file_sha256']}")
    return base


def load_adapter_version(folder: str | Path, config: str | Path | Mapping[str, Any] | None = None,
                         device: str | torch.device = "cpu", *, needed_by: str | None = None,
                         registry: Mapping[str, Any] | None = None, base_model: str | Path | None = None,
                         tracking_uri: str | None = None, dst_dir: str | Path | None = None,
                         name: str | None = None, **options: Any) -> LoadedModel:
    """Load an adapter version (a downloaded ``models:/`` folder or such a folder on disk): its base
    (:func:`find_base`) loaded strictly like any local model (``config`` and ``options`` go to
    :func:`~stable_audio_ops.models.loading.load_local_model`), then the adapter applied without merging. The
    result's ``registry`` facts (``registry`` plus ``base_model`` and ``adapter``) say what was combined."""
    folder = Path(folder)
    needed_by = needed_by or str(folder)
    files = model_files_dir(folder)
    reference = read_base_reference(files)
    base = find_base(reference, needed_by=needed_by, base_model=base_model, tracking_uri=tracking_uri,
                     dst_dir=dst_dir)
    facts = {**(registry or {}), "base_model": describe_base(reference),
             "base_weights_file_sha256": reference["weights_file_sha256"], "adapter": str(files / ADAPTER_FILE)}
    loaded = load_local_model(base["path"], config, device, name=name or folder.name, registry=facts, **options)
    attach_adapter(loaded.model, files / ADAPTER_FILE)
    loaded.model.requires_grad_(False).eval()
    loaded.source = needed_by
    log.info("loaded %s: base %s + adapter", needed_by, describe_base(reference))
    return loaded


__all__ = ["ADAPTER_FILE", "ADAPTER_MODEL_DESCRIPTION", "BASE_FILE", "BASE_MODEL_ENV", "VERSION_KIND_TAG",
           "base_reference", "describe_base", "find_base", "is_adapter_version", "load_adapter_version",
           "read_base_reference", "register_adapter_version"]
