"""Mel filterbank and log-mel spectrogram in torch (no librosa, no weights).

Used by the log-mel reconstruction distance, the no-weights mel-statistics embedding and the aiSFX
front end. The filterbank is triangular on the HTK mel scale; ``norm="unit_sum"`` scales each band to sum
to one (Essentia's ``unit_sum``, which is what aiSFX was trained on; equal to librosa's ``norm=1``).
"""

from __future__ import annotations

import torch

# one filterbank for the training loss and the judges (the loss layer sits below this one)
from stable_audio_ops.losses.mel import hz_to_mel, mel_filterbank, mel_to_hz

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank", "mel_power_spectrogram", "power_to_db"]


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
