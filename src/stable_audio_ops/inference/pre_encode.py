"""Pre-encode a dataset with an unwrapped autoencoder: ``<out>/<rank>/<ID>.npy`` + ``<ID>.json`` (+ ``details.json``).

Same output as upstream's ``pre_encode.py``: per item an ``[C, frames]`` float
array (or token indices with ``is_discrete``) and the item's metadata with ``padding_mask``
nearest-resampled to the latent length as 0/1 ints and tensors converted to lists; ids are
``f"{rank:03d}{batch_idx:06d}{item:04d}"``. ``details.json`` holds the config paths, ``sample_size``
and the arguments, plus (ours) ``downsampling_ratio``, ``latent_dim``, ``sample_rate``,
``latent_mode`` and the item count, which the ``pre_encoded`` dataset uses to move ``seconds_start``
with latent crops.

Decisions:
- **VAE latents**: upstream stores ONE random draw of the VAE posterior per clip (``encode`` samples
  even in eval mode), so every epoch trains on the same noise draw. ``latent_mode="sample"`` keeps
  that (default: the DiT then sees latents distributed like on-the-fly encoding); ``"mean"`` stores
  the posterior mean (deterministic, reproducible encodes). A ``seed`` makes the draw reproducible.
- **Reproducible files**: with a ``seed`` the dataset's own random choices (phase flip, crop) are seeded per
  item too, and the sidecars hold no wall-clock value (the dataset's ``load_time`` is left out), so the same
  audio, autoencoder, settings and seed give bitwise-same files and ``dvc repro`` sees nothing changed
  downstream of a re-run.
- the checkpoint loads STRICTLY (upstream's ``copy_state_dict`` silently keeps random weights for
  anything that does not match, which then encodes garbage);
- ``drop_last`` defaults to false here (upstream's recommendation for pre-encoding; the training
  default true would silently drop the last partial batch of clips);
- no Lightning Trainer: a plain loop on one process; with ``WORLD_SIZE`` > 1 (torchrun/SLURM) each
  rank encodes every ``world_size``-th item into its own ``<rank>/`` folder;
- files are written atomically (temp + rename), so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from stable_audio_ops.config.dataset_config import (
    DEFAULT_SOURCE,
    AudioDirConfig,
    DatasetConfig,
    PreEncodedConfig,
    validate_dataset_config,
)
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.data.pre_encoded import DETAILS_NAME
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.bottlenecks import VAEBottleneck
from stable_audio_ops.models.loading import load_local_model
from stable_audio_ops.utils.io import atomic_write, write_json_atomic
from stable_audio_ops.utils.jsonable import to_jsonable
from stable_audio_ops.utils.ranks import process_rank
from stable_audio_ops.utils.ranks import world_size as env_world_size

LATENT_MODES = ("sample", "mean")
# item metadata that measures time, not data: left out of the sidecars so re-runs write the same bytes
WALL_CLOCK_KEYS = frozenset({"load_time"})
AUTOENCODER_TYPES = ("autoencoder",)


@dataclass
class PreEncodeResult:
    output_path: Path
    rank_dir: Path
    count: int
    latent_shape: tuple[int, ...] | None
    details_path: Path | None


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def latent_padding_mask(mask: Any, length: int) -> list[int]:
    """Audio-rate padding mask -> 0/1 ints at the latent rate (nearest, as upstream)."""
    if mask is None:
        return [1] * length
    mask = torch.as_tensor(mask, dtype=torch.float32).reshape(1, 1, -1)
    return F.interpolate(mask, size=length, mode="nearest").reshape(-1).round().int().tolist()


def load_autoencoder(model_config: Mapping[str, Any] | str | Path | None, ckpt_path: str | Path,
                     model_half: bool = False, source: str | None = None,
                     device: str | torch.device = "cpu") -> torch.nn.Module:
    """An unwrapped autoencoder checkpoint, loaded strictly, frozen, in eval mode (``float16`` with ``model_half``).

    A thin wrapper of :func:`stable_audio_ops.models.loading.load_local_model` (``model_config``: a dict, a
    JSON path, or None for the config embedded in / beside the checkpoint; ``source`` names a dict config in
    error messages). Other model types raise a :class:`ConfigError`.
    """
    loaded = load_local_model(ckpt_path, model_config, device, model_types=AUTOENCODER_TYPES, purpose="pre-encoded",
                              config_source=source)
    return loaded.model.half() if model_half else loaded.model


@torch.no_grad()
def encode_batch(model: torch.nn.Module, audio: torch.Tensor, latent_mode: str = "sample",
                 is_discrete: bool = False) -> torch.Tensor:
    """Latents (or token indices) of one audio batch ``[B, C, T]``."""
    if latent_mode not in LATENT_MODES:
        raise ValueError(f"latent_mode must be one of {', '.join(LATENT_MODES)}, got {latent_mode!r}")
    if is_discrete:
        bottleneck = getattr(model, "bottleneck", None)
        tokens_id = getattr(bottleneck, "tokens_id", None)
        if bottleneck is None or not getattr(bottleneck, "is_discrete", False) or tokens_id is None:
            raise ConfigError("", "is_discrete", "--is-discrete needs an autoencoder with a discrete (quantizing) "
                              "bottleneck; this model's bottleneck is continuous")
        _, info = model.encode(audio, return_info=True)
        return info[tokens_id]
    if latent_mode == "mean" and isinstance(getattr(model, "bottleneck", None), VAEBottleneck):
        pre = model.encode(audio, skip_bottleneck=True)
        return pre.chunk(2, dim=1)[0]
    return model.encode(audio)


def _loader_for_rank(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    if world_size <= 1:
        return loader
    indices = list(range(rank, len(loader.dataset), world_size))
    return DataLoader(Subset(loader.dataset, indices), batch_size=loader.batch_size, shuffle=False,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, drop_last=loader.drop_last)


def pre_encoding_dataset_config(cfg: Mapping[str, Any], source: str = DEFAULT_SOURCE) -> DatasetConfig:
    """``cfg`` validated for pre-encoding: ``drop_last`` is false unless ``cfg`` sets it (validation fills in
    the training default, true, which would silently leave the last partial batch of clips without latents)."""
    config = validate_dataset_config(cfg, source)
    if "drop_last" not in cfg and isinstance(config, (AudioDirConfig, PreEncodedConfig)):
        config = dataclasses.replace(config, drop_last=False)
    return config


def _every_clip(cfg: DatasetConfig, random_crop: bool) -> DatasetConfig:
    """``cfg`` with ``random_crop`` replaced and, where the type has it, ``drop_last`` off."""
    if isinstance(cfg, (AudioDirConfig, PreEncodedConfig)):
        return dataclasses.replace(cfg, random_crop=random_crop, drop_last=False)
    return dataclasses.replace(cfg, random_crop=random_crop)


def pre_encode_dataset(
    model: torch.nn.Module,
    model_config: dict,
    dataset_config: DatasetConfig,
    output_path: str | Path,
    *,
    batch_size: int = 1,
    sample_size: int = 1320960,
    is_discrete: bool = False,
    model_half: bool = False,
    num_workers: int = 4,
    shuffle: bool = False,
    limit_batches: int | None = None,
    latent_mode: str = "sample",
    seed: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    model_config_path: str | None = None,
    dataset_config_path: str | None = None,
    args: Mapping[str, Any] | None = None,
    dataset_source: str = "<dataset config>",
) -> PreEncodeResult:
    """Encode every item of ``dataset_config`` (padded/cropped to ``sample_size``) and write the files."""
    from tqdm.auto import tqdm

    if latent_mode not in LATENT_MODES:
        raise ConfigError("", "latent_mode", f"unknown value {latent_mode!r}; known: {', '.join(LATENT_MODES)}")
    rank = process_rank() if rank is None else int(rank)
    world_size = env_world_size() if world_size is None else int(world_size)
    if seed is not None:
        torch.manual_seed(seed + rank)

    loader = create_dataloader_from_config(
        dataset_config, batch_size=batch_size, sample_size=sample_size, sample_rate=int(model_config["sample_rate"]),
        audio_channels=int(model_config.get("audio_channels", 2)), num_workers=num_workers, shuffle=shuffle,
        seed=seed)
    loader = _loader_for_rank(loader, rank, world_size)

    output_path = Path(output_path)
    rank_dir = output_path / str(rank)
    rank_dir.mkdir(parents=True, exist_ok=True)
    ratio = int(getattr(model, "downsampling_ratio", 1))
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype

    count = 0
    latent_shape: tuple[int, ...] | None = None
    try:
        total: int | None = len(loader)
    except TypeError:  # iterable (WebDataset) loaders have no length
        total = None
    if limit_batches is not None:
        total = int(limit_batches) if total is None else min(total, int(limit_batches))
    bar = tqdm(total=total, desc=f"pre-encoding (rank {rank})", unit="batch", disable=not progress)
    try:
        for batch_idx, batch in enumerate(loader):
            if limit_batches is not None and batch_idx >= limit_batches:
                break
            audio, metadata = batch[0], batch[1]
            if audio.ndim == 4 and audio.shape[0] == 1:
                audio = audio[0]
            latents = encode_batch(model, audio.to(device=device, dtype=dtype), latent_mode, is_discrete)
            latents = latents.float().cpu().numpy() if not is_discrete else latents.cpu().numpy()
            # Token arrays are [T, Q] for some bottlenecks (rvq, dithered_fsq), so the frame count comes
            # from the audio, not the last axis (0.0.20 sizes the mask by the codebook count there).
            frames = audio.shape[-1] // ratio if is_discrete else latents.shape[-1]
            for i, latent in enumerate(latents):
                latent_id = f"{rank:03d}{batch_idx:06d}{i:04d}"
                md = {k: v for k, v in metadata[i].items() if k not in WALL_CLOCK_KEYS}
                md["padding_mask"] = latent_padding_mask(md.get("padding_mask"), frames)
                md["downsampling_ratio"] = ratio
                md = to_jsonable(md)
                write_npy_atomic(rank_dir / f"{latent_id}.npy", np.ascontiguousarray(latent))
                write_json_atomic(rank_dir / f"{latent_id}.json", md)
                latent_shape = tuple(latent.shape)
                count += 1
            bar.update(1)
    finally:
        bar.close()

    details_path = None
    if rank == 0:
        details_path = output_path / DETAILS_NAME
        write_json_atomic(details_path, {
            "model_config": model_config_path,
            "dataset_config": dataset_config_path,
            "sample_size": sample_size,
            "args": to_jsonable(dict(args or {})),
            "downsampling_ratio": ratio,
            "latent_dim": int(getattr(model, "latent_dim", 0)) or None,
            "sample_rate": int(model_config["sample_rate"]),
            "latent_mode": latent_mode,
            "count": count,
        })
    return PreEncodeResult(output_path=output_path, rank_dir=rank_dir, count=count, latent_shape=latent_shape,
                           details_path=details_path)


def pre_encode_training_set(autoencoder_path: str | Path, dataset_config: DatasetConfig, output_path: str | Path,
                            *, sample_size: int, batch_size: int, num_workers: int, random_crop: bool,
                            latent_mode: str, seed: int | None, args: Mapping[str, Any] | None = None,
                            progress: bool = True, is_discrete: bool = False) -> PreEncodeResult:
    """Encode every clip of a training dataset config with an unwrapped autoencoder file into ``output_path``.

    The training config's ``drop_last`` (true for training) is turned off here: pre-encoding must cover every
    clip, or the last partial batch of train clips silently never reaches the diffusion model. ``random_crop``
    replaces the config's (false: whole clips from their start). The config's path is recorded in
    ``details.json`` as ``model_config``, so the latents name the autoencoder that made them. ``is_discrete``
    writes token indices instead of latents (``pre_encode --is-discrete``: what an ``lm`` model trains on).
    """
    loaded = load_local_model(autoencoder_path, None, "cpu", model_types=AUTOENCODER_TYPES, purpose="pre-encoded")
    source = _every_clip(dataset_config, bool(random_crop))
    return pre_encode_dataset(loaded.model, loaded.config, source, output_path, batch_size=batch_size, sample_size=sample_size,
                              num_workers=num_workers, latent_mode=latent_mode, seed=seed,
                              model_config_path=str(autoencoder_path), dataset_config_path="training dataset config",
                              args=args, progress=progress, is_discrete=is_discrete)
