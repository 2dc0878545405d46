"""Dataset config (upstream's ``--dataset-config`` JSON): validation at load time, with file + key in errors.

Upstream asserts a few keys inside ``create_dataloader_from_config`` and otherwise fails with bare
KeyErrors mid-setup. :func:`validate_dataset_config` checks every key upstream's
``create_dataloader_from_config`` (``stable_audio_tools/data/dataset.py``) reads for the ``audio_dir``,
``pre_encoded``, ``wds`` and ``s3`` dataset types, fills upstream's defaults and returns a normalised
copy; unknown keys are kept untouched
so configs written for newer upstream versions still load.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError

# Every dataset_type upstream knows ("s3" is upstream's alias of "wds"). Which of them can be
# built is decided by the dataloader registry; validation accepts all so errors stay precise.
KNOWN_DATASET_TYPES: tuple[str, ...] = ("audio_dir", "pre_encoded", "wds", "s3")


def _validate_source(node: ConfigNode, dataset_type: str) -> dict[str, Any]:
    if not isinstance(node.data, dict):
        raise node.error(f"expected an object, got {node.data!r}")
    out = dict(node.data)
    out["id"] = node.get("id", "a string")
    if dataset_type in ("wds", "s3"):
        if not node.has("path") and not node.has("s3_path"):
            raise node.error("missing required key: give 'path' (local folder of .tar shards) or 's3_path'")
        if node.has("path"):
            out["path"] = node.get("path", "a string")
        if node.has("s3_path"):
            out["s3_path"] = node.get("s3_path", "a string")
        out["profile"] = node.get("profile", "a string", None)
    else:
        path = node.get("path", "a string")
        if not path:
            raise node.error("must not be empty", "path")
        out["path"] = path
    out["custom_metadata_module"] = node.get("custom_metadata_module", "a string", None)
    return out


def validate_dataset_config(cfg: Any, source: str = "<dataset config>") -> dict[str, Any]:
    """Check a dataset config dict and return a copy with upstream's defaults filled in.

    Raises :class:`~stable_audio_ops.errors.ConfigError` such as
    ``dataset.json: datasets[0].path: missing required key (expected a string)``.
    """
    root = ConfigNode(cfg, source)
    if not isinstance(cfg, dict):
        raise root.error(f"expected a JSON object at the top level, got {type(cfg).__name__}")
    dataset_type = root.choice("dataset_type", KNOWN_DATASET_TYPES)
    out: dict[str, Any] = copy.deepcopy(cfg)

    sources = root.children("datasets")
    if not sources:
        raise root.error("needs at least one entry", "datasets")
    out["datasets"] = [_validate_source(s, dataset_type) for s in sources]

    out["random_crop"] = root.get("random_crop", "a bool", dataset_type != "pre_encoded")
    if dataset_type in ("audio_dir", "pre_encoded"):
        out["drop_last"] = root.get("drop_last", "a bool", True)
    if dataset_type == "audio_dir":
        out["min_length_sec"] = root.get("min_length_sec", "a non-negative number", 0.0)
    elif dataset_type == "pre_encoded":
        out["latent_crop_length"] = root.get("latent_crop_length", "a positive int", None)
        out["min_length_sec"] = root.get("min_length_sec", "a non-negative number", None)
        out["max_length_sec"] = root.get("max_length_sec", "a non-negative number", None)
        out["latent_extension"] = root.get("latent_extension", "a string", "npy")
    else:
        out["remove_silence"] = root.get("remove_silence", "a bool", False)
        out["silence_threshold"] = root.get("silence_threshold", "a list of numbers", [0.01, 0.5])
        out["max_silence_duration"] = root.get("max_silence_duration", "a non-negative number", 0.25)
        out["volume_norm"] = root.get("volume_norm", "a bool", False)
        out["volume_norm_param"] = root.get("volume_norm_param", "a list of numbers", [-16, 2])
        out["epoch_steps"] = root.get("epoch_steps", "a positive int", 2000)
        out["pre_encoded"] = root.get("pre_encoded", "a bool", False)
        out["latent_crop_length"] = root.get("latent_crop_length", "a positive int", None)
        out["resampled_shards"] = root.get("resampled_shards", "a bool", True)
    return out


def load_dataset_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a dataset config JSON file; errors name the file (and line for bad JSON)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as exc:
        raise ConfigError(source, "", "dataset config file not found") from exc
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read dataset config: {exc}") from exc
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return validate_dataset_config(cfg, source)
