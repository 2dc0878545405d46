"""How a training run is spread over processes: devices, nodes, strategy, per-rank seed and report.

Upstream hard-codes ``accelerator="gpu"`` and passes ``--strategy`` to Lightning as a string (plus a
DeepSpeed ZeRO-2 branch). We keep those names and add what upstream lacks:

- ``--num-gpus N`` (upstream's README documents it; its ini does not have it) is the number of
  processes per node. Without CUDA the same flags start N CPU processes that talk over gloo, so a
  laptop or CI exercises the same DDP code path as a GPU node.
- ``auto`` with more than one process means DDP (what Lightning picks too). A training module that
  leaves some parameters out of a step's loss says so with ``ddp_find_unused_parameters = True``
  (the GAN autoencoder: discriminator steps never touch the autoencoder); plain ``ddp`` then turns
  on unused-parameter detection instead of crashing in the reducer (upstream issue #20's failure).
- ``deepspeed`` is ZeRO stage 2 with upstream's settings; it needs the ``deepspeed`` package and
  CUDA, and says so. ``fsdp`` needs CUDA (Lightning has no CPU FSDP); the error says so too.
- the seed of each process is ``seed + global rank`` (upstream adds ``SLURM_PROCID``; we also read
  torchrun's ``RANK`` and Lightning's ``NODE_RANK``/``LOCAL_RANK``) so ranks draw different noise
  and crops while the run stays reproducible.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.utils.io import write_json_atomic
from stable_audio_ops.utils.ranks import process_rank

# Strategy names with our own handling; any other name Lightning registers is passed through.
DDP_NAMES = ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
CUDA_ONLY = ("fsdp", "fsdp_cpu_offload", "deepspeed")


def rank_seed(seed: int, devices_per_node: int | None = None) -> int:
    """The seed this process uses: ``seed + global rank`` (rank 0 keeps ``seed``)."""
    return int(seed) + process_rank(devices_per_node)


@dataclass(frozen=True)
class DistributedPlan:
    """Trainer arguments for distribution, plus notes printed once so the user sees what was chosen."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: Any  # a Lightning strategy name or instance
    strategy_name: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    def trainer_kwargs(self) -> dict[str, Any]:
        return {"accelerator": self.accelerator, "devices": self.devices, "num_nodes": self.num_nodes,
                "strategy": self.strategy}


def known_strategies() -> list[str]:
    from lightning.pytorch.strategies import StrategyRegistry

    return sorted({"auto", *StrategyRegistry.available_strategies()})


def deepspeed_strategy():
    """ZeRO stage 2 with upstream's settings; a clear error when the package is missing."""
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("", "strategy", "--strategy deepspeed needs the deepspeed package, which is not "
                                          "installed: pip install deepspeed (CUDA GPUs only)")
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return DeepSpeedStrategy(stage=2, contiguous_gradients=True, overlap_comm=True, reduce_scatter=True,
                             reduce_bucket_size=5e8, allgather_bucket_size=5e8, load_full_weights=True)


