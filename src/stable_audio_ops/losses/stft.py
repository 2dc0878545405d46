"""The spectral front end of stable-audio-tools 0.0.20's reconstruction losses.

0.0.20 replaced the classic ``torch.stft(center=True)`` + Hann front end of its vendored auraloss
with a *tight* (Parseval) one-sided complex STFT and swapped the A-weighting prefilter for a 257-tap
K-weighting FIR. Losses computed with the old front end differ by a large factor, so checkpoints
trained with 0.0.20 can only be fine-tuned faithfully with this exact transform:

* analysis window ``g[n] = A * sin(pi n / N)^p`` with ``p = N/H - 1`` and ``A`` chosen so the
  squared, hop-shifted windows sum to one (a tight frame);
* ``torch.stft(normalized=True, center=False)`` (unitary DFT, no padding at the edges);
* interior one-sided bins scaled by sqrt(2) so energy matches the two-sided spectrum.

The K-weighting FIR is the bilinear transform of an analogue high-pass (38.135 Hz, Q 0.5) times a
+4 dB high shelf (1681.974 Hz, Q 1.69), sampled on a dense grid, fitted with ``firwin2`` and normalised
to unit gain at 1 kHz. It is applied with reflect padding so the output has the input's length.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

K_WEIGHTING_TAPS = 257


def power_sine_tight_window(
    n_fft: int, hop_length: int, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """Power-sine analysis window that forms a tight frame for hop ``hop_length``.

    ``p = n_fft // hop_length - 1``; the mean of ``sin^(2p)`` over a period is ``C(2p, p) / 4^p``, so the
    amplitude ``1 / sqrt(R * mean)`` makes the overlap-added squared windows sum to one.
    """
    ratio = n_fft // hop_length
    power = ratio - 1
    if ratio < 2:
        raise ValueError(f"tight STFT needs n_fft >= 2 * hop (n_fft={n_fft}, hop={hop_length})")
    mean_square = math.comb(2 * power, power) / (4.0**power)
    amplitude = 1.0 / math.sqrt(ratio * mean_square)
    phase = torch.arange(n_fft, dtype=dtype, device=device)
    return torch.sin(math.pi * phase / n_fft) ** power * amplitude


def hermitian_bin_scale(n_fft: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """sqrt(2) for bins that stand for a conjugate pair; 1 for DC (and Nyquist when ``n_fft`` is even)."""
    bins = n_fft // 2 + 1
    scale = torch.ones(bins, dtype=dtype, device=device)
    if n_fft % 2 == 0:
        if bins > 2:
            scale[1:-1] = math.sqrt(2.0)
    elif bins > 1:
        scale[1:] = math.sqrt(2.0)
    return scale


def tight_one_sided_complex_stft(
    audio: torch.Tensor,
    n_fft: int,
    hop: int | None = None,
    center: bool = False,
    demod_mode: str | None = None,
) -> torch.Tensor:
    """Complex one-sided STFT ``[N, T] -> [N, n_fft//2 + 1, frames]`` as 0.0.20 computes it.

    ``demod_mode`` optionally rotates every bin to baseband: ``"sign"`` multiplies by ``(-1)^(k m)``
    (exact for hop = n_fft/2), ``"rot"`` by ``exp(-2j pi k m hop / n_fft)``. The loss path uses neither.
    """
    if n_fft % 2 != 0:
        raise ValueError(f"tight STFT needs an even n_fft, got {n_fft}")
    if demod_mode not in (None, "sign", "rot"):
        raise ValueError(f"demod_mode must be None, 'sign' or 'rot', got {demod_mode!r}")
    hop = n_fft // 2 if hop is None else hop
    window = power_sine_tight_window(n_fft, hop, device=audio.device).to(audio.dtype)
    spec = torch.stft(
        audio,
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=window,
        center=center,
        pad_mode="reflect",
        normalized=True,
        onesided=True,
        return_complex=True,
    )
    spec = spec * hermitian_bin_scale(n_fft, device=spec.device).to(spec.real.dtype)[:, None]
    if demod_mode is None:
        return spec
    bins, frames = spec.shape[-2:]
    if demod_mode == "sign":
        k_odd = torch.arange(bins, device=spec.device) % 2
        m_odd = torch.arange(frames, device=spec.device) % 2
        sign = 1.0 - 2.0 * (k_odd[:, None] * m_odd[None, :]).to(spec.real.dtype)
        return spec * sign
    k = torch.arange(bins, device=spec.device, dtype=torch.float32)[:, None]
    m = torch.arange(frames, device=spec.device, dtype=torch.float32)[None, :]
    phase = torch.remainder(2.0 * math.pi * k * (hop / float(n_fft)) * m, 2.0 * math.pi)
    return spec * torch.complex(torch.cos(phase), -torch.sin(phase)).to(spec.dtype)


@lru_cache(maxsize=16)
def _k_weighting_taps(sample_rate: float, num_taps: int, ref_hz: float) -> tuple[float, ...]:
    # scipy comes with mlflow (a pinned dependency); import lazily so loss-free code paths never need it.
    import scipy.signal

    w_hp = 2 * np.pi * 38.135
    q_hp = 0.5
    shelf_gain = 10 ** (4.0 / 20.0)
    w_shelf = 2 * np.pi * 1681.974
    q_shelf = 1.69
    numerator = np.polymul([1.0, 0.0, 0.0], [shelf_gain, shelf_gain * w_shelf / q_shelf, w_shelf**2])
    denominator = np.polymul([1.0, w_hp / q_hp, w_hp**2], [1.0, w_shelf / q_shelf, w_shelf**2])
    b, a = scipy.signal.bilinear(numerator, denominator, fs=sample_rate)
    grid = np.linspace(0.0, sample_rate / 2.0, num=8193, endpoint=True)
    _, response = scipy.signal.freqz(b, a, worN=grid, fs=sample_rate)
    taps = scipy.signal.firwin2(num_taps, grid, np.abs(response), fs=sample_rate)
    omega = 2 * np.pi * ref_hz / sample_rate
    gain_at_ref = np.abs(np.sum(taps * np.exp(-1j * omega * np.arange(len(taps)))))
    if gain_at_ref > 0:
        taps = taps / gain_at_ref
    return tuple(float(t) for t in taps)


def design_k_weighting_fir(
    sample_rate: float, num_taps: int = K_WEIGHTING_TAPS, ref_hz: float = 1000.0
) -> np.ndarray:
    """FIR taps (float64) approximating the K-weighting curve, unit gain at ``ref_hz``."""
    if num_taps % 2 == 0:
        raise ValueError(f"num_taps must be odd, got {num_taps}")
    return np.asarray(_k_weighting_taps(float(sample_rate), int(num_taps), float(ref_hz)))


class KWeightingFilter(nn.Module):
    """Perceptual prefilter ``(B, C, T) -> (B, C, T)``: K-weighting FIR with reflect padding.

    The kernel is a non-persistent buffer (as upstream) so loss modules add no state-dict keys.
    """

    def __init__(self, sample_rate: float, num_taps: int = K_WEIGHTING_TAPS, ref_hz: float = 1000.0):
        super().__init__()
        taps = design_k_weighting_fir(sample_rate, num_taps, ref_hz)
        self.register_buffer(
            "kernel", torch.from_numpy(taps.astype(np.float32))[None, None, :], persistent=False
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, length = audio.shape
        pad = (self.kernel.shape[-1] - 1) // 2
        if length <= pad:
            raise ValueError(
                f"perceptual weighting needs more than {pad} samples per signal (reflect padding), got {length}"
            )
        flat = F.pad(audio.reshape(batch * channels, 1, length), (pad, pad), mode="reflect")
        kernel = self.kernel.to(dtype=audio.dtype, device=audio.device)
        return F.conv1d(flat, kernel).reshape(batch, channels, -1)
