"""Dataset config (upstream's ``--dataset-config`` JSON): validation at load time, with file + key in errors.

Upstream asserts a few keys inside ``create_dataloader_from_config`` and otherwise fails with bare
KeyErrors mid-setup. :func:`validate_dataset_config` checks every key upstream's
``create_dataloader_from_config`` (``stable_audio_tools/data/dataset.py``) reads for the ``audio_dir``,
``pre_encoded``, ``wds`` and ``s3`` dataset types, fills upstream's defaults and returns a normalised
copy.

Unknown keys, at the top level and inside ``datasets[i]``: a key that stable-audio-tools (0.0.20 or its
docs) reads but this package does not use for that dataset type is logged as a warning naming the file
and the key path and ignored (configs in the wild carry them: ``weight``/``keywords`` per source,
``latent_crop_length`` per source as upstream's docs show it, ``strip_silence`` ...); any other key is a
:class:`~stable_audio_ops.errors.ConfigError` (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from stable_audio_ops.config.schema import ConfigNode, check_keys_ignoring
from stable_audio_ops.errors import ConfigError

# Every dataset_type upstream knows ("s3" is upstream's alias of "wds"). Which of them can be
# built is decided by the dataloader registry; validation accepts all so errors stay precise.
KNOWN_DATASET_TYPES: tuple[str, ...] = ("audio_dir", "pre_encoded", "wds", "s3")


_NOT_HERE = "read by stable-audio-tools 0.0.20, not supported by stable-audio-ops"
_OTHER_TYPES = "not used by this dataset_type"

# Keys of one ``datasets[i]`` entry used here, per dataset_type.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "audio_dir": ("id", "path", "custom_metadata_module"),
    "pre_encoded": ("id", "path", "custom_metadata_module"),
    "wds": ("id", "path", "s3_path", "profile", "endpoint_url", "region", "custom_metadata_module"),
}
# Keys of a ``datasets[i]`` entry that upstream reads or documents and this package ignores (key -> why).
IGNORED_SOURCE_KEYS: dict[str, str] = {
    "weight": _NOT_HERE + ": sources are drawn in proportion to their files",
    "keywords": _NOT_HERE,
    "filelist_path": _NOT_HERE,
    "latent_extension": "set latent_extension at the top level",
    "latent_crop_length": "stable-audio-tools reads latent_crop_length from the top level, not per source "
                          "(its docs show it per source); set it there",
    "profile": _OTHER_TYPES,
    "s3_path": _OTHER_TYPES,
}
# Top-level keys used here, per dataset_type (``s3`` is read as ``wds``).
TOP_KEYS: dict[str, tuple[str, ...]] = {
    "audio_dir": ("dataset_type", "datasets", "random_crop", "drop_last", "min_length_sec"),
    "pre_encoded": ("dataset_type", "datasets", "random_crop", "drop_last", "latent_crop_length", "min_length_sec",
                    "max_length_sec", "latent_extension"),
    "wds": ("dataset_type", "datasets", "random_crop", "remove_silence", "silence_threshold", "max_silence_duration",
            "volume_norm", "volume_norm_param", "epoch_steps", "pre_encoded", "latent_crop_length",
            "resampled_shards", "endpoint_url", "region", "s3_retry"),
}
# Every top-level key stable-audio-tools 0.0.20 reads for some dataset_type: ignored with a warning elsewhere.
UPSTREAM_TOP_KEYS = ("dataset_type", "datasets", "random_crop", "drop_last", "volume_norm", "volume_norm_param",
                     "strip_silence", "latent_crop_length", "min_length_sec", "max_length_sec", "remove_silence",
                     "silence_threshold", "max_silence_duration", "epoch_steps", "pre_encoded", "resampled_shards",
                     "latent_extension")


def _ignored_top_keys(kind: str) -> dict[str, str]:
    return {k: (_NOT_HERE if k == "strip_silence" else _OTHER_TYPES) for k in UPSTREAM_TOP_KEYS
            if k not in TOP_KEYS[kind]}


def _validate_source(node: ConfigNode, dataset_type: str) -> dict[str, Any]:
    kind = "wds" if dataset_type == "s3" else dataset_type
    ignored = check_keys_ignoring(node, SOURCE_KEYS[kind], IGNORED_SOURCE_KEYS)
    out = {k: v for k, v in node.data.items() if k not in ignored}
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
    kind = "wds" if dataset_type == "s3" else dataset_type
    ignored = check_keys_ignoring(root, TOP_KEYS[kind], _ignored_top_keys(kind))
    out: dict[str, Any] = {k: v for k, v in copy.deepcopy(cfg).items() if k not in ignored}

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
