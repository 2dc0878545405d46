"""What a training run is told and what it reports: the ``train.py`` flags as one typed object, and the result.

Why a module of its own: the CLI, the in-process launcher and every piece of the run recipe read these two
types; none of them needs the recipe (or Lightning) to do so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class TrainOptions:
    """Every ``train.py`` flag (ini key) with its packaged default (see cli/defaults.ini)."""

    model_config: str = ""
    dataset_config: str = ""
    val_dataset_config: str = ""
    name: str = "stable_audio_ops"
    project: str | None = None  # accepted for upstream compatibility; unused
    batch_size: int = 4
    recover: bool = False  # accepted for upstream compatibility; unused (resume with ckpt_path)
    save_top_k: int = -1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "16-mixed"
    num_workers: int = 6
    seed: int = 42
    accum_batches: int = 1
    checkpoint_every: int = 10000
    val_every: int = -1
    ckpt_path: str = ""
    pretrained_ckpt_path: str = ""
    pretrained_ckpt_strict: bool = True
    pretransform_ckpt_path: str = ""
    save_dir: str = ""
    gradient_clip_val: float = 0.0
    remove_pretransform_weight_norm: str = ""
    logger: str = "mlflow"
    max_steps: int = -1
    mlflow_tracking_uri: str = "sqlite:///mlflow/mlflow.db"
    mlflow_experiment: str = "stable-audio-ops"
    mlflow_run_id: str = ""
    accelerator: str = "auto"
    num_gpus: int = 1
    num_threads: int = 0
    config_file: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> tuple[TrainOptions, list[str]]:
        """Options from parsed flags; returns the keys that are not options (ignored, like upstream)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known), sorted(k for k in values if k not in names)

    def resolved_save_dir(self) -> Path:
        return Path(self.save_dir) if self.save_dir else Path("checkpoints") / self.name


@dataclass
class TrainResult:
    checkpoint_path: Path
    last_step: int
    mlflow_run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    save_dir: Path | None = None
    global_rank: int = 0  # under DDP every process returns a result; rank 0's is the one to report


__all__ = ["TrainOptions", "TrainResult"]
