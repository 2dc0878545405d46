"""unwrap_checkpoint: prefix rules, strict verification, and clear errors for the usual mix-ups."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stable_audio_ops.errors import CheckpointError, UnknownTypeError
from stable_audio_ops.models.checkpoints import read_embedded_model_config, save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.unwrap import UNWRAP_RULES, output_checkpoint_path, unwrap_checkpoint

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "unwrap_autoencoder"


def fixture_config() -> dict:
    return json.loads((FIXTURE / "model_config.json").read_text())


def write_training_ckpt(path: Path, config: dict, embed: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    module = create_training_module_from_config(config, create_model_from_config(config))
    state = module.state_dict()
    ckpt = {"state_dict": state, "global_step": 7, "pytorch-lightning_version": "2.6.6"}
    if embed:
        ckpt["model_config"] = config
    torch.save(ckpt, path)
    return state


def test_no_training_section_means_no_ema(tmp_path):
    config = fixture_config()
    written = write_training_ckpt(tmp_path / "run.ckpt", config)
    bare = {k: v for k, v in config.items() if k != "training"}  # upstream's unwrap raises KeyError here
    out = unwrap_checkpoint(bare, tmp_path / "run.ckpt", tmp_path / "out")
    got = load_file(str(out))
    for key, value in got.items():
        assert torch.equal(value, written[f"autoencoder.{key}"]), key
    assert read_embedded_model_config(out) == bare


def test_embedded_config_is_used_when_none_is_given(tmp_path):
    config = fixture_config()
    written = write_training_ckpt(tmp_path / "run.ckpt", config)
    out = unwrap_checkpoint(None, tmp_path / "run.ckpt", tmp_path / "ema.ckpt", use_safetensors=False)
    got = torch.load(out, map_location="cpu", weights_only=True)
    assert got["model_config"] == config
    key = "decoder.layers.0.weight_g"
    assert torch.equal(got["state_dict"][key], written[f"autoencoder_ema.ema_model.{key}"])


def test_ema_requested_but_run_had_none(tmp_path):
    config = fixture_config()
    no_ema = copy.deepcopy(config)
    no_ema["training"]["use_ema"] = False
    write_training_ckpt(tmp_path / "run.ckpt", no_ema)
    with pytest.raises(CheckpointError, match="did not use EMA"):
        unwrap_checkpoint(config, tmp_path / "run.ckpt", tmp_path / "out")


def test_already_unwrapped_checkpoints_are_refused(tmp_path):
    config = fixture_config()
    model = create_model_from_config(config)
    save_model_checkpoint(model.state_dict(), tmp_path / "plain.ckpt")
    save_model_checkpoint(model.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="already-unwrapped"):
        unwrap_checkpoint(config, tmp_path / "plain.ckpt", tmp_path / "out")
    with pytest.raises(CheckpointError, match="unwrapped model checkpoint already"):
        unwrap_checkpoint(config, tmp_path / "plain.safetensors", tmp_path / "out")


def test_config_that_does_not_fit_is_an_error_listing_keys(tmp_path):
    config = fixture_config()
    write_training_ckpt(tmp_path / "run.ckpt", config)
    wider = copy.deepcopy(config)
    wider["model"]["encoder"]["config"]["channels"] = 16
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        unwrap_checkpoint(wider, tmp_path / "run.ckpt", tmp_path / "out")
    assert "encoder.layers.0.weight_v" in str(err.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_unknown_model_type_lists_known_ones(tmp_path, monkeypatch):
    config = fixture_config()
    write_training_ckpt(tmp_path / "run.ckpt", config)
    monkeypatch.delitem(UNWRAP_RULES, "lm")  # every model type has a rule now: take one out
    config["model_type"] = "lm"
    with pytest.raises(UnknownTypeError, match="autoencoder"):
        unwrap_checkpoint(config, tmp_path / "run.ckpt", tmp_path / "out")


def test_output_path_suffixes(tmp_path):
    assert output_checkpoint_path(tmp_path / "m").name == "m.safetensors"
    assert output_checkpoint_path(tmp_path / "m.v1", use_safetensors=False).name == "m.v1.ckpt"
    assert output_checkpoint_path(tmp_path / "m.ckpt", use_safetensors=False).name == "m.ckpt"
    with pytest.raises(ValueError, match="suffix"):
        output_checkpoint_path(tmp_path / "m.ckpt", use_safetensors=True)


def test_an_ema_copy_that_never_updated_exports_the_trained_weights(tmp_path, caplog):
    """0.0.20's autoencoder EMA updates every 10 steps: a shorter run must not export the initial weights."""
    config = fixture_config()
    state = write_training_ckpt(tmp_path / "run.ckpt", config)
    key = "decoder.layers.0.weight_g"
    state[f"autoencoder.{key}"] = state[f"autoencoder.{key}"] + 1.0  # the online model trained, the EMA did not

    state["autoencoder_ema.step"] = torch.tensor(0)
    torch.save({"state_dict": state, "global_step": 7, "model_config": config}, tmp_path / "short.ckpt")
    with caplog.at_level("WARNING"):
        out = unwrap_checkpoint(None, tmp_path / "short.ckpt", tmp_path / "short")
    assert torch.equal(load_file(str(out))[key], state[f"autoencoder.{key}"])
    assert "never updated" in caplog.text

    state["autoencoder_ema.step"] = torch.tensor(3)  # updated at least once: the EMA copy, as upstream
    torch.save({"state_dict": state, "global_step": 37, "model_config": config}, tmp_path / "long.ckpt")
    out = unwrap_checkpoint(None, tmp_path / "long.ckpt", tmp_path / "long")
    assert torch.equal(load_file(str(out))[key], state[f"autoencoder_ema.ema_model.{key}"])
