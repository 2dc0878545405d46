"""create_dataloader_from_config and collation: upstream batches, registry errors, worker settings."""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data.collate import collation_fn
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.errors import DatasetError, UnknownTypeError

SR = 8000


@pytest.fixture
def audio_folder(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        sf.write(folder / f"clip{i}.wav", (rng.standard_normal((SR, 2)) * 0.1).astype(np.float32), SR)
    return folder


def _cfg(folder, **extra):
    return {"dataset_type": "audio_dir", "datasets": [{"id": "demo", "path": str(folder)}], **extra}


def test_batches_like_upstream_with_num_workers_zero(audio_folder):
    loader = create_dataloader_from_config(_cfg(audio_folder), batch_size=2, sample_size=1024, sample_rate=SR,
                                           num_workers=0)
    assert not loader.persistent_workers  # upstream hard-codes True, which raises for num_workers=0
    assert len(loader) == 2  # 5 files, drop_last defaults to true
    audio, metadata = next(iter(loader))
    assert audio.shape == (2, 2, 1024) and audio.dtype == torch.float32
    assert isinstance(metadata, tuple) and len(metadata) == 2
    assert {"path", "relpath", "padding_mask", "seconds_total"} <= set(metadata[0])


def test_drop_last_false_and_mono(audio_folder):
    loader = create_dataloader_from_config(_cfg(audio_folder, drop_last=False), batch_size=2, sample_size=512,
                                           sample_rate=SR, audio_channels=1, num_workers=0, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3 and batches[-1][0].shape == (1, 1, 512)
    assert batches[0][0].shape == (2, 1, 512)


def test_a_validated_config_is_built_as_it_is_and_names_its_own_file(audio_folder, tmp_path):
    """Training and pre-encoding pass the frozen object: what it says is used (no second validation filling
    defaults back in), and dataset errors name the file it was read from."""
    cfg = dataclasses.replace(validate_dataset_config(_cfg(audio_folder), "ds.json"), drop_last=False)
    loader = create_dataloader_from_config(cfg, batch_size=2, sample_size=256, sample_rate=SR, num_workers=0,
                                           source="ignored.json")
    assert len(loader) == 3  # 5 files: the last partial batch is kept
    missing = validate_dataset_config(_cfg(tmp_path / "missing"), "ds.json")
    with pytest.raises(DatasetError, match=r"ds\.json"):
        create_dataloader_from_config(missing, batch_size=2, sample_size=256, sample_rate=SR, num_workers=0)


def test_worker_process_with_file_metadata_module(audio_folder, tmp_path):
    module = tmp_path / "md.py"
    module.write_text(textwrap.dedent("""
        def get_custom_metadata(info, audio):
            return {"prompt": "noise " + info["relpath"]}
    """))
    cfg = {"dataset_type": "audio_dir", "random_crop": False,
           "datasets": [{"id": "demo", "path": str(audio_folder), "custom_metadata_module": str(module)}]}
    loader = create_dataloader_from_config(cfg, batch_size=5, sample_size=256, sample_rate=SR, num_workers=1,
                                           shuffle=False)
    assert loader.persistent_workers
    audio, metadata = next(iter(loader))
    assert [m["prompt"] for m in metadata] == [f"noise clip{i}.wav" for i in range(5)]
    assert all(m["seconds_start"] == 0 for m in metadata)


def test_unknown_dataset_types_list_known_ones(audio_folder):
    with pytest.raises(UnknownTypeError, match=r"d\.json: dataset_type: unknown value 'folder'; known: audio_dir"):
        create_dataloader_from_config({"dataset_type": "folder", "datasets": []}, 1, 64, SR, source="d.json")
    cfg = {"dataset_type": "pre_encoded", "datasets": [{"id": "x", "path": str(audio_folder)}]}
    with pytest.raises(DatasetError, match=r"no \*\.npy latent files"):
        create_dataloader_from_config(cfg, 1, 64, SR)


def test_collation_fn_semantics():
    samples = [(torch.zeros(2, 3), {"a": 1}, 1, np.ones(2)), (torch.ones(2, 3), {"a": 2}, 2, np.zeros(2))]
    audio, metas, ints, arrays = collation_fn(samples)
    assert audio.shape == (2, 2, 3) and torch.equal(audio[1], torch.ones(2, 3))
    assert metas == ({"a": 1}, {"a": 2})
    assert isinstance(ints, np.ndarray) and ints.tolist() == [1, 2]
    assert isinstance(arrays, np.ndarray) and arrays.shape == (2, 2)
