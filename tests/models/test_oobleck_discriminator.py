"""``oobleck`` discriminator: upstream checkpoint keys, critic layout, hinge/feature-matching losses, factory."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.discriminators import create_discriminator_from_config, hinge_losses


def _build(config: dict | None = None, in_channels: int | None = 1):
    return create_discriminator_from_config({"type": "oobleck", "config": config or {}}, in_channels=in_channels)


def upstream_keys() -> list[str]:
    """stable-audio-tools 0.0.20's names: MultiDiscriminator([MultiScale(3 critics), MultiPeriod(5 critics)]),
    each critic ``net`` = 4 x (weight-normed conv, SiLU) + a plain 1x1 conv at index 8."""
    keys = []
    for family, critics in ((0, 3), (1, 5)):
        for critic in range(critics):
            prefix = f"multi_discriminator.discriminators.{family}.layers.{critic}.net"
            for conv in (0, 2, 4, 6):
                keys += [f"{prefix}.{conv}.{p}" for p in ("bias", "weight_g", "weight_v")]
            keys += [f"{prefix}.8.weight", f"{prefix}.8.bias"]
    return keys


def test_state_dict_keys_and_shapes_match_upstream():
    disc = _build()
    state = disc.state_dict()
    assert sorted(state) == sorted(upstream_keys())
    # capacity 32 doubling over 4 layers, kernel 15: 1-D on the scale critics, 15x15 on the period critics
    assert state["multi_discriminator.discriminators.0.layers.0.net.0.weight_v"].shape == (32, 1, 15)
    assert state["multi_discriminator.discriminators.0.layers.2.net.6.weight_v"].shape == (256, 128, 15)
    assert state["multi_discriminator.discriminators.1.layers.4.net.0.weight_v"].shape == (32, 1, 15, 15)
    assert state["multi_discriminator.discriminators.1.layers.0.net.8.weight"].shape == (1, 256, 1, 1)


def test_stereo_model_fills_in_channels_and_an_explicit_value_is_kept():
    assert _build(in_channels=2).state_dict()[
        "multi_discriminator.discriminators.1.layers.0.net.0.weight_v"].shape[1] == 2
    explicit = _build({"in_channels": 1}, in_channels=None)
    assert explicit.state_dict()["multi_discriminator.discriminators.0.layers.0.net.0.weight_v"].shape[1] == 1


def test_loss_is_hinge_on_scores_summed_over_critics_and_feature_matching_sums_maps():
    torch.manual_seed(0)
    disc = _build()
    reals, fakes = torch.randn(2, 1, 600), torch.randn(2, 1, 600)
    with torch.no_grad():
        dis, adv, fm = disc.loss(reals, fakes)
        score_real, features_real = disc(reals)
        score_fake, features_fake = disc(fakes)
    # 3 scale + 5 period critics, 5 convs each: 40 feature maps
    assert len(features_real) == 40 and score_real.shape == (2,)
    expected_dis, expected_adv = hinge_losses(score_real, score_fake)
    assert dis.item() == pytest.approx(expected_dis.item(), rel=1e-5)
    assert adv.item() == pytest.approx(expected_adv.item(), rel=1e-5)
    expected_fm = sum((r - f).abs().mean() for r, f in zip(features_real, features_fake, strict=True))
    assert fm.item() == pytest.approx(expected_fm.item(), rel=1e-5)
    with torch.no_grad():
        assert disc.loss(reals, reals.clone())[2].item() == 0.0


def test_unknown_option_names_its_key_path():
    with pytest.raises(ConfigError, match=r"config\.filters"):
        _build({"filters": 4})
    with pytest.raises(ConfigError, match="in_channels"):
        _build({"in_channels": "two"})
