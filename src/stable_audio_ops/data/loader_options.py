""":class:`LoaderOptions`: the training-side settings every dataset builder receives.

Its own module so dataset builders (``data.wds``, ...) and the registry that dispatches to them
(``data.dataloader``) both import it from below, without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoaderOptions:
    """The training-side settings every dataset builder receives (they come from the model config / CLI).

    What the dataset config says (and the file it came from, for messages) is in the validated
    :data:`~stable_audio_ops.config.dataset_config.DatasetConfig` the builder gets beside these.
    """

    batch_size: int
    sample_size: int
    sample_rate: int
    audio_channels: int = 2
    num_workers: int = 4
    shuffle: bool = True
    # audio_dir only: items seeded by (seed, index), bitwise-reproducible (pre-encoding); None = global random
    seed: int | None = None

    @property
    def force_channels(self) -> str:
        return "mono" if self.audio_channels == 1 else "stereo"


__all__ = ["LoaderOptions"]
