"""``DAU1d``: the Dance Diffusion U-Net (0.0.20's ``DiffusionAttnUnet1D``), a backbone of ``diffusion_uncond`` and
the decoder of ``diffusion_autoencoder``.

The network, from the outside in: level 1 is three residual conv blocks, the next level, three more blocks and a
last block to ``io_channels``; every deeper level ``i`` (``2..depth``) is a skip block that downsamples by 2
(a fixed cubic kernel; a strided conv with ``learned_resample``), runs three conv(+attention) blocks, the level
below, three more, upsamples and concatenates its input. Attention (``channels // 32`` heads) is on the levels
``i >= depth - n_attn_layers``. The timestep enters as 16 random Fourier features broadcast over time and
concatenated to the input channels, as does the ``cond`` signal (``cond_dim`` channels, resized linearly to the
input length); ``cond_noise_aug`` adds noise of a random level to ``cond`` and 16 more channels saying how much.
Config keys, defaults and state-dict names (``net.*``, ``timestep_embed.weight``, the resampling kernels as
buffers) are upstream's; fresh weights of ``net`` are halved, as upstream.

Differences from stable-audio-tools 0.0.20, which cannot build this network from any config (it passes
``use_snake`` to a ``ResConvBlock`` that does not take it):

- ``use_snake`` works: the residual blocks' GELUs become SnakeBeta activations (parameters ``alpha`` / ``beta``
  in place of the parameter-free GELU modules); the default (false) has upstream's exact layout.
- a stride-1 level without ``learned_resample`` (0.0.20 downsamples it by 1 and upsamples by 2, a shape error)
  and too few ``channels`` / ``strides`` for ``depth`` are config errors naming the key, as is an attention level
  narrower than 32 channels (0 heads).
- the downsampling ratio is that of the levels built (``prod(strides[:depth - 1])``; 0.0.20's diffusion
  autoencoder takes the product of every listed stride, and fails when ``strides`` is left at its default).
- attention is the same math on every device (0.0.20's CUDA path reshapes the heads' output without
  transposing it back, so its GPU and CPU outputs differ).
- ``cond_noise_aug`` draws the noise level from ``torch.rand`` (seedable), not from a scrambled Sobol sequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.adp import halve_parameters
from stable_audio_ops.models.blocks import SnakeBeta
from stable_audio_ops.models.dit import FourierFeatures

# 0.0.20's cubic resampling kernel (the downsampler's; the upsampler's is twice it).
CUBIC_KERNEL = (-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875)
TIME_FEATURES = 16
HEAD_WIDTH = 32  # attention heads = channels // 32


def _activation(channels: int, use_snake: bool) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.GELU()


class ResConvBlock(nn.Module):
    """``main(x) + skip(x)``: conv-GroupNorm-GELU-conv-GroupNorm-GELU (no norm/activation after the last conv
    of the network's last block); ``skip`` is a bias-free 1x1 conv when the width changes."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, is_last: bool = False, kernel_size: int = 5,
                 conv_bias: bool = True, use_snake: bool = False):
        super().__init__()
        pad = kernel_size // 2
        self.main = nn.Sequential(
            nn.Conv1d(c_in, c_mid, kernel_size, padding=pad, bias=conv_bias),
            nn.GroupNorm(1, c_mid),
            _activation(c_mid, use_snake),
            nn.Conv1d(c_mid, c_out, kernel_size, padding=pad, bias=conv_bias),
            nn.Identity() if is_last else nn.GroupNorm(1, c_out),
            nn.Identity() if is_last else _activation(c_out, use_snake),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.skip(x)


class SelfAttention1d(nn.Module):
    """Residual multi-head self-attention over time on ``[B, C, T]`` (GroupNorm, 1x1 qkv and output convs)."""

    def __init__(self, channels: int, n_head: int):
        super().__init__()
        if n_head < 1 or channels % n_head:
            raise ValueError(f"{channels} channels cannot be split into {n_head} attention heads")
        self.n_head = n_head
        self.norm = nn.GroupNorm(1, channels)
        self.qkv_proj = nn.Conv1d(channels, channels * 3, 1)
        self.out_proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, s = x.shape
        qkv = self.qkv_proj(self.norm(x)).view(n, self.n_head * 3, c // self.n_head, s).transpose(2, 3)
        q, k, v = qkv.chunk(3, dim=1)  # [B, heads, T, head_dim] each
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out_proj(y.transpose(2, 3).reshape(n, c, s))


class SkipBlock(nn.Module):
    """``cat([main(x), x])`` over channels (a U-Net level and its skip connection)."""

    def __init__(self, *main: nn.Module):
        super().__init__()
        self.main = nn.Sequential(*main)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.main(x), x], dim=1)


