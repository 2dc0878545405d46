"""ARC discriminator heads: upstream's state-dict keys and shapes, strict loading, output maps, the loss."""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import CheckpointError, ConfigError, UnknownTypeError
from stable_audio_ops.models.arc import create_discriminator_head, relativistic_losses
from stable_audio_ops.models.checkpoints import load_state_dict_checked


def _head(head_type: str, in_channels: int, **config):
    return create_discriminator_head(head_type, in_channels, ConfigNode(config, "cfg.json", "training.arc.discriminator.config"),
                                     ConfigNode({"type": head_type}, "cfg.json", "training.arc.discriminator"))


def _wn(prefix: str, out_ch: int, in_ch: int, k: int) -> dict[str, tuple[int, ...]]:
    # legacy weight norm over dim 0: g is [out, 1, 1]
    return {f"{prefix}.weight_g": (out_ch, 1, 1), f"{prefix}.weight_v": (out_ch, in_ch, k), f"{prefix}.bias": (out_ch,)}


def test_convnext_head_has_upstreams_keys_and_shapes() -> None:
    # ConvNeXtDiscriminator(in_channels=64, latent_dim=1, channels=16, c_mults=[1, 2], strides=[2, 4],
    # num_blocks=[1, 1]) in upstream's module tree (models/arc.py + models/convnext.py).
    head = _head("convnext", 64, channels=16, c_mults=[1, 2], strides=[2, 4], num_blocks=[1, 1])
    expected = _wn("encoder.proj_in", 16, 64, 7)
    for i, (width, nxt) in enumerate([(16, 16), (16, 32)]):
        block = f"encoder.layers.{i}.layers.0"
        expected |= _wn(f"{block}.dw_conv", width, 1, 7) | _wn(f"{block}.proj_up", 4 * width, width, 1)
        expected |= _wn(f"{block}.proj_down", width, 4 * width, 1)
        expected |= _wn(f"encoder.layers.{i}.downsample", nxt, width, 2 * [2, 4][i])
    expected |= _wn("encoder.layers.2", 1, 32, 3)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == expected
    # 64 tokens -> /2 -> /4 = 8 scores, one channel
    assert head(torch.randn(2, 64, 64)).shape == (2, 1, 8)


def test_glu_conv_args_double_the_up_projection() -> None:
    head = _head("convnext", 32, channels=8, c_mults=[1], strides=[2], num_blocks=[1],
                 conv_args={"glu": True, "mult": 2, "kernel_size": 3})
    state = head.state_dict()
    assert state["encoder.layers.0.layers.0.proj_up.weight_v"].shape == (32, 8, 1)
    assert state["encoder.layers.0.layers.0.dw_conv.weight_v"].shape == (8, 1, 3)
    assert torch.isfinite(head(torch.randn(1, 32, 16))).all()


def test_conv_head_has_upstreams_keys_and_soft_clip_bounds_scores() -> None:
    head = _head("conv", 64, soft_clip_scale=0.5)
    convs = {0: (64, 64, 4), 3: (64, 64, 4), 6: (64, 64, 4), 9: (64, 64, 4), 12: (1, 64, 4)}
    expected = {f"layers.{i}.weight": shape for i, shape in convs.items()}
    expected |= {f"layers.{i}.bias": (shape[0],) for i, shape in convs.items()}
    expected |= {f"layers.{i}.{p}": (64,) for i in (1, 4, 7, 10) for p in ("weight", "bias")}
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == expected
    with torch.no_grad():
        head.layers[12].bias.fill_(100.0)  # push raw scores far out
        scores = head(torch.randn(2, 64, 80))
    assert scores.shape == (2, 1, 2)  # 80 -> 40 -> 20 -> 10 -> 5 -> k4 valid conv: 2
    assert scores.abs().max() <= 0.5 and scores.min() > 0.49


def test_heads_load_strictly_and_a_missing_key_is_named() -> None:
    head = _head("convnext", 64, channels=16, c_mults=[1], strides=[2], num_blocks=[1])
    fresh = _head("convnext", 64, channels=16, c_mults=[1], strides=[2], num_blocks=[1])
    load_state_dict_checked(fresh, head.state_dict(), strict=True)
    x = torch.randn(1, 64, 32)
    assert torch.equal(fresh(x), head(x))
    state = dict(head.state_dict())
    del state["encoder.proj_in.weight_g"]
    with pytest.raises(CheckpointError, match=r"encoder\.proj_in\.weight_g"):
        load_state_dict_checked(fresh, state, strict=True)


def test_bad_head_configs_name_their_key() -> None:
    with pytest.raises(UnknownTypeError, match=r"training\.arc\.discriminator\.type.*known: conv, convnext"):
        _head("transformer", 64)
    with pytest.raises(ConfigError, match=r"divisible by 32"):
        _head("conv", 48)
    with pytest.raises(ConfigError, match=r"training\.arc\.discriminator\.config\.chanels: unknown key"):
        _head("convnext", 64, chanels=8)
    with pytest.raises(ConfigError, match=r"training\.arc\.discriminator\.config: strides needs one entry"):
        _head("convnext", 64, c_mults=[1, 2], strides=[2])


def test_relativistic_losses_push_the_margin_in_opposite_directions() -> None:
    zeros = torch.zeros(2, 1, 4)
    dis, gen = relativistic_losses(zeros, zeros)
    assert math.isclose(dis.item(), math.log(2), rel_tol=1e-6) and math.isclose(gen.item(), math.log(2), rel_tol=1e-6)
    dis, gen = relativistic_losses(zeros + 5.0, zeros)  # the discriminator separates real from fake
    assert dis.item() < 0.01 and gen.item() > 4.9
    real = torch.zeros(3, requires_grad=True)
    fake = torch.zeros(3, requires_grad=True)
    relativistic_losses(real, fake)[1].backward()  # the generator loss wants fake scores up, real down
    assert (fake.grad < 0).all() and (real.grad > 0).all()
