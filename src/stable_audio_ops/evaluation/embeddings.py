"""Clip embeddings for KID/FD and for the caption probe.

- :class:`AisfxEmbedder`: aiSFX (Moore et al., CC BY 4.0 weights shipped in the ``aisfx`` 0.1.2 wheel), a
  CNN trained on sound-effect libraries; 512-d. It separates real notes, another soundfont, sines and
  noise, and a linear probe on it recovers instrument and dynamics, which is why it is the default.
- :func:`mel_stats_embedding`: mean and std over time of a 64-band log-mel spectrogram (128-d, no
  weights, ~ms per clip). A fast stand-in for unit tests and smoke runs, weaker on timbre.

Clips are given as ``(audio, sample_rate)`` pairs; audio is ``[n]`` or ``[C, n]`` (numpy or torch) and is
downmixed to mono.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from stable_audio_ops.evaluation._audio import resample_mono
from stable_audio_ops.evaluation.mel import mel_power_spectrogram, power_to_db

Clip = tuple[Any, int]
Embedder = Callable[[Sequence[Clip]], np.ndarray]

# aiSFX front end (aisfx.inference constants; Essentia recipe the model was trained on).
AISFX_SAMPLE_RATE = 44100
AISFX_N_FFT = 2048
AISFX_HOP = 1024
AISFX_MELS = 96
AISFX_BLOCK_FRAMES = 100  # ~2.3 s per block
AISFX_BLOCK_HOP = 50  # aisfx's default: half a block
AISFX_SPEC_MAX = 9.457798957824707  # aisfx's "original" min/max normalisation (min 0)

MEL_STATS_SAMPLE_RATE = 16000


def mel_stats_embedding(clips: Sequence[Clip], n_mels: int = 64, max_seconds: float | None = None) -> np.ndarray:
    """``[N, 2 * n_mels]``: per-band mean and std over time of the dB mel spectrogram at 16 kHz.

    Clips of equal length are transformed in one batch.
    """
    signals = []
    for audio, sr in clips:
        x = resample_mono(audio, sr, MEL_STATS_SAMPLE_RATE)
        if max_seconds is not None:
            x = x[: int(round(max_seconds * MEL_STATS_SAMPLE_RATE))]
        signals.append(x)
    out = np.zeros((len(signals), 2 * n_mels), np.float32)
    by_length: dict[int, list[int]] = {}
    for index, x in enumerate(signals):
        by_length.setdefault(len(x), []).append(index)
    for indices in by_length.values():
        batch = torch.from_numpy(np.stack([signals[i] for i in indices]))
        mel = mel_power_spectrogram(batch, MEL_STATS_SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=n_mels,
                                    norm="slaney")
        db = power_to_db(mel, floor_db=-100.0)
        out[indices] = torch.cat([db.mean(dim=-1), db.std(dim=-1, unbiased=False)], dim=-1).numpy()
    return out


def _aisfx_spectrogram(x: np.ndarray) -> torch.Tensor:
    """44.1 kHz mono -> ``[frames, 96]`` normalised log-mel (Essentia recipe: power, HTK mel, unit-sum
    bands, ``log10(1e4 * x + 1)``, no peak normalisation so loudness stays visible)."""
    power = mel_power_spectrogram(torch.from_numpy(x), AISFX_SAMPLE_RATE, n_fft=AISFX_N_FFT,
                                  hop_length=AISFX_HOP, n_mels=AISFX_MELS, fmin=0.0,
                                  fmax=AISFX_SAMPLE_RATE / 2, norm="unit_sum")
    return (torch.log10(power * 1e4 + 1.0) / AISFX_SPEC_MAX).T.contiguous()


def _blocks(spec: torch.Tensor) -> torch.Tensor:
    """``[frames, mels]`` -> ``[k, 100, mels]``: zero-padded 100-frame blocks at a 50-frame hop
    (aisfx's ``blocking`` with ``drop_partial_block=True``, but always at least one block)."""
    frames = spec.shape[0]
    count = 1 if frames <= AISFX_BLOCK_FRAMES else (frames - AISFX_BLOCK_FRAMES) // AISFX_BLOCK_HOP + 1
    need = (count - 1) * AISFX_BLOCK_HOP + AISFX_BLOCK_FRAMES
    if frames < need:
        spec = torch.nn.functional.pad(spec, (0, 0, 0, need - frames))
    return torch.stack([spec[i * AISFX_BLOCK_HOP : i * AISFX_BLOCK_HOP + AISFX_BLOCK_FRAMES]
                        for i in range(count)])


def load_aisfx_model(device: str = "cpu") -> torch.nn.Module:
    """The aiSFX CrossNet with its wheel checkpoint (strict load), in eval mode."""
    try:
        import aisfx.inference as aisfx_inference
    except ImportError as err:
        raise ImportError("the aiSFX embedder needs aisfx: pip install --no-deps aisfx==0.1.2") from err
    path = aisfx_inference.get_path_modelWeights()
    # weights_only=False: the checkpoint is a pickled (state_dict, ds_dict) tuple, which torch >= 2.6
    # refuses by default. It is a file inside the aisfx wheel installed from PyPI (a trusted, pinned
    # package), never a user-supplied path.
    weights, ds_dict = torch.load(path, map_location="cpu", weights_only=False)
    return aisfx_inference.load_bestModel(weights, ds_dict, device)


class AisfxEmbedder:
    """Callable ``clips -> [N, 512]`` aiSFX embeddings (mean over 2.3 s blocks for longer clips).

    The model is loaded once per instance; clips are resampled to 44.1 kHz (soxr) and run in batches.
    """

    dim = 512

    def __init__(self, device: str = "cpu", batch_size: int = 32, max_seconds: float | None = None):
        self.device = device
        self.batch_size = int(batch_size)
        self.max_seconds = max_seconds
        self.model = load_aisfx_model(device)

    def __call__(self, clips: Sequence[Clip]) -> np.ndarray:
        blocks: list[torch.Tensor] = []
        owner: list[int] = []
        for index, (audio, sr) in enumerate(clips):
            x = resample_mono(audio, sr, AISFX_SAMPLE_RATE)
            if self.max_seconds is not None:
                x = x[: int(round(self.max_seconds * AISFX_SAMPLE_RATE))]
            clip_blocks = _blocks(_aisfx_spectrogram(x))
            blocks.extend(clip_blocks)
            owner.extend([index] * len(clip_blocks))
        if not blocks:
            return np.zeros((0, self.dim), np.float32)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(blocks), self.batch_size):
                batch = torch.stack(blocks[start : start + self.batch_size]).float().to(self.device)
                outputs.append(self.model.get_embedding(batch).float().cpu())
        per_block = torch.cat(outputs)
        owners = torch.tensor(owner)
        sums = torch.zeros(len(clips), per_block.shape[1]).index_add_(0, owners, per_block)
        counts = torch.bincount(owners, minlength=len(clips)).clamp_min(1)[:, None]
        return (sums / counts).numpy().astype(np.float32)


EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "aisfx": AisfxEmbedder,
    "mel_stats": lambda: mel_stats_embedding,
}


def get_embedder(name_or_fn: str | Embedder) -> Embedder:
    """An embedder by registry name (``aisfx``, ``mel_stats``) or a callable passed through."""
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name_or_fn!r}; known: {', '.join(sorted(EMBEDDERS))}")
    return EMBEDDERS[name_or_fn]()
