"""Checkpoint helpers: strict reports, partial copies, round trips with embedded config, wrapped ckpts."""

from __future__ import annotations

import json
import os

import pytest
import torch

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.checkpoints import (
    LoadReport,
    copy_state_dict,
    is_lightning_checkpoint,
    load_ckpt_state_dict,
    load_state_dict_checked,
    read_embedded_model_config,
    save_model_checkpoint,
    wrapped_prefix,
)
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.pretransforms import AutoencoderPretransform
from tests.parity.harness import FIXTURES

VAE_CONFIG = json.loads((FIXTURES / "ae_oobleck_vae" / "model_config.json").read_text())
UNWRAP = FIXTURES / "unwrap_autoencoder"


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return create_model_from_config(VAE_CONFIG)


def test_strict_report_lists_missing_unexpected_and_mismatched(model) -> None:
    sd = model.state_dict()
    sd.pop("decoder.layers.0.bias")
    sd["encoder.extra.weight"] = torch.zeros(1)
    sd["encoder.layers.0.weight_v"] = torch.zeros(3, 3, 3)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_checked(model, sd, what="my autoencoder")
    msg = str(info.value)
    assert msg.startswith("my autoencoder: checkpoint does not match the model")
    assert "missing from checkpoint (1):\n    decoder.layers.0.bias" in msg
    assert "unexpected in checkpoint (1):\n    encoder.extra.weight" in msg
    assert "encoder.layers.0.weight_v: [3, 3, 3] vs [8, 1, 7]" in msg


def test_strict_failure_loads_nothing_and_non_strict_loads_what_fits(model) -> None:
    before = model.state_dict()["decoder.layers.0.bias"].clone()
    sd = {k: v + 1 for k, v in model.state_dict().items()}
    sd["encoder.layers.0.weight_v"] = torch.zeros(1)
    with pytest.raises(CheckpointError):
        load_state_dict_checked(model, sd)
    assert torch.equal(model.state_dict()["decoder.layers.0.bias"], before)
    report = load_state_dict_checked(model, sd, strict=False)
    assert not report.ok and report.loaded == len(sd) - 1
    assert torch.equal(model.state_dict()["decoder.layers.0.bias"], before + 1)


def test_clean_load_reports_ok(model) -> None:
    report = load_state_dict_checked(model, model.state_dict())
    assert report.ok and report.loaded == len(model.state_dict())
    assert "missing from checkpoint (0): none" in report.format()


def test_copy_state_dict_is_partial_but_refuses_to_load_nothing(model) -> None:
    sd = {"encoder.layers.0.bias": torch.full((8,), 3.0), "decoder.layers.0.bias": torch.zeros(5)}
    report = copy_state_dict(model, sd)
    assert report.loaded == 1 and len(report.mismatched) == 1
    assert torch.equal(model.encoder.layers[0].bias.detach(), torch.full((8,), 3.0))
    with pytest.raises(CheckpointError, match="no checkpoint tensor matches"):
        copy_state_dict(model, {"something.else": torch.zeros(1)})


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_round_trip_with_embedded_config(tmp_path, model, suffix: str) -> None:
    path = save_model_checkpoint(model.state_dict(), tmp_path / "sub" / f"model{suffix}", model_config=VAE_CONFIG)
    assert read_embedded_model_config(path) == VAE_CONFIG
    loaded = load_ckpt_state_dict(path)
    assert loaded.keys() == model.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind
    fresh = create_model_from_config(read_embedded_model_config(path))
    assert load_state_dict_checked(fresh, loaded).ok


def test_checkpoint_without_config_and_upstream_layout(tmp_path, model) -> None:
    path = save_model_checkpoint(model.state_dict(), tmp_path / "m.ckpt")
    assert read_embedded_model_config(path) is None
    assert set(torch.load(path, weights_only=True)) == {"state_dict"}  # what upstream's loader expects
    assert read_embedded_model_config(save_model_checkpoint(model.state_dict(), tmp_path / "m.safetensors")) is None


def test_safetensors_save_handles_shared_tensors(tmp_path) -> None:
    shared = torch.arange(4.0)
    path = save_model_checkpoint({"a": shared, "b": shared}, tmp_path / "tied.safetensors")
    loaded = load_ckpt_state_dict(path)
    assert torch.equal(loaded["a"], loaded["b"])


def test_wrapped_checkpoint_is_recognised_with_unwrap_hint() -> None:
    wrapped = load_ckpt_state_dict(UNWRAP / "wrapped.ckpt")
    config = json.loads((UNWRAP / "model_config.json").read_text())
    model = create_model_from_config(config)
    assert wrapped_prefix(wrapped) == "autoencoder."
    assert wrapped_prefix(wrapped, set(model.state_dict())) == "autoencoder."
    assert wrapped_prefix(model.state_dict(), set(model.state_dict())) is None
    with pytest.raises(CheckpointError, match="wrapped training checkpoint .*unwrap_model.py"):
        load_state_dict_checked(model, wrapped)
    with pytest.raises(CheckpointError, match="wrapped training checkpoint"):
        copy_state_dict(model, wrapped)
    assert is_lightning_checkpoint(torch.load(UNWRAP / "wrapped.ckpt", weights_only=True))


def test_pretransform_loads_an_unwrapped_autoencoder_checkpoint(model) -> None:
    other = create_model_from_config(VAE_CONFIG)
    pre = AutoencoderPretransform(other)
    assert load_state_dict_checked(pre, model.state_dict()).ok
    assert torch.equal(pre.model.encoder.layers[0].bias, model.encoder.layers[0].bias)


def test_read_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nothing.ckpt: checkpoint file not found"):
        load_ckpt_state_dict(tmp_path / "nothing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: cannot read as a torch checkpoint"):
        load_ckpt_state_dict(tmp_path / "junk.ckpt")
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="junk.safetensors: cannot read as safetensors"):
        load_ckpt_state_dict(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_ckpt_state_dict(tmp_path)
    torch.save({"epoch": 1}, tmp_path / "nostate.ckpt")
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):
        load_ckpt_state_dict(tmp_path / "nostate.ckpt")


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model_checkpoint({"a": torch.zeros(1)}, tmp_path / "m.ckpt")
    assert os.listdir(tmp_path) == []


def test_load_report_format_truncates_long_groups() -> None:
    text = LoadReport(missing=[f"k{i}" for i in range(30)]).format(limit=5)
    assert "missing from checkpoint (30):" in text and "... and 25 more" in text
