"""The server's model loading: :func:`stable_audio_ops.tracking.loading.load_model`, limited to the model types
the generation API serves (conditioned diffusion models).

Kept as the old import path; sources, config lookup, strict loading and errors are those of
:func:`~stable_audio_ops.tracking.loading.load_model` (a checkpoint file, a model folder, an MLflow model
folder with the files in ``artifacts/``, or ``models:/NAME@alias`` / ``models:/NAME/version``).
"""

from __future__ import annotations

from pathlib import Path

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.inference.entry import CONDITIONED_MODEL_TYPES
from stable_audio_ops.models.loading import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    LoadedModel,
    model_files_dir,
    resolve_device,
)
from stable_audio_ops.tracking import loading
from stable_audio_ops.tracking.registry import download_registered_model

SERVABLE_MODEL_TYPES = CONDITIONED_MODEL_TYPES


def load_model(source: str | Path, *, model_config: str | Path | None = None, device: str = "auto",
               name: str | None = None, tracking_uri: str | None = None,
               adapter: str | Path | None = None) -> LoadedModel:
    """A servable model from ``source`` on ``device`` (``auto`` = CUDA when available), eval mode, with the LoRA
    ``adapter`` file (if any) applied on top without merging.

    Only conditioned diffusion models can be served; other model types raise a :class:`ConfigError` naming the
    type. An ``lm`` is refused too: the API's request fields (steps, sampler), step progress, cancellation and
    request batching are the diffusion samplers'; generate with an lm through the generate command or
    :func:`stable_audio_ops.inference.entry.generate`.
    """
    if not str(source):
        raise ConfigError("serve settings", "model",
                          "no model given: pass --model PATH|models:/NAME@alias or set SAO_MODEL")
    return loading.load_model(source, model_config, device, model_types=SERVABLE_MODEL_TYPES,
                              purpose="served by the generation API", name=name, tracking_uri=tracking_uri,
                              adapter=adapter)


__all__ = ["CONFIG_NAME", "SERVABLE_MODEL_TYPES", "WEIGHTS_NAME", "LoadedModel", "download_registered_model",
           "load_model", "model_files_dir", "resolve_device"]
