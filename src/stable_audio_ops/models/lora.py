"""Low-rank adapters (LoRA) for the DiT of a conditioned diffusion model.

Why our own layer rather than peft: the adapted layer keeps the base layer's ``weight`` / ``bias`` under their
upstream names (``...self_attn.to_qkv.weight``), so a stable-audio-tools checkpoint loads strictly into the model
before or after adapters are added, and the adapter tensors sit beside them as ``...to_qkv.lora_A`` /
``...to_qkv.lora_B``. peft wraps each layer (``base_layer.weight``), which renames every adapted key.

``W x + b + (alpha / rank) * B A dropout(x)``: ``A`` is Kaiming-initialised and ``B`` starts at zero, so a
fresh adapter leaves the model's output bitwise unchanged. :func:`merge_lora` folds ``(alpha / rank) B A`` into
``W`` and puts plain ``nn.Linear`` layers back, which gives an upstream-format model again.

Targets are named groups of linear layers (:data:`TARGET_GROUPS`), matched on module names relative to the
model the adapters are applied to (the ``ConditionedDiffusionModelWrapper``):
``self_attn``, ``cross_attn`` (attention projections), ``ff`` (feed-forward layers), ``cond_embed`` (the DiT's
conditioning-token / global-conditioning projections) and ``conditioners`` (linear layers of the conditioner
embedders, e.g. the number conditioners).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys

LORA_SUFFIXES = (".lora_A", ".lora_B")

# group name -> pattern over the qualified name of an nn.Linear
TARGET_GROUPS: dict[str, re.Pattern[str]] = {
    "self_attn": re.compile(r"(^|\.)self_attn\.(to_qkv|to_q|to_kv|to_out)$"),
    "cross_attn": re.compile(r"(^|\.)cross_attn\.(to_q|to_kv|to_out)$"),
    "ff": re.compile(r"(^|\.)ff\.ff\.\d+(\.proj|\.\d+)?$"),
    "cond_embed": re.compile(r"(^|\.)(to_cond_embed|to_global_embed|to_prepend_embed)\.\d+$"),
    "conditioners": re.compile(r"^conditioner\."),
}
DEFAULT_TARGETS = ("self_attn", "cross_attn", "ff")
CONFIG_KEYS = ("rank", "alpha", "dropout", "targets")


@dataclass(frozen=True)
class LoRAConfig:
    """Rank, scale numerator ``alpha`` (scale = alpha / rank), input dropout and target groups."""

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out


def lora_config_from_mapping(values: Mapping[str, Any], source: str = "<lora config>",
                             path: str = "lora") -> LoRAConfig:
    """Validated :class:`LoRAConfig`; errors name ``source`` and the key path (e.g. ``training.lora.rank``)."""
    node = ConfigNode(dict(values), source, path)
    check_known_keys(node, CONFIG_KEYS)
    rank = node.get("rank", "a positive int", LoRAConfig.rank)
    alpha = float(node.get("alpha", "a positive number", rank))
    dropout = float(node.get("dropout", "a non-negative number", 0.0))
    if dropout >= 1.0:
        raise node.error(f"must be in [0, 1), got {dropout}", "dropout")
    targets = tuple(node.get("targets", "a list of strings", list(DEFAULT_TARGETS)))
    if not targets:
        raise node.error(f"must name at least one of: {', '.join(TARGET_GROUPS)}", "targets")
    for i, name in enumerate(targets):
        if name not in TARGET_GROUPS:
            raise node.child("targets").error(f"unknown LoRA target {name!r}; known: {', '.join(TARGET_GROUPS)}", i)
    return LoRAConfig(rank=rank, alpha=alpha, dropout=dropout, targets=targets)


class LoRALinear(nn.Module):
    """A linear layer plus a low-rank update; ``weight`` / ``bias`` are the base layer's own parameters."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.scaling = alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **factory))
        if base.weight.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.weight, self.bias)
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return base + update * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """``(alpha / rank) B A``, the change this adapter makes to ``weight``."""
        return (self.lora_B.float() @ self.lora_A.float() * self.scaling).to(self.weight.dtype)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight has the update folded in (bias unchanged)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device="meta", dtype=self.weight.dtype)
        linear.weight = nn.Parameter((self.weight.detach() + self.delta_weight().detach()),
                                     requires_grad=self.weight.requires_grad)
        if self.bias is not None:
            linear.bias = self.bias
        return linear

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.lora_A.shape[0]}"


def target_names(model: nn.Module, targets: Iterable[str]) -> list[str]:
    """Qualified names of the ``nn.Linear`` layers of ``model`` that the target groups select."""
    patterns = [TARGET_GROUPS[name] for name in targets]
    return [name for name, module in model.named_modules()
            if type(module) is nn.Linear and any(p.search(name) for p in patterns)]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def apply_lora(model: nn.Module, config: LoRAConfig, *, freeze_base: bool = True) -> list[str]:
    """Replace the targeted linear layers of ``model`` by :class:`LoRALinear` (in place); with ``freeze_base``
    only adapter parameters keep ``requires_grad``. Returns the adapted layer names; none found is an error
    (a target list that matches nothing would silently train nothing)."""
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("the model already carries LoRA adapters; merge or rebuild it before adding new ones")
    names = target_names(model, config.targets)
    if not names:
        raise ValueError(f"LoRA targets {', '.join(config.targets)} match no linear layer of the model")
    if freeze_base:
        model.requires_grad_(False)
    for name in names:
        _set_submodule(model, name, LoRALinear(model.get_submodule(name), config.rank, config.alpha, config.dropout))
    return names


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and restore plain ``nn.Linear`` layers (in place)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _set_submodule(model, name, module.merged())
    return model


def is_lora_key(key: str) -> bool:
    return key.endswith(LORA_SUFFIXES)


def lora_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the adapter tensors of a state dict."""
    return {k: v for k, v in state_dict.items() if is_lora_key(k)}


def base_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without its adapter tensors (the base model's own weights, upstream keys)."""
    return {k: v for k, v in state_dict.items() if not is_lora_key(k)}


def merge_lora_state_dict(state_dict: Mapping[str, torch.Tensor], config: LoRAConfig) -> dict[str, torch.Tensor]:
    """An upstream-format state dict with every ``<layer>.lora_A/B`` pair folded into ``<layer>.weight``."""
    merged = base_state_dict(state_dict)
    for key in state_dict:
        if key.endswith(".lora_A"):
            layer = key[: -len(".lora_A")]
            a, b = state_dict[key], state_dict[f"{layer}.lora_B"]
            weight = merged[f"{layer}.weight"]
            merged[f"{layer}.weight"] = (weight.float() + b.float() @ a.float() * config.scaling).to(weight.dtype)
    return merged


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared parameters counted once)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def adapted_layers(keys: Sequence[str]) -> list[str]:
    """Layer names that a set of adapter keys covers."""
    return sorted({k.rsplit(".", 1)[0] for k in keys if is_lora_key(k)})


__all__ = ["DEFAULT_TARGETS", "TARGET_GROUPS", "LoRAConfig", "LoRALinear", "adapted_layers", "apply_lora",
           "base_state_dict", "count_parameters", "has_lora", "is_lora_key", "lora_config_from_mapping",
           "lora_state_dict", "merge_lora", "merge_lora_state_dict", "target_names"]
