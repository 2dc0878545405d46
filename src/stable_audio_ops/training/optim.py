"""Optimizers and LR schedulers built from the ``{type, config}`` blocks of ``training.optimizer_configs``.

Upstream resolves ``type`` with ``getattr(torch.optim, type)``, so any torch optimizer or scheduler name
works there; we keep that, but an unknown name is a :class:`UnknownTypeError` that lists what exists
instead of an ``AttributeError`` deep inside Lightning's ``configure_optimizers``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from stable_audio_ops.config.schema import ConfigNode, lookup

log = logging.getLogger(__name__)


class InverseLR(LRScheduler):
    """Inverse-decay LR with an optional exponential warm-up (upstream's InverseLR).

    ``lr = (1 - warmup ** (step + 1)) * max(final_lr, base_lr * (1 + step / inv_gamma) ** -power)``.
    ``inv_gamma`` is the number of steps after which the LR has decayed to ``base_lr * 0.5 ** power``;
    ``warmup`` in [0, 1) sets how fast the LR ramps up (0 disables the ramp).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        inv_gamma: float = 1.0,
        power: float = 1.0,
        warmup: float = 0.0,
        final_lr: float = 0.0,
        last_epoch: int = -1,
    ):
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"InverseLR: warmup must be in [0, 1), got {warmup}")
        if inv_gamma <= 0:
            raise ValueError(f"InverseLR: inv_gamma must be > 0, got {inv_gamma}")
        self.inv_gamma = inv_gamma
        self.power = power
        self.warmup = warmup
        self.final_lr = final_lr
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, step: int) -> list[float]:
        ramp = 1.0 - self.warmup ** (step + 1)
        decay = (1.0 + step / self.inv_gamma) ** (-self.power)
        return [ramp * max(self.final_lr, base_lr * decay) for base_lr in self.base_lrs]

    def get_lr(self) -> list[float]:
        return self._lr_at(self.last_epoch)

    def _get_closed_form_lr(self) -> list[float]:
        return self._lr_at(self.last_epoch)


def _public_classes(module: Any, base: type) -> dict[str, type]:
    """Every public class in ``module`` that subclasses ``base`` (the names a config may use)."""
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or not inspect.isclass(obj):
            continue
        if issubclass(obj, base) and obj is not base:
            found[name] = obj
    return found


def adamw_8bit(parameters: Iterable[torch.nn.Parameter], **kwargs: Any) -> torch.optim.Optimizer:
    """bitsandbytes' AdamW with 8-bit moments (a quarter of AdamW's optimizer-state memory). Optional: it runs
    on CPU and CUDA with bitsandbytes 0.50 (measured on CPU: same loss curve as AdamW, state 8.1 vs 32 MiB per
    4M parameters); without bitsandbytes installed the error says how to get it."""
    try:
        import bitsandbytes
    except ImportError as exc:
        raise ImportError("optimizer type 'AdamW8bit' needs bitsandbytes: pip install bitsandbytes==0.50.2 "
                          "(or use 'AdamW')") from exc
    return bitsandbytes.optim.AdamW8bit(parameters, **kwargs)


def optimizer_registry() -> dict[str, Any]:
    """Name -> optimizer constructor: every ``torch.optim`` optimizer, plus ``AdamW8bit`` (bitsandbytes)."""
    return {**_public_classes(torch.optim, torch.optim.Optimizer), "AdamW8bit": adamw_8bit}


def scheduler_registry() -> dict[str, type]:
    """Name -> scheduler class: ``InverseLR`` plus every ``torch.optim.lr_scheduler`` scheduler."""
    registry = _public_classes(torch.optim.lr_scheduler, LRScheduler)
    # ReduceLROnPlateau needs a metric on every step, which a per-step schedule never has.
    registry.pop("ReduceLROnPlateau", None)
    registry["InverseLR"] = InverseLR
    return registry


def _node(cfg: dict | ConfigNode, default_path: str) -> ConfigNode:
    return cfg if isinstance(cfg, ConfigNode) else ConfigNode(cfg, "", default_path)


def _kwargs(node: ConfigNode) -> dict:
    cfg = dict(node.get("config", "an object", {}))
    # JSON has no tuples; torch accepts lists for betas, but keep the upstream type.
    if isinstance(cfg.get("betas"), list):
        cfg["betas"] = tuple(cfg["betas"])
    return cfg


def create_optimizer_from_config(
    cfg: dict | ConfigNode, parameters: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """``{"type": "AdamW", "config": {...}}`` -> ``torch.optim.AdamW(parameters, **config)``."""
    node = _node(cfg, "optimizer")
    name = node.get("type", "a string")
    cls = lookup(optimizer_registry(), name, "optimizer", node)
    try:
        return cls(parameters, **_kwargs(node))
    except TypeError as exc:
        raise node.error(f"bad arguments for {name}: {exc}", "config") from exc
    except ImportError as exc:  # an optional optimizer whose package is not installed
        raise node.error(str(exc), "type") from exc


def create_scheduler_from_config(cfg: dict | ConfigNode, optimizer: torch.optim.Optimizer) -> LRScheduler:
    """``{"type": "InverseLR", "config": {...}}`` -> a scheduler stepped once per optimizer step."""
    node = _node(cfg, "scheduler")
    name = node.get("type", "a string")
    cls = lookup(scheduler_registry(), name, "scheduler", node)
    try:
        return cls(optimizer, **_kwargs(node))
    except (TypeError, ValueError) as exc:
        raise node.error(f"bad arguments for {name}: {exc}", "config") from exc


def resolve_optimizer_configs(optimizer_configs: Mapping[str, Any] | None, lr: float | None,
                              default: Callable[[float], dict], key: str, source: str = "<model config>",
                              path: str = "training") -> ConfigNode:
    """``training.optimizer_configs`` as a node, or the model type's ``default(learning_rate)`` without one.

    Every training module reads these two keys the same way (upstream: ``optimizer_configs`` wins, else its
    default optimizer at ``learning_rate``), so one function checks them: neither given, or no ``key`` entry
    (``diffusion``, ``lm``, ``model``), is an error naming the key now rather than inside Lightning's
    ``configure_optimizers``; both given warns that ``learning_rate`` is ignored.
    """
    if optimizer_configs is None:
        if lr is None:
            raise ConfigNode({}, source, path).error(
                f"missing required key (expected a positive number): set training.learning_rate or "
                f"training.optimizer_configs.{key}", "learning_rate")
        optimizer_configs = default(lr)
    elif lr is not None:
        log.warning("training.learning_rate is ignored because training.optimizer_configs is given")
    node = ConfigNode(dict(optimizer_configs), source, f"{path}.optimizer_configs")
    if key not in optimizer_configs:
        raise node.error("missing required key (expected an object with 'optimizer')", key)
    node.child(key).child("optimizer")
    return node


def configure_optimizer(node: ConfigNode, parameters: Iterable[torch.nn.Parameter]) -> list | tuple[list, list]:
    """Lightning's ``configure_optimizers`` answer for one ``optimizer_configs`` entry: the optimizer, and its
    scheduler stepped every optimizer step when the entry has one."""
    optimizer = create_optimizer_from_config(node.child("optimizer"), parameters)
    if node.has("scheduler"):
        scheduler = create_scheduler_from_config(node.child("scheduler"), optimizer)
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]
    return [optimizer]
