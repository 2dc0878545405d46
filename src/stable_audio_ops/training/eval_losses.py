"""Validation metrics from ``training.eval_loss_configs`` (logged as ``val/<name>``), as 0.0.20.

``{"stft": {...STFTLoss args}, "sisdr": {...SISDRLoss args}, "mel": {...MelSTFTLoss args}}``; each
value holds the metric's keyword arguments (``{}`` for the defaults). ``sisdr`` is logged as SI-SDR in dB
(higher is better), the others as losses (lower is better). Unlike 0.0.20, which ignores names it does
not know, an unknown name is an error (a metric the user asked for would otherwise silently be missing).
``pesq`` (0.0.19: PESQ through the ``pypesq`` package; 0.0.20 dropped it) is an error that says so.
"""

from __future__ import annotations

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.losses.metrics import MelSTFTLoss, SISDRLoss
from stable_audio_ops.losses.spectral import STFTLoss

EVAL_LOSSES = ("stft", "sisdr", "mel")


def create_eval_losses(node: ConfigNode, sample_rate: int) -> nn.ModuleDict:
    """One metric module per entry of ``eval_loss_configs`` (empty when the node holds ``{}``)."""
    losses = nn.ModuleDict()
    if not isinstance(node.data, dict):
        raise node.error(f"expected an object, got {node.data!r}")
    for name in node.data:
        if name == "pesq":
            raise node.error("PESQ needs the pypesq package, which this package does not install or support "
                             "(0.0.20 dropped the metric too); remove the key, or use stft, sisdr or mel", name)
        if name not in EVAL_LOSSES:
            raise node.error(f"unknown validation metric {name!r}; known: {', '.join(EVAL_LOSSES)}", name)
        args = dict(node.get(name, "an object", {}))
        try:
            if name == "stft":
                losses[name] = STFTLoss(**args)
            elif name == "sisdr":
                losses[name] = SISDRLoss(**args)
            else:
                losses[name] = MelSTFTLoss(sample_rate, **args)
        except (TypeError, ValueError) as exc:
            raise node.error(f"bad {name} metric config: {exc}", name) from exc
    return losses


def eval_loss_values(losses: nn.ModuleDict, decoded: torch.Tensor, reals: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"val/<name>": value}``; SI-SDR sign flipped back to dB (the module returns its negative)."""
    values = {}
    for name, fn in losses.items():
        value = fn(decoded, reals)
        values[f"val/{name}"] = -value if name == "sisdr" else value
    return values
