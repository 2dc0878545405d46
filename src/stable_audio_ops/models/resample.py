"""Band-limited resampling by an integer ratio as a fixed convolution (Hann-windowed sinc).

The ``patched`` pretransform's ``oversampling`` resamples inside the model. stable-audio-tools 0.0.20
uses ``torchaudio.transforms.Resample`` there, whose kernel is a persistent buffer (``...kernel``) in
its checkpoints. torchaudio is not a dependency of this project (it pins its own torch), so this is
the same filter design written out: lowpass at ``rolloff`` of the lower Nyquist, 6 zero crossings
each side, a squared-cosine window; built in float64 and stored as float32, so a fresh module holds
bit-for-bit the buffer those checkpoints carry.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinc_resample_kernel(orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                         rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """(``[new, 1, taps]`` polyphase kernel, half-width in input samples) for ``orig -> new`` (reduced)."""
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    cutoff = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / cutoff)
    # time of every input tap relative to each of the ``new`` output phases, in units of the cutoff
    taps = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    phases = torch.arange(0, -new, -1)[:, None, None] / new
    t = ((phases + taps) * cutoff).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), t.sin() / t)
    return (sinc * window * (cutoff / orig)).to(torch.float32), width


class SincResample(nn.Module):
    """Resample the last axis from ``orig_freq`` to ``new_freq`` (e.g. 1 -> 2 doubles the rate).

    Output length is ``ceil(length * new / orig)``; the kernel is the persistent buffer ``kernel``.
    """

    def __init__(self, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
        super().__init__()
        if orig_freq <= 0 or new_freq <= 0:
            raise ValueError(f"resampling rates must be positive, got {orig_freq} -> {new_freq}")
        gcd = math.gcd(orig_freq, new_freq)
        self.orig, self.new = orig_freq // gcd, new_freq // gcd
        kernel, self.width = sinc_resample_kernel(orig_freq, new_freq, lowpass_filter_width, rolloff)
        self.register_buffer("kernel", kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.orig == self.new:
            return x
        shape, length = x.shape, x.shape[-1]
        flat = F.pad(x.reshape(-1, 1, length), (self.width, self.width + self.orig))
        out = F.conv1d(flat, self.kernel.to(x.dtype), stride=self.orig)  # [n, new phases, frames]
        out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, : math.ceil(self.new * length / self.orig)]
        return out.reshape(*shape[:-1], out.shape[-1])


__all__ = ["SincResample", "sinc_resample_kernel"]
