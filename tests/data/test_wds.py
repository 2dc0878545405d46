"""wds/s3 datasets: local and S3 shards (real moto server), splitting, shuffling, epochs, faults, metadata."""

from __future__ import annotations

import io
import json
import logging
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data import s3
from stable_audio_ops.data.dataloader import LoaderOptions
from stable_audio_ops.data.preparation.shards import upload_folder_to_s3
from stable_audio_ops.data.wds import (
    ShardDataError,
    WdsSource,
    WebDatasetAudio,
    WebDatasetLoader,
    build_wds_loader,
)
from stable_audio_ops.errors import ConfigError, DatasetError
from tests.data.s3_server import MotoServer

SR = 16000
N = 4000  # sample_size: a quarter second keeps everything fast
FAST = {"max_attempts": 3, "base_delay": 0.05, "max_delay": 0.1}


def encode(audio: np.ndarray, fmt: str = "FLAC") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def write_tar(path, samples):
    """samples: list of (key, {ext: bytes})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, entries in samples:
            for ext, data in entries.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def tone(i: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t)).astype(np.float32)


def sample(i: int, **meta) -> tuple[str, dict[str, bytes]]:
    return f"s{i:03d}", {"flac": encode(tone(i)), "json": json.dumps({"text": f"tone {i}", "index": i, **meta}).encode()}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """16 samples in 4 shards, two of them in a nested folder."""
    root = tmp_path_factory.mktemp("shards")
    for s in range(4):
        sub = root / ("nested/deeper" if s >= 2 else "") / f"part-{s}.tar"
        write_tar(sub, [sample(4 * s + j) for j in range(4)])
    return root


@pytest.fixture(scope="module")
def s3_shards(moto, shard_dir):
    settings = s3.S3Settings(endpoint_url=moto.endpoint)
    upload_folder_to_s3(shard_dir, "s3://wds-bucket/train/v1", settings=settings, create_bucket=True)
    return "s3://wds-bucket/train/v1"


def dataset(path=None, s3_path=None, endpoint=None, **kw) -> WebDatasetAudio:
    settings = s3.S3Settings(endpoint_url=endpoint, retry=s3.RetryPolicy(**FAST)) if s3_path else None
    kw.setdefault("resampled_shards", False)
    return WebDatasetAudio([WdsSource("t", path=path, s3_path=s3_path, s3=settings)], N, SR, kw.pop("batch_size", 2), **kw)


def indices(loader) -> list[int]:
    return [m["index"] for _, meta in loader for m in meta]


def test_local_epoch_reads_every_sample_once_with_upstream_metadata(shard_dir):
    ds = dataset(path=str(shard_dir), shuffle=False)
    assert len(ds.shards) == 4
    batches = list(WebDatasetLoader(ds, num_workers=0))
    assert len(batches) == 8
    audio, meta = batches[0]
    assert audio.shape == (2, 2, N) and audio.dtype == torch.float32 and isinstance(meta, tuple)
    m = meta[0]
    assert m["prompt"] == m["text"] == f"tone {m['index']}"
    assert m["seconds_total"] == 1 and m["seconds_start"] == 0
    assert m["padding_mask"].shape == (N,) and float(m["padding_mask"].sum()) == N
    assert len(m["timestamps"]) == 2 and m["audio"] is not None and m["__url__"].endswith(".tar")
    assert sorted(m["index"] for _, meta in batches for m in meta) == list(range(16))
    assert ds.stats.samples_used == 16 and ds.stats.bad_samples == 0


def test_s3_epoch_with_two_workers_splits_shards_without_duplicates(s3_shards, moto):
    ds = dataset(s3_path=s3_shards, endpoint=moto.endpoint)
    got = indices(WebDatasetLoader(ds, num_workers=2))
    assert sorted(got) == list(range(16))


def test_config_builder_reads_s3_keys(s3_shards, moto):
    cfg = {
        "dataset_type": "s3",
        "datasets": [{"id": "bucket", "s3_path": s3_shards, "endpoint_url": moto.endpoint}],
        "resampled_shards": True,
        "epoch_steps": 6,
        "random_crop": True,
        "s3_retry": FAST,
    }
    loader = build_wds_loader(validate_dataset_config(cfg, "ds.json"),
                              LoaderOptions(batch_size=3, sample_size=N, sample_rate=SR, audio_channels=1,
                                            num_workers=2))
    assert len(loader) == 6
    batches = list(loader)
    assert len(batches) == 6 and all(a.shape == (3, 1, N) for a, _ in batches)
    assert loader.dataset.sources[0].s3.retry == s3.RetryPolicy(**FAST)  # top-level s3_retry reaches the client
    with pytest.raises(ConfigError, match=r"ds\.json: latent_crop_length"):
        validate_dataset_config({**cfg, "latent_crop_length": 8}, "ds.json")


def test_node_splitting_explicit_and_from_env(shard_dir, monkeypatch):
    parts = [indices(WebDatasetLoader(dataset(path=str(shard_dir), rank=r, world_size=2), num_workers=0))
             for r in range(2)]
    assert sorted(parts[0] + parts[1]) == list(range(16)) and len(parts[0]) == len(parts[1]) == 8
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    from_env = indices(WebDatasetLoader(dataset(path=str(shard_dir)), num_workers=0))
    assert sorted(from_env) == sorted(parts[1])


def test_shuffle_changes_order_between_epochs_and_off_is_deterministic(shard_dir):
    loader = WebDatasetLoader(dataset(path=str(shard_dir), shuffle=True, shuffle_buffer=8), num_workers=0)
    first, second = indices(loader), indices(loader)
    assert sorted(first) == sorted(second) == list(range(16)) and first != second
    plain = WebDatasetLoader(dataset(path=str(shard_dir), shuffle=False), num_workers=0)
    assert indices(plain) == indices(plain)


def test_resampled_epoch_length_counts_batches_per_rank(shard_dir):
    ds = dataset(path=str(shard_dir), resampled_shards=True, epoch_steps=5)
    assert len(WebDatasetLoader(ds, num_workers=0)) == 5 and len(list(WebDatasetLoader(ds, num_workers=0))) == 5
    with_workers = WebDatasetLoader(dataset(path=str(shard_dir), resampled_shards=True, epoch_steps=6), num_workers=2)
    assert len(list(with_workers)) == 6


def test_corrupt_and_incomplete_samples_are_counted_and_skipped(tmp_path, caplog):
    good = [sample(i) for i in range(4)]
    bad_audio = ("broken", {"flac": b"fLaC garbage", "json": b'{"text": "x"}'})
    no_json = ("lonely", {"flac": encode(tone(9))})
    bad_json = ("badjson", {"flac": encode(tone(8)), "json": b"{not json"})
    write_tar(tmp_path / "a.tar", [good[0], bad_audio, good[1], no_json])
    write_tar(tmp_path / "b.tar", [bad_json, good[2], good[3]])
    (tmp_path / "c.tar").write_bytes(b"this is not a tar file at all" * 50)
    ds = dataset(path=str(tmp_path), shuffle=False, batch_size=1)
    with caplog.at_level(logging.WARNING, logger="stable_audio_ops.data.wds"):
        got = indices(WebDatasetLoader(ds, num_workers=0))
    assert sorted(got) == [0, 1, 2, 3]
    assert dict(ds.stats.bad) == {"corrupt_audio": 1, "incomplete": 1, "corrupt_json": 1}
    assert ds.stats.shards_failed == 1
    text = caplog.text
    assert "broken" in text and "a.tar" in text and "lonely" in text and "badjson" in text and "c.tar" in text


def test_epoch_with_nothing_usable_raises(tmp_path):
    write_tar(tmp_path / "bad.tar", [("x", {"flac": b"junk", "json": b"{}"}), ("y", {"json": b"{}"})])
    with pytest.raises(ShardDataError, match="yielded no batch"):
        list(WebDatasetLoader(dataset(path=str(tmp_path)), num_workers=0))
    with pytest.raises(ShardDataError, match="no usable sample in the last"):
        list(WebDatasetLoader(dataset(path=str(tmp_path), resampled_shards=True), num_workers=0))
    with pytest.raises(ShardDataError, match="yielded no batch"):  # through worker processes too
        list(WebDatasetLoader(dataset(path=str(tmp_path)), num_workers=1))


def test_missing_bucket_and_missing_folder_are_clear_errors(moto, tmp_path):
    with pytest.raises(s3.S3NotFoundError, match="absent-bucket"):
        dataset(s3_path="s3://absent-bucket/train", endpoint=moto.endpoint)
    with pytest.raises(DatasetError, match="shard folder not found"):
        dataset(path=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no \.tar shards"):
        dataset(path=str(tmp_path / "empty"))


def test_server_down_mid_epoch_raises_clear_error(aws_env, shard_dir):
    with MotoServer() as server:
        upload_folder_to_s3(shard_dir, "s3://flaky/train", settings=s3.S3Settings(endpoint_url=server.endpoint),
                            create_bucket=True)
        ds = dataset(s3_path="s3://flaky/train", endpoint=server.endpoint, shuffle=False, shuffle_buffer=0)
        iterator = iter(WebDatasetLoader(ds, num_workers=1))
        next(iterator)
        server.stop()
        with pytest.raises(s3.S3UnavailableError) as info:
            for _ in iterator:
                pass
        assert server.endpoint in str(info.value) and "s3://flaky/train/" in str(info.value)


def test_custom_metadata_module_and_reject(tmp_path, shard_dir):
    module = tmp_path / "meta.py"
    module.write_text(
        "def get_custom_metadata(info, audio):\n"
        "    return {'parity': info['index'] % 2, '__reject__': info['index'] % 4 == 3,\n"
        "            'peak': float(audio.abs().max())}\n"
    )
    src = WdsSource("t", path=str(shard_dir), custom_metadata_module=str(module))
    ds = WebDatasetAudio([src], N, SR, 1, resampled_shards=False, shuffle=False)
    metas = [m for _, meta in WebDatasetLoader(ds, num_workers=0) for m in meta]
    assert sorted(m["index"] for m in metas) == [i for i in range(16) if i % 4 != 3]
    assert all(m["parity"] == m["index"] % 2 and m["peak"] > 0.1 for m in metas)
    assert ds.stats.rejected == 4


def test_silent_samples_dropped_and_resampling_and_padding(tmp_path):
    quiet = ("quiet", {"wav": encode(np.zeros(SR // 2, np.float32), "WAV"), "json": b'{"index": -1}'})
    short = ("short", {"flac": encode(tone(1, seconds=0.1)), "json": b'{"index": 1}'})
    write_tar(tmp_path / "x.tar", [quiet, short])
    ds = WebDatasetAudio([WdsSource("t", path=str(tmp_path))], N, 8000, 1, resampled_shards=False,
                         force_channels="mono")
    (audio, meta), = list(WebDatasetLoader(ds, num_workers=0))
    assert ds.stats.silent == 1 and meta[0]["index"] == 1 and audio.shape == (1, 1, N)
    assert float(meta[0]["padding_mask"].sum()) == 800  # 0.1 s at the 8 kHz model rate, then zero padding
    assert float(audio[0, 0, 800:].abs().max()) == 0.0


def test_pre_encoded_latents_are_cropped_and_padded(tmp_path):
    def latent(key, frames, real):
        buf = io.BytesIO()
        np.save(buf, np.ones((4, frames), np.float32))
        mask = [1] * real + [0] * (frames - real)
        return key, {"npy": buf.getvalue(), "json": json.dumps({"padding_mask": mask, "text": key}).encode()}

    write_tar(tmp_path / "lat.tar", [latent("long", 40, 30), latent("short", 6, 6)])
    ds = WebDatasetAudio([WdsSource("t", path=str(tmp_path))], None, SR, 2, resampled_shards=False,
                         pre_encoded=True, latent_crop_length=10, shuffle=False)
    (latents, meta), = list(WebDatasetLoader(ds, num_workers=0))
    assert latents.shape == (2, 4, 10)
    masks = {m["prompt"]: m["padding_mask"] for m in meta}
    assert masks["long"].tolist() == [1.0] * 10 and masks["short"].tolist() == [1.0] * 6 + [0.0] * 4


def test_item_seed_makes_samples_reproducible_whatever_the_global_random_state(shard_dir):
    """Pre-encoding from shards relies on this: crop and phase flip come from (seed, shard, key)."""
    import random

    def items(item_seed, global_seed):
        random.seed(global_seed)
        loader = WebDatasetLoader(dataset(path=str(shard_dir), shuffle=False, item_seed=item_seed), num_workers=0)
        return {m["index"]: (a, m["timestamps"]) for audio, meta in loader for a, m in zip(audio, meta, strict=True)}

    first, again, other = items(7, global_seed=1), items(7, global_seed=2), items(8, global_seed=1)
    assert sorted(first) == list(range(16))
    assert all(torch.equal(first[i][0], again[i][0]) and first[i][1] == again[i][1] for i in first)
    assert any(not torch.equal(first[i][0], other[i][0]) for i in first)  # the seed is used
