"""Autoencoder reconstruction judges on held-out clips: multi-resolution STFT distance, log-mel distance
(dB) and SI-SDR (dB).

Why these three: the STFT distance is what the autoencoder trains on (0.0.20's spectral convergence +
adaptively-scaled log magnitude, here at stable-audio-tools' autoencoder resolutions), the log-mel
distance is a perceptually-spaced number in dB that does not depend on that loss's internals, and SI-SDR
is waveform-level (phase-sensitive), so a decoder that gets magnitudes right but smears phase shows.
ViSQOL was measured as unable to tell a wrong note from a good one on short isolated notes, so it is not
used.

``evaluate_reconstruction`` encodes deterministically: for a VAE bottleneck it decodes the posterior
*mean* (the bottleneck's own sampling code with zero noise), so two runs give the same numbers and the
score measures the autoencoder, not the sampling noise. Other bottlenecks are deterministic already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from stable_audio_ops.data.audio_io import resampled_length
from stable_audio_ops.evaluation.mel import mel_power_spectrogram, power_to_db
from stable_audio_ops.losses.spectral import MultiResolutionSTFTLoss
from stable_audio_ops.models.bottlenecks import VAEBottleneck

# stable-audio-tools' autoencoder configs train on these resolutions (hop = fft / 4, win = fft).
DEFAULT_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32)


def _as_batch(x: Any) -> torch.Tensor:
    """``[n]`` / ``[C, n]`` / ``[B, C, n]`` (numpy or torch) -> float32 ``[B, C, n]``."""
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
    if t.dim() == 1:
        t = t[None, None]
    elif t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f"expected audio shaped [n], [C, n] or [B, C, n], got {tuple(t.shape)}")
    return t


def _check_pair(estimate: torch.Tensor, reference: torch.Tensor) -> None:
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")


def si_sdr(estimate: Any, reference: Any, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB per item of ``[B, C, n]`` (channels pooled); higher is better.

    Both signals are made zero-mean; the reference is scaled to best match the estimate, and the rest of
    the estimate is the error. Identical signals give ~+100 dB or more (bounded only by ``eps``).
    """
    est, ref = _as_batch(estimate).double(), _as_batch(reference).double()
    _check_pair(est, ref)
    est = (est - est.mean(dim=-1, keepdim=True)).flatten(1)
    ref = (ref - ref.mean(dim=-1, keepdim=True)).flatten(1)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return (10.0 * torch.log10((target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))).float()


def log_mel_distance(estimate: Any, reference: Any, sample_rate: int, n_fft: int = 1024, hop_length: int = 256,
                     n_mels: int = 64, dynamic_range_db: float = 80.0) -> torch.Tensor:
    """Mean absolute difference of the dB mel spectrograms per item of ``[B, C, n]`` (0 = identical).

    Both spectrograms are clamped at ``dynamic_range_db`` below the *reference's* loudest bin, so
    differences deep inside silence (inaudible next to the note) do not dominate the mean.
    """
    est, ref = _as_batch(estimate), _as_batch(reference)
    _check_pair(est, ref)
    mel_e = mel_power_spectrogram(est, sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                  norm="slaney")
    mel_r = mel_power_spectrogram(ref, sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                  norm="slaney")
    db_e, db_r = power_to_db(mel_e, -200.0).flatten(1), power_to_db(mel_r, -200.0).flatten(1)
    floor = db_r.max(dim=-1, keepdim=True).values - float(dynamic_range_db)
    return (torch.maximum(db_e, floor) - torch.maximum(db_r, floor)).abs().mean(-1)


