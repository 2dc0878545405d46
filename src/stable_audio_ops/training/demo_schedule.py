"""When a training demo runs: one Lightning callback base shared by every model type's demos.

Upstream's demo callbacks run at global steps 1, 1 + every, 1 + 2 * every, ... (``(step - 1) % every == 0``);
this package also runs one at the end of training when the last step had none, so every run leaves a demo
of its final weights. Subclasses set ``demo_every`` and implement ``run_demo``; the base records the step.
"""

from __future__ import annotations

import lightning.pytorch as pl


class ScheduledDemo(pl.Callback):
    """Calls ``run_demo(trainer, pl_module)`` on upstream's demo steps and once more at the end of training."""

    demo_every: int = 1
    last_demo_step: int = -1

    def due(self, global_step: int) -> bool:
        return (global_step - 1) % self.demo_every == 0 and global_step != self.last_demo_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.due(trainer.global_step):
            self.run_demo(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step > 0 and trainer.global_step != self.last_demo_step:
            self.run_demo(trainer, pl_module)

    def run_demo(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError


__all__ = ["ScheduledDemo"]
