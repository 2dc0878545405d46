"""DAC encoder/decoder: shapes, stereo input, the tanh output, upstream key layout, config errors."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.dac import DACDecoder, DACEncoder, Snake1d, build_dac_decoder, build_dac_encoder


def test_encoder_downsamples_by_the_strides_and_projects_to_latent_dim() -> None:
    enc = DACEncoder(in_channels=2, latent_dim=6, d_model=4, strides=[2, 4]).eval()
    assert enc(torch.randn(3, 2, 64)).shape == (3, 6, 8)
    assert enc.encoder.enc_dim == 16 and enc.strides == [2, 4]
    keys = set(enc.state_dict())
    assert {"encoder.block.0.weight_g", "encoder.block.1.block.0.block.0.alpha", "encoder.block.1.block.4.weight_v",
            "encoder.block.4.weight_g", "proj_out.weight", "proj_out.bias"} <= keys


def test_encoder_without_latent_dim_keeps_dacs_width_and_has_no_projection() -> None:
    enc = DACEncoder(d_model=2, strides=[2]).eval()
    assert enc(torch.randn(1, 1, 16)).shape == (1, 4, 8)
    assert not any(k.startswith("proj_out") for k in enc.state_dict())


def test_decoder_upsamples_and_always_ends_in_tanh() -> None:
    dec = DACDecoder(latent_dim=3, out_channels=2, channels=16, rates=[4, 2]).eval()
    out = dec(torch.randn(2, 3, 5) * 100)
    assert out.shape == (2, 2, 40) and out.abs().max() <= 1.0
    assert "decoder.model.4.weight_g" in dec.state_dict() and "decoder.model.4.bias" in dec.state_dict()


def test_snake1d_is_x_plus_sin_squared_over_alpha() -> None:
    snake = Snake1d(2)
    snake.alpha.data = torch.tensor([[[1.0], [2.0]]])
    x = torch.randn(1, 2, 7)
    alpha = snake.alpha
    torch.testing.assert_close(snake(x), x + torch.sin(alpha * x) ** 2 / alpha)


def test_builders_name_the_bad_key() -> None:
    node = ConfigNode({"type": "dac", "config": {"latent_dim": 4, "strides": []}}, "m.json", "model.encoder")
    with pytest.raises(ConfigError, match=r"m\.json: model\.encoder\.config\.strides: expected a non-empty list"):
        build_dac_encoder(node)
    node = ConfigNode({"type": "dac", "config": {"latent_dim": 4, "channels": 6, "rates": [2, 2]}}, "m.json",
                      "model.decoder")
    with pytest.raises(ConfigError, match=r"model\.decoder\.config\.channels: channels 6 must be divisible by"):
        build_dac_decoder(node)
    node = ConfigNode({"type": "dac", "config": {"rates": [2]}}, "m.json", "model.decoder")
    with pytest.raises(ConfigError, match=r"model\.decoder\.config\.latent_dim"):
        build_dac_decoder(node)
