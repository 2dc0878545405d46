"""Mel filterbank and log-mel spectrogram in torch (no librosa, no weights).

Used by the log-mel reconstruction distance, the no-weights mel-statistics embedding and the aiSFX
front end. The filterbank is triangular on the HTK mel scale; ``norm="unit_sum"`` scales each band to sum
to one (Essentia's ``unit_sum``, which is what aiSFX was trained on; equal to librosa's ``norm=1``).
"""

from __future__ import annotations

import functools

import torch


def hz_to_mel(hz: torch.Tensor | float) -> torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: torch.Tensor | float) -> torch.Tensor:
    return 700.0 * (10.0 ** (torch.as_tensor(mel, dtype=torch.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   norm: str | None = "unit_sum") -> torch.Tensor:
    """``[n_mels, n_fft // 2 + 1]`` float32 triangles with edges equally spaced in mel.

    ``norm``: ``"unit_sum"`` (each band sums to 1), ``"slaney"`` (constant area in Hz) or ``None`` (peak 1).
    Cached per parameter set (judges call it once per clip): treat the result as read-only.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0 + 1e-6:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(fmin)), float(hz_to_mel(fmax)), n_mels + 2,
                                     dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "unit_sum":
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    elif norm == "slaney":
        weights = weights * (2.0 / (upper - lower))
    elif norm is not None:
        raise ValueError(f"unknown mel norm {norm!r}; known: 'unit_sum', 'slaney', None")
    return weights.float()


def mel_power_spectrogram(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop_length: int = 256,
                          n_mels: int = 64, fmin: float = 0.0, fmax: float | None = None,
                          norm: str | None = "unit_sum") -> torch.Tensor:
    """Audio ``[..., n]`` -> mel power ``[..., n_mels, frames]`` (Hann window, centred, zero padded)."""
    shape = audio.shape[:-1]
    flat = audio.reshape(-1, audio.shape[-1]).float()
    if flat.shape[-1] < n_fft // 2 + 1:
        flat = torch.nn.functional.pad(flat, (0, n_fft // 2 + 1 - flat.shape[-1]))
    window = torch.hann_window(n_fft, periodic=True, dtype=flat.dtype, device=flat.device)
    spec = torch.stft(flat, n_fft, hop_length=hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()
    fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm).to(power)
    mel = torch.matmul(fb, power)
    return mel.reshape(*shape, n_mels, mel.shape[-1])


def power_to_db(power: torch.Tensor, floor_db: float = -100.0) -> torch.Tensor:
    """``10 log10(power)`` with an absolute floor (silence must not dominate a mean)."""
    return 10.0 * torch.log10(power.clamp_min(10.0 ** (floor_db / 10.0)))
