"""The DiT config derived from the trained autoencoder: the pretransform is that autoencoder, the scale follows
``latent_scale``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stable_audio_ops.config.latent_diffusion import latent_diffusion_config, pretransform_scale
from stable_audio_ops.errors import ConfigError

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"
DIT = json.loads((CONFIGS / "dit_tiny.json").read_text())
AE = json.loads((CONFIGS / "autoencoder_tiny.json").read_text())


def test_the_pretransform_is_the_autoencoder_and_the_inputs_stay_as_they_were() -> None:
    before = json.dumps(DIT, sort_keys=True)
    config = latent_diffusion_config(DIT, AE, sample_size=2048, latent_scale=0.5)
    assert config["model"]["pretransform"]["config"] == AE["model"]
    assert config["model"]["io_channels"] == config["model"]["diffusion"]["config"]["io_channels"] == \
        AE["model"]["latent_dim"]
    assert (config["sample_rate"], config["audio_channels"], config["sample_size"]) == \
        (AE["sample_rate"], AE.get("audio_channels", 2), 2048)
    assert config["model"]["pretransform"]["scale"] == 0.5
    assert json.dumps(DIT, sort_keys=True) == before


@pytest.mark.parametrize(("latent_scale", "latent_std", "expected"),
                         [("auto", 0.2500001, 0.25), ("auto", 0.0, 1.0), (2, None, 2.0), (None, 0.3, None)])
def test_scale_auto_is_the_latents_std_a_number_itself_null_the_configs(latent_scale, latent_std, expected) -> None:
    assert pretransform_scale(latent_scale, latent_std) == expected


def test_a_null_scale_keeps_the_configs_own() -> None:
    config = latent_diffusion_config(DIT, AE, sample_size=1024, latent_scale=None, latent_std=0.3)
    assert config["model"]["pretransform"].get("scale") == DIT["model"].get("pretransform", {}).get("scale")


@pytest.mark.parametrize(("latent_scale", "latent_std"), [("auto", None), ("half", 0.3)])
def test_unusable_scales_name_the_parameter(latent_scale, latent_std) -> None:
    with pytest.raises(ConfigError, match="latent_scale"):
        pretransform_scale(latent_scale, latent_std)


def test_an_unconditional_config_gets_the_autoencoder_in_its_own_layout_and_builds() -> None:
    from stable_audio_ops.models.factory import create_model_from_config

    uncond = {"model_type": "diffusion_uncond", "sample_size": 512, "sample_rate": 48000,
              "model": {"type": "dit", "config": {"in_channels": 64, "embed_dim": 64, "depth": 1, "num_heads": 1}}}
    config = latent_diffusion_config(uncond, AE, sample_size=1024, latent_scale=2.0)
    assert config["model"]["config"]["in_channels"] == AE["model"]["latent_dim"]  # 0.0.20's uncond key
    assert "io_channels" not in config["model"] and config["model"]["pretransform"]["config"] == AE["model"]
    model = create_model_from_config(config)
    assert model.io_channels == AE["model"]["latent_dim"] and model.pretransform.scale == 2.0
    assert uncond["model"]["config"]["in_channels"] == 64  # the input stays as it was
