"""``hil`` discriminator: 0.0.20's state-dict keys, PQMF band split, the three GAN objectives, config errors."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.discriminators import create_discriminator_from_config
from stable_audio_ops.models.gan_losses import GAN_OBJECTIVES, feature_distance
from stable_audio_ops.models.hil_discriminator import KaiserPQMF

SMALL = {"filters": 4, "n_ffts": [64], "hop_lengths": [16], "win_lengths": [64], "periods": [1, 3], "taps": 16,
         "cutoff_freqs": [0, 0.17], "channels": [4, 8], "strides": [2, 1], "kernel_sizes": [3, 5]}


def _build(config: dict, in_channels: int = 2):
    return create_discriminator_from_config({"type": "hil", "config": config}, in_channels=in_channels,
                                            sample_rate=16000)


def upstream_keys(stft_scales: int, stft_convs: int, periods: list[int], fb_convs: int) -> list[str]:
    """0.0.20: EnCodec MS-STFT critics (legacy weight norm, ``spec_transform.window``) then filter-bank critics
    (parametrization weight norm; ``pqmf.pqmf_filter`` except for period 1)."""
    keys = []
    for s in range(stft_scales):
        prefix = f"stft_discriminators.discriminators.{s}"
        keys.append(f"{prefix}.spec_transform.window")
        for conv in [f"convs.{i}" for i in range(stft_convs)] + ["conv_post"]:
            keys += [f"{prefix}.{conv}.conv.{p}" for p in ("bias", "weight_g", "weight_v")]
    for i, period in enumerate(periods):
        prefix = f"fb_discriminators.discriminators.{i}"
        if period != 1:
            keys.append(f"{prefix}.pqmf.pqmf_filter")
        for conv in [f"convs.{j}" for j in range(fb_convs)] + ["conv_post"]:
            keys += [f"{prefix}.{conv}.{p}" for p in
                     ("bias", "parametrizations.weight.original0", "parametrizations.weight.original1")]
    return keys


def test_state_dict_keys_and_shapes_match_upstream():
    state = _build(SMALL).state_dict()
    assert sorted(state) == sorted(upstream_keys(1, 5, [1, 3], 2))
    assert state["fb_discriminators.discriminators.1.pqmf.pqmf_filter"].shape == (3, 1, 17)
    assert state["fb_discriminators.discriminators.0.convs.1.parametrizations.weight.original1"].shape == (8, 4, 1, 5)
    assert state["stft_discriminators.discriminators.0.convs.0.conv.weight_v"].shape == (4, 4, 3, 9)  # 2 ch x re/im


def test_defaults_are_upstreams_six_filter_bank_critics():
    state = _build({"filters": 4, "n_ffts": [64], "hop_lengths": [16], "win_lengths": [64]}).state_dict()
    assert sorted(state) == sorted(upstream_keys(1, 5, [1, 2, 3, 5, 7, 11], 5))
    assert state["fb_discriminators.discriminators.5.pqmf.pqmf_filter"].shape == (11, 1, 257)  # 256 taps
    assert state["fb_discriminators.discriminators.0.convs.4.parametrizations.weight.original1"].shape == (1024, 1024, 1, 5)


def test_pqmf_puts_a_low_tone_in_the_first_band_and_a_high_tone_in_the_last():
    bank = KaiserPQMF(subbands=2, taps=64, cutoff_freq=0.25, beta=8.0)
    t = torch.arange(4096) / 16000
    low = bank(torch.sin(2 * torch.pi * 1000 * t)[None])[0]
    high = bank(torch.sin(2 * torch.pi * 7000 * t)[None])[0]
    energy_low, energy_high = low.pow(2).sum(-1), high.pow(2).sum(-1)
    assert energy_low[0] > 100 * energy_low[1]
    assert energy_high[1] > 100 * energy_high[0]


@pytest.mark.parametrize("loss_type", ["rpgan", "hinge", "sigmoid_rpgan"])
def test_loss_averages_the_objective_over_all_critics(loss_type):
    torch.manual_seed(0)
    disc = _build({**SMALL, "loss_type": loss_type, "normalize_losses": True})
    reals, fakes = torch.randn(2, 2, 400), torch.randn(2, 2, 400)
    with torch.no_grad():
        dis, adv, fm = disc.loss(reals, fakes)
        logits_real, features_real = disc(reals)
        logits_fake, features_fake = disc(fakes)
    assert len(logits_real) == 3  # 1 STFT scale + 2 filter-bank periods
    assert logits_real[1].shape[0] == 2 and logits_real[1].dim() == 2  # filter-bank logits are flattened
    pairs = [GAN_OBJECTIVES[loss_type](r, f) for r, f in zip(logits_real, logits_fake, strict=True)]
    assert dis.item() == pytest.approx(sum(p[0].item() for p in pairs) / 3, rel=1e-5)
    assert adv.item() == pytest.approx(sum(p[1].item() for p in pairs) / 3, rel=1e-5)
    expected_fm = sum(
        sum(feature_distance(r, f, True) for r, f in zip(lr, lf, strict=True)) / len(lr)
        for lr, lf in zip(features_real, features_fake, strict=True)
    ) / 3
    assert fm.item() == pytest.approx(float(expected_fm), rel=1e-5)
    if loss_type == "sigmoid_rpgan":
        assert (dis + adv).item() == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize(("config", "key"), [
    ({**SMALL, "n_chroma": 12}, "config.n_chroma"),
    ({**SMALL, "add_noise": True}, "config.add_noise"),
    ({k: v for k, v in SMALL.items() if k != "filters"}, "config.filters"),
    ({**SMALL, "n_fft": 64}, "config.n_fft"),
    ({**SMALL, "norm": "batch_norm"}, "config"),
])
def test_config_errors_name_the_key(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _build(config)


def test_every_filter_bank_option_is_routed_to_the_filter_bank_critics():
    import inspect

    from stable_audio_ops.models.hil_discriminator import FILTER_BANK_OPTIONS, MultiFilterBankDiscriminator

    assert FILTER_BANK_OPTIONS == set(inspect.signature(MultiFilterBankDiscriminator).parameters)
