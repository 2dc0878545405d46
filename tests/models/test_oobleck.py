"""Oobleck encoder/decoder: shapes, upstream key layout, SnakeBeta math, checkpointed training."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from stable_audio_ops.models.blocks import SnakeBeta, wn_conv1d
from stable_audio_ops.models.oobleck import OobleckDecoder, OobleckEncoder


def _tiny_encoder(**kw) -> OobleckEncoder:
    args = dict(in_channels=2, channels=4, latent_dim=6, c_mults=[1, 2], strides=[2, 4], use_snake=True)
    args.update(kw)
    return OobleckEncoder(**args)


def _tiny_decoder(**kw) -> OobleckDecoder:
    args = dict(out_channels=2, channels=4, latent_dim=3, c_mults=[1, 2], strides=[2, 4], use_snake=True)
    args.update(kw)
    return OobleckDecoder(**args)


def test_encoder_downsamples_by_product_of_strides() -> None:
    enc = _tiny_encoder().eval()
    assert enc(torch.randn(3, 2, 64)).shape == (3, 6, 8)


@pytest.mark.parametrize("nearest", [False, True])
def test_decoder_upsamples_by_product_of_strides(nearest: bool) -> None:
    dec = _tiny_decoder(use_nearest_upsample=nearest).eval()
    assert dec(torch.randn(2, 3, 5)).shape == (2, 2, 40)


def test_final_tanh_bounds_the_output_and_can_be_disabled() -> None:
    z = torch.randn(1, 3, 8) * 50
    assert _tiny_decoder(final_tanh=True).eval()(z).abs().max() <= 1.0
    assert isinstance(_tiny_decoder(final_tanh=False).layers[-1], torch.nn.Identity)


def test_state_dict_keys_follow_upstream_layout() -> None:
    keys = set(_tiny_encoder().state_dict()) | {f"d.{k}" for k in _tiny_decoder().state_dict()}
    expected = {
        "layers.0.weight_g", "layers.0.weight_v", "layers.0.bias",          # first conv k7
        "layers.1.layers.0.layers.0.alpha", "layers.1.layers.0.layers.0.beta",  # residual unit snake
        "layers.1.layers.0.layers.1.weight_v", "layers.1.layers.0.layers.3.weight_g",
        "layers.1.layers.3.alpha", "layers.1.layers.4.weight_v",          # stage activation + strided conv
        "layers.3.alpha", "layers.4.weight_v",                            # final activation + conv to latent
        "d.layers.1.layers.0.beta", "d.layers.1.layers.1.weight_v",       # decoder: snake + transposed conv
        "d.layers.1.layers.4.layers.3.bias", "d.layers.4.weight_g",
    }
    assert expected <= keys
    assert "d.layers.4.bias" not in keys  # the decoder's last conv has no bias (upstream)
    assert not any("parametrizations" in k for k in keys)


def test_weight_norm_is_legacy_and_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = wn_conv1d(2, 3, kernel_size=3)
    assert {"weight_g", "weight_v", "bias"} == set(conv.state_dict())


def test_odd_strides_round_trip_lengths_with_nearest_upsample() -> None:
    # (transposed convs with odd strides lose one sample upstream; the factory rejects that combination)
    dec = OobleckDecoder(out_channels=1, channels=2, latent_dim=2, c_mults=[1], strides=[3], use_snake=False,
                         use_nearest_upsample=True)
    enc = OobleckEncoder(in_channels=1, channels=2, latent_dim=2, c_mults=[1], strides=[3], use_snake=False)
    assert enc.eval()(torch.randn(1, 1, 30)).shape[-1] == 10
    assert dec.eval()(torch.randn(1, 2, 10)).shape[-1] == 30


def test_snake_beta_formula_with_log_scale_parameters() -> None:
    act = SnakeBeta(2)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.0, math.log(2.0)]))
        act.beta.copy_(torch.tensor([0.0, math.log(0.5)]))
    x = torch.linspace(-3, 3, 7).repeat(1, 2, 1)
    y = act(x)
    assert torch.allclose(y[0, 0], x[0, 0] + torch.sin(x[0, 0]) ** 2, atol=1e-6)
    assert torch.allclose(y[0, 1], x[0, 1] + 2.0 * torch.sin(2.0 * x[0, 1]) ** 2, atol=1e-5)


def test_training_mode_checkpointing_gives_the_same_gradients_as_eval() -> None:
    torch.manual_seed(0)
    enc = _tiny_encoder()
    x = torch.randn(2, 2, 32)
    grads = []
    for mode in (True, False):
        enc.train(mode)
        enc.zero_grad()
        enc(x).square().mean().backward()
        grads.append([p.grad.clone() for p in enc.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_checkpointing_can_be_switched_off_with_the_same_gradients(monkeypatch) -> None:
    from stable_audio_ops.models import oobleck

    calls = []
    real = oobleck.checkpoint
    monkeypatch.setattr(oobleck, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    enc = _tiny_encoder().train()
    x = torch.randn(2, 2, 32)
    grads = []
    for enabled in (True, False):
        assert oobleck.set_residual_checkpointing(enc, enabled) == 6  # 3 residual units per stage
        calls.clear()
        enc.zero_grad()
        enc(x).square().mean().backward()
        assert bool(calls) == enabled
        grads.append([p.grad.clone() for p in enc.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


def test_mismatched_stage_lists_are_rejected() -> None:
    with pytest.raises(ValueError, match="same length"):
        OobleckEncoder(c_mults=[1, 2], strides=[2])


def test_removing_weight_norm_keeps_outputs_and_renames_keys() -> None:
    from stable_audio_ops.models.blocks import remove_weight_norm_from_model

    torch.manual_seed(5)
    dec = _tiny_decoder().eval()
    z = torch.randn(1, 3, 6)
    with torch.no_grad():
        before = dec(z)
        remove_weight_norm_from_model(dec)
        after = dec(z)
    assert torch.allclose(before, after, atol=1e-6)
    keys = set(dec.state_dict())
    assert "layers.0.weight" in keys and not any(k.endswith(("weight_g", "weight_v")) for k in keys)
