"""Validation metrics of 0.0.20's ``training.eval_loss_configs``: SI-SDR and the mel-scale STFT loss.

0.0.20 scores each validation batch with auraloss's ``STFTLoss``, ``SISDRLoss`` and ``MelSTFTLoss``
(and PESQ through pypesq). The STFT loss is :class:`~.spectral.STFTLoss`; this module adds the other two,
written from their definitions so no librosa/auraloss install is needed:

- :class:`SISDRLoss` returns the *negative* scale-invariant SDR (dB), as auraloss does (the training
  module negates it again to log SI-SDR, higher is better);
- :class:`MelSTFTLoss` is the STFT loss on magnitudes pooled by librosa's default mel filterbank (Slaney
  mel scale, Slaney area norm): :func:`slaney_mel_filterbank` builds the same matrix.
"""

from __future__ import annotations

import functools
import math

import torch

from stable_audio_ops.losses.spectral import DEFAULT_WINDOW, STFTLoss

_REDUCTIONS = ("mean", "sum", "none")

# Slaney's mel scale (librosa's ``htk=False``): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def slaney_hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Hz -> Slaney mel (float64): ``f / (200/3)`` below 1 kHz, ``15 + ln(f / 1000) / (ln 6.4 / 27)`` above."""
    hz = hz.to(torch.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(hz.clamp_min(_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(hz >= _MIN_LOG_HZ, log, linear)


def slaney_mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`slaney_hz_to_mel`."""
    mel = mel.to(torch.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, linear)


@functools.lru_cache(maxsize=16)
def slaney_mel_filterbank(sample_rate: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                          fmax: float | None = None) -> torch.Tensor:
    """``[n_mels, n_fft // 2 + 1]`` float32 weights equal to ``librosa.filters.mel(sr, n_fft, n_mels)``.

    Triangles whose edges are equally spaced in Slaney mel, each scaled by ``2 / (upper - lower)`` Hz so
    every band has the same area. Cached per parameter set: treat the result as read-only.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(slaney_hz_to_mel(torch.tensor(fmin))), float(slaney_hz_to_mel(torch.tensor(fmax))),
                          n_mels + 2, dtype=torch.float64)
    edges = slaney_mel_to_hz(mels)
    widths = edges[1:] - edges[:-1]
    ramps = edges[:, None] - freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.float()


class MelSTFTLoss(STFTLoss):
    """auraloss's ``MelSTFTLoss``: :class:`STFTLoss` with magnitudes mapped to ``n_mels`` Slaney mel bands.

    Same arguments as 0.0.20 (``sample_rate`` first, ``n_mels`` 128, the STFT loss's options after it).
    The filterbank multiplies the clamped magnitudes before the loss terms, as auraloss does; a phase term
    (``w_phs``) still compares the unpooled complex spectra.
    """

    def __init__(self, sample_rate: float, fft_size: int = 1024, hop_size: int = 256, win_length: int | None = None,
                 window: str = DEFAULT_WINDOW, w_sc: float = 1.0, w_log_mag: float = 1.0, w_lin_mag: float = 0.0,
                 w_phs: float = 0.0, n_mels: int = 128, **kwargs):
        if not 0 < int(n_mels) <= fft_size:
            raise ValueError(f"n_mels must be in 1..fft_size ({fft_size}); got {n_mels}")
        super().__init__(fft_size=fft_size, hop_size=hop_size, win_length=win_length, window=window, w_sc=w_sc,
                         w_log_mag=w_log_mag, w_lin_mag=w_lin_mag, w_phs=w_phs, sample_rate=sample_rate, **kwargs)
        self.n_mels = int(n_mels)
        self.register_buffer("fb", slaney_mel_filterbank(float(sample_rate), fft_size, self.n_mels).clone(),
                             persistent=False)

    def stft(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mag, spec = super().stft(audio)
        return torch.matmul(self.fb.to(mag.dtype), mag), spec


class SISDRLoss(torch.nn.Module):
    """Negative scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), per channel.

    ``-10 log10(|a t|^2 / (|x - a t|^2 + eps) + eps)`` with ``a = <x, t> / (|t|^2 + eps)``, after removing
    each signal's mean when ``zero_mean``; reduced over batch and channels by ``reduction``.
    """

    def __init__(self, zero_mean: bool = True, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}; got {reduction!r}")
        self.zero_mean = bool(zero_mean)
        self.eps = float(eps)
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(f"SISDRLoss: input {tuple(input.shape)} and target {tuple(target.shape)} differ")
        input, target = input.float(), target.float()
        if self.zero_mean:
            input = input - input.mean(dim=-1, keepdim=True)
            target = target - target.mean(dim=-1, keepdim=True)
        alpha = (input * target).sum(-1) / (target.pow(2).sum(-1) + self.eps)
        scaled = target * alpha.unsqueeze(-1)
        residual = input - scaled
        sdr = 10 * torch.log10(scaled.pow(2).sum(-1) / (residual.pow(2).sum(-1) + self.eps) + self.eps)
        if self.reduction == "mean":
            sdr = sdr.mean()
        elif self.reduction == "sum":
            sdr = sdr.sum()
        return -sdr
