"""Signal pretransforms built from configs: ``patched`` and ``wavelet`` round trips, lengths, errors,
and use under a diffusion model. (Numerical parity with 0.0.20: tests/parity/test_pretransforms.py.)"""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.factory import create_model_from_config, create_pretransform_from_config
from stable_audio_ops.models.pretransforms import PatchedPretransform, PQMFPretransform, WaveletPretransform


def test_patched_round_trip_pads_odd_lengths_and_folds_samples_into_channels() -> None:
    pre = create_pretransform_from_config({"type": "patched", "config": {"channels": 2, "patch_size": 4}}, 16000)
    assert isinstance(pre, PatchedPretransform) and pre.encoded_channels == 8 and pre.downsampling_ratio == 4
    audio = torch.randn(1, 2, 10)
    z = pre.encode(audio)
    assert z.shape == (1, 8, 3)
    assert torch.equal(z[0, :4, 0], audio[0, 0, :4])  # channel 0's first patch
    decoded = pre.decode(z)
    assert torch.equal(decoded[..., :10], audio) and torch.equal(decoded[..., 10:], torch.zeros(1, 2, 2))


def test_patched_oversampling_reports_the_real_audio_samples_per_frame() -> None:
    pre = create_pretransform_from_config(
        {"type": "patched", "config": {"channels": 1, "patch_size": 4, "oversampling": 2}}, 16000)
    audio = torch.randn(1, 1, 64)
    z = pre.encode(audio)
    assert pre.downsampling_ratio == 2 and z.shape[-1] == 64 // pre.downsampling_ratio
    assert pre.decode(z).shape == audio.shape


def test_postfilter_is_frozen_like_every_pretransform_unless_enable_grad() -> None:
    config = {"type": "patched", "config": {"channels": 1, "patch_size": 8, "postfilter_channels": 4}}
    frozen = create_pretransform_from_config(config, 16000)
    assert "postfilter.4.weight_v" in frozen.state_dict() and not any(p.requires_grad for p in frozen.parameters())
    trainable = create_pretransform_from_config({**config, "enable_grad": True}, 16000)
    assert all(p.requires_grad for p in trainable.parameters())


def test_wavelet_pretransform_round_trip() -> None:
    pre = create_pretransform_from_config({"type": "wavelet", "config": {"channels": 2, "levels": 2}}, 16000)
    assert isinstance(pre, WaveletPretransform) and pre.encoded_channels == 8 and pre.downsampling_ratio == 4
    audio = torch.randn(1, 2, 64)
    torch.testing.assert_close(pre.decode(pre.encode(audio)), audio, atol=1e-5, rtol=1e-5)


def test_pqmf_pretransform_splits_each_channel_into_bands_and_back() -> None:
    pre = create_pretransform_from_config({"type": "pqmf", "config": {"num_bands": 4, "channels": 2}}, 16000)
    assert isinstance(pre, PQMFPretransform) and pre.encoded_channels == 8 and pre.downsampling_ratio == 4
    audio = torch.randn(1, 2, 1024, generator=torch.Generator().manual_seed(0))
    z = pre.encode(audio)
    assert z.shape == (1, 8, 256)
    assert (pre.decode(z) - audio)[..., 200:-200].abs().max() < 0.02


@pytest.mark.parametrize(("config", "pattern"), [
    ({"type": "pqmf", "config": {"num_bands": 12}}, r"config\.num_bands: must be a power of two"),
    ({"type": "wavelet", "config": {"channels": 1, "levels": 2, "wavelet": "nope"}},
     r"config\.wavelet: unknown wavelet 'nope'"),
    ({"type": "wavelet", "config": {"channels": 1}}, r"config\.levels"),
    ({"type": "patched", "config": {"channels": 1, "patch_size": 6, "oversampling": 4}},
     r"config\.oversampling: 4 does not divide patch_size 6"),
    ({"type": "patched", "config": {"channels": 1, "patch_size": 4, "stride": 2}}, r"config\.stride: unknown key"),
])
def test_config_errors_name_the_key(config: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        create_pretransform_from_config(config, 16000)


def test_uncond_dit_over_a_wavelet_pretransform_builds_with_matching_channels() -> None:
    config = {"model_type": "diffusion_uncond", "sample_size": 256, "sample_rate": 16000,
              "model": {"type": "dit", "config": {"in_channels": 8, "embed_dim": 32, "depth": 1, "num_heads": 1},
                        "pretransform": {"type": "wavelet", "config": {"channels": 1, "levels": 3}}}}
    model = create_model_from_config(config)
    assert model.min_input_length == 8 and model.pretransform.encoded_channels == 8
    config["model"]["config"]["in_channels"] = 4
    with pytest.raises(ConfigError, match="pretransform gives 8 channels"):
        create_model_from_config(config)
