"""``create_dataloader_from_config``: dataset config JSON -> torch DataLoader (upstream's entry point).

One registry, :data:`DATASET_TYPES`, maps ``dataset_type`` to a builder; an unknown type lists the
known ones. Fixes relative to upstream: ``persistent_workers`` only when ``num_workers > 0``
(upstream hard-codes True, which makes ``num_workers=0`` raise), and ``pin_memory`` only when CUDA
is present (pinning on a CPU-only machine only produces a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from stable_audio_ops.config.dataset_config import (
    DEFAULT_SOURCE,
    AudioDirConfig,
    DatasetConfig,
    PreEncodedConfig,
    WdsConfig,
    as_dataset_config,
)
from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.data.audio_dir import audio_dir_dataset_from_config
from stable_audio_ops.data.collate import collation_fn
from stable_audio_ops.data.loader_options import LoaderOptions
from stable_audio_ops.data.pre_encoded import pre_encoded_dataset_from_config
from stable_audio_ops.data.wds import build_wds_loader


def torch_loader(dataset: Dataset, options: LoaderOptions, drop_last: bool) -> DataLoader:
    """A map-style DataLoader with upstream's settings (shuffle, collation) minus its worker bug."""
    workers = max(0, int(options.num_workers))
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=options.shuffle,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        collate_fn=collation_fn,
    )


def _build_audio_dir(cfg: AudioDirConfig, options: LoaderOptions) -> DataLoader:
    dataset = audio_dir_dataset_from_config(
        cfg, options.sample_size, options.sample_rate, options.audio_channels, seed=options.seed
    )
    return torch_loader(dataset, options, drop_last=cfg.drop_last)


def _build_pre_encoded(cfg: PreEncodedConfig, options: LoaderOptions) -> DataLoader:
    # Latents are used as stored: sample_size / sample_rate / channels do not apply (the crop is
    # latent_crop_length frames).
    return torch_loader(pre_encoded_dataset_from_config(cfg), options, drop_last=cfg.drop_last)


def _build_webdataset(cfg: WdsConfig, options: LoaderOptions) -> Any:
    # webdataset (and boto3 for s3) are imported inside data.wds / data.s3 only when shards are read.
    return build_wds_loader(cfg, options)


# dataset_type -> builder(validated config of that type, options) -> DataLoader (or a DataLoader-like iterable).
DATASET_TYPES: dict[str, Callable[[Any, LoaderOptions], Any]] = {
    "audio_dir": _build_audio_dir,
    "pre_encoded": _build_pre_encoded,
    "wds": _build_webdataset,
    "s3": _build_webdataset,  # upstream alias: shards under an s3_path
}


def create_dataloader_from_config(
    dataset_config: DatasetConfig | Mapping[str, Any],
    batch_size: int,
    sample_size: int,
    sample_rate: int,
    audio_channels: int = 2,
    num_workers: int = 4,
    shuffle: bool = True,
    source: str = DEFAULT_SOURCE,
    seed: int | None = None,
) -> DataLoader:
    """Build the DataLoader of a validated :data:`DatasetConfig`, taken as is.

    Upstream's signature takes the JSON dict: a mapping is validated here first (errors name ``source``; a
    :data:`DatasetConfig` names the file it was read from itself).
    Batches are ``[audio [B, C, sample_size] float32, (metadata dict, ...)]`` (upstream's collation).
    ``audio_channels`` 1 makes items mono (channel mean), otherwise stereo. ``seed`` makes ``audio_dir`` items
    reproducible (each a function of its index; see :class:`~stable_audio_ops.data.audio_dir.AudioDirDataset`).
    """
    cfg = as_dataset_config(dataset_config, source)
    options = LoaderOptions(batch_size=batch_size, sample_size=sample_size, sample_rate=sample_rate,
                            audio_channels=audio_channels, num_workers=num_workers, shuffle=shuffle, seed=seed)
    builder = lookup(DATASET_TYPES, cfg.dataset_type, "dataset type", ConfigNode(None, cfg.source),
                     key="dataset_type")
    return builder(cfg, options)
