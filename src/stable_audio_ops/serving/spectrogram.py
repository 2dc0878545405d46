"""A PNG spectrogram of a generated file, for the web page to show next to the player.

Why on the server: the page stays a single static file without plotting code, and the picture is drawn by
the same Lightning-free function as the training demos' spectrograms
(:func:`stable_audio_ops.training.spectrogram.write_spectrogram_png`: time in s, frequency, a dB colour bar),
so a generation looks the way the demos of the model's training run look in MLflow.
"""

from __future__ import annotations

import io

import soundfile as sf
import torch

from stable_audio_ops.training.spectrogram import write_spectrogram_png


def spectrogram_png(encoded_audio: bytes, title: str) -> bytes:
    """``encoded_audio`` (WAV / FLAC bytes) -> PNG bytes of its first channel's log-magnitude spectrogram."""
    audio, sample_rate = sf.read(io.BytesIO(encoded_audio), dtype="float32", always_2d=True)
    buffer = io.BytesIO()
    write_spectrogram_png(buffer, torch.from_numpy(audio.T.copy()), int(sample_rate), title, 1, xlabel="time (s)")
    return buffer.getvalue()