def make_stft_distance(fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES) -> torch.nn.Module:
    """The training code's ``MultiResolutionSTFTLoss`` (hop = fft / 4) used as a distance."""
    sizes = [int(s) for s in fft_sizes]
    return MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[s // 4 for s in sizes], win_lengths=sizes)


def multi_resolution_stft_distance(estimate: Any, reference: Any,
                                   fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
                                   loss: torch.nn.Module | None = None) -> torch.Tensor:
    """Per item of ``[B, C, n]``: the multi-resolution STFT loss of the estimate against the reference
    (0 = identical). Items need at least ``max(fft_sizes)`` samples."""
    est, ref = _as_batch(estimate), _as_batch(reference)
    _check_pair(est, ref)
    loss = make_stft_distance(fft_sizes) if loss is None else loss
    with torch.no_grad():
        return torch.stack([loss(est[i : i + 1], ref[i : i + 1]).reshape(()) for i in range(est.shape[0])])


def reconstruction_metrics(estimate: Any, reference: Any, sample_rate: int,
                           fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES) -> dict[str, np.ndarray]:
    """Per-item arrays ``mrstft``, ``mel_distance_db`` and ``si_sdr_db`` for ``[B, C, n]`` pairs."""
    return {
        "mrstft": multi_resolution_stft_distance(estimate, reference, fft_sizes).numpy(),
        "mel_distance_db": log_mel_distance(estimate, reference, sample_rate).numpy(),
        "si_sdr_db": si_sdr(estimate, reference).numpy(),
    }


def deterministic_latents(model: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """Encode with the bottleneck's deterministic path: a VAE gets zero noise (its posterior mean)."""
    bottleneck = getattr(model, "bottleneck", None)
    if isinstance(bottleneck, VAEBottleneck):
        pre = model.encode(audio, skip_bottleneck=True)
        mean, _scale = pre.chunk(2, dim=1)
        return bottleneck.encode(pre, noise=torch.zeros_like(mean))
    return model.encode(audio)


def summarize(per_clip: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean and median of each per-clip metric (``<name>`` = mean, ``<name>_median``), plus ``n_clips``."""
    out: dict[str, float] = {}
    for name, values in per_clip.items():
        out[name] = float(np.mean(values)) if len(values) else float("nan")
        out[f"{name}_median"] = float(np.median(values)) if len(values) else float("nan")
    out["n_clips"] = int(len(next(iter(per_clip.values()), [])))
    return out


def reconstruct_clips(model: torch.nn.Module, clips: Sequence[Any], sample_rate: int, batch_size: int = 8,
                      device: str | torch.device | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(input, reconstruction)`` per clip, both ``[C, n]`` float32 on CPU at the model's rate.

    ``clips`` are ``[n]`` or ``[C, n]`` arrays/tensors at ``sample_rate``. Each batch is prepared with the
    model's own ``preprocess_audio_list_for_encoder`` (resample to the model rate, fix channels, pad to a
    multiple of the downsampling ratio) and encoded with :func:`deterministic_latents`; both the prepared
    input and the reconstruction are cut back to the clip's length at the model rate, so padding never
    counts. ``device`` defaults to the model's own; the model's training mode is restored afterwards.
    """
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if not clips:
        raise ValueError("reconstruct_clips: no clips given")
    model_sr = int(getattr(model, "sample_rate", sample_rate))
    was_training = model.training
    model.eval()
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(clips), int(batch_size)):
                batch = [torch.as_tensor(np.asarray(c) if not torch.is_tensor(c) else c).float()
                         for c in clips[start : start + int(batch_size)]]
                batch = [c[None] if c.dim() == 1 else c for c in batch]
                prepared = model.preprocess_audio_list_for_encoder(batch, int(sample_rate)).to(device)
                decoded = model.decode(deterministic_latents(model, prepared))
                if decoded.shape[1] != prepared.shape[1]:
                    raise ValueError(f"reconstruct_clips: model decodes {decoded.shape[1]} channels but "
                                     f"encodes {prepared.shape[1]}; cannot compare with the input")
                for i, clip in enumerate(batch):
                    length = resampled_length(clip.shape[-1], int(sample_rate), model_sr)
                    pairs.append((prepared[i, :, :length].float().cpu(), decoded[i, :, :length].float().cpu()))
    finally:
        model.train(was_training)
    return pairs


def score_reconstructions(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], sample_rate: int,
                          fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES) -> dict[str, float]:
    """Mean and median of ``mrstft``, ``mel_distance_db`` and ``si_sdr_db`` over ``(input, reconstruction)``
    pairs of ``[C, n]`` tensors at ``sample_rate``, plus ``n_clips`` (see :func:`summarize`)."""
    stft_loss = make_stft_distance(fft_sizes)
    per_clip: dict[str, list[float]] = {"mrstft": [], "mel_distance_db": [], "si_sdr_db": []}
    for ref, est in pairs:
        ref, est = ref[None], est[None]
        per_clip["mrstft"].append(float(multi_resolution_stft_distance(est, ref, loss=stft_loss)[0]))
        per_clip["mel_distance_db"].append(float(log_mel_distance(est, ref, sample_rate)[0]))
        per_clip["si_sdr_db"].append(float(si_sdr(est, ref)[0]))
    return summarize({name: np.asarray(values) for name, values in per_clip.items()})


def evaluate_reconstruction(model: torch.nn.Module, clips: Sequence[Any], sample_rate: int, batch_size: int = 8,
                            device: str | torch.device | None = None,
                            fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES) -> dict[str, float]:
    """Encode/decode held-out clips with an ``AudioAutoencoder`` and score the reconstructions.

    :func:`reconstruct_clips` then :func:`score_reconstructions` at the model rate: returns mean and
    median of ``mrstft``, ``mel_distance_db`` and ``si_sdr_db`` plus ``n_clips``. ``device`` defaults to
    the model's own (metrics are computed on CPU).
    """
    if not clips:
        raise ValueError("evaluate_reconstruction: no clips given")
    pairs = reconstruct_clips(model, clips, sample_rate, batch_size=batch_size, device=device)
    return score_reconstructions(pairs, int(getattr(model, "sample_rate", sample_rate)), fft_sizes)
