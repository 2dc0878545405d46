"""Unwrapping diffusion_cond training checkpoints: EMA backbone swapped in, strict load of the result."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    read_embedded_model_config,
)
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.unwrap import unwrap_checkpoint

CONFIG = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "dit_tiny.json").read_text())


def _write_ckpt(path: Path, config: dict):
    torch.manual_seed(0)
    module = create_training_module_from_config(config, create_model_from_config(config))
    with torch.no_grad():  # make online and EMA backbones, and the conditioner, distinguishable
        for p in module.diffusion.model.parameters():
            p.add_(1.0)
        for p in module.diffusion.conditioner.parameters():
            p.add_(2.0)
        if module.diffusion_ema is not None:  # updated once per step, as after 3 steps (never-updated: skipped)
            module.diffusion_ema.step.fill_(3)
    torch.save({"state_dict": module.state_dict(), "model_config": config, "global_step": 3}, path)
    return module


def test_ema_backbone_with_online_conditioner_and_pretransform(tmp_path: Path) -> None:
    module = _write_ckpt(tmp_path / "run.ckpt", CONFIG)
    out = unwrap_checkpoint(None, tmp_path / "run.ckpt", tmp_path / "dit")
    assert out.name == "dit.safetensors"
    state = load_ckpt_state_dict(out)
    model = create_model_from_config(CONFIG)
    load_state_dict_checked(model, state, strict=True)
    assert torch.equal(state["model.model.postprocess_conv.weight"],
                       module.diffusion_ema.ema_model.model.postprocess_conv.weight)
    assert not torch.equal(state["model.model.postprocess_conv.weight"],
                           module.diffusion.model.model.postprocess_conv.weight)
    key = "conditioner.conditioners.seconds_total.embedder.embedding.1.weight"
    assert torch.equal(state[key], module.diffusion.state_dict()[key])
    assert "pretransform.model.decoder.layers.0.weight_v" in state
    assert read_embedded_model_config(out)["model_type"] == "diffusion_cond"
    assert set(state) == set(module.export_state_dict())


def test_without_ema_the_online_backbone_is_exported(tmp_path: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["training"]["use_ema"] = False
    module = _write_ckpt(tmp_path / "run.ckpt", config)
    state = load_ckpt_state_dict(unwrap_checkpoint(config, tmp_path / "run.ckpt", tmp_path / "dit.ckpt",
                                                   use_safetensors=False))
    assert torch.equal(state["model.model.postprocess_conv.weight"],
                       module.diffusion.model.model.postprocess_conv.weight)


def test_config_expecting_ema_on_a_run_without_it_says_so(tmp_path: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["training"]["use_ema"] = False
    _write_ckpt(tmp_path / "run.ckpt", config)
    with pytest.raises(CheckpointError, match="diffusion_ema.ema_model.*set training.use_ema to false"):
        unwrap_checkpoint(CONFIG, tmp_path / "run.ckpt", tmp_path / "dit")


def test_mismatched_config_fails_strictly_listing_keys(tmp_path: Path) -> None:
    _write_ckpt(tmp_path / "run.ckpt", CONFIG)
    bigger = copy.deepcopy(CONFIG)
    bigger["model"]["diffusion"]["config"]["depth"] = 3
    with pytest.raises(CheckpointError, match="(?s)missing from checkpoint.*transformer.layers.2"):
        unwrap_checkpoint(bigger, tmp_path / "run.ckpt", tmp_path / "dit")
