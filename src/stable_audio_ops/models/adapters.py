"""LoRA adapter files: the adapter tensors alone, as safetensors, with what is needed to use them again.

Why a file of its own: an adapter for Stable Audio Open is megabytes, its base model gigabytes; users keep one
base and many adapters. The safetensors metadata holds ``lora_config`` (rank, alpha, dropout, targets) and
``base_model`` (where the base came from and the sha256 of its weights), so an adapter is never applied to a
base it was not trained on without saying so. :func:`attach_adapter` applies one onto a loaded base model
without merging; :func:`merge_lora_state_dict` (``models.lora``) folds it in for a full checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.lora import (
    LoRAConfig,
    adapted_layers,
    apply_lora,
    is_lora_key,
    lora_config_from_mapping,
)
from stable_audio_ops.utils.io import atomic_path

log = logging.getLogger(__name__)

ADAPTER_FORMAT = "stable-audio-ops-lora"


@dataclass
class Adapter:
    """Adapter tensors (keys relative to the diffusion model wrapper), their config and the base they fit."""

    tensors: dict[str, torch.Tensor]
    config: LoRAConfig
    base_model: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_adapter(path: str | Path, tensors: Mapping[str, torch.Tensor], config: LoRAConfig,
                 base_model: Mapping[str, Any] | None = None) -> Path:
    """Write the adapter tensors (only ``*.lora_A`` / ``*.lora_B``; anything else is a caller bug) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: an adapter file must end in .safetensors")
    other = sorted(k for k in tensors if not is_lora_key(k))
    if other:
        raise ValueError(f"{path}: adapter tensors must be LoRA tensors only; got {other[:3]}")
    if not tensors:
        raise ValueError(f"{path}: no adapter tensors to save")
    metadata = {"format": ADAPTER_FORMAT, "lora_config": json.dumps(config.to_dict()),
                "base_model": json.dumps(dict(base_model or {}), default=str)}
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    return path


def is_adapter_file(path: str | Path) -> bool:
    """True for a safetensors file written by :func:`save_adapter`."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == ADAPTER_FORMAT
    except Exception:  # not a readable safetensors file: not an adapter either
        return False


def read_adapter(path: str | Path) -> Adapter:
    """Tensors, config and base-model facts of an adapter file; errors name the file and what is wrong."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such adapter file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read adapter file: {exc}") from exc
    if metadata.get("format") != ADAPTER_FORMAT:
        raise CheckpointError(f"{path}: not a LoRA adapter file (metadata 'format' is "
                              f"{metadata.get('format')!r}, expected {ADAPTER_FORMAT!r})")
    try:
        config = lora_config_from_mapping(json.loads(metadata["lora_config"]), str(path), "lora_config")
        base = json.loads(metadata.get("base_model", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: adapter metadata 'lora_config' / 'base_model' unreadable: {exc}") from exc
    return Adapter(tensors=tensors, config=config, base_model=base, path=path)


def attach_adapter(model: nn.Module, adapter: Adapter | str | Path) -> Adapter:
    """Apply an adapter onto a base model without merging (in place, frozen base): the layers its config
    targets get adapters, then its tensors load strictly; a tensor for a layer the model lacks, a layer left
    without one, or a shape that differs is an error naming the adapter file and the keys."""
    if not isinstance(adapter, Adapter):
        adapter = read_adapter(adapter)
    where = str(adapter.path or "adapter")
    names = apply_lora(model, adapter.config)
    expected = {f"{n}.{p}" for n in names for p in ("lora_A", "lora_B")}
    given = set(adapter.tensors)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise CheckpointError(f"{where}: adapter does not fit this model (targets {', '.join(adapter.config.targets)}):"
                              f" missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} "
                              f"({len(unexpected)}); was it trained on another model config?")
    state = model.state_dict()
    mismatched = [k for k in expected if state[k].shape != adapter.tensors[k].shape]
    if mismatched:
        raise CheckpointError(f"{where}: adapter shapes differ from the model's at {sorted(mismatched)[:5]} "
                              f"(e.g. {tuple(adapter.tensors[mismatched[0]].shape)} vs "
                              f"{tuple(state[mismatched[0]].shape)}); was it trained with another rank or model?")
    with torch.no_grad():
        for key in expected:
            state[key].copy_(adapter.tensors[key])
    log.info("attached LoRA adapter %s (%d layers, rank %d)", where, len(adapted_layers(list(expected))),
             adapter.config.rank)
    return adapter


__all__ = ["ADAPTER_FORMAT", "Adapter", "attach_adapter", "is_adapter_file", "read_adapter", "save_adapter"]
