"""Small audio-shape helpers shared by the judges (numpy in, numpy out)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stable_audio_ops.data.audio_io import resample


def to_mono(audio: Any) -> np.ndarray:
    """``[n]``, ``[C, n]`` or ``[1, C, n]`` (numpy or torch) -> float32 ``[n]`` (channel mean).

    Judges look at one channel: the demo notes are mono and the generated ones are judged as heard.
    """
    if hasattr(audio, "detach"):
        audio = audio.detach().to("cpu").float().numpy()
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array.mean(axis=0)
    if array.ndim != 1:
        raise ValueError(f"expected audio shaped [n] or [C, n], got {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def resample_mono(audio: Any, sr: int, target_sr: int) -> np.ndarray:
    """Mono float32 at ``target_sr`` (soxr through the data layer's resampler)."""
    mono = to_mono(audio)
    if int(sr) == int(target_sr):
        return mono
    return np.asarray(resample(mono, int(sr), int(target_sr)), dtype=np.float32)
