"""stable-audio-ops: training and inference for stable-audio-tools models, as a library.

The public names mirror stable-audio-tools so users can switch by changing the import; ``load_model`` (any
model from a file, a folder or ``models:/NAME@alias``) and ``generate`` (by model type) are the one way to
load and to generate.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["create_model_from_config", "create_model_from_config_path", "generate", "load_ckpt_state_dict",
           "load_model"]


def __getattr__(name: str):
    # Lazy: importing the package must stay cheap (CLI start-up, Kedro hooks).
    if name in ("create_model_from_config", "create_model_from_config_path"):
        from stable_audio_ops.models import factory

        return getattr(factory, name)
    if name == "load_ckpt_state_dict":
        from stable_audio_ops.models.checkpoints import load_ckpt_state_dict

        return load_ckpt_state_dict
    if name == "load_model":
        from stable_audio_ops.tracking.loading import load_model

        return load_model
    if name == "generate":
        from stable_audio_ops.inference.entry import generate

        return generate
    raise AttributeError(name)
