"""pre_encoded datasets: file discovery, crops (incl. seconds_start), filters, custom metadata, the loader."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.data.pre_encoded import LatentSource, PreEncodedDataset
from stable_audio_ops.errors import DatasetError


def write_item(folder: Path, name: str, frames: int = 20, real: int = 20, **md) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}.npy", np.tile(np.arange(frames, dtype=np.float32), (3, 1)))
    info = {"prompt": name, "seconds_start": 0, "seconds_total": 5, "sample_rate": 16000,
            "padding_mask": [1] * real + [0] * (frames - real), **md}
    (folder / f"{name}.json").write_text(json.dumps(info))


def test_items_have_upstreams_metadata_layout(tmp_path: Path) -> None:
    write_item(tmp_path / "0", "a", real=12)
    latents, info = PreEncodedDataset([LatentSource("x", str(tmp_path))])[0]
    assert latents.shape == (3, 20) and latents.dtype == torch.float32
    assert isinstance(info["padding_mask"], list) and info["padding_mask"][0].sum() == 12
    assert info["latent_filename"].endswith("a.npy") and info["audio"] is latents and info["prompt"] == "a"


def test_filelist_selects_files(tmp_path: Path) -> None:
    write_item(tmp_path / "0", "a")
    write_item(tmp_path / "0", "b")
    (tmp_path / "filelist.txt").write_text("0/b.npy\n")
    ds = PreEncodedDataset([LatentSource("x", str(tmp_path))])
    assert len(ds) == 1 and ds[0][1]["prompt"] == "b"


def test_random_crop_stays_in_the_real_region_and_moves_seconds_start(tmp_path: Path) -> None:
    # 100 frames, 80 real, ratio 1600 at 16 kHz -> 0.1 s per frame
    write_item(tmp_path, "a", frames=100, real=80, downsampling_ratio=1600, seconds_start=2)
    ds = PreEncodedDataset([LatentSource("x", str(tmp_path))], latent_crop_length=30, random_crop=True)
    random.seed(0)
    starts = set()
    for _ in range(40):
        latents, info = ds[0]
        start = info["latent_crop_start"]
        starts.add(start)
        assert latents.shape == (3, 30) and 0 <= start <= 79 - 30
        assert torch.equal(latents[0], torch.arange(start, start + 30, dtype=torch.float32))
        assert info["seconds_start"] == 2 + int(start * 0.1)
        assert info["latent_crop_length"] == 30
    assert len(starts) > 10
    fixed = PreEncodedDataset([LatentSource("x", str(tmp_path))], latent_crop_length=30)
    assert fixed[0][1]["latent_crop_start"] == 0 and fixed[0][1]["seconds_start"] == 2


def test_seconds_start_ratio_from_details_json(tmp_path: Path) -> None:
    write_item(tmp_path / "0", "a", frames=100, real=100)
    (tmp_path / "details.json").write_text(json.dumps({"downsampling_ratio": 3200}))
    ds = PreEncodedDataset([LatentSource("x", str(tmp_path))], latent_crop_length=10, random_crop=True)
    random.seed(1)
    _, info = ds[0]
    assert info["seconds_start"] == int(info["latent_crop_start"] * 0.2)


def test_short_files_are_padded_to_the_crop_length(tmp_path: Path) -> None:
    write_item(tmp_path, "a", frames=8, real=8)
    latents, info = PreEncodedDataset([LatentSource("x", str(tmp_path))], latent_crop_length=12)[0]
    assert latents.shape == (3, 12) and latents[:, 8:].abs().sum() == 0
    assert info["padding_mask"][0].tolist() == [1.0] * 8 + [0.0] * 4


def test_length_filters_and_bad_files_draw_other_items(tmp_path: Path) -> None:
    write_item(tmp_path, "long", seconds_total=50)
    write_item(tmp_path, "ok", seconds_total=5)
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    (tmp_path / "broken.json").write_text("{}")
    ds = PreEncodedDataset([LatentSource("x", str(tmp_path))], max_length_sec=10)
    for i in range(len(ds)):
        assert ds[i][1]["prompt"] == "ok"
    assert set(map(Path, ds.skipped)) == {tmp_path / "long.npy", tmp_path / "broken.npy"}
    with pytest.raises(DatasetError, match="folder not found"):
        PreEncodedDataset([LatentSource("x", str(tmp_path / "nothing"))])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="write them with pre_encode.py"):
        PreEncodedDataset([LatentSource("x", str(tmp_path / "empty"))])


def test_custom_metadata_can_reject_and_replace(tmp_path: Path) -> None:
    write_item(tmp_path / "data", "a")
    write_item(tmp_path / "data", "b")
    module = tmp_path / "md.py"
    module.write_text(
        "import torch\n"
        "def get_custom_metadata(info, audio):\n"
        "    assert audio is None\n"
        "    if info['prompt'] == 'a':\n"
        "        return {'__reject__': True}\n"
        "    return {'__replace__': torch.zeros(3, 20), 'extra': 1}\n")
    ds = PreEncodedDataset([LatentSource("x", str(tmp_path / "data"), str(module))])
    latents, info = ds[0]
    assert info["prompt"] == "b" and info["extra"] == 1 and latents.abs().sum() == 0


def test_dataloader_builds_pre_encoded_batches(tmp_path: Path) -> None:
    for name in "abcd":
        write_item(tmp_path / "lat" / "0", name, frames=40, real=40)
    config = {"dataset_type": "pre_encoded", "latent_crop_length": 16,
              "datasets": [{"id": "lat", "path": str(tmp_path / "lat")}]}
    loader = create_dataloader_from_config(config, batch_size=2, sample_size=1, sample_rate=16000, num_workers=0)
    latents, metadata = next(iter(loader))
    assert latents.shape == (2, 3, 16) and len(metadata) == 2
    assert loader.dataset.random_crop is False  # pre_encoded default


def test_summary_of_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    from stable_audio_ops.data.pre_encoded import summarize_latents

    (tmp_path / "latents").mkdir()
    with pytest.raises(DatasetError, match="no latent files"):
        summarize_latents(tmp_path / "latents")
