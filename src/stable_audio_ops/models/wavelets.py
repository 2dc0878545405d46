"""A multi-level 1-D discrete wavelet transform as fixed convolutions (the ``wavelet`` pretransform).

Why convolutions: the transform then runs on any device inside the model graph and its filters are
state-dict buffers (``encoder.kernel`` / ``decoder.kernel``), as in stable-audio-tools 0.0.20, so
checkpoints made there load strictly. The filters come from PyWavelets; biorthogonal filter banks
start with a zero tap, which is dropped so every filter has an odd length (centred kernels).

Layout of the encoded channels after ``L`` levels (``C`` audio channels): the first ``2C`` channels
are the last level's low and high bands (one per audio channel each), followed by the earlier
levels' high bands, whose frames are folded into channels as the time axis halves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def wavelet_filter_bank(wavelet: str) -> torch.Tensor:
    """``[4, taps]``: decomposition low/high, reconstruction low/high filters of a PyWavelets wavelet."""
    import pywt  # only wavelet pretransforms need it

    try:
        bank = torch.tensor(pywt.Wavelet(wavelet).filter_bank, dtype=torch.float32)
    except ValueError as err:  # pywt's message lists nothing useful; keep its reason
        raise ValueError(f"unknown wavelet {wavelet!r} ({err}); e.g. bior2.2, bior4.4, bior6.8") from err
    if wavelet.startswith("bior") and bool((bank[:, 0] == 0).all()):
        bank = bank[:, 1:]
    if bank.shape[-1] % 2 != 1:
        raise ValueError(f"wavelet {wavelet!r} has even-length filters ({bank.shape[-1]} taps); the wavelet "
                         "pretransform needs odd-length (centred) filters, e.g. the bior family")
    return bank


def _band_kernel(wavelet: str, channels: int, synthesis: bool) -> torch.Tensor:
    """``[2C, C, taps]`` conv kernel applying the low then the high filter to each channel separately.

    Analysis filters are flipped: ``conv1d`` correlates, and the analysis step is a convolution.
    """
    bank = wavelet_filter_bank(wavelet)
    low, high = (bank[2], bank[3]) if synthesis else (bank[0].flip(-1), bank[1].flip(-1))
    kernel = torch.zeros(2 * channels, channels, low.shape[-1])
    for c in range(channels):
        kernel[c, c] = low
        kernel[channels + c, c] = high
    return kernel


class WaveletEncode1d(nn.Module):
    """Analysis: each level splits the current low band into low/high halves at half the rate."""

    def __init__(self, channels: int, levels: int, wavelet: str = "bior4.4"):
        super().__init__()
        self.channels, self.levels, self.wavelet = channels, levels, wavelet
        self.register_buffer("kernel", _band_kernel(wavelet, channels, synthesis=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % (2 ** self.levels):
            raise ValueError(f"wavelet encode needs a length divisible by 2**levels = {2 ** self.levels}, "
                             f"got {x.shape[-1]}")
        pad = self.kernel.shape[-1] // 2
        for _ in range(self.levels):
            low, rest = x[:, : self.channels], x[:, self.channels:]
            low = F.conv1d(F.pad(low, (pad, pad), mode="reflect"), self.kernel, stride=2)
            rest = rearrange(rest, "n (c c2) (l l2) -> n (c l2 c2) l", l2=2, c2=self.channels)
            x = torch.cat([low, rest], dim=1)
        return x


class WaveletDecode1d(nn.Module):
    """Synthesis: the inverse of :class:`WaveletEncode1d`, one level at a time."""

    def __init__(self, channels: int, levels: int, wavelet: str = "bior4.4"):
        super().__init__()
        self.channels, self.levels, self.wavelet = channels, levels, wavelet
        self.register_buffer("kernel", _band_kernel(wavelet, channels, synthesis=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = self.kernel.shape[-1]
        pad = taps // 2 + 2
        for _ in range(self.levels):
            bands, rest = x[:, : 2 * self.channels], x[:, 2 * self.channels:]
            # reflect-pad the band pair in the time domain it came from (low/high interleaved per frame)
            bands = rearrange(bands, "n (l2 c) l -> n c (l l2)", l2=2)
            bands = F.pad(bands, (pad, pad), mode="reflect")
            bands = rearrange(bands, "n c (l l2) -> n (l2 c) l", l2=2)
            low = F.conv_transpose1d(bands, self.kernel, stride=2, padding=taps // 2)[..., pad - 1: -pad]
            rest = rearrange(rest, "n (c l2 c2) l -> n (c c2) (l l2)", l2=2, c2=self.channels)
            x = torch.cat([low, rest], dim=1)
        return x


__all__ = ["WaveletDecode1d", "WaveletEncode1d", "wavelet_filter_bank"]
