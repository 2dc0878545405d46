"""Pseudo-QMF filter bank: splits audio into ``num_bands`` critically sampled frequency bands and back
(the ``pqmf`` pretransform).

The prototype lowpass is a Kaiser-window FIR whose cutoff is searched (Nelder-Mead) so that the
prototype convolved with its reverse is as close as possible to zero at every ``2 * num_bands``-th lag,
the near-perfect-reconstruction criterion of Lin & Vaidyanathan (IEEE SPL 1998); the bands are cosine
modulations of it. Analysis and synthesis run as polyphase convolutions.

Why this is written out here: stable-audio-tools 0.0.20's ``pqmf`` cannot be built with current SciPy
and NumPy (the optimiser hands a one-element array to ``kaiserord``, and ``firwin(nyq=...)`` no longer
exists). The design is the same; the scalar is unwrapped and ``fs = 2 pi`` replaces ``nyq = pi``. The
filters are persistent buffers (``filter_bank``, ``prototype``), as upstream declares them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def kaiser_lowpass(cutoff: float, attenuation: float, length: int | None = None) -> np.ndarray:
    """Odd-length Kaiser-window lowpass with angular ``cutoff`` (radians, Nyquist = pi)."""
    from scipy.signal import firwin, kaiserord  # only the pqmf pretransform needs SciPy's filter design

    estimated, beta = kaiserord(attenuation, cutoff / np.pi)
    length = 2 * (estimated // 2) + 1 if length is None else length
    return firwin(length, cutoff, window=("kaiser", beta), scale=False, fs=2 * np.pi)


def _reconstruction_error(cutoff: float, attenuation: float, num_bands: int, length: int | None) -> float:
    taps = kaiser_lowpass(cutoff, attenuation, length)
    autocorrelation = np.convolve(taps, taps[::-1], "full")
    return float(np.max(np.abs(autocorrelation[autocorrelation.shape[-1] // 2::2 * num_bands][1:])))


def design_prototype(attenuation: float, num_bands: int, length: int | None = None) -> torch.Tensor:
    """The prototype lowpass (float32) minimising the reconstruction error, starting at ``1 / num_bands``."""
    from scipy.optimize import fmin

    best = fmin(lambda w: _reconstruction_error(float(np.ravel(w)[0]), attenuation, num_bands, length),
                1 / num_bands, disp=0)
    return torch.tensor(kaiser_lowpass(float(np.ravel(best)[0]), attenuation, length), dtype=torch.float32)


def cosine_modulated_bank(prototype: torch.Tensor, num_bands: int) -> torch.Tensor:
    """``[num_bands, taps]``: band ``k`` is ``2 h(n) cos((2k+1) pi / (2N) n + (-1)^k pi / 4)``, n centred."""
    band = torch.arange(num_bands).reshape(-1, 1)
    half = prototype.shape[-1] // 2
    n = torch.arange(-half, half + 1)
    phase = (-1) ** band * np.pi / 4
    return 2 * prototype * torch.cos((2 * band + 1) * np.pi / (2 * num_bands) * n + phase)


def _pad_to_power_of_two(bank: torch.Tensor) -> torch.Tensor:
    """Centre the taps in the next power-of-two length (so they split evenly into polyphase components)."""
    extra = 2 ** math.ceil(math.log2(bank.shape[-1])) - bank.shape[-1]
    return F.pad(bank, (extra // 2, extra - extra // 2))


def _alias_cancellation(bands: torch.Tensor) -> torch.Tensor:
    """Negate every other frame of every odd band (``[..., bands, frames]``), so aliases cancel on synthesis."""
    sign = torch.ones_like(bands)
    sign[..., 1::2, ::2] = -1
    return bands * sign


class PQMF(nn.Module):
    """``forward``: ``[B, C, T]`` -> ``[B, C, num_bands, T / num_bands]`` (T zero-padded to a multiple);
    ``inverse``: back to ``[B, C, T']``."""

    def __init__(self, attenuation: float = 100, num_bands: int = 16):
        super().__init__()
        if num_bands < 1 or num_bands & (num_bands - 1):
            raise ValueError(f"num_bands must be a power of two, got {num_bands}")
        prototype = design_prototype(attenuation, num_bands)
        self.register_buffer("filter_bank", _pad_to_power_of_two(cosine_modulated_bank(prototype, num_bands)))
        self.register_buffer("prototype", prototype)
        self.num_bands = num_bands

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        channels = signal.shape[1]
        signal = F.pad(signal, (0, -signal.shape[-1] % self.num_bands))
        phases = rearrange(signal, "b c (t n) -> (b c) n t", n=self.num_bands)
        kernel = rearrange(self.filter_bank, "k (t n) -> k n t", n=self.num_bands)
        bands = F.conv1d(phases, kernel, padding=kernel.shape[-1] // 2)[..., :-1]
        return _alias_cancellation(rearrange(bands, "(b c) k t -> b c k t", c=channels))

    def inverse(self, bands: torch.Tensor) -> torch.Tensor:
        channels = bands.shape[1]
        bands = rearrange(_alias_cancellation(bands), "b c k t -> (b c) k t")
        kernel = rearrange(self.filter_bank.flip(-1), "k (t n) -> n k t", n=self.num_bands)
        phases = F.conv1d(bands, kernel, padding=kernel.shape[-1] // 2 + 1)[..., :-1] * self.num_bands
        signal = rearrange(phases.flip(1), "(b c) n t -> b c (t n)", c=channels)
        return signal[..., 2 * self.num_bands:]


__all__ = ["PQMF", "cosine_modulated_bank", "design_prototype", "kaiser_lowpass"]
