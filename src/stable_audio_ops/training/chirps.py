"""Synthetic linear chirps appended to a training batch (``training.num_synthetic_chirps``).

Why: a music or speech corpus rarely holds a clean sweep through the whole band, so an autoencoder
trained on it can reconstruct notes well and still ring, alias or drop out between them. Adding a few
sweeps to every batch makes every frequency in the band appear in every step.

The key is 0.0.20's (the PyPI release; the GitHub code, 0.0.19, has no such key), and so is the recipe
(written here from its description, with a generator for reproducible tests): each chirp starts at a
log-uniform frequency ``f0`` in ``[fmin, fmax]``, sweeps linearly up or down (random direction) over
2 to 6.5 octaves (cut to what fits in the band), has a peak level drawn uniformly from -24 to -6 dBFS and
a random phase, is the same on every channel, and carries a 1e-4 Gaussian dither. ``fmax`` is
``min(22 kHz, 0.45 * sample_rate)`` (0.0.20 fixes 22 kHz, which fails below 44.1 kHz).
"""

from __future__ import annotations

import math

import torch

FMIN_HZ = 100.0
FMAX_HZ = 22000.0
OCTAVES = (2.0, 6.5)
LEVEL_DB = (-24.0, -6.0)
DITHER = 1e-4


def chirp_band(sample_rate: float) -> tuple[float, float]:
    """``(fmin, fmax)`` of the sweeps at ``sample_rate``; an error when the band is empty."""
    fmax = min(FMAX_HZ, 0.45 * float(sample_rate))
    if not FMIN_HZ < fmax:
        raise ValueError(f"synthetic chirps need a sample rate above {FMIN_HZ / 0.45:.0f} Hz; got {sample_rate}")
    return FMIN_HZ, fmax


def random_linear_chirps(count: int, channels: int, length: int, sample_rate: float, *,
                         generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[count, channels, length]`` random linear chirps (see the module docstring for the draw)."""
    fmin, fmax = chirp_band(sample_rate)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)

    f0 = torch.exp(uniform(math.log(fmin), math.log(fmax)))
    upward = torch.rand(count, generator=generator) < 0.5
    room = torch.where(upward, torch.log2(fmax / f0), torch.log2(f0 / fmin)).clamp_min(0.0)
    octaves = torch.minimum(uniform(*OCTAVES), room)
    f1 = f0 * torch.pow(2.0, torch.where(upward, octaves, -octaves))
    rate = (f1 - f0) / (length / sample_rate)  # Hz per second
    amplitude = torch.pow(10.0, uniform(*LEVEL_DB) / 20.0)
    phase = uniform(0.0, 2 * math.pi)
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    theta = 2 * math.pi * (f0[:, None] * t + 0.5 * rate[:, None] * t * t) + phase[:, None]
    chirps = (amplitude[:, None] * torch.cos(theta)).float()
    chirps = chirps[:, None, :].expand(count, channels, length)
    chirps = chirps + DITHER * torch.randn(chirps.shape, generator=generator)
    return chirps.to(device=device, dtype=dtype)


def append_synthetic_chirps(batch: torch.Tensor, sample_rate: float, count: int,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """``batch`` (``[B, C, T]``) with ``count`` chirps of the same shape appended along the batch axis."""
    if count <= 0:
        return batch
    chirps = random_linear_chirps(count, batch.shape[1], batch.shape[-1], sample_rate, generator=generator,
                                  device=batch.device, dtype=batch.dtype)
    return torch.cat([batch, chirps], dim=0)
