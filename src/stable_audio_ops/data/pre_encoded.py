"""``pre_encoded`` datasets: latents written by ``pre_encode.py`` (``<ID>.npy`` + ``<ID>.json``), upstream semantics.

Per source (``datasets[]``): ``id``, ``path``, ``custom_metadata_module``. Top-level keys:
``latent_crop_length`` (frames; read from the TOP level, as upstream's code does — its docs show it
per source, which is ignored), ``min_length_sec`` / ``max_length_sec`` (filter on the json's
``seconds_total``), ``random_crop`` (default false), ``latent_extension`` (``npy``).

Files: ``<root>/filelist.txt`` (paths relative to the root, one per line) when present, else every
``*.<latent_extension>`` under the root (recursive, sorted). Each has a metadata json of the same
name. Items are ``(latents [C, N] float32, info)`` where ``info`` is the json plus
``latent_filename``, ``latent_crop_length``/``latent_crop_start`` (when cropping),
``padding_mask`` wrapped as ``[tensor]`` (upstream's layout), ``audio`` (the latents, as upstream)
and the custom metadata. Custom metadata gets ``(info, None)``; ``__reject__`` drops the item,
``__replace__`` replaces the latents.

Decisions on upstream's behaviour:
- **seconds_start follows the crop** (the fix of upstream PR #219): a crop starting ``s`` latent
  frames in adds ``floor(s * downsampling_ratio / sample_rate)`` seconds. The ratio comes from the
  json's ``downsampling_ratio`` or the root's ``details.json`` (both written by our pre-encoder);
  latents from upstream's pre-encoder carry neither, and then ``seconds_start`` is left as is
  (upstream's behaviour), with a one-time warning.
- a latent file SHORTER than ``latent_crop_length`` is zero-padded (padding mask 0) instead of
  producing a short item that makes batch stacking fail;
- a file that cannot be read, and items filtered by length or rejected, are replaced by another
  random item in a bounded loop (upstream recurses without bound), and bad files are never drawn again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stable_audio_ops.config.dataset_config import FolderSource, PreEncodedConfig
from stable_audio_ops.data.custom_metadata import hooks_for_sources
from stable_audio_ops.data.files import files_with_suffix, walk_files
from stable_audio_ops.errors import DatasetError

log = logging.getLogger(__name__)

FILELIST_NAME = "filelist.txt"
DETAILS_NAME = "details.json"


# One entry of a dataset config's ``datasets`` list: the validated config's own entries are taken as is.
LatentSource = FolderSource


def find_latent_files(root: str | os.PathLike[str], extension: str = "npy") -> list[str]:
    """Latent files of one source: ``filelist.txt`` entries if the file exists, else a recursive scan."""
    root = Path(root)
    filelist = root / FILELIST_NAME
    if filelist.is_file():
        entries = [line.strip() for line in filelist.read_text(encoding="utf-8").splitlines()]
        return [str(root / e) for e in entries if e and not e.startswith("#")]
    return walk_files(root, files_with_suffix("." + extension.lstrip("."), case_sensitive=False))


def _details_ratio(root: str) -> int | None:
    try:
        details = json.loads((Path(root) / DETAILS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ratio = details.get("downsampling_ratio") if isinstance(details, dict) else None
    return int(ratio) if isinstance(ratio, (int, float)) and ratio > 0 else None


def last_real_index(mask: Sequence[Any]) -> int:
    """Index of the last 1 in a padding mask (-1 when there is none)."""
    for i in range(len(mask) - 1, -1, -1):
        if float(mask[i]) > 0.5:
            return i
    return -1


class PreEncodedDataset(torch.utils.data.Dataset):
    """Pre-encoded latents + metadata (see the module docstring)."""

    def __init__(self, sources: Sequence[LatentSource], latent_crop_length: int | None = None,
                 min_length_sec: float | None = None, max_length_sec: float | None = None,
                 random_crop: bool = False, latent_extension: str = "npy", max_draws: int = 100,
                 source: str = "<dataset config>"):
        super().__init__()
        if not sources:
            raise DatasetError(f"{source}: no dataset folders given")
        self.sources = list(sources)
        self.latent_crop_length = int(latent_crop_length) if latent_crop_length else None
        self.min_length_sec = min_length_sec
        self.max_length_sec = max_length_sec
        self.random_crop = bool(random_crop)
        self.latent_extension = latent_extension.lstrip(".")
        self.max_draws = max_draws
        self.config_source = source
        self.hooks = hooks_for_sources(self.sources, source)
        self.files: list[tuple[str, int]] = []
        self.ratios: list[int | None] = []
        for index, src in enumerate(self.sources):
            if not os.path.isdir(src.path):
                where = f"{source}: {src.key_path}.path" if src.key_path else source
                raise DatasetError(f"pre-encoded latents folder not found: {src.path} ({where})")
            self.files.extend((f, index) for f in find_latent_files(src.path, self.latent_extension))
            self.ratios.append(_details_ratio(src.path))
        if not self.files:
            folders = ", ".join(s.path for s in self.sources)
            raise DatasetError(f"no *.{self.latent_extension} latent files (and no {FILELIST_NAME}) in {folders}; "
                               "write them with pre_encode.py")
        self.skipped: dict[str, str] = {}
        self._excluded: set[int] = set()
        self._warned_ratio = False
        log.info("Found %d pre-encoded files in %s", len(self.files), ", ".join(s.path for s in self.sources))

    def __len__(self) -> int:
        return len(self.files)

    def _random_index(self) -> int:
        if len(self._excluded) >= len(self.files):
            reasons = "; ".join(f"{p}: {r}" for p, r in list(self.skipped.items())[-3:])
            raise DatasetError(f"no usable pre-encoded item left in {self.config_source} (last: {reasons})")
        while True:
            idx = random.randrange(len(self.files))
            if idx not in self._excluded:
                return idx

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict[str, Any]]:
        for _ in range(self.max_draws):
            if idx in self._excluded:
                idx = self._random_index()
            path = self.files[idx][0]
            try:
                item = self._load(idx)
            except Exception as exc:  # unreadable npy/json: skip the file for good, say which and why
                self._excluded.add(idx)
                self._skip(path, f"failed to load ({type(exc).__name__}: {exc})")
                idx = self._random_index()
                continue
            if item is not None:
                return item
            idx = self._random_index()
        raise DatasetError(f"could not draw a usable pre-encoded item from {self.config_source} in "
                           f"{self.max_draws} tries ({len(self.skipped)} files skipped)")

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped:
            self.skipped[path] = reason
            log.warning("skipping pre-encoded file %s: %s", path, reason)

    def _crop(self, latents: torch.Tensor, info: dict[str, Any], source_index: int) -> torch.Tensor:
        crop = self.latent_crop_length
        mask = list(info["padding_mask"])
        last_ix = last_real_index(mask)
        start = random.randint(0, last_ix - crop) if self.random_crop and last_ix > crop else 0
        latents = latents[:, start:start + crop]
        mask = mask[start:start + crop]
        if latents.shape[-1] < crop:  # short file: pad so the batch still stacks
            missing = crop - latents.shape[-1]
            latents = torch.cat([latents, latents.new_zeros(latents.shape[0], missing)], dim=-1)
            mask = mask + [0] * (crop - len(mask))
        info["padding_mask"] = mask
        info["latent_crop_length"] = crop
        info["latent_crop_start"] = start
        if start > 0:
            self._shift_seconds_start(info, start, source_index)
        return latents

    def _shift_seconds_start(self, info: dict[str, Any], start: int, source_index: int) -> None:
        ratio = info.get("downsampling_ratio") or self.ratios[source_index]
        sample_rate = info.get("sample_rate")
        if not ratio or not sample_rate or "seconds_start" not in info:
            if not self._warned_ratio:
                log.warning("pre-encoded metadata has no downsampling_ratio/sample_rate: seconds_start is not "
                            "adjusted for latent crops (upstream behaviour)")
                self._warned_ratio = True
            return
        info["seconds_start"] = int(info["seconds_start"]) + math.floor(start * int(ratio) / float(sample_rate))

    def _load(self, idx: int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        path, source_index = self.files[idx]
        latents = torch.from_numpy(np.load(path).astype(np.float32, copy=False))
        if latents.ndim != 2:
            raise ValueError(f"expected a [channels, frames] array, got shape {tuple(latents.shape)}")
        md_path = os.path.splitext(path)[0] + ".json"
        with open(md_path, encoding="utf-8") as f:
            info = json.load(f)
        if not isinstance(info, dict):
            raise ValueError(f"{md_path} must hold a JSON object")
        info["latent_filename"] = path
        if "padding_mask" not in info or not info["padding_mask"]:
            info["padding_mask"] = [1] * latents.shape[-1]

        seconds_total = info.get("seconds_total")
        if seconds_total is not None:
            too_short = self.min_length_sec is not None and seconds_total < self.min_length_sec
            too_long = self.max_length_sec is not None and seconds_total > self.max_length_sec
            if too_short or too_long:
                self._excluded.add(idx)  # a file's length never changes: never draw it again
                self._skip(path, f"seconds_total {seconds_total} outside [{self.min_length_sec}, {self.max_length_sec}]")
                return None

        if self.latent_crop_length is not None:
            latents = self._crop(latents, info, source_index)
        info["padding_mask"] = [torch.tensor(info["padding_mask"], dtype=torch.float32)]

        hook = self.hooks[source_index]
        if hook is not None:
            info.update(hook(info, None))
            if info.pop("__reject__", False):
                return None
            replacement = info.pop("__replace__", None)
            if replacement is not None:
                latents = torch.as_tensor(replacement, dtype=torch.float32)
        info["audio"] = latents
        return latents, info


def pre_encoded_dataset_from_config(cfg: PreEncodedConfig, **kwargs: Any) -> PreEncodedDataset:
    """Build a :class:`PreEncodedDataset` from a validated ``pre_encoded`` config (its entries taken as they are)."""
    return PreEncodedDataset(
        cfg.datasets,
        latent_crop_length=cfg.latent_crop_length,
        min_length_sec=cfg.min_length_sec,
        max_length_sec=cfg.max_length_sec,
        random_crop=cfg.random_crop,
        latent_extension=cfg.latent_extension,
        source=cfg.source,
        **kwargs,
    )


def pre_encoded_dataset_config(folder: str | os.PathLike[str], dataset_id: str) -> dict[str, Any]:
    """The ``pre_encoded`` dataset config that trains on one folder of latents: whole latents in a fixed order
    (``random_crop`` false: the pre-encoder already chose the crops) and full batches only."""
    return {"dataset_type": "pre_encoded", "random_crop": False, "drop_last": True,
            "datasets": [{"id": dataset_id, "path": str(folder)}]}


def summarize_latents(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """What a folder of latents holds, read back from the files (every rank's): ``count``, ``latent_shape`` (of
    the first), ``latent_mean`` / ``latent_std`` over all values (``latent_scale: auto`` uses the std),
    ``downsampling_ratio`` and ``autoencoder`` (the model that encoded them) from ``details.json``, ``latents_dir``.

    Read from the folder rather than returned by the encoder so the summary describes what training will read.
    """
    root = Path(folder)
    files = find_latent_files(root)
    if not files:
        raise DatasetError(f"{root}: no latent files to summarize (pre-encoding wrote nothing)")
    stack = np.stack([np.load(f) for f in files])
    try:
        details = json.loads((root / DETAILS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        details = {}
    return {"count": len(files), "latent_shape": list(stack.shape[1:]), "latent_std": float(stack.std()),
            "latent_mean": float(stack.mean()), "downsampling_ratio": _details_ratio(str(root)),
            "latents_dir": str(root), "autoencoder": details.get("model_config")}
