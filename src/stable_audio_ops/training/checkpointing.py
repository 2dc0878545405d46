"""Training checkpoints that survive being killed, and a clear check of what ``--ckpt-path`` points at.

Lightning's own writer goes through an fsspec "transaction" whose temporary file lives in the
system temp folder; when that is another filesystem the final move is a copy, so a kill at the
wrong moment leaves a truncated ``.ckpt`` that looks like a checkpoint. :class:`AtomicCheckpointIO`
writes next to the target, fsyncs, then ``os.replace``-s it into place: a reader sees the old file
or the new one, never half of one.

``--ckpt-path`` must be a *wrapped* (training) checkpoint; users often pass a released model file
instead (upstream issue #163: ``KeyError: 'pytorch-lightning_version'``). :func:`check_resume_checkpoint`
says which flag they wanted.

:class:`SaveOnStop` writes ``last.ckpt`` at the current step when SIGTERM (preemption) or Ctrl-C ends
``fit`` (see :mod:`stable_audio_ops.training.stopping` for what the run does next).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.utils.io import atomic_write

log = logging.getLogger(__name__)

# ckpt_path values Lightning resolves itself ("last" is resolved here, see resolve_resume_path).
LIGHTNING_CKPT_ALIASES = ("hpc", "best", "registry")


def _is_local(path: Any) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temp file in the target folder, fsync, ``os.replace`` (local paths)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(Path(str(path).removeprefix("file://")), lambda f: torch.save(checkpoint, f), fsync=True)


class SaveOnStop(pl.Callback):
    """Save ``last`` when ``fit`` is interrupted by SIGTERM or SIGINT; remember the signal and the step saved.

    Single process only: under DDP saving is collective and a rank that is already gone would hang it,
    so there the last periodic checkpoint is what resumes (logged).
    """

    def __init__(self, last: Path):
        self.last = Path(last)
        self.signum: int | None = None
        self.saved_step: int | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self.signum = signal.SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.signum = signal.SIGINT
        else:
            return
        name = signal.Signals(self.signum).name
        if trainer.global_step == 0:
            log.warning("%s before the first step: nothing to save", name)
        elif trainer.world_size == 1:
            trainer.save_checkpoint(self.last, weights_only=False)
            self.saved_step = int(trainer.global_step)
            log.warning("%s: saved %s (step %d); resume with --ckpt-path last", name, self.last, self.saved_step)
        elif trainer.is_global_zero:
            log.warning("%s at step %d; resume from the last periodic checkpoint with --ckpt-path last",
                        name, trainer.global_step)


def resolve_resume_path(ckpt_path: str, save_dir: str | Path) -> str | None:
    """``--ckpt-path`` as Lightning should get it; ``last`` = the newest complete checkpoint in ``save_dir``.

    Why not Lightning's own ``last``: it only looks at ``last.ckpt``, and a process killed after
    writing a periodic checkpoint but before refreshing ``last.ckpt`` would resume from an older
    state (or start over). Files are complete once they have their final name (atomic writes),
    so the newest by modification time is the newest state. ``None`` = start a new run.
    """
    if ckpt_path != "last":
        return ckpt_path or None
    folder = Path(save_dir)
    candidates = [p for p in folder.glob("*.ckpt") if p.is_file()] if folder.is_dir() else []
    if not candidates:
        log.warning("--ckpt-path last: no checkpoint in %s yet; starting a new run", folder)
        return None
    newest = max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.ckpt"))
    log.info("resuming from %s", newest)
    return str(newest)


def check_resume_checkpoint(path: str | None) -> None:
    """Raise CheckpointError unless ``path`` is a Lightning training checkpoint (or an alias Lightning resolves)."""
    if not path or path in LIGHTNING_CKPT_ALIASES:
        return
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"--ckpt-path {path}: no such file")
    if file.is_dir():  # DeepSpeed writes a folder; Lightning's DeepSpeed strategy reads it
        return
    if file.suffix == ".safetensors":
        raise CheckpointError(
            f"--ckpt-path {path}: this is a model file (unwrapped weights), not a training checkpoint; "
            "start from it with --pretrained-ckpt-path (or --pretransform-ckpt-path for an autoencoder "
            "used as pretransform). --ckpt-path resumes a run from a checkpoint that train.py wrote."
        )
    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # files in torch's legacy format cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise CheckpointError(f"--ckpt-path {path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "pytorch-lightning_version" not in state or "optimizer_states" not in state:
        raise CheckpointError(
            f"--ckpt-path {path}: this holds model weights only (no optimizer state, no step), so there is "
            "nothing to resume; start a new run from it with --pretrained-ckpt-path"
        )
