"""Shared set-up for the autoencoder training-key tests: the tiny config and a few-step fit on tones."""

from __future__ import annotations

import copy
import json

import lightning.pytorch as pl
import torch

from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.factory import create_training_module_from_config
from tests.training.train_fixtures import TINY_AE


def tiny_config(sample_size: int = 1024, discriminator: bool = False, ema: bool = False) -> dict:
    """The tiny VAE autoencoder (16 kHz), short crops, lr 3e-3; no discriminator or EMA unless asked."""
    config = json.loads(TINY_AE.read_text())
    config["sample_size"] = sample_size
    training = config["training"]
    training["use_ema"] = ema
    for name in ("autoencoder", "discriminator"):
        training["optimizer_configs"][name]["optimizer"]["config"]["lr"] = 3e-3
    if not discriminator:
        del training["loss_configs"]["discriminator"]
        del training["optimizer_configs"]["discriminator"]
    return config


def build(config: dict, source: str = "<model config>"):
    return create_training_module_from_config(config, create_model_from_config(config), source=source)


def tones(config: dict, channels: int | None = None) -> torch.Tensor:
    """Two sine tones ``[2, channels, sample_size]`` at the config's rate."""
    channels = channels or config.get("audio_channels", 1)
    t = torch.arange(config["sample_size"]) / config["sample_rate"]
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 660.0)]).unsqueeze(1)
    return audio.expand(2, channels, config["sample_size"]).contiguous()


class RecordLosses(pl.Callback):
    """The callback metrics after every batch (``step`` = optimizer steps done)."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()} | {"step": trainer.global_step})


def fit(module: pl.LightningModule, audio: torch.Tensor, steps: int, seed: int = 0) -> list[dict[str, float]]:
    """Train ``module`` ``steps`` steps on the one batch ``audio``; returns the recorded metrics."""
    pl.seed_everything(seed, workers=True)
    loader = torch.utils.data.DataLoader([(audio, ({}, {}))] * steps, batch_size=None)
    recorder = RecordLosses()
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    trainer.fit(module, loader)
    return recorder.rows


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy({k: v.detach().clone() for k, v in module.state_dict().items()})
