"""This process's global rank, read from the environment the launcher set (SLURM, torchrun, Lightning).

Kept out of :mod:`stable_audio_ops.training` so code that only needs the rank (pre-encoding shards its
output folder by rank) does not import Lightning.
"""

from __future__ import annotations

import os


def process_rank(devices_per_node: int | None = None) -> int:
    """Global rank of this process as the environment tells it (SLURM, torchrun, Lightning's launcher).

    Lightning's launcher sets ``NODE_RANK`` and ``LOCAL_RANK`` (no ``LOCAL_WORLD_SIZE``) in the
    processes it starts, so ``devices_per_node`` (``--num-gpus``) turns those into a global rank.
    """
    for var in ("SLURM_PROCID", "RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", "0") or 0)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or max(1, devices_per_node or 1)
    return node * per_node + local


def world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


__all__ = ["process_rank", "world_size"]
