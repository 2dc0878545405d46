"""Retrieval "demos" during CLAP training: 0.0.20's ``CLAPValidationCallback`` made to do something.

0.0.20 registers a callback for ``clap`` runs whose hook returns without logging anything. Here, every
``training.demo.demo_every`` steps (upstream's timing: after global step 1, then whenever
``(step - 1) % demo_every == 0``, plus once at the end), ONE FIXED held batch (taken once before training from the
validation set when given, else the training set) is embedded with the current weights and its retrieval metrics
are logged as ``demo/text_to_audio_R@1``, ``demo/audio_to_text_R@1``, ``demo/text_to_audio_mean_rank``, ... (the
full set of :func:`~stable_audio_ops.training.clap_losses.retrieval_metrics`). Chance for R@1 is ``1 / batch``.
Rank 0 only; with no logger the metrics are only kept in :attr:`history`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from stable_audio_ops.training.clap_losses import retrieval_metrics
from stable_audio_ops.training.demo_schedule import ScheduledDemo


class CLAPRetrievalCallback(ScheduledDemo):
    """Log retrieval metrics of one held ``(audio, metadata)`` batch every ``demo_every`` steps."""

    def __init__(self, audio: torch.Tensor, metadata: Sequence[Mapping[str, Any]], demo_every: int = 2000):
        super().__init__()
        if demo_every < 1:
            raise ValueError(f"demo_every must be >= 1, got {demo_every}")
        self.audio = audio.detach().cpu()
        self.metadata = list(metadata)
        self.demo_every = int(demo_every)
        self.history: list[tuple[int, dict[str, float]]] = []

    @torch.no_grad()
    def metrics(self, pl_module) -> dict[str, float]:
        was_training = pl_module.training
        pl_module.eval()
        try:
            audio, text = pl_module.embeddings((self.audio.to(pl_module.device), self.metadata), train=False)
        finally:
            pl_module.train(was_training)
        return retrieval_metrics(audio, text, pl_module.model.logit_scale_a.detach().exp())

    def run_demo(self, trainer: pl.Trainer, pl_module) -> None:
        self.last_demo_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        values = self.metrics(pl_module)
        self.history.append((trainer.global_step, values))
        for logger in trainer.loggers:
            logger.log_metrics({f"demo/{k}": v for k, v in values.items()}, step=trainer.global_step)


__all__ = ["CLAPRetrievalCallback"]
