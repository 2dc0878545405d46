"""SEANet encoder/decoder: exact length arithmetic (odd lengths, odd ratios, causal), ratio order,
LSTM and norm variants with encodec's key names, config errors."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.seanet import build_seanet_decoder, build_seanet_encoder


def _encoder(**cfg):
    base = {"channels": 1, "dimension": 4, "n_filters": 2, "ratios": [2, 3], "lstm": 0}
    return build_seanet_encoder(ConfigNode({"type": "seanet", "config": {**base, **cfg}}, "m.json", "model.encoder"))


def _decoder(**cfg):
    base = {"channels": 1, "dimension": 4, "n_filters": 2, "ratios": [3, 2], "lstm": 0}
    return build_seanet_decoder(ConfigNode({"type": "seanet", "config": {**base, **cfg}}, "m.json", "model.decoder"))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [60, 61, 5])
def test_encoder_gives_ceil_length_over_hop_and_decoder_length_times_hop(causal: bool, length: int) -> None:
    enc, dec = _encoder(causal=causal).eval(), _decoder(causal=causal).eval()
    with torch.no_grad():
        z = enc(torch.randn(2, 1, length))
        assert z.shape == (2, 4, -(-length // 6))
        assert dec(z).shape == (2, 1, z.shape[-1] * 6)


def test_encoder_downsamples_in_config_order() -> None:
    enc = _encoder(ratios=[2, 4])
    strides = [m.conv.conv.stride[0] for m in enc.model if hasattr(m, "conv") and m.conv.conv.stride[0] > 1]
    assert strides == [2, 4] and enc.strides == [2, 4]


def test_causal_encoder_output_does_not_depend_on_the_future() -> None:
    enc = _encoder(causal=True, ratios=[2, 2], pad_mode="constant").eval()
    x = torch.randn(1, 1, 64)
    y = x.clone()
    y[..., 40:] = torch.randn(1, 1, 24)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[..., :10], enc(y)[..., :10])


def test_lstm_and_norm_variants_use_encodec_key_names() -> None:
    keys = set(_encoder(lstm=2).state_dict())
    assert {"model.0.conv.conv.weight_g", "model.1.block.1.conv.conv.weight_v", "model.1.shortcut.conv.conv.bias",
            "model.7.lstm.weight_ih_l1"} <= keys
    assert "model.0.conv.norm.weight" in _encoder(norm="time_group_norm").state_dict()
    assert "model.0.conv.conv.weight" in _encoder(norm="none").state_dict()
    assert not any("shortcut" in k for k in _encoder(true_skip=True).state_dict())
    dec_keys = set(_decoder(lstm=1).state_dict())
    assert {"model.1.lstm.weight_hh_l0", "model.3.convtr.convtr.weight_g"} <= dec_keys


def test_decoder_final_activation() -> None:
    dec = _decoder(final_activation="Tanh").eval()
    assert dec(torch.randn(1, 4, 3) * 100).abs().max() <= 1.0


@pytest.mark.parametrize(("cfg", "message"), [
    ({"norm": "batch_norm"}, r"model\.encoder\.config\.norm"),
    ({"activation": "Nope"}, r"model\.encoder\.config\.activation: unknown activation 'Nope'"),
    ({"ratios": [2, 0]}, r"model\.encoder\.config\.ratios: expected a non-empty list of positive ints"),
    ({"lstm_layers": 2}, r"model\.encoder\.config\.lstm_layers: unknown key"),
])
def test_bad_config_names_the_key(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _encoder(**cfg)