class Downsample1d(nn.Module):
    """Halve the length with a fixed per-channel cubic low-pass (reflect padding); ``kernel`` is a buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", torch.tensor(CUBIC_KERNEL))
        self.pad = len(CUBIC_KERNEL) // 2 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad), mode="reflect")
        weight = self.kernel.to(x).expand(x.shape[1], 1, -1)
        return F.conv1d(x, weight, stride=2, groups=x.shape[1])


class Upsample1d(nn.Module):
    """Double the length with the same cubic kernel (times 2) as a transposed conv; ``kernel`` is a buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", torch.tensor(CUBIC_KERNEL) * 2)
        self.pad = len(CUBIC_KERNEL) // 2 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edge = (self.pad + 1) // 2
        x = F.pad(x, (edge, edge), mode="reflect")
        weight = self.kernel.to(x).expand(x.shape[1], 1, -1)
        return F.conv_transpose1d(x, weight, stride=2, padding=self.pad * 2 + 1, groups=x.shape[1])


def learned_downsample(channels: int, factor: int) -> nn.Conv1d:
    """``learned_resample``: a strided conv (kernel ``2 * factor + 1``)."""
    return nn.Conv1d(channels, channels, factor * 2 + 1, stride=factor, padding=factor)


def learned_upsample(channels: int, factor: int) -> nn.Module:
    """``learned_resample``: a transposed conv by ``factor`` (a 3-tap conv for factor 1)."""
    if factor == 1:
        return nn.Conv1d(channels, channels, 3, padding=1)
    return nn.ConvTranspose1d(channels, channels, factor * 2, stride=factor, padding=factor // 2 + factor % 2,
                              output_padding=factor % 2)


class DiffusionAttnUnet1D(nn.Module):
    """The Dance Diffusion U-Net: ``forward(x [B, io, T], t [B], cond=None) -> [B, io, T]`` (module docstring)."""

    def __init__(self, io_channels: int = 2, depth: int = 14, n_attn_layers: int = 6,
                 channels: Sequence[int] = (128, 128, 256, 256, *[512] * 10), cond_dim: int = 0,
                 cond_noise_aug: bool = False, kernel_size: int = 5, learned_resample: bool = False,
                 strides: Sequence[int] = (2,) * 13, conv_bias: bool = True, use_snake: bool = False):
        super().__init__()
        _check_layout(depth, n_attn_layers, list(channels), list(strides), learned_resample)
        self.io_channels = io_channels
        self.cond_dim = cond_dim
        self.cond_noise_aug = cond_noise_aug
        self.downsampling_ratio = math.prod(strides[:depth - 1]) if learned_resample else 2 ** (depth - 1)
        self.timestep_embed = FourierFeatures(1, TIME_FEATURES)

        def conv(c_in: int, c_mid: int, c_out: int, is_last: bool = False) -> ResConvBlock:
            return ResConvBlock(c_in, c_mid, c_out, is_last=is_last, kernel_size=kernel_size, conv_bias=conv_bias,
                                use_snake=use_snake)

        def attn(c: int, on: bool) -> nn.Module:
            return SelfAttention1d(c, c // HEAD_WIDTH) if on else nn.Identity()

        block: nn.Module = nn.Identity()
        for i in range(depth, 1, -1):  # innermost level first
            c, c_prev, stride = channels[i - 1], channels[i - 2], strides[i - 2]
            on = n_attn_layers > 0 and i >= depth - n_attn_layers
            block = SkipBlock(
                learned_downsample(c_prev, stride) if learned_resample else Downsample1d(),
                conv(c_prev, c, c), attn(c, on), conv(c, c, c), attn(c, on), conv(c, c, c), attn(c, on),
                block,
                conv(c * 2 if i != depth else c, c, c), attn(c, on), conv(c, c, c), attn(c, on),
                conv(c, c, c_prev), attn(c_prev, on),
                learned_upsample(c_prev, stride) if learned_resample else Upsample1d(),
            )
        c = channels[0]
        time_channels = TIME_FEATURES * (2 if cond_noise_aug else 1)
        self.net = nn.Sequential(
            conv(io_channels + cond_dim + time_channels, c, c), conv(c, c, c), conv(c, c, c),
            block,
            conv(c * 2, c, c), conv(c, c, c), conv(c, c, io_channels, is_last=True),
        )
        halve_parameters(self.net)

    def _planes(self, level: torch.Tensor, length: int) -> torch.Tensor:
        """Fourier features of ``level [B]`` broadcast to ``[B, 16, length]``."""
        return self.timestep_embed(level[:, None].to(self.timestep_embed.weight))[..., None].expand(-1, -1, length)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                cond_aug_scale: float | None = None) -> torch.Tensor:
        inputs = [x, self._planes(t, x.shape[-1]).to(x.dtype)]
        if (cond is None) != (self.cond_dim == 0):
            raise ValueError(f"this U-Net takes {self.cond_dim} conditioning channels, got "
                             f"{'none' if cond is None else cond.shape[1]}")
        if cond is not None:
            if cond.shape[-1] != x.shape[-1]:
                cond = F.interpolate(cond, size=x.shape[-1], mode="linear", align_corners=False)
            if self.cond_noise_aug:
                if cond_aug_scale is None:
                    level = torch.rand(cond.shape[0], device=cond.device, dtype=cond.dtype)
                else:
                    level = torch.full((cond.shape[0],), float(cond_aug_scale), device=cond.device, dtype=cond.dtype)
                cond = cond + torch.randn_like(cond) * level[:, None, None]
                inputs.append(self._planes(level, x.shape[-1]).to(x.dtype))
            inputs.append(cond)
        return self.net(torch.cat(inputs, dim=1))


