"""The spectrogram picture of a demo (clips side by side on one time axis), readable on its own.

Why its own module: the training demos and the web page draw the same picture, and neither should need
Lightning to do it. Readable on its own means: time in seconds, frequency in kHz, a colour bar in dB, and
above each clip what it is (``real`` / ``reconstruction`` and which note, or the demo's prompt), so a
picture pulled out of MLflow still says what it shows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from os import PathLike
from typing import IO, TypedDict, Unpack

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DYNAMIC_RANGE_DB = 80.0  # quieter than the loudest bin by more than this is drawn as the floor
LABEL_WIDTH = 26  # characters per line of a clip label (one clip is ~1.5 inches wide)


def log_magnitude_db(signal: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``[T]`` -> (``[freq, frames]`` STFT magnitude in dB re full scale, floored ``DYNAMIC_RANGE_DB`` below the
    peak; n_fft). Short clips get a shorter window so even a few hundred samples give a picture."""
    n_fft = 512 if signal.numel() >= 512 else max(16, 1 << (signal.numel().bit_length() - 1))
    window = torch.hann_window(n_fft)
    spec = torch.stft(signal, n_fft=n_fft, hop_length=n_fft // 4, window=window,
                      return_complex=True).abs() / (window.sum() / 2)  # a full-scale sine peaks at ~0 dB
    db = 20 * torch.log10(spec.clamp_min(1e-10))
    return db.clamp_min(db.max() - DYNAMIC_RANGE_DB), n_fft


class SpectrogramStyle(TypedDict, total=False):
    """The optional keywords of :func:`spectrogram_figure`, for the functions that pass them through."""

    xlabel: str
    line_widths: tuple[float, float]
    item_labels: Sequence[str] | None


def spectrogram_figure(
    audio: torch.Tensor,
    sample_rate: int,
    title: str,
    n_items: int,
    *,
    xlabel: str = "time (s): real, reconstruction, real, reconstruction, ...",
    line_widths: tuple[float, float] = (0.8, 0.3),
    item_labels: Sequence[str] | None = None,
) -> Figure:
    """Log-magnitude STFT of ``audio[0]`` (``[C, T]``) with separators between the ``n_items`` concatenated items.

    ``line_widths`` are the widths of the even and odd separators: the default draws thick lines between
    real/reconstruction pairs and thin ones inside a pair, so pairs read as units. ``item_labels`` (one per
    item) are written above each item.
    """
    if item_labels is not None and len(item_labels) != n_items:
        raise ValueError(f"item_labels has {len(item_labels)} labels for {n_items} items")
    signal = audio[0].detach().float().cpu()
    db, _ = log_magnitude_db(signal)
    duration = signal.numel() / sample_rate
    labelled = bool(item_labels) and any(item_labels)
    fig, ax = plt.subplots(figsize=(max(6.5, min(24, n_items * 1.6)), 4.6 if labelled else 4), dpi=100)
    image = ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma",
                      extent=(0, duration, 0, sample_rate / 2000))
    for i in range(1, n_items):
        ax.axvline(i * duration / n_items, color="white", linewidth=line_widths[i % 2])
    if labelled:
        for i, label in enumerate(item_labels or ()):
            ax.text((i + 0.5) / n_items, 1.01, textwrap.fill(str(label), LABEL_WIDTH), transform=ax.transAxes,
                    ha="center", va="bottom", fontsize=6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("frequency (kHz)")
    fig.colorbar(image, ax=ax, pad=0.01, label="level (dB re full scale)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_spectrogram_png(
    path: str | PathLike[str] | IO[bytes],
    audio: torch.Tensor,
    sample_rate: int,
    title: str,
    n_items: int,
    **style: Unpack[SpectrogramStyle],
) -> None:
    """:func:`spectrogram_figure` saved as a PNG to ``path`` (a file name or a binary buffer)."""
    fig = spectrogram_figure(audio, sample_rate, title, n_items, **style)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


__all__ = ["SpectrogramStyle", "log_magnitude_db", "spectrogram_figure", "write_spectrogram_png"]
