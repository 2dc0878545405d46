"""Quantizing bottlenecks built from 0.0.20-style configs: tokens, decode_tokens, VAE variants,
quantize_on_decode, noise channels, and config errors that name the key."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.bottlenecks import BOTTLENECKS
from stable_audio_ops.models.factory import create_model_from_config

CONFIGS = {
    "rvq": {"dim": 4, "codebook_size": 8, "num_quantizers": 2, "kmeans_init": False},
    "rvq_vae": {"dim": 4, "codebook_size": 8, "num_quantizers": 2, "kmeans_init": False},
    "dac_rvq": {"input_dim": 4, "n_codebooks": 2, "codebook_size": 8, "codebook_dim": 2},
    "dac_rvq_vae": {"input_dim": 4, "n_codebooks": 2, "codebook_size": 8, "codebook_dim": 2},
    "fsq": {"levels": [5, 4, 3, 3], "num_codebooks": 1},
    "dithered_fsq": {"dim": 4, "levels": 5},
}
TOKEN_SHAPES = {"rvq": (2, 6, 2), "rvq_vae": (2, 6, 2), "dac_rvq": (2, 2, 6), "dac_rvq_vae": (2, 2, 6),
                "fsq": (2, 1, 6), "dithered_fsq": (2, 6, 1)}


def _build(kind: str, **overrides):
    cfg = dict(CONFIGS[kind], **overrides)
    return BOTTLENECKS[kind](ConfigNode({"type": kind, "config": cfg}, "model.json", "model.bottleneck"))


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_encode_gives_tokens_in_upstream_layout_that_decode_back_to_the_latents(kind: str) -> None:
    torch.manual_seed(0)
    bottleneck = _build(kind).eval()
    assert bottleneck.is_discrete and bottleneck.num_quantizers in (1, 2)
    channels = 8 if kind.endswith("_vae") else 4
    with torch.no_grad():
        latents, info = bottleneck.encode(torch.randn(2, channels, 6), return_info=True)
        tokens = info[bottleneck.tokens_id]
        assert tuple(tokens.shape) == TOKEN_SHAPES[kind] and not tokens.is_floating_point()
        assert int(tokens.min()) >= 0 and int(tokens.max()) < bottleneck.codebook_size
        torch.testing.assert_close(bottleneck.decode_tokens(tokens), latents, atol=1e-5, rtol=1e-5)
    if kind.endswith("_vae"):
        assert info["kl"].dim() == 0 and info["kl"] > 0


def test_vae_variants_pin_their_sample_with_noise() -> None:
    bottleneck = _build("dac_rvq_vae").eval()
    x, noise = torch.randn(1, 8, 5), torch.randn(1, 4, 5)
    with torch.no_grad():
        a, info = bottleneck.encode(x, return_info=True, noise=noise)
        b = bottleneck.encode(x, noise=noise)
    assert torch.equal(a, b)
    std = torch.nn.functional.softplus(x[:, 4:]) + 1e-4
    torch.testing.assert_close(info["pre_quantizer"], x[:, :4] + noise * std)


def test_dac_quantize_on_decode_keeps_encode_continuous_and_returns_a_tensor() -> None:
    bottleneck = _build("dac_rvq", quantize_on_decode=True).eval()
    x = torch.randn(1, 4, 5)
    with torch.no_grad():
        encoded = bottleneck.encode(x)  # 0.0.20 returns a tuple here
        assert isinstance(encoded, torch.Tensor) and torch.equal(encoded, x)
        torch.testing.assert_close(bottleneck.decode(encoded), bottleneck.quantizer(x)[0])


def test_noise_augment_channels_are_appended_on_decode_and_the_decoder_must_expect_them() -> None:
    bottleneck = _build("fsq", noise_augment_dim=2)
    z = torch.randn(1, 4, 5)
    pinned = torch.ones(1, 2, 5)
    assert torch.equal(bottleneck.decode(z, noise=pinned), torch.cat([z, pinned], 1))
    assert bottleneck.decode(z).shape == (1, 6, 5)
    cfg = _autoencoder_config({"type": "fsq", "config": dict(CONFIGS["fsq"], noise_augment_dim=2)})
    with pytest.raises(ConfigError, match=r"decoder\.config\.latent_dim: is 4 but model\.latent_dim is 4 "
                                          r"\+ noise_augment_dim 2"):
        create_model_from_config(cfg)
    cfg["model"]["decoder"]["config"]["latent_dim"] = 6
    assert create_model_from_config(cfg).eval().decode(torch.randn(1, 4, 3)).shape == (1, 1, 24)


def test_fsq_with_one_codebook_needs_no_keep_num_codebooks_dim() -> None:
    bottleneck = _build("fsq")  # 0.0.20 raises in encode without keep_num_codebooks_dim: true
    _, info = bottleneck.encode(torch.randn(1, 4, 3), return_info=True)
    assert info["quantizer_indices"].shape == (1, 1, 3)


@pytest.mark.parametrize(("kind", "override", "key"), [
    ("rvq", {"heads": 2}, "model.bottleneck.config.heads: unknown key"),
    ("rvq", {"decay": 2.0}, "model.bottleneck.config.decay: must be in [0, 1]"),
    ("dac_rvq", {"codebook_dim": [2]}, "model.bottleneck.config.codebook_dim: expected a positive int or a list of 2"),
    ("dac_rvq", {"quantizer_dropout": 3}, "model.bottleneck.config.quantizer_dropout"),
    ("dac_rvq_vae", {"noise_augment_dim": 2}, "model.bottleneck.config.noise_augment_dim"),
    ("fsq", {"levels": [1, 4]}, "model.bottleneck.config.levels: expected a non-empty list of ints >= 2"),
    ("dithered_fsq", {"levels": [5, 5]}, "model.bottleneck.config.levels: has 2 entries but dim is 4"),
])
def test_bad_config_values_name_the_key(kind: str, override: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _build(kind, **override)
    assert key in str(err.value) and "model.json" in str(err.value)


def _autoencoder_config(bottleneck: dict, latent_dim: int = 4) -> dict:
    enc_dim = latent_dim * (2 if bottleneck["type"].endswith("vae") else 1)
    oobleck = {"channels": 4, "c_mults": [1, 2], "strides": [2, 4], "use_snake": True}
    return {
        "model_type": "autoencoder", "sample_rate": 16000, "sample_size": 64, "audio_channels": 1,
        "model": {
            "encoder": {"type": "oobleck", "config": dict(oobleck, in_channels=1, latent_dim=enc_dim)},
            "decoder": {"type": "oobleck", "config": dict(oobleck, out_channels=1, latent_dim=latent_dim)},
            "bottleneck": bottleneck, "latent_dim": latent_dim, "downsampling_ratio": 8, "io_channels": 1,
        },
    }


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_autoencoder_decode_tokens_equals_decoding_the_encoded_latents(kind: str) -> None:
    torch.manual_seed(0)
    model = create_model_from_config(_autoencoder_config({"type": kind, "config": CONFIGS[kind]})).eval()
    assert model.is_discrete
    audio = torch.randn(2, 1, 64)
    with torch.no_grad():
        latents, info = model.encode(audio, return_info=True)
        decoded = model.decode_tokens(info[model.bottleneck.tokens_id])
        torch.testing.assert_close(decoded, model.decode(latents), atol=1e-5, rtol=1e-5)
    assert decoded.shape == (2, 1, 64)


def test_decode_tokens_of_a_continuous_autoencoder_is_a_clear_error() -> None:
    model = create_model_from_config(_autoencoder_config({"type": "vae"}))
    with pytest.raises(ValueError, match="decode_tokens needs an autoencoder with a discrete bottleneck"):
        model.decode_tokens(torch.zeros(1, 2, 3, dtype=torch.long))


def test_vae_variants_have_exactly_the_keys_of_their_plain_quantizer() -> None:
    """rvq_vae / dac_rvq_vae have no parity fixture; 0.0.20 builds them from the same quantizer classes."""
    assert set(_build("rvq_vae").state_dict()) == set(_build("rvq").state_dict())
    assert set(_build("dac_rvq_vae").state_dict()) == set(_build("dac_rvq").state_dict())
    assert "quantizer.layers.1._codebook.embed_avg" in _build("rvq_vae").state_dict()
    assert "quantizer.quantizers.1.in_proj.weight_g" in _build("dac_rvq_vae").state_dict()
