"""Anti-aliased activations: upsample 2x, apply the nonlinearity, low-pass and downsample 2x.

A pointwise nonlinearity such as Snake creates harmonics above the Nyquist frequency, which fold back
into the band as inharmonic hiss. Running it at twice the rate between two windowed-sinc low-pass filters
keeps most of those harmonics out of the band (the idea of BigVGAN / StyleGAN3's alias-free activations).
stable-audio-tools 0.0.20 gets this from the ``alias_free_torch`` package (``antialias_activation: true``
of the Oobleck encoder/decoder); this module computes the same thing with the same state-dict layout, so
such configs and their checkpoints work without that package:

``<prefix>.act.*`` (the wrapped activation), ``<prefix>.upsample.filter`` and
``<prefix>.downsample.lowpass.filter`` (the fixed ``[1, 1, 12]`` filters, saved as buffers like upstream's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """A ``[1, 1, kernel_size]`` low-pass FIR: windowed sinc at ``cutoff`` (in cycles per sample), unit DC gain.

    The Kaiser window's beta follows Kaiser's empirical formula for the attenuation that a transition band
    of ``2 * half_width`` allows with this many taps.
    """
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    # taps sit between samples for an even length (a half-sample delay), on samples for an odd one
    time = torch.arange(-half, half) + 0.5 if kernel_size % 2 == 0 else torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class LowPass(nn.Module):
    """Depthwise FIR low-pass with edge-replicating padding, optionally decimating by ``stride``."""

    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int):
        super().__init__()
        self.stride = stride
        even = kernel_size % 2 == 0
        self.pad = (kernel_size // 2 - int(even), kernel_size // 2)
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, self.pad, mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class Upsample(nn.Module):
    """Zero-stuffing upsampler by ``ratio`` followed by the windowed-sinc interpolation filter."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(channels, -1, -1), stride=self.ratio,
                                            groups=channels)
        return x[..., self.crop_left:-self.crop_right]


class Downsample(nn.Module):
    """Anti-aliasing low-pass and decimation by ``ratio`` (the filter lives at ``.lowpass`` as upstream)."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.lowpass = LowPass(0.5 / ratio, 0.6 / ratio, stride=ratio, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class AntiAliasedActivation(nn.Module):
    """``act`` applied at twice the sample rate: same length in and out."""

    def __init__(self, act: nn.Module, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.act = act
        self.upsample = Upsample(ratio, kernel_size)
        self.downsample = Downsample(ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


__all__ = ["AntiAliasedActivation", "Downsample", "LowPass", "Upsample", "kaiser_sinc_filter"]
