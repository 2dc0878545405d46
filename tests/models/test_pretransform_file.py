"""The autoencoder inside a diffusion checkpoint written out as an unwrapped autoencoder (fine-tuning pre-encodes
with it): same weights, loads strictly, encodes like the diffusion model's pretransform; clear errors otherwise."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.loading import load_local_model
from stable_audio_ops.models.pretransform_file import (
    pretransform_autoencoder_config,
    write_pretransform_autoencoder,
)
from tests.tracking.tiny_models import TINY_DIT, write_tiny_models


def test_written_autoencoder_encodes_like_the_diffusion_models_pretransform(tmp_path) -> None:
    _, dit_path = write_tiny_models(tmp_path)
    diffusion = load_local_model(dit_path)
    out = write_pretransform_autoencoder(dit_path, diffusion.config, tmp_path / "pt.safetensors")
    autoencoder = load_local_model(out)  # config embedded, strict
    assert autoencoder.model_type == "autoencoder"
    audio = torch.randn(2, 1, 512)
    with torch.no_grad():
        torch.testing.assert_close(autoencoder.model.encode(audio, skip_bottleneck=True),
                                   diffusion.model.pretransform.model.encode(audio, skip_bottleneck=True))


def test_models_without_an_autoencoder_pretransform_are_refused_naming_the_key() -> None:
    config = json.loads(TINY_DIT.read_text())
    no_pretransform = copy.deepcopy(config)
    del no_pretransform["model"]["pretransform"]
    with pytest.raises(ConfigError, match="model.pretransform.*no pretransform"):
        pretransform_autoencoder_config(no_pretransform, "m.json")
    config["model"]["pretransform"]["type"] = "wavelet"
    with pytest.raises(ConfigError, match="model.pretransform.type.*'wavelet' cannot pre-encode"):
        pretransform_autoencoder_config(config, "m.json")
