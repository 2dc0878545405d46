"""``wds`` / ``s3`` datasets: WebDataset ``.tar`` shards from S3 (boto3) or a local folder.

Config keys are those of upstream's ``create_dataloader_from_config`` (``stable_audio_tools/data/dataset.py``)
for ``wds`` / ``s3`` datasets. Per source: ``id``, ``s3_path`` (+ ``profile``) or ``path``
(a folder searched recursively for ``.tar`` shards, or one shard), ``custom_metadata_module``; ours:
``endpoint_url`` and ``region`` per source or at the top level (else boto3's chain: ``AWS_ENDPOINT_URL``,
profile, ...). Top level: ``random_crop`` (true), ``resampled_shards`` (true), ``epoch_steps`` (2000),
``remove_silence`` (false), ``silence_threshold`` ([0.01, 0.5]), ``max_silence_duration`` (0.25),
``volume_norm`` (false), ``volume_norm_param`` ([-16, 2]), ``pre_encoded`` (false),
``latent_crop_length``; ours: ``shuffle_buffer`` (256 samples per worker, 0 = off), ``seed`` (0),
``s3_retry`` ({max_attempts, base_delay, max_delay}).

Each shard holds samples ``<key>.<audio ext>`` + ``<key>.json`` (``<key>.npy`` + json when
``pre_encoded``). Per sample, like upstream: decode (soundfile, from memory) -> resample to the model
rate -> ``remove_silence`` (mono only) -> pad/crop to ``sample_size`` -> channels -> ``volume_norm`` ->
phase flip; the json becomes the metadata and gains ``seconds_start``, ``seconds_total``,
``padding_mask``, ``timestamps``, ``prompt`` (from ``text``), custom metadata, and ``audio``; silent
crops (< -60 dBFS) and ``__reject__`` are dropped. Batches are ``[audio [B, C, N], (metadata, ...)]``,
the same as the ``audio_dir`` loader.

Epochs: with ``resampled_shards`` each reader (rank x worker) draws shards at random with replacement
forever, and an epoch is ``epoch_steps`` batches per rank (``epoch_steps // num_workers`` per worker,
as upstream) -- every rank gets the same number of steps, which DDP needs. Without it, the shard list
is shuffled per epoch with a seed shared by all ranks, split across ranks (``split_by_node``) and then
across workers (``split_by_worker``), and read once; ranks can then get different batch counts, so
prefer resampling under DDP.

What differs from upstream, and why:

* No ``aws`` CLI: listing and streaming use boto3 (:mod:`stable_audio_ops.data.s3`) with retries and
  resumable reads, any S3-compatible endpoint, clear errors for a missing bucket or no shards.
* Failures are counted, not swallowed: a corrupt or incomplete sample (bad audio, bad json, missing
  part) or a corrupt shard is skipped with a warning naming the shard and key, and counted in
  :attr:`WebDatasetAudio.stats`. A store that stays down raises. A reader that sees
  ``max_unusable_shards`` shards in a row without one usable sample raises, and an epoch that yields
  no batch at all raises (:class:`WebDatasetLoader`) -- never a silent empty or endless epoch.
* A loader built with a ``seed`` (``create_dataloader_from_config(..., seed=)``, as pre-encoding does) draws
  each sample's crop, silence cut and phase flip from a generator seeded by ``(seed, shard, key)``: the same
  shards and seed give the same items. Training leaves it unset (Python's global ``random``, seeded per worker).
* Shards are split across ranks and workers (upstream only resamples), and samples are shuffled in
  a buffer after cropping (upstream's shuffle is commented out), so memory is
  ``shuffle_buffer x sample_size x channels x 4`` bytes per worker.
* ``volume_norm``: upstream uses torchaudio's ITU-R BS.1770 loudness; here the same measure is computed
  with scipy (:func:`~stable_audio_ops.data.transforms.volume_normalize`). Crops shorter than one 400 ms
  block, or silent ones, are left as they are (upstream would produce NaN/inf gains there).
* ``pre_encoded``: latents shorter than ``latent_crop_length`` are zero-padded (mask 0) so batches stack.
* Metadata also carries ``__url__`` and ``__key__`` (where the sample came from).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, IterableDataset

from stable_audio_ops.config.dataset_config import WdsConfig
from stable_audio_ops.data.audio_io import resample
from stable_audio_ops.data.collate import collation_fn
from stable_audio_ops.data.custom_metadata import CustomMetadataHook, hooks_for_sources
from stable_audio_ops.data.files import files_with_suffix, walk_files
from stable_audio_ops.data.loader_options import LoaderOptions
from stable_audio_ops.data.s3 import (
    S3Settings,
    is_s3_url,
    list_shards,
    open_s3_stream,
)
from stable_audio_ops.data.transforms import (
    crop_extra_audio,
    is_silence,
    pad_crop,
    padding_mask_for,
    phase_flip,
    plan_crop,
    remove_long_silence,
    set_audio_channels,
    volume_normalize,
)
from stable_audio_ops.errors import DatasetError

log = logging.getLogger(__name__)

# Upstream's audio keys: the first sample entry whose name ends with one of these is the audio.
AUDIO_KEYS: tuple[str, ...] = ("flac", "wav", "mp3", "m4a", "ogg", "opus")
SHARD_SUFFIX = ".tar"
MAX_SAMPLE_WARNINGS = 20


class ShardDataError(DatasetError):
    """Shards yield nothing usable (message keeps its text when webdataset appends context to ``args``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class WdsSource:
    """One entry of ``datasets``: shards under ``s3_path`` or a local ``path``."""

    id: str
    path: str | None = None
    s3_path: str | None = None
    custom_metadata_module: str | None = None
    s3: S3Settings | None = None
    key_path: str = ""

    @property
    def location(self) -> str:
        return self.s3_path or self.path or ""


# ------------------------------------------------------------------------------------ shard lists
def list_local_shards(path: str | os.PathLike[str]) -> list[str]:
    """``.tar`` files under ``path`` (recursive, sorted, hidden files/folders skipped), or ``[path]`` for a shard."""
    root = os.fspath(path)
    if os.path.isfile(root):
        if root.endswith(SHARD_SUFFIX):
            return [root]
        raise DatasetError(f"{root} is not a {SHARD_SUFFIX} shard")
    if not os.path.isdir(root):
        raise DatasetError(f"shard folder not found: {root}")
    found = walk_files(root, files_with_suffix(SHARD_SUFFIX))
    if not found:
        raise DatasetError(f"no {SHARD_SUFFIX} shards under {root}")
    return sorted(found)


def resolve_shards(source: WdsSource) -> list[str]:
    """Shard URLs/paths of one source (S3 listing through boto3, or a local scan)."""
    if source.s3_path:
        if not is_s3_url(source.s3_path):
            raise DatasetError(f"{source.key_path}.s3_path must start with s3://, got {source.s3_path!r}")
        return list_shards(source.s3_path, source.s3)
    if not source.path:
        raise DatasetError(f"{source.key_path}: give 'path' or 's3_path'")
    return list_local_shards(source.path)


# ------------------------------------------------------------------------------- audio processing
def decode_audio_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a whole encoded file held in memory -> (``[C, n]`` float32, sample rate)."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        audio = f.read(dtype="float32", always_2d=True)
        return np.ascontiguousarray(audio.T), int(f.samplerate)


# ----------------------------------------------------------------------------------------- dataset
@dataclass
class WdsStats:
    """What a reader saw (per process: each DataLoader worker keeps its own)."""

    shards_opened: int = 0
    shards_failed: int = 0
    samples_read: int = 0
    samples_used: int = 0
    silent: int = 0
    rejected: int = 0
    bad: Counter | None = None  # reason kind -> count (corrupt_audio, corrupt_json, incomplete, ...)

    def __post_init__(self) -> None:
        self.bad = self.bad or Counter()

    @property
    def bad_samples(self) -> int:
        return sum(self.bad.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "shards_opened": self.shards_opened,
            "shards_failed": self.shards_failed,
            "samples_read": self.samples_read,
            "samples_used": self.samples_used,
            "silent": self.silent,
            "rejected": self.rejected,
            "bad_samples": self.bad_samples,
            "bad": dict(self.bad),
        }


def _reader_info(rank: int | None, world_size: int | None) -> tuple[int, int, int, int]:
    """(rank, world_size, worker, num_workers); explicit rank/world_size win over RANK/WORLD_SIZE/torch.distributed."""
    from webdataset.utils import pytorch_worker_info

    env_rank, env_world, worker, num_workers = pytorch_worker_info()
    return (env_rank if rank is None else rank), (env_world if world_size is None else world_size), worker, num_workers


class WebDatasetAudio(IterableDataset):
    """Batches of audio crops (or latents) from WebDataset shards; see the module docstring.

    Yields already collated batches ``[audio [B, C, N], (metadata, ...)]``; wrap it in
    :class:`WebDatasetLoader` (``batch_size=None``). ``rank``/``world_size`` override the
    distributed environment (tests, or launchers that don't set RANK/WORLD_SIZE).
    """

    def __init__(
        self,
        sources: Sequence[WdsSource],
        sample_size: int,
        sample_rate: int,
        batch_size: int,
        *,
        random_crop: bool = True,
        force_channels: str = "stereo",
        augment_phase: bool = True,
        resampled_shards: bool = True,
        epoch_steps: int = 2000,
        num_workers: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        remove_silence: bool = False,
        silence_threshold: Sequence[float] = (0.01, 0.5),
        max_silence_duration: float = 0.25,
        volume_norm: bool = False,
        volume_norm_param: Sequence[float] = (-16.0, 2.0),
        pre_encoded: bool = False,
        latent_crop_length: int | None = None,
        silence_threshold_db: float = -60.0,
        seed: int = 0,
        item_seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        max_unusable_shards: int | None = None,
        source: str = "<dataset config>",
    ):
        super().__init__()
        if not sources:
            raise DatasetError(f"{source}: no shard sources given")
        if force_channels not in ("mono", "stereo"):
            raise ValueError(f"force_channels must be 'mono' or 'stereo', got {force_channels!r}")
        if batch_size <= 0 or epoch_steps <= 0:
            raise ValueError(f"batch_size and epoch_steps must be positive, got {batch_size}, {epoch_steps}")
        self.sources = list(sources)
        self.sample_size = int(sample_size) if sample_size else None
        self.sample_rate = int(sample_rate)
        self.batch_size = int(batch_size)
        self.random_crop = random_crop
        self.force_channels = force_channels
        self.augment_phase = augment_phase
        self.resampled_shards = resampled_shards
        self.epoch_steps = int(epoch_steps)
        self.num_workers = max(0, int(num_workers))
        self.shuffle = shuffle
        self.shuffle_buffer = int(shuffle_buffer)
        self.remove_silence = remove_silence
        self.silence_threshold = tuple(silence_threshold)
        self.max_silence_duration = float(max_silence_duration)
        self.volume_norm = volume_norm
        self.volume_norm_param = tuple(volume_norm_param)
        self.pre_encoded = pre_encoded
        self.latent_crop_length = latent_crop_length
        self.silence_threshold_db = silence_threshold_db
        self.seed = int(seed)
        self.item_seed = None if item_seed is None else int(item_seed)
        self.rank = rank
        self.world_size = world_size
        self.config_source = source

        self.hooks: list[CustomMetadataHook | None] = hooks_for_sources(self.sources, source)
        self.shards: list[str] = []
        self.shard_source: dict[str, int] = {}
        for index, src in enumerate(self.sources):
            for url in resolve_shards(src):
                if url not in self.shard_source:
                    self.shard_source[url] = index
                    self.shards.append(url)
        self.max_unusable_shards = max_unusable_shards or max(20, 2 * len(self.shards))
        self.stats = WdsStats()
        self.epoch = 0
        self._iterations = 0
        self._warned = 0
        log.info("Found %d shards in %s", len(self.shards), ", ".join(s.location for s in self.sources))

    # ------------------------------------------------------------------------------------- sizes
    def batches_per_worker(self, num_workers: int) -> int:
        """Batches one reader yields per epoch with resampled shards (upstream: epoch_steps // workers)."""
        return max(1, self.epoch_steps // max(1, num_workers))

    def __len__(self) -> int:
        """Batches per epoch and rank; only known for resampled shards (TypeError otherwise, as for any
        iterable of unknown length, which Lightning understands)."""
        if not self.resampled_shards:
            raise TypeError("a non-resampled WebDataset has no length known before reading it")
        workers = max(1, self.num_workers)
        return self.batches_per_worker(workers) * workers

    # ------------------------------------------------------------------------------------- shards
    def _shard_order(self, rank: int, world: int, worker: int, workers: int, epoch: int) -> Iterator[str]:
        if self.resampled_shards:
            rng = random.Random(f"{self.seed}:{rank}:{worker}:{epoch}:resample")
            while True:
                yield self.shards[rng.randrange(len(self.shards))]
        order = list(self.shards)
        if self.shuffle:
            # The same permutation on every rank and worker (string seeds hash deterministically across
            # processes, unlike hash()), so the rank and worker slices partition it.
            random.Random(f"{self.seed}:{epoch}:shards").shuffle(order)
        mine = order[rank::world][worker::workers]
        if not mine:
            log.warning(
                "rank %d worker %d gets no shard (%d shards for %d ranks x %d workers); it yields nothing",
                rank, worker, len(self.shards), world, workers,
            )
        yield from mine

    def _open(self, url: str):
        if is_s3_url(url):
            return open_s3_stream(url, self.sources[self.shard_source[url]].s3)
        try:
            return open(url, "rb")
        except OSError as exc:
            raise DatasetError(f"cannot open shard {url}: {exc.strerror or exc}") from exc

    def _opened_shards(self, urls: Iterator[str]) -> Iterator[dict[str, Any]]:
        since_usable = 0
        last_used = self.stats.samples_used
        for url in urls:
            if self.stats.samples_used != last_used:
                since_usable, last_used = 0, self.stats.samples_used
            since_usable += 1
            if since_usable > self.max_unusable_shards:
                raise ShardDataError(
                    f"no usable sample in the last {self.max_unusable_shards} shards read from "
                    f"{', '.join(s.location for s in self.sources)} ({self._stats_text()}); "
                    "are the shards corrupt, silent, or all rejected by the custom metadata module?"
                )
            stream = self._open(url)
            self.stats.shards_opened += 1
            try:
                yield {"url": url, "stream": stream}
            finally:
                stream.close()

    def _tar_error(self, exn: BaseException) -> bool:
        """webdataset handler: store/dataset errors stop the epoch; a corrupt tar (member) is counted and skipped."""
        if isinstance(exn, (DatasetError, KeyboardInterrupt)):
            raise exn
        self.stats.shards_failed += 1
        where = next((a for a in exn.args if isinstance(a, str) and (is_s3_url(a) or a.endswith(SHARD_SUFFIX))), "")
        log.warning("skipping the rest of corrupt shard %s: %s: %s", where or "?", type(exn).__name__, exn.args[0]
                    if exn.args else exn)
        return True

    def _samples(self, urls: Iterator[str]) -> Iterator[dict[str, Any]]:
        from webdataset.tariterators import group_by_keys, tar_file_expander

        files = tar_file_expander(self._opened_shards(urls), handler=self._tar_error)
        return group_by_keys(files, handler=self._tar_error)

    # ------------------------------------------------------------------------------------ samples
    def _bad(self, kind: str, url: str, key: str, detail: str) -> None:
        self.stats.bad[kind] += 1
        self._warned += 1
        if self._warned <= MAX_SAMPLE_WARNINGS:
            log.warning("skipping sample %s in shard %s (%s): %s", key, url, kind, detail)
            if self._warned == MAX_SAMPLE_WARNINGS:
                log.warning("further skipped samples are counted without a warning each")

    def _stats_text(self) -> str:
        s = self.stats
        bad = ", ".join(f"{k} {v}" for k, v in sorted(s.bad.items())) or "none"
        return (
            f"{s.shards_opened} shards opened, {s.shards_failed} corrupt; {s.samples_read} samples read, "
            f"{s.samples_used} used, {s.silent} silent, {s.rejected} rejected, bad: {bad}"
        )

    def _crop_audio(self, data: bytes, rng: random.Random | None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Decode + resample + (silence removal) + pad/crop; seeks to the crop when no resampling is needed."""
        n = self.sample_size
        with sf.SoundFile(io.BytesIO(data)) as f:
            in_sr, frames = int(f.samplerate), int(f.frames)
            if in_sr == self.sample_rate and n is not None and not self.remove_silence and frames > 0:
                plan = plan_crop(frames, n, in_sr, self.random_crop, rng)
                f.seek(plan.offset)
                window = f.read(frames=n, dtype="float32", always_2d=True)
                audio = torch.zeros(window.shape[1], n)
                audio[:, : window.shape[0]] = torch.from_numpy(np.ascontiguousarray(window.T))
                return audio, {
                    "seconds_start": plan.seconds_start,
                    "seconds_total": plan.seconds_total,
                    "padding_mask": padding_mask_for(window.shape[0], n),
                    "timestamps": (plan.t_start, plan.t_end),
                }
            full = np.ascontiguousarray(f.read(dtype="float32", always_2d=True).T)
        audio = torch.from_numpy(resample(full, in_sr, self.sample_rate))
        if self.remove_silence and audio.shape[0] == 1 and audio.shape[-1] > 0:
            audio = remove_long_silence(audio, self.sample_rate, self.silence_threshold, self.max_silence_duration,
                                        rng=rng)
        if n is None:
            return audio, {"timestamps": (0.0, 1.0)}
        chunk, t_start, t_end, seconds_start, seconds_total, mask = pad_crop(
            audio, n, self.sample_rate, self.random_crop, rng
        )
        return chunk, {
            "seconds_start": seconds_start,
            "seconds_total": seconds_total,
            "padding_mask": mask,
            "timestamps": (t_start, t_end),
        }

    def _crop_latents(self, data: bytes, meta: dict[str, Any], rng: random.Random | None) -> torch.Tensor:
        latents = torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False)).float()
        mask = [int(v) for v in meta.get("padding_mask") or [1] * latents.shape[-1]]
        length = self.latent_crop_length
        if length is not None:
            real = [i for i, v in enumerate(mask) if v]
            last = real[-1] if real else 0
            start = (rng or random).randint(0, last - length) if self.random_crop and last > length else 0
            piece = latents[:, start : start + length]
            latents = torch.zeros(latents.shape[0], length)
            latents[:, : piece.shape[-1]] = piece
            mask = (mask[start : start + length] + [0] * length)[:length]
        meta["padding_mask"] = torch.tensor(mask, dtype=torch.float32)
        return latents

    def _process(self, sample: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """One sample -> (audio, metadata), or None when it is skipped (and counted)."""
        url, key = sample.get("__url__", "?"), sample.get("__key__", "?")
        # with item_seed, the sample's random choices depend on it alone (reproducible pre-encoding)
        rng = random.Random(f"{self.item_seed}:{url}:{key}") if self.item_seed is not None else None
        self.stats.samples_read += 1
        data_key = "npy" if self.pre_encoded else next(
            (k for k in sample if not k.startswith("__") and any(k.endswith(a) for a in AUDIO_KEYS)), None
        )
        if data_key is None or data_key not in sample:
            self._bad("incomplete", url, key, f"no {'npy' if self.pre_encoded else 'audio'} entry "
                      f"(has {sorted(k for k in sample if not k.startswith('__'))})")
            return None
        if "json" not in sample:
            self._bad("incomplete", url, key, "no .json entry")
            return None
        try:
            meta = json.loads(sample["json"])
            if not isinstance(meta, dict):
                raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        except Exception as exc:
            self._bad("corrupt_json", url, key, f"{type(exc).__name__}: {exc}")
            return None
        try:
            if self.pre_encoded:
                audio = self._crop_latents(sample[data_key], meta, rng)
            else:
                audio, crop_meta = self._crop_audio(sample[data_key], rng)
                meta.update(crop_meta)
        except Exception as exc:
            kind = "corrupt_latents" if self.pre_encoded else "corrupt_audio"
            self._bad(kind, url, key, f"{data_key}: {type(exc).__name__}: {exc}")
            return None
        if not self.pre_encoded:
            if audio.shape[-1] == 0 or is_silence(audio, self.silence_threshold_db):
                self.stats.silent += 1
                return None
            audio = set_audio_channels(audio, self.force_channels)
            if self.volume_norm:
                audio = volume_normalize(audio, self.sample_rate, *self.volume_norm_param[:2])
            if self.augment_phase:
                audio = phase_flip(audio, rng=rng)
        if "text" in meta:
            meta["prompt"] = meta["text"]
        hook = self.hooks[self.shard_source.get(url, 0)] if self.hooks else None
        if hook is not None:
            try:
                meta.update(hook(meta, audio))
            except Exception as exc:
                self._bad("metadata_error", url, key, f"custom metadata module {hook.spec}: {type(exc).__name__}: {exc}")
                return None
        if meta.pop("__reject__", False):
            self.stats.rejected += 1
            return None
        extra = meta.pop("__audio__", None)
        if extra and self.sample_size:
            meta.update(
                crop_extra_audio(extra, self.sample_size, self.sample_rate, self.force_channels, self.random_crop,
                                 rng=rng)
            )
        meta["audio"] = audio
        meta["__url__"], meta["__key__"] = url, key
        self.stats.samples_used += 1
        return audio, meta

    # ----------------------------------------------------------------------------------- iterate
    def __iter__(self) -> Iterator[list[Any]]:
        from webdataset.filters import _batched, _shuffle

        rank, world, worker, workers = _reader_info(self.rank, self.world_size)
        if not 0 <= rank < world:
            raise DatasetError(f"rank {rank} is outside world size {world}")
        self._iterations += 1
        epoch = self.epoch + self._iterations
        urls = self._shard_order(rank, world, worker, workers, epoch)
        samples = self._samples(urls)
        items: Iterator[Any] = (item for item in map(self._process, samples) if item is not None)
        if self.shuffle and self.shuffle_buffer > 1:
            rng = random.Random(f"{self.seed}:{rank}:{worker}:{epoch}:samples")
            items = _shuffle(items, bufsize=self.shuffle_buffer, initial=min(100, self.shuffle_buffer), rng=rng)
        batches = _batched(items, self.batch_size, collation_fn=collation_fn, partial=False)
        if self.resampled_shards:
            batches = itertools.islice(batches, self.batches_per_worker(workers))
        produced = 0
        for batch in batches:
            produced += 1
            yield batch
        if self.stats.bad_samples or self.stats.shards_failed:
            log.warning("WebDataset reader rank %d worker %d: %s", rank, worker, self._stats_text())
        if produced == 0 and self.stats.samples_read and not self.resampled_shards:
            log.warning(
                "rank %d worker %d produced no batch of %d from its shards (%s)",
                rank, worker, self.batch_size, self._stats_text(),
            )


def _identity(batch: Any) -> Any:
    return batch


class WebDatasetLoader(DataLoader):
    """A DataLoader over :class:`WebDatasetAudio` (which batches itself) that refuses silent empty epochs.

    An epoch that yields no batch at all raises :class:`~stable_audio_ops.errors.DatasetError` with
    what is known (counters live in each worker; with ``num_workers=0`` they are in the message).
    """

    def __init__(self, dataset: WebDatasetAudio, num_workers: int = 0, **kwargs: Any):
        workers = max(0, int(num_workers))
        dataset.num_workers = workers
        super().__init__(
            dataset,
            batch_size=None,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=_identity,
            **kwargs,
        )

    def __iter__(self):
        produced = 0
        for batch in super().__iter__():
            produced += 1
            yield batch
        if produced == 0:
            ds: WebDatasetAudio = self.dataset  # type: ignore[assignment]
            counters = f" ({ds._stats_text()})" if self.num_workers == 0 else " (see the worker warnings above)"
            raise ShardDataError(
                f"an epoch of the WebDataset loader yielded no batch of {ds.batch_size} samples from "
                f"{len(ds.shards)} shards in {', '.join(s.location for s in ds.sources)}{counters}; "
                "check that the shards hold <key>.json + audio pairs, that batch_size is not larger than the "
                "samples each rank/worker gets, and the skip warnings"
            )


# -------------------------------------------------------------------------------------- factory
def wds_sources_from_config(cfg: WdsConfig) -> list[WdsSource]:
    """:class:`WdsSource` list of a validated ``wds``/``s3`` config: each entry's S3 settings are the top-level
    ones with the entry's own ``endpoint_url`` / ``profile`` / ``region`` winning."""
    top: dict[str, Any] = {"endpoint_url": cfg.endpoint_url, "region": cfg.region}
    if cfg.s3_retry is not None:
        top["s3_retry"] = {k: v for k, v in asdict(cfg.s3_retry).items() if v is not None}
    out = []
    for entry in cfg.datasets:
        settings = None
        if entry.s3_path is not None:
            settings = S3Settings.from_config(top, endpoint_url=entry.endpoint_url, profile=entry.profile,
                                              region=entry.region)
        out.append(WdsSource(id=entry.id, path=entry.path, s3_path=entry.s3_path,
                             custom_metadata_module=entry.custom_metadata_module, s3=settings,
                             key_path=entry.key_path))
    return out


def wds_dataset_from_config(
    cfg: WdsConfig,
    batch_size: int,
    sample_size: int,
    sample_rate: int,
    audio_channels: int = 2,
    num_workers: int = 0,
    shuffle: bool = True,
    **kwargs: Any,
) -> WebDatasetAudio:
    """Build a :class:`WebDatasetAudio` from a validated ``wds``/``s3`` config (keys in the module docstring)."""
    options: dict[str, Any] = dict(
        random_crop=cfg.random_crop,
        force_channels="mono" if audio_channels == 1 else "stereo",
        resampled_shards=cfg.resampled_shards,
        epoch_steps=cfg.epoch_steps,
        num_workers=num_workers,
        shuffle=shuffle,
        shuffle_buffer=cfg.shuffle_buffer,
        remove_silence=cfg.remove_silence,
        silence_threshold=cfg.silence_threshold,
        max_silence_duration=cfg.max_silence_duration,
        volume_norm=cfg.volume_norm,
        volume_norm_param=cfg.volume_norm_param,
        pre_encoded=cfg.pre_encoded,
        latent_crop_length=cfg.latent_crop_length,
        seed=cfg.seed,
        source=cfg.source,
    )
    options.update(kwargs)
    return WebDatasetAudio(wds_sources_from_config(cfg), sample_size, sample_rate, batch_size, **options)


def build_wds_loader(cfg: WdsConfig, options: LoaderOptions) -> WebDatasetLoader:
    """``DATASET_TYPES`` builder for ``wds`` and ``s3`` (signature of the dataloader registry)."""
    dataset = wds_dataset_from_config(
        cfg,
        batch_size=options.batch_size,
        sample_size=options.sample_size,
        sample_rate=options.sample_rate,
        audio_channels=options.audio_channels,
        num_workers=options.num_workers,
        shuffle=options.shuffle,
        item_seed=options.seed,
    )
    return WebDatasetLoader(dataset, num_workers=options.num_workers)
