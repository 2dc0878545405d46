"""``pretransform`` and ``source_mix`` conditioners (conditioners_audio), and a diffusion_cond model that
uses a ``pretransform`` and a ``lut`` conditioner end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config
from stable_audio_ops.models.conditioners import (
    CONDITIONERS,
    MultiConditioner,
    create_multi_conditioner_from_conditioning_config,
    default_text_encoder_path,
)
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.meta_init import meta_tensor_names, parameters_on_meta

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
WAVELET = {"type": "wavelet", "config": {"channels": 1, "levels": 2}}  # 1 channel -> 4 channels at 1/4 rate


def _multi(configs: list[dict], cond_dim: int = 8, pretransform=None) -> MultiConditioner:
    cfg = {"cond_dim": cond_dim, "configs": configs}
    return create_multi_conditioner_from_conditioning_config(cfg, ConfigNode(cfg, "m.json", "model.conditioning"),
                                                             pretransform=pretransform)


def _wavelet():
    return create_pretransform_from_config(WAVELET, 16000)


def test_pretransform_conditioner_projects_channels_and_keeps_frames() -> None:
    torch.manual_seed(0)
    multi = _multi([{"id": "melody", "type": "pretransform",
                     "config": {"sample_rate": 16000, "pretransform_config": WAVELET}}])
    cond = multi.conditioners["melody"]
    # only the projection is saved (4 encoded channels -> cond_dim 8); the frozen pretransform is not
    assert set(multi.state_dict()) == {"conditioners.melody.proj_out.weight", "conditioners.melody.proj_out.bias"}
    assert tuple(cond.proj_out.weight.shape) == (8, 4)
    a, b = torch.randn(1, 64), torch.randn(2, 64)  # stereo is downmixed to the pretransform's mono
    emb, mask = multi([{"melody": a}, {"melody": b}], "cpu")["melody"]
    assert emb.shape == (2, 8, 16) and mask.shape == (2, 16) and bool((mask == 1).all())
    latents = _wavelet().encode(torch.stack([a, b.mean(0, keepdim=True)]))
    expected = torch.einsum("oc,bct->bot", cond.proj_out.weight, latents) + cond.proj_out.bias[None, :, None]
    torch.testing.assert_close(emb, expected)  # the Linear maps channels (upstream wrongly maps frames)
    assert (emb[0] - emb[1]).abs().max() > 1e-3


def test_pretransform_conditioner_uses_and_optionally_saves_the_model_pretransform() -> None:
    model_pretransform = _wavelet()
    cfg = {"sample_rate": 16000, "use_model_pretransform": True}
    multi = _multi([{"id": "ref", "type": "pretransform", "config": cfg}], cond_dim=4, pretransform=model_pretransform)
    assert multi.conditioners["ref"].pretransform is model_pretransform and set(multi.state_dict()) == set()
    audio = torch.randn(1, 32)
    emb, _ = multi([{"ref": audio}], "cpu")["ref"]
    torch.testing.assert_close(emb, model_pretransform.encode(audio[None]))  # 4 == 4 channels: no projection
    saved = _multi([{"id": "ref", "type": "pretransform", "config": dict(cfg, save_pretransform=True)}], cond_dim=4,
                   pretransform=model_pretransform)
    assert "conditioners.ref.pretransform.encoder.kernel" in saved.state_dict()


@pytest.mark.parametrize(("config", "pattern"), [
    ({"sample_rate": 16000, "use_model_pretransform": True},
     r"configs\[0\]\.config\.use_model_pretransform: is true but the model has no pretransform"),
    ({"sample_rate": 16000}, r"configs\[0\]\.config\.pretransform_config: missing required key"),
    ({"pretransform_config": WAVELET}, r"configs\[0\]\.config\.sample_rate: missing required key"),
    ({"sample_rate": 16000, "pretransform_config": WAVELET, "pretransform_cpkt_path": "x"},
     r"configs\[0\]\.config\.pretransform_cpkt_path: unknown key"),
    ({"sample_rate": 16000, "pretransform_config": WAVELET, "pretransform_ckpt_path": "/nowhere/ae.ckpt"},
     r"configs\[0\]\.config\.pretransform_ckpt_path: no such file"),
    ({"sample_rate": 16000, "pretransform_config": {"type": "wavelet", "config": {"channels": 1}}},
     r"configs\[0\]\.config\.pretransform_config\.config\.levels: missing required key"),
])
def test_pretransform_conditioner_config_errors_name_the_key(config, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        _multi([{"id": "melody", "type": "pretransform", "config": config}])
    assert str(info.value).startswith("m.json: model.conditioning.configs[0].config")


def test_pretransform_ckpt_with_the_model_pretransform_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"pretransform_ckpt_path: would overwrite the model's own pretransform"):
        _multi([{"id": "m", "type": "pretransform", "config": {
            "sample_rate": 16000, "use_model_pretransform": True, "pretransform_ckpt_path": "ae.ckpt"}}],
            pretransform=_wavelet())


def _tiny_autoencoder_pretransform() -> dict:
    """The parity fixture's Oobleck autoencoder without its (sampling) VAE: a deterministic encoder."""
    model = json.loads((FIXTURES / "ae_oobleck_vae" / "model_config.json").read_text())["model"]
    model.pop("bottleneck")
    model["encoder"]["config"]["latent_dim"] = 4
    return {"type": "autoencoder", "config": model}


