"""1-D ConvNeXt encoder (upstream ``models/convnext.py``), the body of ARC's ``convnext`` discriminator head.

Why it exists: ARC post-training scores DiT hidden states with a small downsampling ConvNeXt stack. Module
attribute names follow upstream so a head's state dict has upstream's keys (``proj_in``,
``layers.{i}.layers.{j}.{dw_conv,proj_up,proj_down}``, ``layers.{i}.downsample``, ``layers.{last}``), every
convolution weight-normed the legacy way (``weight_g`` / ``weight_v``).

Layout: ``proj_in`` (k7) -> per stage ``num_blocks`` residual ConvNeXt blocks at the stage width, then a strided
convolution (kernel ``2 * stride``, padding ``ceil(stride / 2)``) to the next width -> a k3 convolution to
``latent_dim`` channels. A block is depthwise conv (``kernel_size``) -> 1x1 up (``mult`` x, GLU-gated with
``glu``) -> GELU (SiLU with GLU) -> 1x1 down, plus the input.

Upstream zero-initialises ``proj_down``'s weight *after* weight norm, which only overwrites the derived
``weight`` tensor that the next forward recomputes from ``weight_g``/``weight_v``: a no-op. Only its bias
zeroing takes effect, and that is all this module does. Upstream's activation checkpointing inside the
encoder stages is a memory option, not part of the maths, and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stable_audio_ops.models.blocks import wn_conv1d

CONV_ARGS = ("kernel_size", "mult", "glu")


class ConvNeXtBlock(nn.Module):
    """Residual depthwise + pointwise block at a fixed width."""

    def __init__(self, dim: int, kernel_size: int = 7, mult: int = 4, glu: bool = False):
        super().__init__()
        self.dw_conv = wn_conv1d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.glu = glu
        self.proj_up = wn_conv1d(dim, dim * mult * (2 if glu else 1), kernel_size=1)
        self.act = nn.SiLU() if glu else nn.GELU()
        self.proj_down = wn_conv1d(dim * mult, dim, kernel_size=1)
        nn.init.zeros_(self.proj_down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj_up(self.dw_conv(x))
        if self.glu:
            h, gate = h.chunk(2, dim=1)
            h = h * torch.sigmoid(gate)
        return self.proj_down(self.act(h)) + x


class ConvNeXtEncoderBlock(nn.Module):
    """``num_blocks`` ConvNeXt blocks, then a strided convolution to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, num_blocks: int = 3,
                 conv_args: Mapping[str, Any] | None = None):
        super().__init__()
        self.layers = nn.ModuleList([ConvNeXtBlock(dim=in_channels, **dict(conv_args or {}))
                                     for _ in range(num_blocks)])
        self.downsample = wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                                    padding=math.ceil(stride / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.downsample(x)


class ConvNeXtEncoder(nn.Module):
    """``[B, in_channels, T] -> [B, latent_dim, T / prod(strides)]`` (see the module docstring)."""

    def __init__(self, in_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 num_blocks: Sequence[int] | None = None, conv_args: Mapping[str, Any] | None = None):
        super().__init__()
        c_mults = [1, *c_mults]
        if len(strides) < len(c_mults) - 1:
            raise ValueError(f"strides needs one entry per c_mults entry ({len(c_mults) - 1}), got {list(strides)}")
        num_blocks = list(num_blocks) if num_blocks is not None else [3] * (len(c_mults) - 1)
        if len(num_blocks) < len(c_mults) - 1:
            raise ValueError(f"num_blocks needs one entry per c_mults entry ({len(c_mults) - 1}), got {num_blocks}")
        unknown = sorted(set(conv_args or {}) - set(CONV_ARGS))
        if unknown:
            raise ValueError(f"unknown conv_args key {unknown[0]!r}; known: {', '.join(CONV_ARGS)}")
        self.depth = len(c_mults)
        self.proj_in = wn_conv1d(in_channels, c_mults[0] * channels, kernel_size=7, padding=3)
        layers: list[nn.Module] = [
            ConvNeXtEncoderBlock(c_mults[i] * channels, c_mults[i + 1] * channels, stride=strides[i],
                                 num_blocks=num_blocks[i], conv_args=conv_args)
            for i in range(self.depth - 1)
        ]
        layers.append(wn_conv1d(c_mults[-1] * channels, latent_dim, kernel_size=3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.proj_in(x))


__all__ = ["ConvNeXtBlock", "ConvNeXtEncoder", "ConvNeXtEncoderBlock"]
