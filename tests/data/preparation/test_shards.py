"""Writing WebDataset shards from a folder or a manifest, and uploading them to a real S3-compatible server."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

from stable_audio_ops.data import s3
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.preparation.shards import upload_folder_to_s3, write_webdataset_shards
from stable_audio_ops.errors import DatasetError
from tests.data.s3_server import FaultProxy

FAST = s3.RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2)


def make_folder(root, n=7, sr=16000):
    """n short PCM_16 clips in nested folders; even ones get a caption sidecar. Returns {relpath: samples}."""
    clips = {}
    for i in range(n):
        rel = f"{'deep/er/' if i % 3 == 0 else ''}clip.{i}.wav"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(sr // 4) / sr
        audio = (0.4 * np.sin(2 * np.pi * (220 + 30 * i) * t)).astype(np.float32)
        sf.write(path, audio, sr, subtype="PCM_16")
        clips[rel] = sf.read(path, dtype="float32")[0]
        if i % 2 == 0:
            path.with_suffix(".json").write_text(json.dumps({"caption": f"clip number {i}", "instrument": "sine"}))
    return clips


def read_tar(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_folder_to_shards_roundtrip(tmp_path):
    clips = make_folder(tmp_path / "raw")
    summary = write_webdataset_shards(tmp_path / "raw", tmp_path / "shards", samples_per_shard=3)
    assert [s["samples"] for s in summary["shards"]] == [3, 3, 1]
    assert summary["samples"] == 7 and summary["skipped"] == []
    seen = {}
    for shard in summary["shards"]:
        entries = read_tar(tmp_path / "shards" / shard["name"])
        keys = {name.split(".", 1)[0] for name in entries}
        for key in keys:
            assert "." not in key  # webdataset splits key and extension at the first dot
            meta = json.loads(entries[f"{key}.json"])
            audio, sr = sf.read(io.BytesIO(entries[f"{key}.flac"]), dtype="float32")
            assert sr == 16000 and meta["sample_rate"] == 16000 and meta["channels"] == 1
            seen[meta["relpath"]] = (audio, meta)
    assert set(seen) == set(clips)
    for rel, expected in clips.items():
        audio, meta = seen[rel]
        np.testing.assert_array_equal(audio, expected)  # FLAC of 16-bit input is lossless
        index = int(rel.split(".")[1])
        if index % 2 == 0:
            assert meta["prompt"] == f"clip number {index}" and meta["instrument"] == "sine"
        else:
            assert "prompt" not in meta
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert index["samples"] == 7 and [s["name"] for s in index["shards"]] == [s["name"] for s in summary["shards"]]


def test_shards_are_reproducible_and_stale_ones_removed(tmp_path):
    make_folder(tmp_path / "raw")
    write_webdataset_shards(tmp_path / "raw", tmp_path / "a", samples_per_shard=2)
    write_webdataset_shards(tmp_path / "raw", tmp_path / "b", samples_per_shard=2)
    names = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert len(names) == 4
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    write_webdataset_shards(tmp_path / "raw", tmp_path / "a", samples_per_shard=100)
    assert sorted(p.name for p in (tmp_path / "a").glob("*.tar")) == ["shard-000000.tar"]
    assert not list((tmp_path / "a").glob(".*tmp"))


def test_manifest_input_skips_unreadable_and_copy_and_wav_formats(tmp_path):
    make_folder(tmp_path / "raw", n=3)
    (tmp_path / "raw" / "broken.wav").write_bytes(b"RIFF....not audio")
    manifest = build_manifest([tmp_path / "raw"], progress=False)
    summary = write_webdataset_shards(manifest, tmp_path / "copy", audio_format="copy")
    assert summary["samples"] == 3
    assert [s["path"].endswith("broken.wav") for s in summary["skipped"]] == [True]
    entries = read_tar(tmp_path / "copy" / "shard-000000.tar")
    originals = {p.name: p.read_bytes() for p in (tmp_path / "raw").rglob("clip.*.wav")}
    assert sorted(v for k, v in entries.items() if k.endswith(".wav")) == sorted(originals.values())

    summary = write_webdataset_shards(tmp_path / "raw", tmp_path / "wav", audio_format="wav", sample_rate=8000)
    assert summary["samples"] == 3 and len(summary["skipped"]) == 1  # folder input: broken file fails to encode
    wav = next(v for k, v in read_tar(tmp_path / "wav" / "shard-000000.tar").items() if k.endswith(".wav"))
    assert sf.info(io.BytesIO(wav)).samplerate == 8000


def test_nothing_to_pack_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio could be packed"):
        write_webdataset_shards(tmp_path / "empty", tmp_path / "out")


def test_upload_to_s3_then_list_and_skip_unchanged(tmp_path, moto):
    make_folder(tmp_path / "raw")
    write_webdataset_shards(tmp_path / "raw", tmp_path / "shards", samples_per_shard=3)
    (tmp_path / "shards" / "nested").mkdir()
    (tmp_path / "shards" / "nested" / "extra.tar").write_bytes((tmp_path / "shards" / "shard-000000.tar").read_bytes())
    settings = s3.S3Settings(endpoint_url=moto.endpoint, retry=FAST)

    with pytest.raises(s3.S3NotFoundError) as info:
        upload_folder_to_s3(tmp_path / "shards", "s3://not-created/x", settings=settings)
    assert "not-created" in str(info.value) and moto.endpoint in str(info.value)

    first = upload_folder_to_s3(tmp_path / "shards", "s3://prepared/demo/v1", settings=settings, create_bucket=True)
    assert len(first["uploaded"]) == 5 and first["unchanged"] == []  # 4 shards + shards.json
    assert s3.list_shards("s3://prepared/demo/v1", settings) == [
        "s3://prepared/demo/v1/nested/extra.tar",
        *[f"s3://prepared/demo/v1/shard-00000{i}.tar" for i in range(3)],
    ]
    with s3.open_s3_stream("s3://prepared/demo/v1/shard-000001.tar", settings) as f:
        assert f.read() == (tmp_path / "shards" / "shard-000001.tar").read_bytes()
    again = upload_folder_to_s3(tmp_path / "shards", "s3://prepared/demo/v1", settings=settings)
    assert again["uploaded"] == [] and len(again["unchanged"]) == 5


def test_upload_retries_through_throttling(tmp_path, moto):
    make_folder(tmp_path / "raw", n=2)
    write_webdataset_shards(tmp_path / "raw", tmp_path / "shards")
    with FaultProxy(moto.port) as proxy:
        settings = s3.S3Settings(endpoint_url=proxy.endpoint, retry=FAST)
        s3.make_s3_client(settings).create_bucket(Bucket="throttled")
        proxy.fail_next(2, status=503)
        result = upload_folder_to_s3(tmp_path / "shards", "s3://throttled", settings=settings, suffixes=(".tar",))
        assert result["uploaded"] == ["s3://throttled/shard-000000.tar"]
        assert s3.list_shards("s3://throttled", settings) == ["s3://throttled/shard-000000.tar"]