def plan_distribution(
    strategy: str,
    num_gpus: int,
    num_nodes: int,
    accelerator: str,
    find_unused_parameters: bool = False,
    single_optimizer: bool = True,
) -> DistributedPlan:
    """Turn ``--strategy/--num-gpus/--num-nodes`` and the resolved accelerator into Trainer arguments.

    ``find_unused_parameters`` comes from the training module (see module docstring);
    ``single_optimizer`` is False for modules that step two optimizers (DeepSpeed cannot).
    """
    devices = max(1, int(num_gpus or 1))
    nodes = max(1, int(num_nodes or 1))
    name = (strategy or "auto").strip().lower()
    notes: list[str] = []
    if name not in known_strategies():
        raise ConfigError("", "strategy", f"unknown strategy {strategy!r}; known: {', '.join(known_strategies())}")

    if name == "deepspeed":
        plan_strategy = deepspeed_strategy()
        if accelerator != "gpu":
            raise ConfigError("", "strategy", f"--strategy deepspeed runs on CUDA GPUs only (accelerator is "
                                              f"{accelerator!r}); use --strategy ddp on CPU")
        if not single_optimizer:
            raise ConfigError("", "strategy", "--strategy deepspeed supports one optimizer per model; this model "
                                              "trains two (autoencoder + discriminator): use --strategy ddp")
        return DistributedPlan(accelerator, devices, nodes, plan_strategy, name)
    if any(word in name for word in ("spawn", "fork", "notebook")):
        # These train in child processes and hand a parent back a Trainer at step 0; the parent would
        # then overwrite last.ckpt with untrained weights and leave an orphan MLflow run.
        raise ConfigError("", "strategy", f"--strategy {name} is not supported by train.py (it trains in "
                                          "child processes the script cannot follow); use ddp, which starts "
                                          "one copy of this command per process")
    if name.startswith("fsdp") and accelerator != "gpu":
        raise ConfigError("", "strategy", f"--strategy {name} needs CUDA GPUs: Lightning has no FSDP on "
                                          f"{accelerator!r}; use --strategy ddp (gloo) on CPU")

    world = devices * nodes
    if name == "auto" and world > 1:
        name = "ddp"
        notes.append(f"{world} processes ({nodes} node(s) x {devices}): strategy auto -> ddp"
                     + (" over gloo (CPU)" if accelerator == "cpu" else ""))
    if name == "ddp" and find_unused_parameters and world > 1:
        from lightning.pytorch.strategies import DDPStrategy

        notes.append("this model leaves some parameters out of some steps (GAN alternation): "
                     "DDP runs with find_unused_parameters=True")
        return DistributedPlan(accelerator, devices, nodes, DDPStrategy(find_unused_parameters=True),
                               "ddp_find_unused_parameters_true", tuple(notes))
    if name == "ddp_find_unused_parameters_false" and find_unused_parameters and world > 1:
        notes.append("warning: this model leaves some parameters out of some steps; DDP without "
                     "unused-parameter detection will fail at the first such step")
    return DistributedPlan(accelerator, devices, nodes, name, name, tuple(notes))


def state_dict_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, bytes): equal digests = equal weights."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            continue
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class RankReport(pl.Callback):
    """Each process writes ``<dir>/rank-<global rank>.json`` when training ends.

    Why: with several processes a user (and CI) must be able to see that every rank trained (its
    batch count), that the ranks ended with the same weights (digest), which seed each used, and
    the throughput of the run without start-up time (seconds between the first and last batch).
    """

    def __init__(self, output_dir: str | Path, seed: int, batch_size: int):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.batches = 0
        self._first: float | None = None
        self._last: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._first is None:
            self._first = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        self._last = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        seconds = (self._last - self._first) if self._first is not None and self._last is not None else 0.0
        # The first batch's time is start-up (graph build, allocation); throughput uses the others.
        timed = max(self.batches - 1, 0)
        report = {
            "global_rank": trainer.global_rank,
            "local_rank": trainer.local_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "pid": os.getpid(),
            "seed": self.seed,
            "batches": self.batches,
            "samples": self.batches * self.batch_size,
            "global_step": int(trainer.global_step),
            "train_seconds": round(seconds, 4),
            "samples_per_second": round(timed * self.batch_size / seconds, 3) if seconds > 0 and timed else None,
            "weights_sha256": state_dict_digest(pl_module),
        }
        write_json_atomic(self.output_dir / f"rank-{trainer.global_rank}.json", report, indent=2)


def read_rank_reports(output_dir: str | Path) -> list[dict[str, Any]]:
    """The rank reports of a run, ordered by rank."""
    reports = [json.loads(p.read_text()) for p in Path(output_dir).glob("rank-*.json")]
    return sorted(reports, key=lambda r: r["global_rank"])
