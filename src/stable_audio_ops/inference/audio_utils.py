"""Bring user audio (init audio, inpainting audio) into the shape a model expects.

Upstream resamples with torchaudio; here resampling goes through soxr
(:func:`stable_audio_ops.data.audio_io.resample`) and channel conversion reuses the dataset's policy
(:func:`stable_audio_ops.data.transforms.set_audio_channels`), so training data and inference inputs
are prepared by the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stable_audio_ops.data.audio_io import resample
from stable_audio_ops.data.transforms import set_audio_channels


def as_batched_audio(audio: Any) -> torch.Tensor:
    """``[n]``, ``[C, n]`` or ``[B, C, n]`` audio (tensor or numpy) as a float32 ``[B, C, n]`` tensor."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor or numpy array, got {type(audio).__name__}")
    audio = audio.to(torch.float32)
    if audio.dim() == 1:
        return audio[None, None]
    if audio.dim() == 2:
        return audio[None]
    if audio.dim() == 3:
        return audio
    raise ValueError(f"audio must have 1 to 3 dimensions ([n], [C, n], [B, C, n]), got shape {tuple(audio.shape)}")


def pad_crop_start(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Keep the first ``length`` samples; zero-pad at the end when shorter (upstream PadCrop, no randomness)."""
    n = audio.shape[-1]
    if n >= length:
        return audio[..., :length]
    return F.pad(audio, (0, length - n))


def prepare_audio(audio: Any, in_sr: int, target_sr: int, target_length: int, target_channels: int,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Resample to ``target_sr`` (soxr), crop/pad from the start to ``target_length``, convert channels.

    Returns ``[B, target_channels, target_length]`` float32 on ``device``. Mono -> stereo duplicates,
    more than two channels keep the first two, anything -> mono averages; other channel counts must
    already match.
    """
    batch = as_batched_audio(audio).detach().cpu()
    b, c, n = batch.shape
    if target_channels not in (1, 2) and c != target_channels:
        raise ValueError(f"cannot convert {c}-channel audio to {target_channels} channels (only to mono or stereo)")
    if in_sr != target_sr:
        batch = resample(batch.reshape(b * c, n), int(in_sr), int(target_sr)).reshape(b, c, -1)
    batch = pad_crop_start(batch, target_length)
    if target_channels in (1, 2):
        batch = torch.stack([set_audio_channels(item, target_channels) for item in batch])
    return batch.to(device)
