"""Register trained models with their lineage: which training run, which evaluation run, which commit and
data, and, for a latent diffusion model, which registered autoencoder it was trained on.

Why the autoencoder lineage is checked, not declared: the diffusion checkpoint carries its autoencoder
as ``pretransform.model.*``; hashing those tensors and finding a registered autoencoder version with the
same weights names the version for certain ("verified"). Only when nothing matches (e.g. a pretransform
fine-tuned with the DiT) is the autoencoder registered in the same run recorded, as "declared".

A fine-tune registers its merged model, its adapter alone (naming its base) or both, with the same lineage tags
on each (:func:`register_fine_tune_versions`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.tracking.adapter_versions import VERSION_KIND_TAG, register_adapter_version
from stable_audio_ops.tracking.lineage import UNKNOWN, file_sha256, lineage_tags, state_dict_sha256
from stable_audio_ops.tracking.registry import find_version_by_weights, log_model_to_registry

log = logging.getLogger(__name__)

PRETRANSFORM_PREFIX = "pretransform.model."


def active_run_id() -> str | None:
    """The id of the active MLflow run, or None outside one."""
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def _run_tags(training_run_id: str | None) -> dict[str, str]:
    return {**lineage_tags(), "training_run_id": training_run_id or UNKNOWN,
            "evaluation_run_id": active_run_id() or UNKNOWN}


def register_autoencoder(path: str | Path, name: str, *, training_run_id: str | None = None) -> dict[str, Any]:
    """Register an unwrapped autoencoder (new version -> ``challenger``; identical weights -> that version)."""
    version = log_model_to_registry(path, name, tags=_run_tags(training_run_id), artifact_name="autoencoder",
                                    training_run_id=training_run_id)
    log.info("registry: %s version %s (%s)", version.name, version.version, "new" if version.new else "existing")
    return version.to_dict()


def autoencoder_lineage(diffusion_path: str | Path, declared_version: str | int | None,
                        autoencoder_name: str) -> dict[str, str]:
    """Which registered autoencoder the diffusion model at ``diffusion_path`` was trained on: the tags
    ``autoencoder_version``, ``autoencoder_weights_sha256`` and ``autoencoder_lineage`` (verified / declared /
    none). ``declared_version`` is the autoencoder registered beside it, used when no weights match."""
    state = load_ckpt_state_dict(diffusion_path)
    if not any(k.startswith(PRETRANSFORM_PREFIX) for k in state):
        return {"autoencoder_lineage": "none (no autoencoder pretransform in the checkpoint)"}
    sha = state_dict_sha256(state, prefix=PRETRANSFORM_PREFIX)
    match = find_version_by_weights(autoencoder_name, sha)
    if match is not None:
        return {"autoencoder_version": str(match.version), "autoencoder_weights_sha256": sha,
                "autoencoder_lineage": "verified (pretransform weights equal the registered version)"}
    return {"autoencoder_version": str(declared_version), "autoencoder_weights_sha256": sha,
            "autoencoder_lineage": "declared (pretransform weights match no registered autoencoder version)"}


def register_latent_diffusion(path: str | Path, name: str, *, autoencoder_name: str,
                              autoencoder_registration: Mapping[str, Any],
                              training_run_id: str | None = None, artifact_name: str = "latent_diffusion",
                              tags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Register an unwrapped latent diffusion model, tagged with the autoencoder version it was trained on
    (:func:`autoencoder_lineage`) and ``tags``; returns the registration plus that lineage. Any model carrying its
    autoencoder as ``pretransform.model.*`` registers so (an ``lm`` over its tokenizer: ``artifact_name`` lm)."""
    lineage = autoencoder_lineage(path, autoencoder_registration.get("version"), autoencoder_name)
    tags = {**_run_tags(training_run_id), **lineage, "autoencoder_model": autoencoder_name, **(tags or {})}
    version = log_model_to_registry(path, name, tags=tags, artifact_name=artifact_name,
                                    training_run_id=training_run_id)
    log.info("registry: %s version %s (%s), autoencoder lineage: %s", version.name, version.version,
             "new" if version.new else "existing", lineage.get("autoencoder_lineage"))
    return {**version.to_dict(), **lineage}


def base_model_tags(base_model: Mapping[str, Any]) -> dict[str, str]:
    """Lineage tags of a fine-tune's pretrained base: where it came from, its registered version (if any) and
    the sha256 of its weights file (what identifies a folder source)."""
    registry = base_model.get("registry") or {}
    tags = {"base_model_source": str(base_model["source"]),
            "base_model_weights_file_sha256": str(base_model["weights_file_sha256"])}
    if registry:
        tags.update(base_model_name=str(registry["name"]), base_model_version=str(registry["version"]))
    return tags


REGISTER_CHOICES = {"merged": ("merged",), "adapter": ("adapter",), "both": ("merged", "adapter")}


