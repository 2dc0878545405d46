"""A training run that stops before ``max_steps`` saves where it is and never looks like success.

Why: preemption (``docker stop``, Kubernetes, SLURM, ``timeout``) sends SIGTERM. Lightning turns it into
:class:`~lightning.pytorch.utilities.exceptions.SIGTERMException`, a ``SystemExit`` *without a code*, so
the process used to exit 0 with ``last.ckpt`` at the last periodic step, and an orchestrator went on to
unwrap and register an under-trained model. Here:

- :class:`~stable_audio_ops.training.checkpointing.SaveOnStop` writes ``last.ckpt`` at the current step
  when the run is interrupted (SIGTERM or Ctrl-C / SIGINT), through the trainer's checkpoint IO (atomic:
  temp file, then rename);
- :func:`stopped_early` turns the interruption, or any end of ``fit`` before ``max_steps``, into
  :class:`TrainingStoppedEarly`, which names the step reached and the checkpoint, and carries the
  process exit code: ``128 + signal`` for a signal (143 for SIGTERM, 130 for SIGINT, the shell's
  convention), :data:`EXIT_INCOMPLETE` otherwise.

Under SLURM, Lightning's own requeue (``SLURMEnvironment(auto_requeue=True)``, SIGUSR1) is kept: on
SIGUSR1 it writes ``hpc_ckpt_<n>.ckpt`` into the checkpoint folder and runs ``scontrol requeue``; the
requeued job resumes from it (``--ckpt-path last`` picks the newest checkpoint, or Lightning's ``hpc``).

Lightning- and torch-free at import: the launcher that orchestrators import uses it too.
"""

from __future__ import annotations

import signal
from pathlib import Path

from stable_audio_ops.errors import StableAudioOpsError

EXIT_INCOMPLETE = 3  # the run ended before max_steps without a signal (e.g. a callback asked to stop)


def signal_exit_code(signum: int) -> int:
    """The exit code of a process stopped by ``signum`` that cleaned up first: ``128 + signum``."""
    return 128 + int(signum)


class TrainingStoppedEarly(StableAudioOpsError):
    """Training ended before ``max_steps``; ``exit_code`` is what the train command exits with."""

    def __init__(self, step: int, max_steps: int, checkpoint: Path | None, reason: str, exit_code: int):
        self.step, self.max_steps, self.checkpoint = step, max_steps, checkpoint
        self.reason, self.exit_code = reason, exit_code
        target = f" of {max_steps}" if max_steps > 0 else ""
        where = (f"{checkpoint} holds step {step}; resume with --ckpt-path last (same flags)" if checkpoint
                 else "no checkpoint was written at that step")
        super().__init__(f"training stopped at step {step}{target} ({reason}); {where}")


def checkpoint_step(path: str | Path) -> int | None:
    """``global_step`` recorded in a training checkpoint (None when the file is missing or has none)."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    step = state.get("global_step") if isinstance(state, dict) else None
    return int(step) if step is not None else None


def stopped_early(step: int, max_steps: int, checkpoint: Path | None, signum: int | None = None,
                  saved_step: int | None = None) -> TrainingStoppedEarly | None:
    """The error for a run that ended at ``step`` (by ``signum`` when one stopped it, having saved
    ``checkpoint`` at ``saved_step``), or None when it finished (or has no ``max_steps`` bound)."""
    if signum is not None:
        saved = checkpoint if saved_step == step else None
        return TrainingStoppedEarly(step, max_steps, saved, f"stopped by {signal.Signals(signum).name}",
                                    signal_exit_code(signum))
    if max_steps > 0 and step < max_steps:
        return TrainingStoppedEarly(step, max_steps, checkpoint, "the run ended before max_steps", EXIT_INCOMPLETE)
    return None


__all__ = ["EXIT_INCOMPLETE", "TrainingStoppedEarly", "checkpoint_step", "signal_exit_code", "stopped_early"]
