"""data_preparation run by Kedro's SequentialRunner over an in-memory DataCatalog on a tiny rendered demo set plus
a user's own folder: the train dataset config (what trains) must reach train clips only, and the test config
the held-out clips, whose captions training never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from pipelines.data_preparation.pipeline import create_pipeline
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.evaluation.judge import load_dataset_clips
from tests.pipelines.conftest import data_preparation_datasets


def _params(tmp_path: Path, shards: bool = False) -> dict:
    raw = tmp_path / "raw"
    return {
        "raw_dirs": [str(raw / "demo_notes" / "audio"), str(raw / "mine")],
        "demo": {"enabled": True, "instruments": ["flute", "church organ"],
                 "midi_low": 60, "midi_high": 63, "velocities": [40, 120], "sample_rate": 16000,
                 "clip_seconds": 0.5, "hold_seconds": 0.3},
        "split": {"method": "auto", "test_fraction": 0.5, "seed": 0, "every_nth_pitch": 2},
        "dataset": {"id": "demo_notes", "random_crop": True, "drop_last": True,
                    "custom_metadata_module": "stable_audio_ops.data.sidecar_metadata"},
        "shards": {"enabled": shards, "samples_per_shard": 5, "audio_format": "flac", "s3_url": None,
                   "endpoint_url": None,
                   "profile": None, "create_bucket": False, "epoch_steps": None},
    }


SAVED = ("dataset_split", "prepared_dataset_config", "test_dataset_config", "dataset_shards_summary")


def _run(params: dict, folder: Path) -> dict:
    """The pipeline over a catalog like conf/base/catalog.yml (the demo notes, split and shards as folder datasets
    under ``folder``, JSON files for the dataset configs, memory for the rest); returns what the saved datasets
    hold after the run."""
    catalog = DataCatalog.from_config({name: {"type": "json.JSONDataset", "filepath": str(folder / f"{name}.json")}
                                       for name in ("prepared_dataset_config", "test_dataset_config")})
    for name, dataset in data_preparation_datasets(folder / "03_primary", raw=folder / "raw" / "demo_notes").items():
        catalog[name] = dataset
    catalog["params:data_preparation"] = MemoryDataset(params)
    SequentialRunner().run(create_pipeline(), catalog)
    return {name: catalog.load(name) for name in SAVED}


@pytest.fixture()
def user_folder(tmp_path: Path) -> Path:
    """A user's own takes (no labels), one of them broken."""
    mine = tmp_path / "raw" / "mine"
    mine.mkdir(parents=True)
    t = np.arange(8000) / 16000
    for k in range(4):
        sf.write(mine / f"take{k}.wav", (0.2 * np.sin(2 * np.pi * (300 + 50 * k) * t)).astype(np.float32), 16000)
    (mine / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return mine


def test_train_config_reaches_train_clips_only_and_test_config_the_unseen_captions(tmp_path, user_folder):
    out = _run(_params(tmp_path), tmp_path)
    split, train_config, test_config = out["dataset_split"], out["prepared_dataset_config"], out["test_dataset_config"]

    # 2 instruments x 4 pitches x 2 velocities: pitches 60 and 62 hold out one velocity each -> 4 test clips;
    # the user's 4 readable takes split by file at 50 %; the broken file is in neither
    assert split["counts"] == {"train": 12 + 2, "test": 4 + 2} and split["method"] == "mixed"
    assert not any("broken" in path for path in split["files"])
    splits_dir = Path(split["output_dir"])
    assert [s["path"] for s in train_config["datasets"]] == [str(splits_dir / "train" / "demo_notes"),
                                                             str(splits_dir / "train" / "mine")]
    assert all(s["custom_metadata_module"] == "stable_audio_ops.data.sidecar_metadata"
               for s in train_config["datasets"])
    assert [s["path"] for s in test_config["datasets"]] == [str(splits_dir / "test" / "demo_notes"),
                                                            str(splits_dir / "test" / "mine")]

    # what training reads: exactly the train files, with their sidecar captions
    loader = create_dataloader_from_config(train_config, batch_size=1, sample_size=4096, sample_rate=16000,
                                           audio_channels=1, num_workers=0, shuffle=False)
    read = sorted(Path(f.path).relative_to(splits_dir / "train").as_posix() for f in loader.dataset.files)
    assert read == sorted(p for p, s in split["files"].items() if s == "train")
    prompts = [meta[0].get("prompt") for _, meta in loader]
    assert sum(p is not None for p in prompts) == 12  # every demo clip keeps its caption, the user's takes have none

    # what evaluation reads: the labelled test clips, each an (instrument, pitch, loudness) training never saw
    test_clips = load_dataset_clips(validate_dataset_config(test_config, "test_dataset_config"))
    assert len(test_clips) == 4
    train_rows = [json.loads(line) for line in
                  (splits_dir / "train" / "demo_notes" / "metadata.jsonl").read_text().splitlines()]
    seen = {(r["instrument"], r["midi"], r["dynamic"]) for r in train_rows}
    assert all((m["instrument"], m["midi"], m["dynamic"]) not in seen for _, _, m in test_clips)
    assert {(r["instrument"], r["midi"]) for r in train_rows} == {(i, m) for i in ("flute", "church organ")
                                                                  for m in range(60, 64)}
    assert out["dataset_shards_summary"] == {"enabled": False}


def test_shards_are_packed_from_the_train_split(tmp_path, user_folder):
    out = _run(_params(tmp_path, shards=True), tmp_path)
    config, summary = out["prepared_dataset_config"], out["dataset_shards_summary"]
    assert config["dataset_type"] == "wds" and config["datasets"][0]["path"] == str(tmp_path / "03_primary/shards")
    assert summary["samples"] == 14 and len(summary["shards"]) == 3  # the train split only, 5 per shard
    assert out["test_dataset_config"]["dataset_type"] == "audio_dir"  # evaluation keeps reading the test folder
