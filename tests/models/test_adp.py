"""Shapes, conditioning behaviour and config validation of the ADP U-Net model types."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.models.adp import PaddedConv1d, TrimmedConvTranspose1d, UNet1d
from stable_audio_ops.models.diffusion_autoencoder import build_diffusion_autoencoder
from stable_audio_ops.models.diffusion_uncond import UNet1DUncondWrapper, build_diffusion_uncond

TINY = {"in_channels": 1, "channels": 8, "multipliers": [1, 2, 4], "factors": [2, 2], "num_blocks": [1, 1],
        "attentions": [0, 0, 1], "attention_heads": 2, "attention_multiplier": 2, "resnet_groups": 4}

UNCOND = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000,
          "model": {"type": "adp_uncond_1d", "config": dict(TINY)}}

DIFF_AE = {
    "model_type": "diffusion_autoencoder", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
    "model": {
        "encoder": {"type": "oobleck", "config": {"in_channels": 1, "channels": 4, "c_mults": [1, 2],
                                                  "strides": [2, 2], "latent_dim": 3, "use_snake": True}},
        "bottleneck": {"type": "tanh"},
        "diffusion": {"type": "adp_1d", "config": {**TINY, "context_channels": [3]}},
        "latent_dim": 3, "downsampling_ratio": 4, "io_channels": 1,
    },
}


def _build(builder, config):
    return builder(ConfigNode(config, "model_config.json"))


def test_padded_convolutions_halve_and_double_lengths():
    x = torch.randn(2, 3, 20)
    down = PaddedConv1d(3, 5, kernel_size=5, stride=2)
    up = TrimmedConvTranspose1d(5, 3, kernel_size=4, stride=2)
    assert down(x).shape == (2, 5, 10)
    assert up(down(x)).shape == (2, 3, 20)
    assert PaddedConv1d(3, 3, kernel_size=3)(x).shape == x.shape


def test_unet_keeps_shape_and_depends_on_time_and_context():
    torch.manual_seed(0)
    unet = UNet1d(**{**TINY, "context_channels": [2]}).eval()
    x, ctx = torch.randn(2, 1, 32), torch.randn(2, 2, 32)
    with torch.no_grad():
        out = unet(x, torch.tensor([0.2, 0.2]), channels_list=[ctx])
        later = unet(x, torch.tensor([0.2, 0.9]), channels_list=[ctx])
        other_ctx = unet(x, torch.tensor([0.2, 0.2]), channels_list=[ctx.flip(-1)])
    assert out.shape == x.shape
    assert torch.allclose(out[0], later[0], atol=1e-6) and not torch.allclose(out[1], later[1])
    assert not torch.allclose(out, other_ctx)


def test_unet_rejects_bad_lengths_and_missing_context():
    unet = UNet1d(**{**TINY, "context_channels": [2]})
    with pytest.raises(ValueError, match="multiple of 4"):
        unet(torch.randn(1, 1, 30), torch.zeros(1), channels_list=[torch.randn(1, 2, 30)])
    with pytest.raises(ValueError, match="missing context"):
        unet(torch.randn(1, 1, 32), torch.zeros(1))
    with pytest.raises(ValueError, match="expected 2"):
        unet(torch.randn(1, 1, 32), torch.zeros(1), channels_list=[torch.randn(1, 3, 32)])


def test_unet_options_nearest_upsample_and_no_time():
    unet = UNet1d(**{**TINY, "use_nearest_upsample": True, "use_context_time": False}).eval()
    keys = unet.state_dict().keys()
    assert not any(k.startswith(("to_time", "to_mapping")) or "to_scale_shift" in k for k in keys)
    assert "upsamples.0.upsample.1.weight" in keys
    with torch.no_grad():
        assert unet(torch.randn(1, 1, 16)).shape == (1, 1, 16)


def test_uncond_model_keys_shapes_and_initial_halving():
    torch.manual_seed(3)
    model = _build(build_diffusion_uncond, UNCOND)
    torch.manual_seed(3)
    reference = UNet1d(**TINY)
    assert model.min_input_length == 4 and model.io_channels == 1 and model.diffusion_objective == "v"
    assert "model.model.to_time.0.0.weights" in model.state_dict()
    assert "model.model.bottleneck.transformer.blocks.0.attention.to_kv.weight" in model.state_dict()
    for (name, param), ref in zip(model.model.model.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(param, ref * 0.5), name
    assert isinstance(model.model, UNet1DUncondWrapper)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64), torch.rand(2)).shape == (2, 1, 64)


@pytest.mark.parametrize(("path", "value", "error", "where"), [
    (("model", "type"), "unet9", UnknownTypeError, "model.type"),
    (("model", "config", "use_snake"), True, ConfigError, "model.config.use_snake"),
    (("model", "config", "resnet_groups"), 3, ConfigError, "model.config.resnet_groups"),
    (("model", "config", "channels"), 6, ConfigError, "model.config.attentions"),
    (("model", "config", "factors"), [2], ConfigError, "model.config.factors"),
    (("model", "config", "bogus"), 1, ConfigError, "model.config.bogus"),
    (("model", "config", "context_features"), 8, ConfigError, "model.config.context_features"),
    (("sample_size",), 66, ConfigError, "sample_size"),
])
def test_uncond_config_errors_name_the_key(path, value, error, where):
    config = copy.deepcopy(UNCOND)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(error, match=rf"model_config.json: {where}:"):
        _build(build_diffusion_uncond, config)


def test_diffusion_autoencoder_encode_decode_shapes_and_noise():
    torch.manual_seed(1)
    model = _build(build_diffusion_autoencoder, DIFF_AE).eval()
    assert model.min_length == 16 and model.decoder is None
    audio = torch.randn(2, 1, 64)
    with torch.no_grad():
        latents = model.encode(audio)
    assert latents.shape == (2, 3, 16) and latents.abs().max() <= 1.0  # tanh bottleneck, scale 1
    noise = torch.randn(2, 1, 64)
    first = model.decode(latents, steps=3, noise=noise)
    assert first.shape == (2, 1, 64) and torch.isfinite(first).all()
    assert torch.equal(first, model.decode(latents, steps=3, noise=noise))
    assert not torch.allclose(first, model.decode(latents.flip(0), steps=3, noise=noise))
    with pytest.raises(ValueError, match="noise must have shape"):
        model.decode(latents, steps=3, noise=torch.randn(2, 1, 60))


@pytest.mark.parametrize(("key", "value", "error", "where"), [
    ("decoder", {"type": "oobleck", "config": {}}, ConfigError, "model.decoder"),
    ("pretransform", {"type": "autoencoder", "config": {}}, ConfigError, "model.pretransform"),
    ("diffusion", {"type": "dit", "config": {}}, UnknownTypeError, "model.diffusion.type"),
    ("diffusion", {"type": "adp_1d", "config": {**TINY, "context_channels": [2]}}, ConfigError,
     "model.diffusion.config.context_channels"),
    ("downsampling_ratio", 8, ConfigError, "model.downsampling_ratio"),
    ("bottleneck", {"type": "nope"}, UnknownTypeError, "model.bottleneck.type"),
])
def test_diffusion_autoencoder_config_errors_name_the_key(key, value, error, where):
    config = copy.deepcopy(DIFF_AE)
    config["model"][key] = value
    with pytest.raises(error, match=rf"model_config.json: {where}:"):
        _build(build_diffusion_autoencoder, config)
