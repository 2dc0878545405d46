"""``dac`` discriminator: upstream checkpoint keys, STFT framing, LSGAN/hinge and feature-matching losses, factory."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.dac_discriminator import MRD, DACGANLoss
from stable_audio_ops.models.discriminators import create_discriminator_from_config

WN = ("bias", "weight_g", "weight_v")


def _build(config: dict, in_channels: int = 1, sample_rate: int = 16000) -> DACGANLoss:
    return create_discriminator_from_config(
        {"type": "dac", "config": config}, in_channels=in_channels, sample_rate=sample_rate
    )


def upstream_keys(periods: int, rates: int, ffts: int, bands: int = 5) -> list[str]:
    """0.0.20's names: DACGANLoss.discriminator.discriminators = [MPD..., MSD..., MRD...]; DAC's WNConv
    wraps every conv but conv_post as Sequential(conv, LeakyReLU), hence ``convs.{j}.0``."""
    keys, index = [], 0
    for n_convs, count in ((5, periods), (6, rates)):
        for _ in range(count):
            prefix = f"discriminator.discriminators.{index}"
            keys += [f"{prefix}.convs.{j}.0.{p}" for j in range(n_convs) for p in WN]
            keys += [f"{prefix}.conv_post.{p}" for p in WN]
            index += 1
    for _ in range(ffts):
        prefix = f"discriminator.discriminators.{index}"
        keys += [f"{prefix}.band_convs.{b}.{j}.0.{p}" for b in range(bands) for j in range(5) for p in WN]
        keys += [f"{prefix}.conv_post.{p}" for p in WN]
        index += 1
    return keys


def test_default_config_keys_match_upstream():
    disc = _build({})
    assert sorted(disc.state_dict()) == sorted(upstream_keys(periods=5, rates=0, ffts=3))
    assert disc.state_dict()["discriminator.discriminators.0.convs.3.0.weight_v"].shape == (1024, 512, 5, 1)


def test_small_config_with_msd_keys_match_upstream_and_channels_are_filled():
    disc = _build({"periods": [2], "rates": [1, 2], "fft_sizes": [128], "use_hinge": True}, in_channels=2)
    assert sorted(disc.state_dict()) == sorted(upstream_keys(periods=1, rates=2, ffts=1))
    state = disc.state_dict()
    assert state["discriminator.discriminators.0.convs.0.0.weight_v"].shape == (32, 2, 5, 1)  # MPD takes channels
    assert state["discriminator.discriminators.1.convs.1.0.weight_v"].shape == (64, 4, 41)  # grouped MSD conv
    assert state["discriminator.discriminators.3.band_convs.0.0.0.weight_v"].shape == (32, 2, 3, 9)  # re/im
    audio = torch.randn(2, 2, 1000)
    with torch.no_grad():
        outputs = disc.discriminator(audio)
    assert outputs[2][-1].shape[-1] < outputs[1][-1].shape[-1]  # the rate-2 MSD sees half the samples


def test_mrd_frames_follow_match_stride_and_bands_split_frequency():
    mrd = MRD(128, sample_rate=16000)
    bands = mrd.spectrogram(torch.randn(3, 1, 1000))
    # ceil(1000 / 32) frames; band edges of 65 bins: 0, 6, 16, 32, 48, 65
    assert [b.shape for b in bands] == [(3, 2, 32, w) for w in (6, 10, 16, 16, 17)]
    stereo = mrd.spectrogram(torch.randn(3, 2, 1000))
    assert stereo[0].shape[0] == 6  # channels folded into the batch


@pytest.mark.parametrize("use_hinge", [False, True])
def test_losses_follow_lsgan_or_hinge_on_the_logits(use_hinge):
    torch.manual_seed(0)
    disc = _build({"periods": [2, 3], "fft_sizes": [128], "use_hinge": use_hinge})
    reals, fakes = torch.randn(2, 1, 800), torch.randn(2, 1, 800)
    dis, gen, fm = disc.loss(reals, fakes)
    with torch.no_grad():
        d_fake, d_real = disc(fakes, reals)
    if use_hinge:
        expected_dis = sum(f[-1].relu().mean() + (1 - r[-1]).relu().mean() for f, r in zip(d_fake, d_real, strict=True)) / 3
        expected_gen = sum((1 - f[-1]).relu().mean() for f in d_fake) / 3
    else:
        expected_dis = sum((f[-1] ** 2).mean() + ((1 - r[-1]) ** 2).mean() for f, r in zip(d_fake, d_real, strict=True)) / 3
        expected_gen = sum(((1 - f[-1]) ** 2).mean() for f in d_fake) / 3
    expected_fm = sum(
        sum((f[j] - r[j]).abs().mean() for j in range(len(f) - 1)) / (len(f) - 1) for f, r in zip(d_fake, d_real, strict=True)
    ) / 3
    assert dis.item() == pytest.approx(expected_dis.item(), rel=1e-5)
    assert gen.item() == pytest.approx(expected_gen.item(), rel=1e-5)
    assert fm.item() == pytest.approx(expected_fm.item(), rel=1e-5)
    # the critics judge shape, not level: a louder copy of the real audio matches it exactly
    assert disc.loss(reals, 3.0 * reals)[2].item() == pytest.approx(0.0, abs=1e-5)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"config\.filters"):
        _build({"filters": 4})
    with pytest.raises(ConfigError, match=r"config\.sample_rate"):
        _build({"sample_rate": 44100}, sample_rate=16000)
    with pytest.raises(ConfigError, match=r"config\.channels"):
        _build({"channels": 1}, in_channels=2)
    with pytest.raises(ConfigError, match="no critic"):
        _build({"periods": [], "fft_sizes": []})
