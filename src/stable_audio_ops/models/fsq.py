"""Finite scalar quantizers (the ``fsq`` and ``dithered_fsq`` bottlenecks' quantizers).

FSQ rounds each channel to one of ``L`` evenly spaced levels; a code is the tuple of levels and its
index the mixed-radix number ``sum_i level_i * prod(L_0..L_{i-1})``, so there is no codebook to learn.
Inputs and outputs are channels-last ``[B, N, C]``; channels are grouped as ``num_codebooks`` groups of
``len(levels)``.

* :class:`FSQ` follows vector-quantize-pytorch 1.14.41's ``FSQ`` (what 0.0.20's ``fsq`` uses): a
  shifted-tanh bound so even level counts stay symmetric, values normalised to [-1, 1], optional
  ``project_in`` / ``project_out`` Linear layers when ``dim`` differs from the quantized width.
* :class:`DitheredFSQ` follows stable-audio-tools' own ``DitheredFSQ``: ``tanh`` then levels spread over
  [-1, 1]; in training mode each batch item randomly gets rounded, dithered (uniform noise of one level
  step) or unquantized values, so the decoder learns to be robust to the quantization step.

The straight-through rounding is written ``x + (round(x) - x)`` (not ``round(x)``) to keep the float
rounding of the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (x.round() - x).detach()


def _basis(levels: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0).to(dtype)


class FSQ(nn.Module):
    """``[B, N, dim]`` -> (codes ``[B, N, dim]``, indices ``[B, N, num_codebooks]`` int32)."""

    def __init__(self, levels: Sequence[int], dim: int | None = None, num_codebooks: int = 1,
                 projection_has_bias: bool = True):
        super().__init__()
        self.levels = list(levels)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.int32), persistent=False)
        self.register_buffer("_basis", _basis(self.levels, torch.int32), persistent=False)
        self.codebook_dim = len(self.levels)
        self.num_codebooks = num_codebooks
        self.effective_codebook_dim = self.codebook_dim * num_codebooks
        self.dim = self.effective_codebook_dim if dim is None else dim
        self.codebook_size = int(torch.tensor(self.levels).prod().item())
        projected = self.dim != self.effective_codebook_dim
        self.project_in: nn.Module = (nn.Linear(self.dim, self.effective_codebook_dim, bias=projection_has_bias)
                                      if projected else nn.Identity())
        self.project_out: nn.Module = (nn.Linear(self.effective_codebook_dim, self.dim, bias=projection_has_bias)
                                       if projected else nn.Identity())

    def bound(self, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """Squash to ``(L - 1) / 2`` around a centre shifted by half a step for even ``L``."""
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        return (z + shift).tanh() * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        return round_ste(self.bound(z)) / (self._levels // 2)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        half_width = self._levels // 2
        return ((codes * half_width + half_width) * self._basis).sum(dim=-1).to(torch.int32)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, N, num_codebooks]`` -> codes ``[B, N, dim]`` (after ``project_out``)."""
        half_width = self._levels // 2
        levels = (indices[..., None] // self._basis) % self._levels
        codes = (levels - half_width) / half_width
        return self.project_out(codes.flatten(-2))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Autocast off (as upstream on CUDA), so projections and levels never run in half precision."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._forward(z)

    def _forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ expects {self.dim} channels, got {z.shape[-1]}")
        orig_dtype = z.dtype
        z = self.project_in(z)
        z = z.unflatten(-1, (self.num_codebooks, self.codebook_dim))
        if z.dtype not in (torch.float32, torch.float64):
            z = z.float()
        codes = self.quantize(z)
        indices = self.codes_to_indices(codes)
        codes = codes.flatten(-2).to(orig_dtype)
        return self.project_out(codes), indices


class DitheredFSQ(nn.Module):
    """``[B, N, C]`` -> (codes ``[B, N, C]``, indices ``[B, N, num_codebooks]`` int64); no parameters.

    ``dither_inference`` is kept for config compatibility; 0.0.20 stores it and never reads it, so eval
    mode is deterministic rounding either way.
    """

    def __init__(self, levels: Sequence[int], num_codebooks: int = 1, dither_inference: bool = False,
                 noise_dropout: float = 0.5, scale: float = 1.0):
        super().__init__()
        self.levels = list(levels)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_basis", _basis(self.levels, torch.int64), persistent=False)
        self.register_buffer("half_l", scale * 2 / (self._levels - 1), persistent=False)
        self.codebook_dim = len(self.levels)
        self.num_codebooks = num_codebooks
        self.dim = self.codebook_dim * num_codebooks
        self.codebook_size = int(torch.tensor(self.levels).prod().item())
        self.dither_inference = dither_inference
        self.noise_dropout = float(noise_dropout)
        self.scale = float(scale)

    def _to_levels(self, z: torch.Tensor) -> torch.Tensor:
        return (z + self.scale) / self.half_l

    def _from_levels(self, level_indices: torch.Tensor) -> torch.Tensor:
        return level_indices * self.half_l - self.scale

    def _item_mask(self, z: torch.Tensor) -> torch.Tensor:
        """True for a ``noise_dropout`` fraction of batch items (same choice for all their values)."""
        p = torch.full([z.shape[0], *([1] * (z.dim() - 1))], self.noise_dropout, device=z.device)
        return torch.bernoulli(p).bool().expand_as(z)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(z)
        rounded = self._from_levels(round_ste(self._to_levels(z)))
        if not self.training:
            return rounded
        # As upstream: a p-fraction of items stays unquantized, the rest is rounded; then all but a
        # p-fraction is replaced by z plus uniform noise of one level step (dither).
        mixed = torch.where(self._item_mask(z), z, rounded)
        dithered = z + (torch.rand_like(z) - 0.5) * self.half_l
        return torch.where(self._item_mask(z), mixed, dithered)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        return (self._to_levels(codes).round().to(torch.int64) * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, N, num_codebooks]`` -> codes ``[B, N, C]``."""
        if indices.shape[-1] != self.num_codebooks:
            raise ValueError(f"expected {self.num_codebooks} codebooks in the last token axis, got "
                             f"{indices.shape[-1]}")
        levels = (indices.long()[..., None] // self._basis) % self._levels
        return self._from_levels(levels).flatten(-2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._forward(z)

    def _forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.shape[-1] != self.dim:
            raise ValueError(f"dithered FSQ expects {self.dim} channels, got {z.shape[-1]}")
        orig_dtype = z.dtype
        z = z.unflatten(-1, (self.num_codebooks, self.codebook_dim))
        if z.dtype not in (torch.float32, torch.float64):
            z = z.to(torch.float64)
        codes = self.quantize(z)
        indices = self.codes_to_indices(codes)
        return codes.flatten(-2).to(orig_dtype), indices
