"""``big_vgan`` discriminator: upstream checkpoint keys, CQT critic shapes, summed MPD + CQT losses, factory."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.discriminators import create_discriminator_from_config

WN = ("bias", "weight_g", "weight_v")
PLAIN = ("weight", "bias")
TINY = {"periods": [2], "cqtd_filters": 4, "cqtd_dilations": [1, 2], "cqtd_hop_lengths": [64, 32],
        "cqtd_n_octaves": [3, 2], "cqtd_bins_per_octaves": [12, 8]}


def _build(config: dict, in_channels: int = 1, sample_rate: int = 16000):
    return create_discriminator_from_config(
        {"type": "big_vgan", "config": config}, in_channels=in_channels, sample_rate=sample_rate
    )


def upstream_keys(periods: int, octaves: list[int], dilations: int, early: bool = False) -> list[str]:
    """0.0.20's names: ``mpd`` is a DACGANLoss holding only MPDs; ``cqt.discriminators`` one BigVGAN
    DiscriminatorCQT per scale (nnAudio CQT2010v2 buffers, plus its early-downsampling filter when the
    top octave lies far below Nyquist; torchaudio Resample kernel)."""
    keys = []
    for i in range(periods):
        prefix = f"mpd.discriminator.discriminators.{i}"
        keys += [f"{prefix}.convs.{j}.0.{p}" for j in range(5) for p in WN] + [f"{prefix}.conv_post.{p}" for p in WN]
    for s, n_octaves in enumerate(octaves):
        prefix = f"cqt.discriminators.{s}"
        keys += [f"{prefix}.cqt_transform.{b}" for b in ("lowpass_filter", "lenghts", "cqt_kernels_real",
                                                          "cqt_kernels_imag")]
        keys += [f"{prefix}.cqt_transform.early_downsample_filter"] if early else []
        keys += [f"{prefix}.conv_pres.{o}.{p}" for o in range(n_octaves) for p in PLAIN]
        keys += [f"{prefix}.convs.0.{p}" for p in PLAIN]
        keys += [f"{prefix}.convs.{j}.{p}" for j in range(1, dilations + 2) for p in WN]
        keys += [f"{prefix}.conv_post.{p}" for p in WN] + [f"{prefix}.resample.kernel"]
    return keys


def test_default_config_keys_match_upstream():
    disc = _build({}, sample_rate=44100)
    assert sorted(disc.state_dict()) == sorted(upstream_keys(5, [9, 9, 9], 3))
    state = disc.state_dict()
    assert state["cqt.discriminators.2.cqt_transform.cqt_kernels_real"].shape[0] == 48
    assert state["cqt.discriminators.0.convs.1.weight_v"].shape == (32, 32, 3, 9)


def test_tiny_config_keys_shapes_and_losses():
    torch.manual_seed(0)
    disc = _build(TINY)
    # the top octaves (<= 250 Hz) sit far below the 16 kHz Nyquist of the 2x-upsampled audio
    assert sorted(disc.state_dict()) == sorted(upstream_keys(1, [3, 2], 2, early=True))
    critic = disc.cqt.discriminators[0]
    reals, fakes = torch.randn(2, 1, 512), torch.randn(2, 1, 512)
    with torch.no_grad():
        logits, fmap = critic(reals)
        # 2x upsampled -> 1024 samples / hop 64 + 1 frames; 36 bins halved by each of the 2 strided convs
        assert logits.shape == (2, 1, 17, 9) and len(fmap) == 4
        dis, gen, fm = disc.loss(reals, fakes)
        mpd = disc.mpd.loss(reals, fakes)
        cqt = disc.cqt.loss(reals, fakes)
    for total, a, b in zip((dis, gen, fm), mpd, cqt, strict=True):
        assert total.item() == pytest.approx((a + b).item(), rel=1e-5)
    with torch.no_grad():
        assert disc.cqt.loss(reals, reals.clone())[2].item() == 0.0


def test_stereo_critics_take_real_and_imaginary_parts_of_each_channel():
    disc = _build(TINY, in_channels=2)
    assert disc.state_dict()["cqt.discriminators.0.conv_pres.0.weight"].shape == (4, 4, 3, 9)
    assert disc.state_dict()["mpd.discriminator.discriminators.0.convs.0.0.weight_v"].shape[1] == 2
    with torch.no_grad():
        assert all(torch.isfinite(v) for v in disc.loss(torch.randn(1, 2, 512), torch.randn(1, 2, 512)))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"config\.cqtd_bogus"):
        _build({"cqtd_bogus": 1})
    with pytest.raises(ConfigError, match=r"config\.cqtd_in_channels"):
        _build({"cqtd_in_channels": 1}, in_channels=2)
    with pytest.raises(ConfigError, match="Nyquist"):
        _build({"cqtd_n_octaves": [12, 9, 9]})
