"""Model definitions (Oobleck autoencoder, bottlenecks, pretransforms), the config factory and
checkpoint helpers. State-dict keys match stable-audio-tools so its checkpoints load unchanged.

Submodules are imported on first attribute access so ``import stable_audio_ops.models`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AudioAutoencoder": "stable_audio_ops.models.autoencoder",
    "AutoencoderPretransform": "stable_audio_ops.models.pretransforms",
    "create_model_from_config": "stable_audio_ops.models.factory",
    "create_model_from_config_path": "stable_audio_ops.models.factory",
    "create_pretransform_from_config": "stable_audio_ops.models.factory",
    "load_ckpt_state_dict": "stable_audio_ops.models.checkpoints",
    "load_state_dict_checked": "stable_audio_ops.models.checkpoints",
    "copy_state_dict": "stable_audio_ops.models.checkpoints",
    "save_model_checkpoint": "stable_audio_ops.models.checkpoints",
    "read_embedded_model_config": "stable_audio_ops.models.checkpoints",
    "LoadedModel": "stable_audio_ops.models.loading",
    "load_local_model": "stable_audio_ops.models.loading",
    "ConditionedDiffusionModelWrapper": "stable_audio_ops.models.diffusion",
    "DiTWrapper": "stable_audio_ops.models.diffusion",
    "DiffusionTransformer": "stable_audio_ops.models.dit",
    "MultiConditioner": "stable_audio_ops.models.conditioners",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
