"""``diffusion_uncond`` with the ``dit`` backbone: config reading, key layout, minimum length, errors.

(The ``adp_uncond_1d`` backbone is covered in test_adp.py; numerical parity in tests/parity.)
"""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.models.diffusion_uncond import DiTUncondWrapper, build_diffusion_uncond
from stable_audio_ops.models.dit import DiffusionTransformer

DIT_UNCOND = {"model_type": "diffusion_uncond", "sample_size": 32, "sample_rate": 16000,
              "model": {"type": "dit", "config": {"in_channels": 2, "embed_dim": 32, "depth": 1, "num_heads": 1}}}


def _build(config: dict):
    return build_diffusion_uncond(ConfigNode(config, "model_config.json"))


def test_dit_uncond_reads_in_channels_halves_fresh_weights_and_runs() -> None:
    torch.manual_seed(0)
    model = _build(DIT_UNCOND)
    torch.manual_seed(0)
    reference = DiffusionTransformer(io_channels=2, embed_dim=32, depth=1, num_heads=1)
    assert isinstance(model.model, DiTUncondWrapper) and model.io_channels == 2 and model.diffusion_objective == "v"
    assert "model.model.transformer.layers.0.self_attn.to_qkv.weight" in model.state_dict()
    for (name, param), ref in zip(model.model.model.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(param, ref * 0.5), name
    with torch.no_grad():
        assert model(torch.randn(3, 2, 32), torch.rand(3)).shape == (3, 2, 32)


def test_dit_uncond_min_length_is_the_patch_size() -> None:
    config = copy.deepcopy(DIT_UNCOND)
    config["model"]["config"]["patch_size"] = 4
    assert _build(config).min_input_length == 4
    config["sample_size"] = 30
    with pytest.raises(ConfigError, match="model_config.json: sample_size: 30 is not a multiple"):
        _build(config)


@pytest.mark.parametrize(("key", "value", "error", "pattern"), [
    ("io_channels", 2, ConfigError, r"model\.config\.io_channels: unknown key"),  # uncond configs say in_channels
    ("in_channels", 0, ConfigError, r"model\.config\.in_channels: expected a positive int"),
    ("conformer", "no", ConfigError, r"model\.config\.conformer: expected a bool"),
])
def test_dit_uncond_config_errors_name_the_key(key, value, error, pattern) -> None:
    config = copy.deepcopy(DIT_UNCOND)
    config["model"]["config"][key] = value
    with pytest.raises(error, match=pattern):
        _build(config)


def test_unknown_backbones_list_the_supported_ones() -> None:
    config = copy.deepcopy(DIT_UNCOND)
    config["model"]["type"] = "unet9"
    with pytest.raises(UnknownTypeError, match=r"model\.type: .*'unet9'; known: DAU1d, adp_uncond_1d, dit"):
        _build(config)