def test_own_pretransform_loads_its_checkpoint_even_when_the_model_is_built_on_meta(tmp_path) -> None:
    torch.manual_seed(0)
    reference = create_pretransform_from_config(_tiny_autoencoder_pretransform(), 16000)
    ckpt = tmp_path / "ae.ckpt"
    torch.save({"state_dict": reference.model.state_dict()}, ckpt)  # an unwrapped autoencoder checkpoint
    config = {"sample_rate": 16000, "pretransform_config": _tiny_autoencoder_pretransform(),
              "pretransform_ckpt_path": str(ckpt)}
    with parameters_on_meta():  # how checkpoints are loaded: only what the checkpoint holds may be on meta
        multi = _multi([{"id": "ref", "type": "pretransform", "config": config}], cond_dim=4)
    cond = multi.conditioners["ref"]
    assert meta_tensor_names(cond.pretransform) == [] and set(multi.state_dict()) == set()
    audio = torch.randn(1, 64)
    emb, mask = multi([{"ref": audio}], "cpu")["ref"]
    with torch.no_grad():
        torch.testing.assert_close(emb, reference.encode(audio[None]))
    assert emb.shape == (1, 4, 8) and mask.shape == (1, 8)


def _source_mix(**extra) -> MultiConditioner:
    torch.manual_seed(0)
    config = {"sample_rate": 16000, "pretransform_config": WAVELET, "source_keys": ["drums", "bass"], **extra}
    return _multi([{"id": "stems", "type": "source_mix", "config": config}])


def test_source_mix_sums_one_projection_per_present_source() -> None:
    multi = _source_mix()
    cond = multi.conditioners["stems"]
    assert set(multi.state_dict()) == {f"conditioners.stems.{k}" for k in (
        "proj_out.weight", "proj_out.bias", "source_heads.0.weight", "source_heads.0.bias",
        "source_heads.1.weight", "source_heads.1.bias")}
    drums, bass = torch.randn(1, 64), torch.randn(1, 64)
    emb, mask = multi([{"stems": {"drums": drums, "bass": bass}}, {"stems": {"bass": bass}}], "cpu")["stems"]
    assert emb.shape == (2, 8, 16) and mask.shape == (2, 16)
    pre = _wavelet()
    head_drums = cond.source_heads[0](pre.encode(drums[None]))[0]
    head_bass = cond.source_heads[1](pre.encode(bass[None]))[0]
    torch.testing.assert_close(emb[0], head_drums + head_bass)
    torch.testing.assert_close(emb[1], head_bass)  # missing sources contribute nothing
    with pytest.raises(ValueError, match=r"batch item 0 has none of the sources \['drums', 'bass'\].*allow_null"):
        multi([{"stems": {"vocals": drums}}], "cpu")


