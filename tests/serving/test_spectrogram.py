"""The spectrogram picture the web page shows next to the player."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from stable_audio_ops.serving.engine import encode_audio
from stable_audio_ops.serving.spectrogram import spectrogram_png


def test_generated_file_becomes_a_png_picture():
    rate = 16000
    t = np.arange(rate // 2) / rate
    wav = encode_audio(0.5 * np.sin(2 * np.pi * 440 * t)[None, :], rate, "wav")
    png = spectrogram_png(wav, "seed 7")
    assert png.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(png)) as image:
        assert image.width >= 400 and image.height >= 300
