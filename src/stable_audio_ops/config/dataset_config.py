"""Dataset config (upstream's ``--dataset-config`` JSON): validated once, at the edge, into a frozen object.

Upstream asserts a few keys inside ``create_dataloader_from_config`` and otherwise fails with bare
KeyErrors mid-setup, and every builder re-reads the dict with defaults of its own.
:func:`validate_dataset_config` checks every key upstream's ``create_dataloader_from_config``
(``stable_audio_tools/data/dataset.py``) reads for the ``audio_dir``, ``pre_encoded``, ``wds`` and ``s3``
dataset types and returns a :data:`DatasetConfig`: an :class:`AudioDirConfig`, :class:`PreEncodedConfig` or
:class:`WdsConfig` (frozen dataclasses whose field defaults are upstream's defaults, stated only there) with
a tuple of typed ``datasets`` entries (:class:`FolderSource` / :class:`ShardSource`). Dataset builders,
training and pre-encoding take that object as is; :func:`dataset_config_to_dict` gives its JSON form back
(logged with a run, and validated again it gives an equal object).

Unknown keys, at the top level and inside ``datasets[i]``: a key that stable-audio-tools (0.0.20 or its
docs) reads but this package does not use for that dataset type is logged as a warning naming the file
and the key path and ignored (configs in the wild carry them: ``weight``/``keywords`` per source,
``latent_crop_length`` per source as upstream's docs show it, ``strip_silence`` ...); any other key is a
:class:`~stable_audio_ops.errors.ConfigError` (a typo must not silently fall back to a default).

The escape hatch is upstream's own: each source's ``custom_metadata_module`` (a ``.py`` file or a dotted
module) is kept as written and run per item by the dataset, so anything a config cannot say goes there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from stable_audio_ops.config.schema import ConfigNode, check_keys_ignoring
from stable_audio_ops.errors import ConfigError

DEFAULT_SOURCE = "<dataset config>"

# Every dataset_type upstream knows ("s3" is upstream's alias of "wds"). Which of them can be
# built is decided by the dataloader registry; validation accepts all so errors stay precise.
KNOWN_DATASET_TYPES: tuple[str, ...] = ("audio_dir", "pre_encoded", "wds", "s3")


# ----------------------------------------------------------------------------------- the objects
@dataclass(frozen=True)
class FolderSource:
    """One ``datasets[i]`` entry of an ``audio_dir`` or ``pre_encoded`` config: a local folder.

    ``key_path`` (``datasets[i]``) locates the entry in error messages raised while the dataset is built.
    """

    id: str
    path: str
    custom_metadata_module: str | None = None
    key_path: str = ""


@dataclass(frozen=True)
class ShardSource:
    """One ``datasets[i]`` entry of a ``wds`` / ``s3`` config: ``.tar`` shards under ``s3_path`` or a local
    ``path``; ``profile`` / ``endpoint_url`` / ``region`` here win over the top-level ones."""

    id: str
    path: str | None = None
    s3_path: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    custom_metadata_module: str | None = None
    key_path: str = ""


@dataclass(frozen=True)
class S3Retry:
    """``s3_retry`` as written; a field left out (None) keeps the S3 client's own default
    (:class:`~stable_audio_ops.data.s3.RetryPolicy`, where those defaults are stated)."""

    max_attempts: int | None = None
    base_delay: float | None = None
    max_delay: float | None = None


@dataclass(frozen=True)
class AudioDirConfig:
    """``dataset_type: audio_dir``: audio files under local folders."""

    datasets: tuple[FolderSource, ...]
    random_crop: bool = True
    drop_last: bool = True
    min_length_sec: float = 0.0
    source: str = DEFAULT_SOURCE
    dataset_type: str = field(default="audio_dir", init=False)


@dataclass(frozen=True)
class PreEncodedConfig:
    """``dataset_type: pre_encoded``: latents written by pre-encoding (``latent_crop_length`` in frames)."""

    datasets: tuple[FolderSource, ...]
    random_crop: bool = False
    drop_last: bool = True
    latent_crop_length: int | None = None
    min_length_sec: float | None = None
    max_length_sec: float | None = None
    latent_extension: str = "npy"
    source: str = DEFAULT_SOURCE
    dataset_type: str = field(default="pre_encoded", init=False)


@dataclass(frozen=True)
class WdsConfig:
    """``dataset_type: wds`` or ``s3`` (upstream's alias, kept as written): WebDataset shards.

    ``shuffle_buffer``, ``seed``, ``endpoint_url``, ``region`` and ``s3_retry`` are ours (see
    :mod:`stable_audio_ops.data.wds`).
    """

    datasets: tuple[ShardSource, ...]
    dataset_type: str = "wds"
    random_crop: bool = True
    remove_silence: bool = False
    silence_threshold: tuple[float, float] = (0.01, 0.5)
    max_silence_duration: float = 0.25
    volume_norm: bool = False
    volume_norm_param: tuple[float, float] = (-16, 2)
    epoch_steps: int = 2000
    pre_encoded: bool = False
    latent_crop_length: int | None = None
    resampled_shards: bool = True
    shuffle_buffer: int = 256
    seed: int = 0
    endpoint_url: str | None = None
    region: str | None = None
    s3_retry: S3Retry | None = None
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        if self.dataset_type not in ("wds", "s3"):
            raise ValueError(f"WdsConfig.dataset_type must be 'wds' or 's3', got {self.dataset_type!r}")


# What every builder, training and pre-encoding take: one of the three, validated.
DatasetConfig: TypeAlias = AudioDirConfig | PreEncodedConfig | WdsConfig


# ------------------------------------------------------------------------------------ key tables
_NOT_HERE = "read by stable-audio-tools 0.0.20, not supported by stable-audio-ops"
_OTHER_TYPES = "not used by this dataset_type"

# Keys of a ``datasets[i]`` entry per dataset_type (``s3`` is read as ``wds``) -> expected kind.
SOURCE_KINDS: dict[str, dict[str, str]] = {
    "audio_dir": {"id": "a string", "path": "a string", "custom_metadata_module": "a string"},
    "pre_encoded": {"id": "a string", "path": "a string", "custom_metadata_module": "a string"},
    "wds": {"id": "a string", "path": "a string", "s3_path": "a string", "profile": "a string",
            "endpoint_url": "a string", "region": "a string", "custom_metadata_module": "a string"},
}
SOURCE_KEYS: dict[str, tuple[str, ...]] = {kind: tuple(keys) for kind, keys in SOURCE_KINDS.items()}
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
# Top-level option keys per dataset_type -> expected kind; each is a field of that type's config class.
OPTION_KINDS: dict[str, dict[str, str]] = {
    "audio_dir": {"random_crop": "a bool", "drop_last": "a bool", "min_length_sec": "a non-negative number"},
    "pre_encoded": {"random_crop": "a bool", "drop_last": "a bool", "latent_crop_length": "a positive int",
                    "min_length_sec": "a non-negative number", "max_length_sec": "a non-negative number",
                    "latent_extension": "a string"},
    "wds": {"random_crop": "a bool", "remove_silence": "a bool", "silence_threshold": "a list of numbers",
            "max_silence_duration": "a non-negative number", "volume_norm": "a bool",
            "volume_norm_param": "a list of numbers", "epoch_steps": "a positive int", "pre_encoded": "a bool",
            "latent_crop_length": "a positive int", "resampled_shards": "a bool",
            "shuffle_buffer": "a non-negative int", "seed": "an int", "endpoint_url": "a string",
            "region": "a string", "s3_retry": "an object"},
}
TOP_KEYS: dict[str, tuple[str, ...]] = {kind: ("dataset_type", "datasets", *keys)
                                        for kind, keys in OPTION_KINDS.items()}
# Every top-level key stable-audio-tools 0.0.20 reads for some dataset_type: ignored with a warning elsewhere.
UPSTREAM_TOP_KEYS = ("dataset_type", "datasets", "random_crop", "drop_last", "volume_norm", "volume_norm_param",
                     "strip_silence", "latent_crop_length", "min_length_sec", "max_length_sec", "remove_silence",
                     "silence_threshold", "max_silence_duration", "epoch_steps", "pre_encoded", "resampled_shards",
                     "latent_extension")
S3_RETRY_KINDS: dict[str, str] = {"max_attempts": "a positive int", "base_delay": "a non-negative number",
                                  "max_delay": "a non-negative number"}


def _ignored_top_keys(kind: str) -> dict[str, str]:
    return {k: (_NOT_HERE if k == "strip_silence" else _OTHER_TYPES) for k in UPSTREAM_TOP_KEYS
            if k not in TOP_KEYS[kind]}


def _given(node: ConfigNode, kinds: dict[str, str]) -> dict[str, Any]:
    """The keys of ``kinds`` the config sets (null counts as not set), checked; the rest keep the dataclass
    default, so each default is written once, in the dataclass."""
    return {key: node.get(key, kind) for key, kind in kinds.items() if node.has(key) and node.data[key] is not None}


# ------------------------------------------------------------------------------------ validation
def _folder_source(node: ConfigNode, dataset_type: str) -> FolderSource:
    check_keys_ignoring(node, SOURCE_KEYS[dataset_type], IGNORED_SOURCE_KEYS)
    dataset_id = node.get("id", "a string")
    path = node.get("path", "a string")
    if not path:
        raise node.error("must not be empty", "path")
    return FolderSource(id=dataset_id, path=path, key_path=node.path,
                        custom_metadata_module=node.get("custom_metadata_module", "a string", None))


def _shard_source(node: ConfigNode, dataset_type: str) -> ShardSource:
    check_keys_ignoring(node, SOURCE_KEYS["wds"], IGNORED_SOURCE_KEYS)
    dataset_id = node.get("id", "a string")
    values = {**_given(node, SOURCE_KINDS["wds"]), "id": dataset_id}
    if "path" not in values and "s3_path" not in values:
        raise node.error("missing required key: give 'path' (local folder of .tar shards) or 's3_path'")
    return ShardSource(**values, key_path=node.path)


def _pair(root: ConfigNode, values: dict[str, Any], key: str, meaning: str) -> None:
    if key in values:
        if len(values[key]) != 2:
            raise root.error(f"expected [{meaning}], got {values[key]!r}", key)
        values[key] = tuple(values[key])


def _audio_dir(root: ConfigNode, dataset_type: str, sources: tuple[Any, ...]) -> AudioDirConfig:
    return AudioDirConfig(datasets=sources, source=root.source, **_given(root, OPTION_KINDS["audio_dir"]))


def _pre_encoded(root: ConfigNode, dataset_type: str, sources: tuple[Any, ...]) -> PreEncodedConfig:
    return PreEncodedConfig(datasets=sources, source=root.source, **_given(root, OPTION_KINDS["pre_encoded"]))


def _wds(root: ConfigNode, dataset_type: str, sources: tuple[Any, ...]) -> WdsConfig:
    values = _given(root, OPTION_KINDS["wds"])
    if "latent_crop_length" in values and not values.get("pre_encoded", False):
        raise root.error("latent_crop_length only applies with pre_encoded: true", "latent_crop_length")
    _pair(root, values, "silence_threshold", "amplitude, seconds")
    _pair(root, values, "volume_norm_param", "target LUFS, gain range dB")
    if "s3_retry" in values:
        retry = root.child("s3_retry")
        check_keys_ignoring(retry, tuple(S3_RETRY_KINDS), {})
        values["s3_retry"] = S3Retry(**_given(retry, S3_RETRY_KINDS))
    return WdsConfig(datasets=sources, dataset_type=dataset_type, source=root.source, **values)


# dataset_type -> (how one datasets[i] entry is read, how the whole config is built)
_PARSERS: dict[str, tuple[Callable[[ConfigNode, str], Any], Callable[[ConfigNode, str, tuple[Any, ...]], Any]]] = {
    "audio_dir": (_folder_source, _audio_dir),
    "pre_encoded": (_folder_source, _pre_encoded),
    "wds": (_shard_source, _wds),
}


def validate_dataset_config(cfg: Any, source: str = DEFAULT_SOURCE) -> DatasetConfig:
    """Check a dataset config dict and return it as a frozen :data:`DatasetConfig` (upstream's defaults filled in).

    Raises :class:`~stable_audio_ops.errors.ConfigError` such as
    ``dataset.json: datasets[0].path: missing required key (expected a string)``.
    """
    root = ConfigNode(cfg, source)
    if not isinstance(cfg, dict):
        raise root.error(f"expected a JSON object at the top level, got {type(cfg).__name__}")
    dataset_type = root.choice("dataset_type", KNOWN_DATASET_TYPES)
    kind = "wds" if dataset_type == "s3" else dataset_type
    check_keys_ignoring(root, TOP_KEYS[kind], _ignored_top_keys(kind))
    read_source, build = _PARSERS[kind]
    nodes = root.children("datasets")
    if not nodes:
        raise root.error("needs at least one entry", "datasets")
    sources = tuple(read_source(node, kind) for node in nodes)
    return build(root, dataset_type, sources)


def as_dataset_config(cfg: Any, source: str = DEFAULT_SOURCE) -> DatasetConfig:
    """``cfg`` if it is already a :data:`DatasetConfig`, else ``cfg`` validated (for entry points that keep
    upstream's dict signature, e.g. ``create_dataloader_from_config``)."""
    if isinstance(cfg, DatasetConfig):
        return cfg
    return validate_dataset_config(cfg, source)


def dataset_config_to_dict(cfg: DatasetConfig) -> dict[str, Any]:
    """The config's JSON form, every default written out (what a run logs); validating it again gives an
    equal object (``source`` and each entry's ``key_path`` say where it came from, so they are left out)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if f.name not in ("source", "key_path")}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(cfg)


def read_dataset_config_json(path: str | os.PathLike[str]) -> Any:
    """The JSON of a dataset config file, not yet validated; errors name the file (and line for bad JSON)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as exc:
        raise ConfigError(source, "", "dataset config file not found") from exc
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read dataset config: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def load_dataset_config(path: str | os.PathLike[str]) -> DatasetConfig:
    """Read and validate a dataset config JSON file; errors name the file (and line for bad JSON)."""
    return validate_dataset_config(read_dataset_config_json(path), os.fspath(path))


__all__ = [
    "AudioDirConfig",
    "DatasetConfig",
    "FolderSource",
    "PreEncodedConfig",
    "S3Retry",
    "ShardSource",
    "WdsConfig",
    "as_dataset_config",
    "dataset_config_to_dict",
    "load_dataset_config",
    "read_dataset_config_json",
    "validate_dataset_config",
]