def fine_tune_registry_kinds(register: str, mode: str, source: str = "conf/base/parameters_fine_tune.yml") -> tuple[str, ...]:
    """Which versions a fine-tune registers for ``fine_tune.registry.register`` (``merged`` | ``adapter`` |
    ``both``): a full fine-tune has no adapter, so ``both`` means merged alone there and ``adapter`` is an error
    (checked before training, not after it)."""
    if register not in REGISTER_CHOICES:
        raise ConfigError(source, "fine_tune.registry.register", f"{register!r} is not one of: "
                          f"{' | '.join(REGISTER_CHOICES)}")
    if mode != "lora":
        if register == "adapter":
            raise ConfigError(source, "fine_tune.registry.register", f"'adapter' needs mode lora (mode is {mode!r}: "
                              "a full fine-tune has no adapter); use merged")
        return ("merged",)
    return REGISTER_CHOICES[register]


def fine_tune_tags(base_model: Mapping[str, Any], mode: str, adapter: Mapping[str, Any] | None = None,
                   training_run_id: str | None = None, metrics: Mapping[str, float] | None = None) -> dict[str, str]:
    """The lineage tags of a fine-tuned version, the same on merged and adapter-only ones: run, commit and data
    (:func:`_run_tags`), the base (:func:`base_model_tags`), the mode, for LoRA the adapter's config and file
    hash, and the evaluation ``metrics`` as ``eval.<name>``."""
    tags = {**_run_tags(training_run_id), **base_model_tags(base_model), "fine_tune_mode": mode,
            **{f"eval.{k}": f"{float(v):.6g}" for k, v in (metrics or {}).items()}}
    if adapter:
        tags.update(lora_config=json.dumps(adapter["lora_config"], sort_keys=True),
                    adapter_sha256=file_sha256(adapter["path"]))
    return tags


def _attach_adapter_to_run(adapter: Mapping[str, Any] | None) -> None:
    """The adapter file under ``adapter/`` of the active run (the pipeline's), when there are both."""
    if adapter and active_run_id() is not None:
        import mlflow

        mlflow.log_artifact(str(adapter["path"]), artifact_path="adapter")


def register_fine_tuned(path: str | Path, name: str, *, base_model: Mapping[str, Any], mode: str,
                        adapter: Mapping[str, Any] | None = None, training_run_id: str | None = None,
                        metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Register a fine-tuned (merged, unwrapped) model with its lineage (:func:`fine_tune_tags`,
    ``version_kind=merged``); the adapter file is attached to the active run under ``adapter/``. Returns the
    registration plus the tags."""
    tags = {**fine_tune_tags(base_model, mode, adapter, training_run_id, metrics), VERSION_KIND_TAG: "merged"}
    _attach_adapter_to_run(adapter)
    version = log_model_to_registry(path, name, tags=tags, artifact_name="fine_tuned")
    log.info("registry: %s version %s (%s), fine-tuned (%s) from %s", version.name, version.version,
             "new" if version.new else "existing", mode, tags["base_model_source"])
    return {**version.to_dict(), **tags}


def register_fine_tuned_adapter(adapter: Mapping[str, Any], name: str, *, base_model: Mapping[str, Any],
                                training_run_id: str | None = None,
                                metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Register the LoRA adapter alone (megabytes) as a version of ``name`` that names its base
    (:func:`~stable_audio_ops.tracking.adapter_versions.register_adapter_version`), with the same lineage tags as
    a merged version; ``models:/name@challenger`` then loads as base + adapter. Returns the registration plus
    the tags."""
    tags = fine_tune_tags(base_model, "lora", adapter, training_run_id, metrics)
    _attach_adapter_to_run(adapter)
    version = register_adapter_version(adapter["path"], name, base_model=base_model, tags=tags)
    log.info("registry: %s version %s (%s), LoRA adapter onto %s", version.name, version.version,
             "new" if version.new else "existing", tags["base_model_source"])
    return {**version.to_dict(), **tags, VERSION_KIND_TAG: "adapter"}


def register_fine_tune_versions(merged_path: str | Path, adapter: Mapping[str, Any] | None, *, register: str,
                                merged_name: str, adapter_name: str, base_model: Mapping[str, Any], mode: str,
                                training_run_id: str | None = None,
                                metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The versions ``register`` asks for (:func:`fine_tune_registry_kinds`): ``{"register", "merged", "adapter"}``
    with each registration (None when not registered). Merged and adapter versions go to two registered models
    (``merged_name``, ``adapter_name``) so each keeps its own ``challenger`` and compares like with like."""
    kinds = fine_tune_registry_kinds(register, mode)
    adapter = adapter if adapter and adapter.get("path") else None
    out: dict[str, Any] = {"register": register, "merged": None, "adapter": None}
    if "merged" in kinds:
        out["merged"] = register_fine_tuned(merged_path, merged_name, base_model=base_model, mode=mode,
                                            adapter=adapter, training_run_id=training_run_id, metrics=metrics)
    if "adapter" in kinds:
        if adapter is None:
            raise ConfigError("fine_tune", "registry.register", f"{register!r} asks for an adapter version, but the "
                              "fine-tune exported no adapter file")
        out["adapter"] = register_fine_tuned_adapter(adapter, adapter_name, base_model=base_model,
                                                     training_run_id=training_run_id, metrics=metrics)
    return out


__all__ = ["REGISTER_CHOICES", "active_run_id", "autoencoder_lineage", "base_model_tags", "fine_tune_registry_kinds",
           "fine_tune_tags", "register_autoencoder", "register_fine_tune_versions", "register_fine_tuned",
           "register_fine_tuned_adapter", "register_latent_diffusion"]
