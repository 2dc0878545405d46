"""The top-level names that mirror stable-audio-tools' public API resolve to working functions."""

from __future__ import annotations

import json

import torch

from tests.parity.harness import FIXTURES


def test_top_level_imports_work_and_build_a_model() -> None:
    from stable_audio_ops import create_model_from_config, create_model_from_config_path, load_ckpt_state_dict

    case = FIXTURES / "ae_oobleck_tanh"
    from_path = create_model_from_config_path(case / "model_config.json")
    from_dict = create_model_from_config(json.loads((case / "model_config.json").read_text()))
    assert type(from_path) is type(from_dict)
    from_path.load_state_dict(load_ckpt_state_dict(case / "model.safetensors"), strict=True)
    with torch.no_grad():
        assert from_path.eval().encode(torch.zeros(1, 1, 64)).shape == (1, 4, 8)


def test_models_package_reexports_lazily() -> None:
    import stable_audio_ops.models as models

    assert callable(models.copy_state_dict) and models.AudioAutoencoder.__name__ == "AudioAutoencoder"


def test_one_loader_and_one_generate_entry_at_the_top() -> None:
    import stable_audio_ops
    from stable_audio_ops.inference.entry import generate
    from stable_audio_ops.tracking.loading import load_model

    assert stable_audio_ops.load_model is load_model and stable_audio_ops.generate is generate
    case = FIXTURES / "dit_latent_rf"
    loaded = stable_audio_ops.load_model(case)  # a model folder: model_config.json + model.safetensors
    assert loaded.model_type == "diffusion_cond" and not loaded.model.training
