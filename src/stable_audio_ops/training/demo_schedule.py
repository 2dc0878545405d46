"""When and where a training demo runs: one Lightning callback base shared by every model type's demos.

Upstream's demo callbacks run at global steps 1, 1 + every, 1 + 2 * every, ... (``(step - 1) % every == 0``);
this package also runs one at the end of training when the last step had none, so every run leaves a demo
of its final weights.

Every demo does the same around its own work: record the step, find the MLflow logger (rank 0 only), switch
the module to eval and back even on error, write into a temporary folder and log that folder as
``demos/step_<global step>/``. :meth:`ScheduledDemo.run_demo` does that once; subclasses set ``demo_every``
and implement :meth:`ScheduledDemo.write_demo` (the files of one demo). A callback whose demo is not a folder of
files (the CLAP retrieval metrics) overrides ``run_demo`` itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning.pytorch as pl


def mlflow_logger(trainer: pl.Trainer):
    """The trainer's MLFlowLogger, or None."""
    from lightning.pytorch.loggers import MLFlowLogger

    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger):
            return logger
    return None


def demo_logger(trainer: pl.Trainer):
    """Where a demo goes: the MLFlowLogger on rank 0; None on other ranks or without one (no demo)."""
    return mlflow_logger(trainer) if trainer.is_global_zero else None


class ScheduledDemo(pl.Callback):
    """Calls ``run_demo(trainer, pl_module)`` on upstream's demo steps and once more at the end of training."""

    demo_every: int = 1
    last_demo_step: int = -1
    temp_prefix: str = "sao-demo-"  # name of the temporary folder a demo is written into

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[str] = []  # artifact directories written (for tests and the run summary)

    def due(self, global_step: int) -> bool:
        return (global_step - 1) % self.demo_every == 0 and global_step != self.last_demo_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.due(trainer.global_step):
            self.run_demo(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step > 0 and trainer.global_step != self.last_demo_step:
            self.run_demo(trainer, pl_module)

    def run_demo(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write one demo with :meth:`write_demo` in eval mode and log it under ``demos/step_<step>/``."""
        self.last_demo_step = trainer.global_step
        logger = demo_logger(trainer)
        if logger is None:
            return
        artifact_dir = f"demos/step_{trainer.global_step:06d}"
        was_training = pl_module.training
        pl_module.eval()
        try:
            with tempfile.TemporaryDirectory(prefix=self.temp_prefix) as tmp:
                self.write_demo(trainer, pl_module, Path(tmp))
                logger.experiment.log_artifacts(logger.run_id, tmp, artifact_dir)
        finally:
            pl_module.train(was_training)
        self.logged.append(artifact_dir)

    def write_demo(self, trainer: pl.Trainer, pl_module: pl.LightningModule, folder: Path) -> None:
        """Write this model type's demo files (audio, spectrograms, ...) into ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} must implement write_demo")


__all__ = ["ScheduledDemo", "demo_logger", "mlflow_logger"]
