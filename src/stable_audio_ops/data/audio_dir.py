"""``audio_dir`` datasets: folders of audio files, random fixed-length crops (upstream ``SampleDataset``).

Same items as upstream: ``(audio [C, sample_size] float32, metadata)`` where metadata has ``path``,
``relpath``, ``timestamps``, ``seconds_start``, ``seconds_total``, ``padding_mask``, ``sample_rate``,
``load_time`` (wall-clock seconds: for logs, never for files meant to be reproducible) plus whatever the
source's ``custom_metadata_module`` returns. Per item: crop planned
at the model rate (random or start-aligned), silence (< -60 dBFS) → another random item, phase flip
(p=0.5, on by default like upstream), clamp to [-1, 1], channel conversion, custom metadata
(``__reject__`` → another item; ``__audio__`` → extra pad/cropped audio entries).

What differs from upstream, and why:

* **Speed.** Files are scanned and their headers probed once at construction (no decoding); each
  item seeks to and decodes only its crop window (see
  :func:`~stable_audio_ops.data.transforms.read_padded_crop`) instead of the whole file.
* **Robustness.** A file that the data-preparation probe would reject (corrupt, 0-byte, unsupported,
  truncated, 0 frames, NaN/Inf samples in a float file: one check for both,
  :func:`~stable_audio_ops.data.files.check_audio_file`) or that is shorter than ``min_length_sec``
  is left out at construction. A file that fails
  later (read error, truncated data, bad sidecar) is marked bad and never drawn again. Either
  way it is logged once (naming the file and the reason), recorded in :attr:`AudioDirDataset.skipped`
  (path -> reason) and the item is replaced by another random file, so an epoch never dies on
  one bad file. Counts live in each process: with DataLoader workers every worker keeps its own.
* **"Too short".** Files shorter than ``sample_size`` are *not* skipped: like upstream they are
  zero-padded and ``padding_mask`` marks the real part. Only files with zero frames or shorter
  than ``min_length_sec`` seconds (default 0 = keep everything non-empty) are skipped.
* **No silent failure.** A dataset with no readable file raises :class:`DatasetError` naming the
  folders; a missing folder raises too; upstream's unbounded retry recursion becomes a bounded
  loop (``max_draws``) ending in a DatasetError that says why no item could be produced.
* **Reproducible items.** With ``seed`` set, every random choice of item ``idx`` (crop offset, phase
  flip, replacement draws) comes from a generator seeded with ``(seed, idx)``, so an item depends on its
  index only: the same files, settings and seed give bitwise-same items in any order, with any number of
  DataLoader workers. Meant for one-pass jobs (pre-encoding); training leaves it unset (``None``: Python's
  global ``random``, which Lightning's ``seed_everything`` seeds per worker, so epochs differ).
* Folders are scanned by :func:`~stable_audio_ops.data.files.scan_audio_folder`, the scanner the
  data-preparation probe uses too: hidden folders (``.git``, ``.ipynb_checkpoints``, ...) are not scanned
  (upstream skips only hidden files), files are sorted for a reproducible order, symlinked folder loops
  are visited once. A file gets the custom metadata of the source it was found under.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from stable_audio_ops.config.dataset_config import AudioDirConfig, FolderSource
from stable_audio_ops.data.audio_io import AUDIO_EXTENSIONS, AudioInfo
from stable_audio_ops.data.custom_metadata import CustomMetadataHook, hooks_for_sources
from stable_audio_ops.data.files import check_audio_file, printable_path, scan_audio_folder
from stable_audio_ops.data.transforms import (
    crop_extra_audio,
    is_silence,
    phase_flip,
    read_padded_crop,
    set_audio_channels,
)
from stable_audio_ops.errors import DatasetError

log = logging.getLogger(__name__)


# One entry of a dataset config's ``datasets`` list: the validated config's own entries are taken as is.
AudioSource = FolderSource


@dataclass(frozen=True)
class AudioFile:
    """A probed file: where it is, which source found it, what its header says."""

    path: str
    source: int
    info: AudioInfo


def _as_source(item: AudioSource | str | os.PathLike[str], index: int) -> AudioSource:
    if isinstance(item, AudioSource):
        return item
    path = os.fspath(item)
    return AudioSource(id=os.path.basename(os.path.normpath(path)) or path, path=path, key_path=f"datasets[{index}]")


class AudioDirDataset(torch.utils.data.Dataset):
    """Fixed-length crops of the audio files under one or more folders (see the module docstring).

    Attributes users read: ``files`` (probed files, index = item index), ``skipped`` (path -> reason),
    ``skipped_count``, ``silent_draws`` (crops replaced for silence), ``rejected_draws``
    (items dropped by ``__reject__``), :meth:`stats`.
    """

    def __init__(
        self,
        sources: Sequence[AudioSource | str | os.PathLike[str]],
        sample_size: int = 65536,
        sample_rate: int = 48000,
        random_crop: bool = True,
        force_channels: str = "stereo",
        phase_flip: bool = True,
        phase_flip_p: float = 0.5,
        min_length_sec: float = 0.0,
        silence_threshold_db: float = -60.0,
        max_draws: int = 100,
        source: str = "<dataset config>",
        seed: int | None = None,
    ):
        super().__init__()
        if sample_size <= 0 or sample_rate <= 0:
            raise ValueError(f"sample_size and sample_rate must be positive, got {sample_size}, {sample_rate}")
        if force_channels not in ("mono", "stereo"):
            raise ValueError(f"force_channels must be 'mono' or 'stereo', got {force_channels!r}")
        self.sources = [_as_source(s, i) for i, s in enumerate(sources)]
        if not self.sources:
            raise DatasetError(f"{source}: no dataset folders given")
        self.sample_size = int(sample_size)
        self.sample_rate = int(sample_rate)
        self.random_crop = random_crop
        self.force_channels = force_channels
        self.phase_flip = phase_flip
        self.phase_flip_p = phase_flip_p
        self.min_length_sec = float(min_length_sec)
        self.silence_threshold_db = silence_threshold_db
        self.max_draws = max_draws
        self.config_source = source
        self.seed = None if seed is None else int(seed)

        self.hooks: list[CustomMetadataHook | None] = hooks_for_sources(self.sources, source)
        self.skipped: dict[str, str] = {}
        self.silent_draws = 0
        self.rejected_draws = 0
        self.candidates = 0
        self.files: list[AudioFile] = self._scan()
        self._bad: set[int] = set()
        log.info("Found %d audio files (%d skipped) in %s", len(self.files), len(self.skipped), self._folders())

    # ----------------------------------------------------------------------------------- scanning
    def _folders(self) -> str:
        return ", ".join(s.path for s in self.sources)

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped:
            self.skipped[path] = reason
            log.warning("skipping audio file %s: %s", printable_path(path), printable_path(reason))

    def _scan(self) -> list[AudioFile]:
        files: list[AudioFile] = []
        for index, src in enumerate(self.sources):
            if not os.path.isdir(src.path):
                where = f"{self.config_source}: {src.key_path}.path" if src.key_path else self.config_source
                raise DatasetError(f"dataset folder not found: {src.path} ({where})")
            for path in scan_audio_folder(src.path):
                self.candidates += 1
                check = check_audio_file(path)
                if check.info is None or check.reason is not None:
                    self._skip(path, check.reason or "cannot open")
                elif check.info.duration < self.min_length_sec:
                    self._skip(path, f"too short ({check.info.duration:.3f} s < min_length_sec "
                                     f"{self.min_length_sec:g} s)")
                else:
                    files.append(AudioFile(path, index, check.info))
        if not files:
            exts = " ".join(AUDIO_EXTENSIONS)
            if self.candidates == 0:
                detail = f"no files with extensions {exts}"
            else:
                reasons = "; ".join(f"{printable_path(p)}: {r}" for p, r in list(self.skipped.items())[:5])
                detail = f"{self.candidates} audio files found, all skipped ({reasons})"
            raise DatasetError(f"no readable audio file in {self._folders()}: {detail}")
        return files

    # ----------------------------------------------------------------------------------- counters
    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def stats(self) -> dict[str, int]:
        """Counters for logging: files found/usable, skipped (at scan or later), silent/rejected draws."""
        return {
            "candidates": self.candidates,
            "files": len(self.files) - len(self._bad),
            "skipped": len(self.skipped),
            "silent_draws": self.silent_draws,
            "rejected_draws": self.rejected_draws,
        }

    # ----------------------------------------------------------------------------------- items
    def __len__(self) -> int:
        return len(self.files)

    def _item_rng(self, idx: int) -> random.Random | None:
        """The generator of item ``idx``'s random choices: seeded by ``(seed, idx)``; None = the global one."""
        return random.Random(f"{self.seed}:{idx}") if self.seed is not None else None

    def _random_index(self, rng: random.Random | None) -> int:
        if len(self._bad) >= len(self.files):
            last = "; ".join(f"{printable_path(p)}: {r}" for p, r in list(self.skipped.items())[-3:])
            raise DatasetError(f"every audio file in {self._folders()} failed to load (last: {last})")
        while True:
            idx = (rng or random).randrange(len(self.files))
            if idx not in self._bad:
                return idx

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict[str, Any]]:
        rng = self._item_rng(idx)
        for _ in range(self.max_draws):
            if idx in self._bad:
                idx = self._random_index(rng)
            entry = self.files[idx]
            try:
                item = self._load(entry, rng)
            except Exception as exc:
                self._bad.add(idx)
                self._skip(entry.path, f"failed to load ({type(exc).__name__}: {exc})")
                idx = self._random_index(rng)
                continue
            if item is not None:
                return item
            idx = self._random_index(rng)
        raise DatasetError(
            f"could not draw a usable item from {self._folders()} in {self.max_draws} tries: "
            f"{self.silent_draws} silent crops, {self.rejected_draws} rejected by custom metadata, "
            f"{len(self.skipped)} files skipped"
        )

    def _finish(self, audio: torch.Tensor) -> torch.Tensor:
        return set_audio_channels(audio.clamp(-1, 1), self.force_channels)

    def _load(self, entry: AudioFile, rng: random.Random | None) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """One item from ``entry``, or None when the crop is silent or rejected (caller draws again)."""
        start = time.time()
        audio, plan, mask = read_padded_crop(
            entry.path, self.sample_size, self.sample_rate, self.random_crop, info=entry.info, rng=rng
        )
        if not torch.isfinite(audio).all():  # the scan reads float files through; this catches later changes
            raise ValueError("non-finite samples: NaN or Inf in the crop")
        if is_silence(audio, self.silence_threshold_db):
            self.silent_draws += 1
            return None
        if self.phase_flip:
            audio = phase_flip(audio, self.phase_flip_p, rng=rng)
        audio = self._finish(audio)

        src = self.sources[entry.source]
        info: dict[str, Any] = {
            "path": entry.path,
            "relpath": os.path.relpath(entry.path, src.path),
            "timestamps": (plan.t_start, plan.t_end),
            "seconds_start": plan.seconds_start,
            "seconds_total": plan.seconds_total,
            "padding_mask": mask,
            "sample_rate": self.sample_rate,
        }
        info["load_time"] = time.time() - start

        hook = self.hooks[entry.source]
        if hook is not None:
            info.update(hook(info, audio))
            if info.pop("__reject__", False):
                self.rejected_draws += 1
                return None
            extra = info.pop("__audio__", None)
            if extra:
                info.update(crop_extra_audio(
                    extra, self.sample_size, self.sample_rate, self.force_channels, self.random_crop, clamp=True,
                    rng=rng))
        return audio, info


def audio_dir_dataset_from_config(
    cfg: AudioDirConfig,
    sample_size: int,
    sample_rate: int,
    audio_channels: int = 2,
    **kwargs: Any,
) -> AudioDirDataset:
    """Build an :class:`AudioDirDataset` from a validated ``audio_dir`` config (its entries taken as they are)."""
    return AudioDirDataset(
        cfg.datasets,
        sample_size=sample_size,
        sample_rate=sample_rate,
        random_crop=cfg.random_crop,
        force_channels="mono" if audio_channels == 1 else "stereo",
        min_length_sec=cfg.min_length_sec,
        source=cfg.source,
        **kwargs,
    )