def _check_layout(depth: int, n_attn_layers: int, channels: list[int], strides: list[int],
                  learned_resample: bool) -> None:
    """Errors keyed by the config key they are about (``build_dau1d`` turns them into :class:`ConfigError`)."""
    if depth < 2:
        raise _LayoutError("depth", f"must be >= 2 (one level plus the skip levels), got {depth}")
    if len(channels) < depth:
        raise _LayoutError("channels", f"needs at least depth={depth} entries, got {len(channels)}")
    if len(strides) < depth - 1:
        raise _LayoutError("strides", f"needs at least depth - 1 = {depth - 1} entries, got {len(strides)}")
    if not learned_resample and any(s != 2 for s in strides[:depth - 1]):
        raise _LayoutError("strides", f"must all be 2 without learned_resample (the fixed resampling halves / "
                                      f"doubles), got {strides[:depth - 1]}")
    for i in range(2, depth + 1):
        if n_attn_layers > 0 and i >= depth - n_attn_layers and min(channels[i - 1], channels[i - 2]) < HEAD_WIDTH:
            raise _LayoutError("channels", f"levels with attention (n_attn_layers={n_attn_layers}) need >= "
                                           f"{HEAD_WIDTH} channels (heads = channels // {HEAD_WIDTH}); level {i} has "
                                           f"{channels[i - 2]} -> {channels[i - 1]}")


class _LayoutError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


# key -> (kind, default); defaults are upstream's
DAU1D_KEYS: dict[str, tuple[str, Any]] = {
    "io_channels": ("a positive int", 2),
    "depth": ("a positive int", 14),
    "n_attn_layers": ("a non-negative int", 6),
    "channels": ("a list of ints", [128, 128, 256, 256] + [512] * 10),
    "cond_dim": ("a non-negative int", 0),
    "cond_noise_aug": ("a bool", False),
    "kernel_size": ("a positive int", 5),
    "learned_resample": ("a bool", False),
    "strides": ("a list of ints", [2] * 13),
    "conv_bias": ("a bool", True),
    "use_snake": ("a bool", False),
}


def build_dau1d(cfg: ConfigNode) -> DiffusionAttnUnet1D:
    """A :class:`DiffusionAttnUnet1D` from a ``DAU1d`` ``config`` node; problems name the key."""
    check_known_keys(cfg, tuple(DAU1D_KEYS))
    kwargs = {key: cfg.get(key, kind, default) for key, (kind, default) in DAU1D_KEYS.items()}
    for key in ("channels", "strides"):
        if any(v <= 0 for v in kwargs[key]):
            raise cfg.error(f"expected positive ints, got {kwargs[key]!r}", key)
    if kwargs["kernel_size"] % 2 == 0:
        raise cfg.error(f"must be odd (same-length convolutions), got {kwargs['kernel_size']}", "kernel_size")
    try:
        return DiffusionAttnUnet1D(**kwargs)
    except _LayoutError as exc:
        raise cfg.error(exc.message, exc.key) from None


class DAU1DCondWrapper(nn.Module):
    """0.0.20's decoder wrapper for ``diffusion_autoencoder``: holds the U-Net as ``model`` (keys
    ``diffusion.model.net.*``), ``forward(x, t, input_concat_cond)`` passes the latents as ``cond``; fresh weights
    are halved once more (as upstream)."""

    def __init__(self, unet: DiffusionAttnUnet1D):
        super().__init__()
        self.model = unet
        self.io_channels = unet.io_channels
        self.downsampling_ratio = unet.downsampling_ratio
        halve_parameters(self.model)

    def forward(self, x: torch.Tensor, t: torch.Tensor, input_concat_cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, t, cond=input_concat_cond)


__all__ = ["DAU1D_KEYS", "DAU1DCondWrapper", "DiffusionAttnUnet1D", "Downsample1d", "ResConvBlock",
           "SelfAttention1d", "SkipBlock", "Upsample1d", "build_dau1d"]
