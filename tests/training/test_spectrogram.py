"""The demo spectrogram says what it shows: seconds, kHz, a dB colour bar, and what each clip is."""

from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import pytest
import torch

from stable_audio_ops.training.spectrogram import log_magnitude_db, spectrogram_figure, write_spectrogram_png

SR = 8000


def _tones(*freqs: float, seconds: float = 0.5, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return torch.cat([amplitude * torch.sin(2 * math.pi * f * t) for f in freqs]).unsqueeze(0)


def test_axes_are_in_seconds_and_khz_with_a_db_colour_bar_and_clip_labels():
    labels = ["real: piano C4", "reconstruction: piano C4"]
    fig = spectrogram_figure(_tones(262.0, 262.0), SR, "reconstructions at step 7", 2, item_labels=labels)
    try:
        ax, colourbar = fig.axes
        assert ax.get_xlim() == pytest.approx((0.0, 1.0))  # two 0.5 s clips
        assert ax.get_ylim() == pytest.approx((0.0, SR / 2000))  # up to Nyquist, in kHz
        assert "time (s)" in ax.get_xlabel() and "kHz" in ax.get_ylabel()
        assert "dB" in colourbar.get_ylabel()
        assert [text.get_text().replace("\n", " ") for text in ax.texts] == labels
        assert fig._suptitle.get_text() == "reconstructions at step 7"
    finally:
        plt.close(fig)


def test_a_full_scale_tone_peaks_near_0_db_in_its_frequency_bin():
    db, n_fft = log_magnitude_db(_tones(1000.0)[0])
    peak_bin = int(db.mean(dim=1).argmax())
    assert peak_bin == round(1000.0 * n_fft / SR)
    assert -3.0 < float(db.max()) < 0.5
    assert float(db.min()) == pytest.approx(float(db.max()) - 80.0)


def test_a_label_per_clip_is_required():
    with pytest.raises(ValueError, match="1 labels for 2 items"):
        spectrogram_figure(_tones(262.0, 262.0), SR, "t", 2, item_labels=["only one"])


def test_the_png_can_go_to_a_buffer():
    buffer = io.BytesIO()
    write_spectrogram_png(buffer, _tones(440.0), SR, "one clip", 1, xlabel="time (s)")
    assert buffer.getvalue().startswith(b"\x89PNG")
