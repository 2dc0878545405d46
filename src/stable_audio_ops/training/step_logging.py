"""Per-step metric logging for manually optimised modules (GAN-style alternating generator/discriminator steps).

Why this module: the autoencoder and ARC modules both step two optimizers on alternating batches. Lightning's
``self.log`` would re-send the generator metrics on discriminator steps (stale values stay in its result
collection) and counts its logging step once per two batches there, so both modules send their metrics to the
loggers directly, at the number of optimizer steps done. Written once here so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import lightning.pytorch as pl


def log_step(module: pl.LightningModule, log: Mapping[str, Any], step: int, batch_size: int,
             progress_bar_keys: Collection[str]) -> None:
    """Send this step's metrics ``log`` to ``module``'s loggers at ``step`` (= optimizer steps done) only.

    ``self.log`` still gets every value (``logger=False``) so the progress bar (``progress_bar_keys``) and
    callbacks see them; the loggers get plain floats every ``trainer.log_every_n_steps`` steps.
    """
    bar = {k: v for k, v in log.items() if k in progress_bar_keys}
    module.log_dict(bar, prog_bar=True, logger=False, on_step=True, batch_size=batch_size)
    module.log_dict({k: v for k, v in log.items() if k not in bar}, logger=False, on_step=True,
                    batch_size=batch_size)
    every = max(1, int(getattr(module.trainer, "log_every_n_steps", 1) or 1))
    if module.loggers and step % every == 0:
        values = {k: float(v) for k, v in log.items()}
        for logger in module.loggers:
            logger.log_metrics(values, step=step)


__all__ = ["log_step"]
