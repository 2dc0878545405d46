"""ARC discriminator heads (upstream ``models/arc.py``) and the relativistic GAN loss.

Why: ARC post-training (adversarial relativistic-contrastive, :mod:`stable_audio_ops.training.arc`) scores a
sample by running a DiT truncated at ``dit_hidden_layer`` and a small convolutional *head* over its hidden
states ``[B, dim, tokens]``. The head's output is a map of scores ``[B, 1, T']``; the losses compare real and
fake scores position by position.

Heads (registry :data:`DISCRIMINATOR_HEADS`, config ``training.arc.discriminator.type`` / ``.config``):

- ``convnext`` (default): :class:`~stable_audio_ops.models.convnext.ConvNeXtEncoder` with ``in_channels`` =
  the DiT width and ``latent_dim=1``; keys ``encoder.*`` as upstream. Options: ``channels`` (128), ``c_mults``
  ([1, 2, 4, 8]), ``strides`` ([2, 4, 8, 8]), ``num_blocks``, ``conv_args`` (``kernel_size``, ``mult``,
  ``glu``). The defaults downsample 512x: token sequences shorter than that need smaller ``strides``.
- ``conv``: four (k4, stride 2) convolutions with GroupNorm(32) + SiLU at the DiT width, then a k4 convolution
  to one channel (keys ``layers.{0..12}.*``); ``soft_clip_scale`` bounds the scores with ``s * tanh(x / s)``.
  Needs a width divisible by 32 and at least ~64 tokens.

Both accept upstream's ``loss_type`` option; ARC always uses the relativistic loss
(:func:`relativistic_losses`), so it is only validated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.models.convnext import ConvNeXtEncoder

LOSS_TYPES = ("lsgan", "relativistic")


def relativistic_losses(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(discriminator loss, generator loss)`` of the relativistic pairing GAN: ``softplus(-(r - f))`` and
    ``softplus(r - f)``, averaged. Each pushes the margin ``real - fake`` in its own direction, so neither
    side can win by shifting all scores at once."""
    diff = real_scores - fake_scores
    return F.softplus(-diff).mean(), F.softplus(diff).mean()


class ConvDiscriminator(nn.Module):
    """Upstream's ``ConvDiscriminator``: x16 downsampling conv stack to one score channel."""

    def __init__(self, channels: int, soft_clip_scale: float | None = None, loss_type: str = "lsgan"):
        super().__init__()
        self.loss_type = loss_type
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [nn.Conv1d(channels, channels, kernel_size=4, stride=2, padding=1),
                       nn.GroupNorm(num_groups=32, num_channels=channels), nn.SiLU()]
        layers.append(nn.Conv1d(channels, 1, kernel_size=4, stride=1, padding=0))
        self.layers = nn.Sequential(*layers)
        self.soft_clip_scale = soft_clip_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        if self.soft_clip_scale is not None:
            out = self.soft_clip_scale * torch.tanh(out / self.soft_clip_scale)
        return out


class ConvNeXtDiscriminator(nn.Module):
    """Upstream's ``ConvNeXtDiscriminator``: a ConvNeXt encoder to ``latent_dim`` (1) score channels."""

    def __init__(self, loss_type: str = "lsgan", **encoder_kwargs: Any):
        super().__init__()
        self.encoder = ConvNeXtEncoder(**encoder_kwargs)
        self.loss_type = loss_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def _conv_head(in_channels: int, node: ConfigNode) -> nn.Module:
    check_known_keys(node, ("soft_clip_scale", "loss_type"))
    if in_channels % 32:
        raise node.error(f"the conv head needs a DiT width divisible by 32 (GroupNorm(32)), got {in_channels}")
    return ConvDiscriminator(in_channels, soft_clip_scale=node.get("soft_clip_scale", "a positive number", None),
                             loss_type=node.choice("loss_type", LOSS_TYPES, "lsgan"))


def _convnext_head(in_channels: int, node: ConfigNode) -> nn.Module:
    check_known_keys(node, ("channels", "c_mults", "strides", "num_blocks", "conv_args", "loss_type", "latent_dim"))
    try:
        return ConvNeXtDiscriminator(
            loss_type=node.choice("loss_type", LOSS_TYPES, "lsgan"),
            in_channels=in_channels,
            latent_dim=node.get("latent_dim", "a positive int", 1),
            channels=node.get("channels", "a positive int", 128),
            c_mults=node.get("c_mults", "a list of ints", [1, 2, 4, 8]),
            strides=node.get("strides", "a list of ints", [2, 4, 8, 8]),
            num_blocks=node.get("num_blocks", "a list of ints", None),
            conv_args=node.get("conv_args", "an object", None),
        )
    except ValueError as exc:  # a list-length or conv_args mismatch: say where it is
        raise node.error(str(exc)) from exc


# type -> builder(in_channels, options node)
DISCRIMINATOR_HEADS: dict[str, Callable[[int, ConfigNode], nn.Module]] = {
    "convnext": _convnext_head,
    "conv": _conv_head,
}


def create_discriminator_head(head_type: str, in_channels: int, config: ConfigNode,
                              type_node: ConfigNode | None = None) -> nn.Module:
    """The head ``head_type`` over ``in_channels``-wide hidden states, options from ``config`` (a node, so
    errors name the key path); ``type_node`` is the object holding ``type`` (for the unknown-type error)."""
    builder = lookup(DISCRIMINATOR_HEADS, head_type, "ARC discriminator head type", type_node, key="type")
    return builder(in_channels, config)


__all__ = ["DISCRIMINATOR_HEADS", "ConvDiscriminator", "ConvNeXtDiscriminator", "create_discriminator_head",
           "relativistic_losses"]
