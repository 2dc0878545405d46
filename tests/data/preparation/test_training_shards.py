"""The train split as shards: a local ``wds`` config, or an ``s3`` one after uploading to a real S3 server."""

from __future__ import annotations

from stable_audio_ops.data import s3
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.preparation.training_shards import shard_training_set
from tests.data.preparation.test_shards import make_folder

OPTIONS = {"dataset_id": "notes", "random_crop": True, "samples_per_shard": 4, "audio_format": "flac",
           "endpoint_url": None, "profile": None, "create_bucket": False}


def test_local_shards_give_a_wds_config(tmp_path) -> None:
    make_folder(tmp_path / "raw")
    config, report = shard_training_set(build_manifest([tmp_path / "raw"]), tmp_path / "shards", s3_url=None,
                                        epoch_steps=None, **OPTIONS)
    assert config == {"dataset_type": "wds", "datasets": [{"id": "notes", "path": str(tmp_path / "shards")}],
                      "random_crop": True}
    assert report["samples"] == 7 and len(report["shards"]) == 2 and report["uploaded"] == 0
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]


def test_uploaded_shards_give_an_s3_config(tmp_path, moto) -> None:
    make_folder(tmp_path / "raw")
    options = {**OPTIONS, "endpoint_url": moto.endpoint, "create_bucket": True}
    config, report = shard_training_set(build_manifest([tmp_path / "raw"]), tmp_path / "shards",
                                        s3_url="s3://prepared/notes", epoch_steps=10, **options)
    assert config == {"dataset_type": "s3", "random_crop": True, "epoch_steps": 10, "datasets": [
        {"id": "notes", "s3_path": "s3://prepared/notes/", "endpoint_url": moto.endpoint}]}
    assert report["uploaded"] == 3 and report["s3_url"] == "s3://prepared/notes"  # 2 shards + shards.json
    assert len(s3.list_shards("s3://prepared/notes", s3.S3Settings(endpoint_url=moto.endpoint))) == 2
