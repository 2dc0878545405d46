"""Pretrained sources for fine-tuning: a Stable Audio Open-style folder, a checkpoint file, models:/ — resolved to
local weights and an identity, with errors that say what to put where."""

from __future__ import annotations

import shutil

import pytest

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.tracking.lineage import file_sha256
from stable_audio_ops.tracking.pretrained import resolve_pretrained_model
from stable_audio_ops.tracking.registry import log_model_to_registry
from tests.tracking.tiny_models import TINY_DIT, use_sqlite_store, write_tiny_models


def test_folder_file_and_registry_sources_resolve_to_the_same_weights(tmp_path, monkeypatch) -> None:
    use_sqlite_store(tmp_path, monkeypatch)
    _, dit = write_tiny_models(tmp_path / "tiny")
    folder = tmp_path / "sao"
    folder.mkdir()
    shutil.copy(dit, folder / "model.safetensors")
    (folder / "model_config.json").write_text(TINY_DIT.read_text())
    version = log_model_to_registry(dit, "t-base")

    by_folder = resolve_pretrained_model(folder)
    by_file = resolve_pretrained_model(dit)
    by_registry = resolve_pretrained_model(f"models:/t-base/{version.version}", dst_dir=tmp_path / "dl")
    assert by_folder["path"] == str(folder / "model.safetensors") and by_folder["registry"] == {}
    assert by_folder["weights_file_sha256"] == by_file["weights_file_sha256"] == file_sha256(dit)
    assert by_registry["registry"]["version"] == version.version and by_registry["registry"]["name"] == "t-base"
    assert by_registry["model_config"]["model_type"] == "diffusion_cond"


def test_a_model_folder_without_weights_says_what_to_put_where(tmp_path) -> None:
    folder = tmp_path / "stable-audio-open-1.0"
    folder.mkdir()
    (folder / "model_config.json").write_text(TINY_DIT.read_text())
    with pytest.raises(CheckpointError) as info:
        resolve_pretrained_model(folder)
    message = str(info.value)
    assert str(folder) in message and "model.safetensors" in message and "accept the licence" in message


def test_an_autoencoder_cannot_be_fine_tuned_here(tmp_path) -> None:
    ae, _ = write_tiny_models(tmp_path)
    with pytest.raises(ConfigError, match="'autoencoder' cannot be fine-tuned"):
        resolve_pretrained_model(ae)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_pretrained_model(tmp_path / "nowhere")
