"""EnCodec MS-STFT discriminator: upstream checkpoint keys, loss shapes, GAN loss behaviour, factory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.models.discriminators import (
    EncodecDiscriminator,
    create_discriminator_from_config,
)

CASE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "unwrap_autoencoder"
PREFIX = "discriminator."


def _fixture():
    model_config = json.loads((CASE / "model_config.json").read_text())
    state = torch.load(CASE / "wrapped.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    disc_state = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    return model_config, disc_state


def _build(model_config: dict) -> EncodecDiscriminator:
    # Upstream's wrapper passes in_channels = the autoencoder's out_channels (the decoder's channels).
    out_channels = model_config["model"]["decoder"]["config"]["out_channels"]
    return create_discriminator_from_config(
        model_config["training"]["loss_configs"]["discriminator"], in_channels=out_channels
    )


def test_upstream_discriminator_weights_load_strictly():
    model_config, disc_state = _fixture()
    disc = _build(model_config)
    assert len(disc_state) == 38
    assert sorted(disc.state_dict()) == sorted(disc_state)
    disc.load_state_dict(disc_state, strict=True)
    assert disc.state_dict()["discriminators.discriminators.0.convs.0.conv.weight_v"].shape == (4, 2, 3, 9)
    assert torch.equal(disc.discriminators.discriminators[0].spec_transform.window, torch.hann_window(128))
    assert torch.equal(disc.discriminators.discriminators[1].spec_transform.window, torch.hann_window(64))


def test_forward_and_loss_shapes():
    model_config, disc_state = _fixture()
    disc = _build(model_config)
    disc.load_state_dict(disc_state)
    audio = torch.randn(2, 1, 512)
    logits, features = disc(audio)
    assert len(logits) == len(features) == 2
    # frames = (512 - n_fft) // hop + 1; frequency bins = n_fft // 2 + 1; stride (1, 1) keeps both.
    assert logits[0].shape == (2, 1, 13, 65) and logits[1].shape == (2, 1, 29, 33)
    assert [f.shape[1] for f in features[0]] == [4, 4, 4, 4, 4]
    losses = disc.loss(audio, torch.randn(2, 1, 512))
    assert all(value.shape == () and torch.isfinite(value) for value in losses)
    _, _, feature_matching = disc.loss(audio, audio.clone())
    assert feature_matching.item() == 0.0


def test_stereo_discriminator_sees_real_and_imaginary_parts_of_both_channels():
    disc = create_discriminator_from_config(
        {
            "type": "encodec",
            "config": {"filters": 4, "n_ffts": [64], "hop_lengths": [16], "win_lengths": [64]},
        },
        in_channels=2,
    )
    assert disc.state_dict()["discriminators.discriminators.0.convs.0.conv.weight_v"].shape == (4, 4, 3, 9)


@pytest.mark.parametrize("loss_type", ["hinge", "rpgan"])
def test_training_the_discriminator_lowers_its_loss_and_raises_the_generator_loss(loss_type):
    torch.manual_seed(0)
    disc = EncodecDiscriminator(
        filters=4, n_ffts=[64], hop_lengths=[16], win_lengths=[64], loss_type=loss_type
    )
    t = torch.arange(512) / 16000
    reals = torch.sin(2 * torch.pi * 500 * t).expand(4, 1, 512).clone()
    fakes = 0.5 * torch.randn(4, 1, 512, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    dis_before, adv_before, _ = disc.loss(reals, fakes)
    for _ in range(25):
        dis, _, _ = disc.loss(reals, fakes)
        opt.zero_grad()
        dis.backward()
        opt.step()
    with torch.no_grad():
        dis_after, adv_after, _ = disc.loss(reals, fakes)
    assert dis_after.item() < dis_before.item()
    assert adv_after.item() > adv_before.item()


def test_normalized_feature_matching_divides_by_real_feature_scale():
    torch.manual_seed(0)
    kwargs = {"filters": 4, "n_ffts": [64], "hop_lengths": [16], "win_lengths": [64]}
    plain = EncodecDiscriminator(**kwargs)
    normed = EncodecDiscriminator(normalize_losses=True, **kwargs)
    normed.load_state_dict(plain.state_dict())
    reals, fakes = torch.randn(2, 1, 256), torch.randn(2, 1, 256)
    with torch.no_grad():
        _, real_features = plain(reals)
        _, fake_features = plain(fakes)
        expected = sum(
            (r - f).abs().mean() / (r.abs().mean() + 1e-3)
            for r, f in zip(real_features[0], fake_features[0], strict=True)
        ) / len(real_features[0])
        assert normed.loss(reals, fakes)[2].item() == pytest.approx(expected.item(), rel=1e-6)


def test_factory_errors_name_the_problem():
    with pytest.raises(UnknownTypeError, match="encodec"):
        create_discriminator_from_config({"type": "melgan", "config": {}})
    with pytest.raises(ConfigError, match="in_channels"):
        create_discriminator_from_config(
            {"type": "encodec", "config": {"filters": 4, "in_channels": 2}}, in_channels=1
        )
    with pytest.raises(ConfigError, match="filters"):
        create_discriminator_from_config({"type": "encodec", "config": {}})
    with pytest.raises(ConfigError, match="bogus"):
        create_discriminator_from_config({"type": "encodec", "config": {"filters": 4, "bogus": 1}})
    with pytest.raises(UnknownTypeError, match="hinge"):
        create_discriminator_from_config({"type": "encodec", "config": {"filters": 4, "loss_type": "lsgan"}})
