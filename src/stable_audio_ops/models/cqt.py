"""Complex constant-Q transform by octave-wise downsampling, with nnAudio ``CQT2010v2``'s buffers.

The ``big_vgan`` discriminator of stable-audio-tools 0.0.20 (via BigVGAN) computes its CQT with nnAudio,
whose module stores its kernels in the checkpoint: ``lowpass_filter`` (256-tap half-band FIR),
``lenghts`` (sic: per-bin window lengths, for the output scale), ``cqt_kernels_real``/``cqt_kernels_imag``
(the top octave's time-domain kernels) and, only when early downsampling applies,
``early_downsample_filter``. nnAudio is not a dependency here, so this module builds the same buffers
(same design formulas, same dtypes) so those checkpoints load and a fresh module matches them.

Algorithm (Schörkhuber & Klapuri 2010 style): one bank of ``bins_per_octave`` complex kernels for the
top octave is correlated with the signal at stride ``hop``; the signal is then repeatedly halved in
rate (low-pass + stride 2) and the same bank, at half the hop, gives each next lower octave. Output:
``(batch, n_bins, frames, 2)`` (real, imaginary), lowest bin first, scaled by ``sqrt(window length)``
as librosa does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal
from torch import nn


def lowpass_filter(band_center: float, taps: int = 256, transition: float = 0.03) -> torch.Tensor:
    """``(1, 1, taps)`` float32 FIR passing ``[0, band_center / (1 + t)]`` (as a fraction of Nyquist)."""
    edges = [0.0, band_center / (1 + transition), band_center * (1 + transition), 1.0]
    kernel = signal.firwin2(taps, edges, [1.0, 1.0, 0.0, 0.0]).astype(np.float32)
    return torch.from_numpy(kernel)[None, None, :]


def top_octave_kernels(q: float, sample_rate: float, fmin: float, n_bins: int) -> tuple[np.ndarray, int]:
    """(``(n_bins, fft_len)`` complex64 kernels, fft_len): Hann-windowed complex exponentials, L1-normalised,
    each of length ``ceil(Q * sr / f)`` centred in a power-of-two frame."""
    freqs = fmin * 2.0 ** (np.arange(n_bins) / n_bins)
    lengths = np.ceil(q * sample_rate / freqs)
    fft_len = int(2 ** np.ceil(np.log2(int(lengths.max()))))
    kernels = np.zeros((n_bins, fft_len), dtype=np.complex64)
    for k, (freq, length) in enumerate(zip(freqs, lengths, strict=True)):
        start = int(np.ceil(fft_len / 2.0 - length / 2.0)) - (1 if length % 2 == 1 else 0)
        n = int(length)
        window = signal.get_window("hann", n, fftbins=True)
        times = np.arange(-length // 2, length // 2)
        sig = window * np.exp(times * 1j * 2 * np.pi * freq / sample_rate) / length
        kernels[k, start : start + n] = sig / np.linalg.norm(sig, 1)
    return kernels, fft_len


def _early_downsample_factor(sample_rate: float, hop_length: int, fmax_top: float, q: float, n_octaves: int) -> int:
    """How far the input may be decimated before the top octave without aliasing it (librosa's rule)."""
    cutoff = fmax_top * (1 + 0.5 * 1.5 / q)  # 1.5: the Hann window's bandwidth
    nyquist = sample_rate // 2
    by_band = max(0, int(math.ceil(math.log2(0.85 * nyquist / cutoff)) - 1) - 1)
    by_hop = max(0, int(math.ceil(math.log2(hop_length))) - n_octaves + 1)
    return 2 ** min(by_band, by_hop)


class ConstantQ(nn.Module):
    """``(B, 1, T) -> (B, n_octaves * bins_per_octave, frames, 2)`` complex CQT (constant zero padding)."""

    def __init__(self, sample_rate: float, hop_length: int, n_octaves: int, bins_per_octave: int,
                 fmin: float = 32.70):
        super().__init__()
        self.n_bins = n_octaves * bins_per_octave
        self.n_octaves = n_octaves
        q = 1.0 / (2 ** (1 / bins_per_octave) - 1)
        fmax_top = fmin * 2 ** (n_octaves - 1) * 2 ** ((bins_per_octave - 1) / bins_per_octave)
        fmin_top = fmax_top / 2 ** (1 - 1 / bins_per_octave)
        if fmax_top > sample_rate / 2:
            raise ValueError(
                f"the top CQT bin ({fmax_top:.0f} Hz) is above Nyquist ({sample_rate / 2:.0f} Hz): "
                "use fewer octaves"
            )
        if hop_length < 2 ** (n_octaves - 1):
            raise ValueError(f"hop_length {hop_length} must be at least 2^(n_octaves - 1) = {2 ** (n_octaves - 1)}")
        self.register_buffer("lowpass_filter", lowpass_filter(0.5, 256, 0.001))
        self.downsample_factor = _early_downsample_factor(sample_rate, hop_length, fmax_top, q, n_octaves)
        self.hop_length = hop_length // self.downsample_factor
        sample_rate = sample_rate / self.downsample_factor
        if self.downsample_factor != 1:
            self.register_buffer("early_downsample_filter", lowpass_filter(1 / self.downsample_factor))
        kernels, self.fft_len = top_octave_kernels(q, sample_rate, fmin_top, bins_per_octave)
        freqs = fmin * 2.0 ** (np.arange(self.n_bins) / bins_per_octave)
        self.register_buffer("lenghts", torch.tensor(np.ceil(q * sample_rate / freqs)).float())
        self.register_buffer("cqt_kernels_real", torch.tensor(kernels.real).unsqueeze(1))
        self.register_buffer("cqt_kernels_imag", torch.tensor(kernels.imag).unsqueeze(1))

    def _octave(self, x: torch.Tensor, hop: int) -> torch.Tensor:
        x = F.pad(x, (self.fft_len // 2, self.fft_len // 2))
        real = F.conv1d(x, self.cqt_kernels_real, stride=hop)
        imag = -F.conv1d(x, self.cqt_kernels_imag, stride=hop)
        return torch.stack((real, imag), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample_factor != 1:
            taps = self.early_downsample_filter
            x = F.conv1d(x, taps, stride=self.downsample_factor, padding=(taps.shape[-1] - 1) // 2)
        hop = self.hop_length
        octaves = [self._octave(x, hop)]
        for _ in range(self.n_octaves - 1):
            hop //= 2
            x = F.conv1d(x, self.lowpass_filter, stride=2, padding=(self.lowpass_filter.shape[-1] - 1) // 2)
            octaves.insert(0, self._octave(x, hop))
        cqt = torch.cat(octaves, 1)[:, -self.n_bins :]
        return cqt * self.downsample_factor * self.lenghts.sqrt().view(-1, 1, 1)
