"""One loader for every source: a checkpoint file, a file + separate config, a model folder and the MLflow registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, save_model_checkpoint
from stable_audio_ops.models.loading import LoadedModel, load_local_model
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.tracking.registry import log_model_to_registry
from tests.tracking.tiny_models import TINY_AE, TINY_DIT, use_sqlite_store, write_tiny_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The tiny autoencoder + diffusion model (configs embedded), and the diffusion weights without a config."""
    folder = tmp_path_factory.mktemp("models")
    ae_path, ld_path = write_tiny_models(folder)
    bare = save_model_checkpoint(load_ckpt_state_dict(ld_path), folder / "bare" / "weights.safetensors")
    return {"ae": ae_path, "ld": ld_path, "bare": Path(bare)}


def _assert_weights(loaded: LoadedModel, path: Path) -> None:
    expected = load_ckpt_state_dict(path)
    state = loaded.model.state_dict()
    assert state.keys() == expected.keys()
    for key, value in state.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def _assert_ready(loaded: LoadedModel) -> None:
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())


def test_checkpoint_file_with_embedded_config(tiny):
    for kind, model_type in (("ae", "autoencoder"), ("ld", "diffusion_cond")):
        loaded = load_model(tiny[kind])
        assert loaded.model_type == model_type and loaded.name == tiny[kind].stem
        assert loaded.checkpoint == tiny[kind] and "embedded model_config" in loaded.config_source
        _assert_ready(loaded)
        _assert_weights(loaded, tiny[kind])


def test_unwrapped_file_plus_separate_config(tiny):
    with pytest.raises(ConfigError, match=r"weights\.safetensors: no model config"):
        load_model(tiny["bare"])
    by_path = load_model(tiny["bare"], TINY_DIT)  # a JSON path
    by_dict = load_model(tiny["bare"], json.loads(TINY_DIT.read_text()), config_source="dit_tiny (dict)")
    for loaded in (by_path, by_dict):
        assert loaded.model_type == "diffusion_cond"
        _assert_ready(loaded)
        _assert_weights(loaded, tiny["ld"])
    assert by_path.config_source == str(TINY_DIT) and by_dict.config_source == "dit_tiny (dict)"


def test_model_folder_with_config_json(tiny, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(TINY_DIT, folder / "model_config.json")
    shutil.copy(tiny["bare"], folder / "model.safetensors")
    loaded = load_model(folder)
    assert loaded.name == "folder" and loaded.checkpoint == folder / "model.safetensors"
    assert loaded.config_source == str(folder / "model_config.json")
    _assert_weights(loaded, tiny["ld"])

    ckpt_folder = tmp_path / "ckpt_folder"  # model.ckpt (a torch file) is found as well
    ckpt_folder.mkdir()
    shutil.copy(TINY_AE, ckpt_folder / "model_config.json")
    save_model_checkpoint(load_ckpt_state_dict(tiny["ae"]), ckpt_folder / "model.ckpt")
    loaded = load_model(ckpt_folder)
    assert loaded.model_type == "autoencoder" and loaded.checkpoint.name == "model.ckpt"
    _assert_weights(loaded, tiny["ae"])

    (ckpt_folder / "other.safetensors").write_bytes(b"")  # model.ckpt is the preferred name: still unambiguous
    assert load_model(ckpt_folder).checkpoint.name == "model.ckpt"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("")
    with pytest.raises(CheckpointError, match=r"empty: no model weights found .* folder holds: notes\.txt"):
        load_model(empty)


def test_errors_name_the_file_and_what_is_wrong(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")
    # weights of one model with the config of another: the strict load reports the keys, naming the file
    with pytest.raises(CheckpointError, match=r"(?s)weights\.safetensors \(autoencoder, config: .*autoencoder_tiny"
                                              r"\.json\): checkpoint does not match the model.*unexpected in checkpoint"):
        load_model(tiny["bare"], TINY_AE)
    with pytest.raises(ConfigError, match=r"model_type: 'autoencoder' cannot be served by X; that needs one of: "
                                          r"diffusion_cond"):
        load_model(tiny["ae"], model_types=("diffusion_cond",), purpose="served by X")
    with pytest.raises(ConfigError, match="no model given"):
        load_model("")


def test_registry_sources_alias_and_version(tiny, tmp_path, monkeypatch):
    uri = use_sqlite_store(tmp_path, monkeypatch)
    version = log_model_to_registry(tiny["ld"], "tiny-ld")
    log_model_to_registry(tiny["ae"], "tiny-ae")

    by_alias = load_model("models:/tiny-ld@challenger", tracking_uri=uri, dst_dir=tmp_path / "dl1")
    assert by_alias.name == "tiny-ld@challenger" and by_alias.source == "models:/tiny-ld@challenger"
    assert by_alias.registry["version"] == version.version and by_alias.registry["alias"] == "challenger"
    assert by_alias.registry["run_id"] == version.run_id
    assert by_alias.checkpoint.name == "model.safetensors" and by_alias.checkpoint.parent.name == "artifacts"
    _assert_ready(by_alias)
    _assert_weights(by_alias, tiny["ld"])

    by_version = load_model(f"models:/tiny-ld/{version.version}", tracking_uri=uri, dst_dir=tmp_path / "dl2")
    assert by_version.name == f"tiny-ld/{version.version}" and by_version.registry["alias"] is None
    _assert_weights(by_version, tiny["ld"])

    ae = load_model("models:/tiny-ae@challenger", tracking_uri=uri, model_types=("autoencoder",))
    assert ae.model_type == "autoencoder"
    _assert_weights(ae, tiny["ae"])

    with pytest.raises(ConfigError, match="cannot be pre-encoded"):
        load_model("models:/tiny-ld@challenger", tracking_uri=uri, model_types=("autoencoder",),
                   purpose="pre-encoded")
    with pytest.raises(CheckpointError, match="models:/tiny-ld@nope: not found in the MLflow registry"):
        load_model("models:/tiny-ld@nope", tracking_uri=uri)
    with pytest.raises(ConfigError, match="models:/NAME@alias"):
        load_model("models:/a/b/c", tracking_uri=uri)


def test_old_entry_points_are_thin_wrappers(tiny):
    from stable_audio_ops.inference.pre_encode import load_autoencoder
    from stable_audio_ops.serving.model_loader import load_model as serving_load_model

    served = serving_load_model(tiny["ld"], device="cpu", name="tiny")
    assert served.name == "tiny" and served.model_type == "diffusion_cond"
    _assert_weights(served, tiny["ld"])
    with pytest.raises(ConfigError, match="cannot be served"):
        serving_load_model(tiny["ae"], device="cpu")

    config = json.loads(TINY_AE.read_text())
    autoencoder = load_autoencoder(config, tiny["ae"])
    assert not autoencoder.training
    local = load_local_model(tiny["ae"])
    for key, value in autoencoder.state_dict().items():
        torch.testing.assert_close(value, local.model.state_dict()[key], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="cannot be pre-encoded"):
        load_autoencoder(None, tiny["ld"])