def test_source_mix_null_source_pre_encoded_and_identity_projection() -> None:
    multi = _source_mix(allow_null_source=True, source_length=16, pre_encoded=True)
    cond = multi.conditioners["stems"]
    latents = torch.randn(4, 16)
    emb, _ = multi([{"stems": {}}, {"stems": {"drums": latents}}], "cpu")["stems"]
    torch.testing.assert_close(emb[0], cond.null_source.expand(8, 16))
    torch.testing.assert_close(emb[1], cond.source_heads[0](latents))
    assert "conditioners.stems.null_source" in multi.state_dict()
    # encoded channels == output_dim: proj_out is an Identity (upstream crashes taking its dtype)
    cfg = {"sample_rate": 16000, "pretransform_config": WAVELET, "source_keys": ["drums"]}
    same = _multi([{"id": "stems", "type": "source_mix", "config": cfg}], cond_dim=4)
    assert same([{"stems": {"drums": torch.randn(1, 32)}}], "cpu")["stems"][0].shape == (1, 4, 8)
    with pytest.raises(ConfigError, match=r"config\.source_length: is required when allow_null_source"):
        _source_mix(allow_null_source=True)


def test_registry_lists_the_new_types() -> None:
    assert {"t5gemma", "causal_lm", "lut", "phoneme", "pretransform", "source_mix"} <= set(CONDITIONERS)


def _diffusion_config() -> dict:
    return {
        "model_type": "diffusion_cond", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
        "model": {
            "io_channels": 4,
            "pretransform": WAVELET,
            "conditioning": {"cond_dim": 32, "configs": [
                {"id": "prompt", "type": "lut",
                 "config": {"model_path": default_text_encoder_path(), "max_length": 8, "use_abs_pos_emb": True}},
                {"id": "melody", "type": "pretransform",
                 "config": {"sample_rate": 16000, "use_model_pretransform": True, "output_dim": 6}},
            ]},
            "diffusion": {
                "type": "dit", "cross_attention_cond_ids": ["prompt"], "input_concat_ids": ["melody"],
                "config": {"io_channels": 4, "embed_dim": 64, "depth": 1, "num_heads": 2, "cond_token_dim": 32,
                           "input_concat_dim": 6, "project_cond_tokens": False},
            },
        },
    }


def test_diffusion_cond_model_with_lut_and_pretransform_conditioners_runs() -> None:
    torch.manual_seed(0)
    model = create_model_from_config(_diffusion_config()).eval()
    keys = {k for k in model.state_dict() if k.startswith("conditioner.")}
    assert keys == {"conditioner.conditioners.prompt.token_embedder.weight",
                    "conditioner.conditioners.prompt.abs_pos_emb.emb.weight",
                    "conditioner.conditioners.melody.proj_out.weight", "conditioner.conditioners.melody.proj_out.bias"}
    for param in model.model.parameters():  # zero-initialised output layers would hide the conditioning
        if not param.any():
            torch.nn.init.normal_(param, std=0.1)
    melody = torch.randn(1, 64)
    x, t = torch.randn(1, 4, 16).expand(2, -1, -1), torch.full((2,), 0.5)
    with torch.no_grad():
        cond = model.conditioner([{"prompt": "a dog barks", "melody": melody},
                                  {"prompt": "soft rain", "melody": melody}], "cpu")
        assert cond["prompt"][0].shape == (2, 8, 32) and cond["melody"][0].shape == (2, 6, 16)
        out = model(x, t, cond=cond)
        assert out.shape == x.shape and torch.isfinite(out).all()
        # the same noise and melody with different prompts: the text tokens reach the output
        assert (out[0] - out[1]).abs().max() > 1e-4
        # and the melody (input concatenation) does too
        other = model(x, t, cond=model.conditioner([{"prompt": "a dog barks", "melody": torch.randn(1, 64)}] * 2,
                                                   "cpu"))
        assert (other[0] - out[0]).abs().max() > 1e-4
