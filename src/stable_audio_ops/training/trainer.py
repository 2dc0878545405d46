"""The Lightning Trainer of a run and the callbacks every run has: device, precision and threads resolved from
the flags, periodic checkpoints, the model config embedded in each checkpoint.

Differences from upstream, and why: ``accelerator="auto"`` picks a GPU only when one exists and fp16 becomes
32-bit on CPU (with a warning) so the same command runs on a laptop; ``save_top_k`` is honoured; checkpoints
are written atomically (:class:`~stable_audio_ops.training.checkpointing.AtomicCheckpointIO`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.training.checkpointing import AtomicCheckpointIO
from stable_audio_ops.training.distributed import DistributedPlan
from stable_audio_ops.training.options import TrainOptions


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` when CUDA is available, else ``cpu`` (MPS only when asked for by name)."""
    name = (accelerator or "auto").lower()
    if name == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return "gpu"
    if name in ("gpu",) and not torch.cuda.is_available():
        raise ConfigError("", "accelerator", "accelerator 'gpu' requested but CUDA is not available")
    return name


def resolve_precision(precision: str, accelerator: str) -> tuple[str, str | None]:
    """Precision Lightning should use, plus a note when it had to change (fp16 has no CPU path)."""
    precision = str(precision)
    if accelerator == "cpu" and precision in ("16", "16-mixed", "16-true"):
        return "32", f"precision {precision} is not available on CPU; training in 32-bit float instead"
    return precision, None


def apply_thread_setting(num_threads: int) -> int | None:
    """``num_threads`` > 0, else ``SAO_TORCH_THREADS`` (set by the launcher), else leave torch's default."""
    threads = num_threads if num_threads and num_threads > 0 else int(os.environ.get("SAO_TORCH_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
        return threads
    return None


class EmbedModelConfig(pl.Callback):
    """Model config in every checkpoint (upstream's ModelConfigEmbedderCallback), so a checkpoint unwraps and
    loads without its config file."""

    def __init__(self, model_config: dict) -> None:
        self.model_config = model_config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint["model_config"] = self.model_config


def make_checkpoint_callback(options: TrainOptions, save_dir: Path) -> ModelCheckpoint:
    """Every ``checkpoint_every`` steps; keeps ``save_top_k`` newest (-1 all); refreshes ``last.ckpt`` each time.

    ``last.ckpt`` always holds the newest state, so a run killed between checkpoints resumes with
    ``--ckpt-path <save_dir>/last.ckpt`` (or ``--ckpt-path last``) and the same command line.
    """
    keep = options.save_top_k
    return ModelCheckpoint(
        dirpath=save_dir,
        filename="{epoch}-{step}",
        every_n_train_steps=max(1, options.checkpoint_every),
        save_top_k=keep,
        monitor="step" if keep > 0 else None,
        mode="max",
        save_last=True,
    )


def build_trainer(options: TrainOptions, plan: DistributedPlan, precision: str, manual: bool, callbacks: list,
                  logger: Any, save_dir: Path, has_val: bool) -> pl.Trainer:
    """The Lightning Trainer for ``options`` (split out so tests can check every flag reaches it)."""
    trainer_kwargs: dict[str, Any] = {}
    if has_val and options.val_every > 0:
        trainer_kwargs.update(val_check_interval=options.val_every, check_val_every_n_epoch=None)
    if not manual:
        trainer_kwargs.update(accumulate_grad_batches=options.accum_batches,
                              gradient_clip_val=options.gradient_clip_val or None)
    if plan.strategy_name != "deepspeed":  # DeepSpeed writes its own sharded checkpoint folders
        trainer_kwargs["plugins"] = [AtomicCheckpointIO()]
    # TQDM, not Rich: Rich draws nothing until the end when stdout is a pipe (Kedro's launcher), while tqdm's
    # carriage-return updates stream through it and show live progress.
    callbacks = [*callbacks, TQDMProgressBar(refresh_rate=1 if sys.stdout.isatty() else 10)]
    return pl.Trainer(
        **plan.trainer_kwargs(),
        precision=precision,
        max_steps=options.max_steps,
        max_epochs=-1,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=0,
        default_root_dir=str(save_dir),
        enable_progress_bar=True,
        **trainer_kwargs,
    )


__all__ = ["EmbedModelConfig", "apply_thread_setting", "build_trainer", "make_checkpoint_callback", "resolve_accelerator",
           "resolve_precision"]
