"""Reading a stable-audio-tools model config (JSON) with errors that name the file and the key.

Only the top level is checked here (type, rates, channels); the model factory validates the
``model`` section in depth when it builds the network. An unknown top-level key is an error like an
unknown key anywhere inside ``model``: every upstream config (bundled ones and the published
``model_config.json`` files) carries only :data:`TOP_LEVEL_KEYS`, so an extra one is a typo
(``"audio_channel": 1`` would otherwise train stereo without a word).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.errors import ConfigError

# Every model_type stable-audio-tools knows; which of them this package can build is decided by
# stable_audio_ops.models.factory.MODEL_TYPES (so a typo and a not-yet-supported type read differently).
KNOWN_MODEL_TYPES = (
    "autoencoder",
    "diffusion_uncond",
    "diffusion_cond",
    "diffusion_cond_inpaint",
    "diffusion_autoencoder",
    "lm",
    "clap",
)

# The top-level keys stable-audio-tools 0.0.20 reads (models/factory.py, train.py).
TOP_LEVEL_KEYS = ("model_type", "sample_size", "sample_rate", "audio_channels", "model", "training")

# model types that can be built without a training crop length
_SAMPLE_SIZE_OPTIONAL = ("autoencoder",)


def validate_model_config(config: Any, source: str = "<model config>") -> dict:
    """Check the top-level keys of a model config; returns the same dict (not a copy)."""
    if not isinstance(config, dict):
        raise ConfigError(source, "", f"expected a JSON object at the top level, got {type(config).__name__}")
    root = ConfigNode(config, source)
    check_known_keys(root, TOP_LEVEL_KEYS)
    model_type = root.choice("model_type", KNOWN_MODEL_TYPES)
    root.get("sample_rate", "a positive int")
    if model_type in _SAMPLE_SIZE_OPTIONAL:
        root.get("sample_size", "a positive int", None)
    else:
        root.get("sample_size", "a positive int")
    channels = root.get("audio_channels", "a positive int", 2)
    if channels not in (1, 2):
        raise root.error(f"expected 1 or 2, got {channels!r}", "audio_channels")
    root.get("model", "an object")
    return config


def read_json_file(path: str | Path, what: str = "config") -> Any:
    """``json.load`` with errors that say which file, and where in it, is broken."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", f"{what} file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "", f"expected a {what} JSON file, got a directory") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), "", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def load_model_config(path: str | Path) -> dict:
    """Read and validate a model config file (the ``--model-config`` of every CLI)."""
    return validate_model_config(read_json_file(path, "model config"), str(path))
