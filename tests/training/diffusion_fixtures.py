"""Shared set-up for the diffusion_uncond and diffusion_autoencoder training tests: the tiny U-Net, a seeded
module built as ``train.py`` builds it, short fits on one batch, a noise-fixed v-loss, and the train / unwrap /
demo round trips both model types go through."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import MLFlowLogger

from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.options import TrainOptions, TrainResult
from stable_audio_ops.training.run import run_training
from stable_audio_ops.training.timesteps import noise_and_target
from stable_audio_ops.training.unwrap import unwrap_checkpoint
from tests.training.train_fixtures import write_tone_dataset

# A mono adp U-Net small enough to learn a tone in tens of CPU steps.
TINY_UNET = {"in_channels": 1, "channels": 8, "multipliers": [1, 2, 4], "factors": [2, 2], "num_blocks": [1, 1],
             "attentions": [0, 0, 1], "attention_heads": 2, "attention_multiplier": 2, "resnet_groups": 4}
FIXED_NOISE_LEVELS = (0.2, 0.5, 0.8)


def build_module(config: dict) -> pl.LightningModule:
    """The training module of ``config`` (copied) from seed 0, its errors naming ``model_config.json``."""
    config = copy.deepcopy(config)
    torch.manual_seed(0)
    return create_training_module_from_config(config, create_model_from_config(config), source="model_config.json")


def fit(module: pl.LightningModule, batch, steps: int) -> pl.Trainer:
    """Train ``module`` ``steps`` steps on the one ``batch`` (no logger, no checkpoints)."""
    loader = torch.utils.data.DataLoader([0] * steps, batch_size=1, collate_fn=lambda _: batch)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader)
    return trainer


def fixed_v_loss(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], audio: torch.Tensor) -> float:
    """v-MSE of ``predict(noised, t)`` at fixed noise levels and noise (independent of the training sampler)."""
    gen = torch.Generator().manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for value in FIXED_NOISE_LEVELS:
            t = torch.full((audio.shape[0],), value)
            noised, target = noise_and_target(audio, t, "v", noise=torch.randn(audio.shape, generator=gen))
            total += torch.mean((predict(noised, t) - target) ** 2).item()
    return total / len(FIXED_NOISE_LEVELS)


def unwrap_state(state: dict[str, torch.Tensor], config: dict, folder: Path, name: str = "run") -> Path:
    """Save a training module's ``state`` as a checkpoint with ``config`` embedded and unwrap it (the config
    from the checkpoint); returns the unwrapped model file."""
    torch.save({"state_dict": state, "model_config": config}, folder / f"{name}.ckpt")
    return unwrap_checkpoint(None, folder / f"{name}.ckpt", folder / f"{name}_model")


def train_and_unwrap(config: dict, folder: Path, max_steps: int, **options) -> TrainResult:
    """What ``train.py`` then ``unwrap_model.py`` do with ``config`` on 4 tones: returns the run's result once a
    fresh model has loaded the unwrapped checkpoint (found through the config embedded in it) strictly."""
    config_path = folder / "model_config.json"
    config_path.write_text(json.dumps(config))
    train_options = TrainOptions(model_config=str(config_path),
                                 dataset_config=str(write_tone_dataset(folder / "data", 4)), batch_size=2,
                                 num_workers=0, logger="none", precision="32", max_steps=max_steps,
                                 save_dir=str(folder / "ckpt"), accelerator="cpu", **options)
    result = run_training(train_options)
    model = create_model_from_config(copy.deepcopy(config))
    load_state_dict_checked(model, load_ckpt_state_dict(unwrap_checkpoint(None, result.checkpoint_path,
                                                                          folder / "model")), strict=True)
    return result


def fit_with_demos(module: pl.LightningModule, demo: pl.Callback, batch, folder: Path,
                   monkeypatch: pytest.MonkeyPatch, steps: int = 3) -> MLFlowLogger:
    """Train ``steps`` steps on ``batch`` with the ``demo`` callback logging into a file-store MLflow run."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store: no sqlite migrations in a unit test
    logger = MLFlowLogger(experiment_name="demos", tracking_uri=(folder / "mlruns").as_uri())
    loader = torch.utils.data.DataLoader([0] * steps, batch_size=1, collate_fn=lambda _: batch)
    pl.Trainer(max_steps=steps, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu", callbacks=[demo]).fit(module, loader)
    return logger


def artifact_names(logger: MLFlowLogger, folder: str) -> set[str]:
    """File names the run logged under ``folder``."""
    return {a.path.split("/")[-1] for a in logger.experiment.list_artifacts(logger.run_id, folder)}
