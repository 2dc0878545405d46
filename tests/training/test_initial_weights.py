"""The weights a run starts from: --pretransform-ckpt-path goes through the model loader's strict step (a model
folder works like its file, a wrong source is an error that names it), with weight norm stripped before or after
the load as --remove-pretransform-weight-norm says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.pretransforms import AutoencoderPretransform
from stable_audio_ops.training.initial_weights import load_initial_weights, remove_weight_norm_everywhere
from stable_audio_ops.training.options import TrainOptions
from tests.training.train_fixtures import TINY_AE


class _WithPretransform(nn.Module):
    def __init__(self, autoencoder: nn.Module):
        super().__init__()
        self.pretransform = AutoencoderPretransform(autoencoder)


def test_remove_pretransform_weight_norm_pre_and_post_load(tmp_path: Path) -> None:
    config = json.loads(TINY_AE.read_text())
    torch.manual_seed(0)
    source = create_model_from_config(config)
    with_wn = tmp_path / "vae_wn.safetensors"
    save_model_checkpoint(source.state_dict(), with_wn)
    latents = torch.randn(1, 4, 16)
    with torch.no_grad():
        expected = source.decode(latents)

    # post_load: load the weight-normed checkpoint, then fold weight norm into plain weights
    model = _WithPretransform(create_model_from_config(config))
    load_initial_weights(model, TrainOptions(pretransform_ckpt_path=str(with_wn),
                                             remove_pretransform_weight_norm="post_load"))
    assert not any(k.endswith("weight_g") for k in model.pretransform.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.pretransform.model.decode(latents), expected)

    # pre_load: strip weight norm first, so the checkpoint must be a weight-norm-free one
    assert remove_weight_norm_everywhere(source) > 0
    without_wn = tmp_path / "vae_plain.safetensors"
    save_model_checkpoint(source.state_dict(), without_wn)
    model = _WithPretransform(create_model_from_config(config))
    load_initial_weights(model, TrainOptions(pretransform_ckpt_path=str(without_wn),
                                             remove_pretransform_weight_norm="pre_load"))
    with torch.no_grad():
        torch.testing.assert_close(model.pretransform.model.decode(latents), expected)
    model = _WithPretransform(create_model_from_config(config))
    with pytest.raises(CheckpointError, match="weight_g"):  # a weight-normed file no longer fits
        load_initial_weights(model, TrainOptions(pretransform_ckpt_path=str(with_wn),
                                                 remove_pretransform_weight_norm="pre_load"))

    with pytest.raises(ConfigError, match="pretransform"):  # the flag needs a model that has one
        load_initial_weights(create_model_from_config(config), TrainOptions(remove_pretransform_weight_norm="pre_load"))


def test_pretransform_loads_from_a_model_folder_as_from_its_file(tmp_path: Path) -> None:
    config = json.loads(TINY_AE.read_text())
    torch.manual_seed(0)
    trained = create_model_from_config(config)
    folder = tmp_path / "autoencoder"
    folder.mkdir()
    save_model_checkpoint(trained.state_dict(), folder / "model.safetensors", model_config=config)
    latents = torch.randn(1, 4, 16)
    with torch.no_grad():
        expected = trained.decode(latents)

    for source in (folder, folder / "model.safetensors"):
        torch.manual_seed(1)  # a different initialisation, which the load must overwrite
        model = _WithPretransform(create_model_from_config(config))
        load_initial_weights(model, TrainOptions(pretransform_ckpt_path=str(source)))
        with torch.no_grad():
            torch.testing.assert_close(model.pretransform.model.decode(latents), expected)

    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(CheckpointError, match="nowhere.safetensors"):
        load_initial_weights(_WithPretransform(create_model_from_config(config)),
                             TrainOptions(pretransform_ckpt_path=str(missing)))
