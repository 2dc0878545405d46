"""AudioAutoencoder: shapes, chunked encode/decode vs full, iterate_batch, preprocessing, pretransforms."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.models.autoencoder import AudioAutoencoder, chunk_plan
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.pretransforms import AutoencoderPretransform


def _ae_model_section(bottleneck: dict | None, io: int = 1, latent: int = 4, channels: int = 4) -> dict:
    enc_latent = 2 * latent if bottleneck and bottleneck["type"] == "vae" else latent
    section = {
        "encoder": {"type": "oobleck", "config": {"in_channels": io, "channels": channels, "c_mults": [1, 2],
                                                  "strides": [2, 4], "latent_dim": enc_latent, "use_snake": True}},
        "decoder": {"type": "oobleck", "config": {"out_channels": io, "channels": channels, "c_mults": [1, 2],
                                                  "strides": [2, 4], "latent_dim": latent, "use_snake": True,
                                                  "final_tanh": False}},
        "latent_dim": latent,
        "downsampling_ratio": 8,
        "io_channels": io,
    }
    if bottleneck:
        section["bottleneck"] = bottleneck
    return section


def _config(bottleneck: dict | None = None, **kw) -> dict:
    return {"model_type": "autoencoder", "sample_rate": 16000, "audio_channels": kw.get("io", 1),
            "model": _ae_model_section(bottleneck, **kw)}


@pytest.fixture(scope="module")
def vae() -> AudioAutoencoder:
    torch.manual_seed(0)
    return create_model_from_config(_config({"type": "vae"})).eval()


def test_attributes_and_round_trip_shapes(vae: AudioAutoencoder) -> None:
    assert (vae.latent_dim, vae.downsampling_ratio, vae.io_channels, vae.min_length) == (4, 8, 1, 8)
    assert (vae.in_channels, vae.out_channels, vae.sample_rate, vae.soft_clip) == (1, 1, 16000, False)
    with torch.no_grad():
        z, info = vae.encode(torch.randn(2, 1, 64), return_info=True)
        assert z.shape == (2, 4, 8)
        assert info["pre_bottleneck_latents"].shape == (2, 8, 8) and info["kl"].dim() == 0
        assert vae.encode(torch.randn(2, 1, 64), skip_bottleneck=True).shape == (2, 8, 8)
        assert vae.decode(z).shape == (2, 1, 64)


def test_chunk_plan_covers_every_frame_once() -> None:
    for total, chunk, overlap in [(200, 64, 40), (100, 32, 8), (33, 32, 4), (10, 32, 8), (128, 128, 32)]:
        plan = chunk_plan(total, chunk, overlap)
        kept = [(a, b) for _, a, b in plan]
        assert kept[0][0] == 0 and kept[-1][1] == total
        assert all(prev[1] >= nxt[0] for prev, nxt in zip(kept, kept[1:], strict=False))
        assert all(start + min(chunk, total) <= total for start, _, _ in plan)
    with pytest.raises(ValueError, match="overlap < chunk_size"):
        chunk_plan(100, 32, 32)


def test_chunked_decode_matches_full_decode_when_overlap_covers_receptive_field(vae: AudioAutoencoder) -> None:
    torch.manual_seed(1)
    z = torch.randn(2, 4, 200)
    with torch.no_grad():
        full = vae.decode_audio(z)
        chunked = vae.decode_audio(z, chunked=True, chunk_size=64, overlap=40)
    assert chunked.shape == full.shape == (2, 1, 1600)
    assert torch.allclose(chunked, full, atol=1e-5)


def test_chunked_encode_with_pinned_noise_matches_full_encode(vae: AudioAutoencoder) -> None:
    torch.manual_seed(2)
    audio = torch.randn(1, 1, 8 * 150)
    noise = torch.randn(1, 4, 150)
    with torch.no_grad():
        full = vae.encode_audio(audio, noise=noise)
        chunked = vae.encode_audio(audio, chunked=True, chunk_size=64, overlap=48, noise=noise)
    assert chunked.shape == full.shape == (1, 4, 150)
    assert torch.allclose(chunked, full, atol=1e-5)


def test_chunked_encode_needs_padded_audio(vae: AudioAutoencoder) -> None:
    with pytest.raises(ValueError, match="multiple of downsampling_ratio"):
        vae.encode_audio(torch.randn(1, 1, 1001), chunked=True)


def test_iterate_batch_gives_the_same_result(vae: AudioAutoencoder) -> None:
    torch.manual_seed(3)
    audio, noise, z = torch.randn(3, 1, 64), torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    with torch.no_grad():
        assert torch.allclose(vae.encode(audio, noise=noise), vae.encode(audio, noise=noise, iterate_batch=True),
                              atol=1e-6)
        assert torch.allclose(vae.decode(z), vae.decode(z, iterate_batch=True), atol=1e-6)


def test_preprocess_resamples_mixes_to_mono_and_pads() -> None:
    model = create_model_from_config(_config({"type": "tanh"}))
    t = torch.arange(32000) / 32000
    stereo = torch.stack([torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 440 * t)])  # 1 s @ 32 kHz
    out = model.preprocess_audio_for_encoder(stereo[:, :31990], 32000)
    assert out.shape[:2] == (1, 1) and out.shape[-1] % 8 == 0 and 15995 <= out.shape[-1] < 16003
    batch = model.preprocess_audio_list_for_encoder([stereo[0, :1000], stereo[:, :3000]], [16000, 32000])
    assert batch.shape == (2, 1, 1504)
    assert torch.all(batch[0, :, 1000:] == 0)  # silence padding at the end


def test_preprocess_duplicates_mono_for_stereo_models() -> None:
    model = create_model_from_config(_config(None, io=2))
    out = model.preprocess_audio_for_encoder(torch.randn(20), 16000)
    assert out.shape == (1, 2, 24) and torch.equal(out[0, 0], out[0, 1])


def test_soft_clip_applies_tanh_to_decoder_output() -> None:
    cfg = _config(None)
    cfg["model"]["decoder"]["soft_clip"] = True
    torch.manual_seed(4)
    model = create_model_from_config(cfg).eval()
    with torch.no_grad():
        z = torch.randn(1, 4, 8) * 100
        assert torch.allclose(model.decode(z), torch.tanh(model.decoder(z)))


def test_in_and_out_channels_default_to_io_channels_and_can_differ() -> None:
    cfg = _config(None)
    cfg["model"]["out_channels"] = 2
    cfg["model"]["decoder"]["config"]["out_channels"] = 2
    model = create_model_from_config(cfg).eval()
    assert (model.in_channels, model.out_channels) == (1, 2)
    with torch.no_grad():
        assert model.decode_audio(torch.randn(1, 4, 40), chunked=True, chunk_size=16, overlap=8).shape == (1, 2, 320)


def test_autoencoder_pretransform_scales_and_stays_frozen(vae: AudioAutoencoder) -> None:
    inner = copy.deepcopy(vae)
    pre = AutoencoderPretransform(inner, scale=2.0)
    assert (pre.downsampling_ratio, pre.io_channels, pre.encoded_channels) == (8, 1, 4)
    assert not any(p.requires_grad for p in pre.parameters())
    pre.train()
    assert not pre.model.training  # a frozen pretransform ignores train()
    audio, noise = torch.randn(1, 1, 64), torch.randn(1, 4, 8)
    with torch.no_grad():
        assert torch.allclose(pre.encode(audio, noise=noise), vae.encode(audio, noise=noise) / 2, atol=1e-6)
        z = torch.randn(1, 4, 8)
        assert torch.allclose(pre.decode(z), vae.decode(z * 2), atol=1e-6)
    pre.load_state_dict(vae.state_dict())  # an unwrapped AE checkpoint loads into the inner model


def test_nested_pretransform_keys_and_shapes() -> None:
    outer_section = _ae_model_section({"type": "tanh"}, io=1, latent=3, channels=4)
    outer_section["encoder"]["config"]["in_channels"] = 4  # works on the inner VAE's latents
    outer_section["decoder"]["config"]["out_channels"] = 4
    outer_section["downsampling_ratio"] = 64
    outer_section["pretransform"] = {"type": "autoencoder", "scale": 1.5,
                                     "config": _ae_model_section({"type": "vae"})}
    cfg = {"model_type": "autoencoder", "sample_rate": 16000, "audio_channels": 1, "model": outer_section}
    model = create_model_from_config(cfg).eval()
    keys = set(model.state_dict())
    assert "pretransform.model.encoder.layers.0.weight_g" in keys and "encoder.layers.0.weight_v" in keys
    assert not any(p.requires_grad for p in model.pretransform.parameters())
    with torch.no_grad():
        z = model.encode(torch.randn(2, 1, 512))
        assert z.shape == (2, 3, 8)
        assert model.decode(z).shape == (2, 1, 512)
