"""data_preparation with `shards.enabled`: WebDataset shards written, uploaded to S3 (moto), s3 dataset config.

The same Kedro run that prepares a folder then scales to a bucket: the emitted dataset config must
be one training can read straight from S3, so the test also pulls a batch through it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import boto3
import pytest

from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from tests.data.s3_server import AWS_TEST_ENV, AWS_UNSET, MotoServer
from tests.pipelines.conftest import _edit_yaml, run_kedro

pytestmark = pytest.mark.slow


def test_data_preparation_writes_and_uploads_shards(kedro_project: Path, monkeypatch) -> None:
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    for key in AWS_UNSET:
        monkeypatch.delenv(key, raising=False)
    (kedro_project / "data" / "01_raw" / "extra").mkdir(parents=True, exist_ok=True)  # the fixture's 2nd raw dir

    with MotoServer() as server:
        def shards_on(params: dict) -> None:
            params["data_preparation"]["shards"].update(
                enabled=True, samples_per_shard=3, s3_url="s3://demo-bucket/notes", endpoint_url=server.endpoint,
                create_bucket=True, epoch_steps=2)

        _edit_yaml(kedro_project / "conf" / "base" / "parameters_data_preparation.yml", shards_on)
        run_kedro(kedro_project, "--pipelines=data_preparation")

        # the 6 train clips of 8 (2 are held out for test), 3 per shard -> 2 local shards, each sample = audio +
        # its caption json
        shard_dir = kedro_project / "data/03_primary/shards"
        shards = sorted(p.name for p in shard_dir.glob("*.tar"))
        assert shards == ["shard-000000.tar", "shard-000001.tar"]
        with tarfile.open(shard_dir / shards[0]) as tar:
            names = tar.getnames()
            meta = json.loads(tar.extractfile(next(n for n in names if n.endswith(".json"))).read())
        assert len(names) == 6 and "prompt" in meta
        test_ids = {p.stem for p in (kedro_project / "data/03_primary/splits/test").rglob("*.wav")}
        assert len(test_ids) == 2
        for name in shards:
            with tarfile.open(shard_dir / name) as tar:
                assert not any(test_id in member for member in tar.getnames() for test_id in test_ids)

        # uploaded, byte for byte
        s3 = boto3.client("s3", endpoint_url=server.endpoint)
        objects = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="demo-bucket")["Contents"]}
        for name in shards:
            assert objects[f"notes/{name}"] == (shard_dir / name).stat().st_size

        # the prepared dataset config now points at the bucket, and the summary says what happened
        config = json.loads((kedro_project / "data/03_primary/dataset_config.json").read_text())
        assert config["dataset_type"] == "s3"
        assert config["datasets"][0]["s3_path"] == "s3://demo-bucket/notes/"
        assert config["datasets"][0]["endpoint_url"] == server.endpoint
        summary = json.loads((kedro_project / "data/03_primary/dataset_shards.json").read_text())
        assert summary["enabled"] and summary["samples"] == 6 and summary["uploaded"] == 3  # 2 shards + index

        # training can read it from S3
        loader = create_dataloader_from_config(validate_dataset_config(config), batch_size=2, sample_size=4096,
                                               sample_rate=16000, audio_channels=1, num_workers=0)
        audio, metadata = next(iter(loader))
        assert tuple(audio.shape) == (2, 1, 4096) and all("prompt" in m for m in metadata)


def test_shards_disabled_keeps_the_audio_dir_config(tmp_path: Path) -> None:
    from pipelines.data_preparation.nodes import select_training_dataset_config, shard_dataset

    audio_dir = {"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "x"}]}
    for params in ({"shards": {"enabled": False}}, {}):  # {}: no shards block at all (older parameter files)
        folder = tmp_path / "shards"
        summary = shard_dataset({}, params)(folder)
        config = select_training_dataset_config(audio_dir, summary)
        assert config is audio_dir and summary == {"enabled": False} and not folder.exists()
