"""Audio file I/O without torchaudio: header probes, windowed reads, resampling, atomic writes.

Upstream decodes every file completely (``torchaudio.load``) for each training item, even when it
only needs one second of a ten-minute track. Here :func:`read_audio_window` seeks to the wanted
frame and decodes just that window, and :func:`audio_info` reads only the header, so a dataset can
plan its crops without decoding anything.

Conventions: audio arrays are ``[channels, frames]`` float32 (the layout torch models use);
soundfile and soxr work with ``[frames, channels]``, so conversions happen only in this module.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from stable_audio_ops.utils.io import atomic_path

# Extensions upstream's scanner accepts (compared lower-case), plus ".aiff" which upstream lists in
# some versions and libsndfile reads just like ".aif".
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".mp3", ".flac", ".ogg", ".aif", ".aiff", ".opus")


def is_audio_file(path: str | os.PathLike[str]) -> bool:
    """True for a non-hidden file name with one of :data:`AUDIO_EXTENSIONS` (case-insensitive)."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def soundfile_path(path: str | os.PathLike[str]) -> str | bytes:
    """``path`` as soundfile should get it: the file system's bytes on POSIX.

    Why: a file name that is not valid UTF-8 (``b"caf\\xe9.wav"`` from a Latin-1 machine or a zip) reaches Python
    as a str holding a surrogate escape (``"caf\\udce9.wav"``); soundfile encodes str paths strictly and raises
    ``UnicodeEncodeError`` for it, so a valid file looked unreadable. ``os.fsencode`` gives back the original
    bytes. Windows file names are UTF-16 and soundfile opens str paths there with the wide-char API.
    """
    if sys.platform == "win32":
        return os.fspath(path)
    return os.fsencode(path)


@dataclass(frozen=True)
class AudioInfo:
    """What the header says about an audio file (no samples decoded)."""

    frames: int
    sample_rate: int
    channels: int
    duration: float
    format: str
    subtype: str = ""


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header probe of ``path``; raises ``soundfile.LibsndfileError`` (a RuntimeError) if unreadable."""
    info = sf.info(soundfile_path(path))
    frames = int(info.frames)
    rate = int(info.samplerate)
    return AudioInfo(
        frames=frames,
        sample_rate=rate,
        channels=int(info.channels),
        duration=frames / rate if rate > 0 else 0.0,
        format=str(info.format),
        subtype=str(info.subtype),
    )


def read_audio_window(path: str | os.PathLike[str], start_frame: int = 0, num_frames: int = -1) -> np.ndarray:
    """Decode ``num_frames`` frames starting at ``start_frame`` (``-1`` = to the end) as ``[C, n]`` float32.

    The file is opened, seeked and read; only the window (plus whatever the codec needs to reach
    the seek point) is decoded. Near the end of the file fewer than ``num_frames`` frames come back,
    and none at all when ``start_frame`` is at or past the end: callers pad as needed.
    """
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    with sf.SoundFile(soundfile_path(path)) as f:
        if start_frame >= f.frames > 0:
            return np.zeros((f.channels, 0), dtype=np.float32)
        if start_frame > 0:
            f.seek(start_frame)
        data = f.read(frames=num_frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def resampled_length(frames: int, in_sr: int, out_sr: int) -> int:
    """Length soxr gives when resampling ``frames`` frames in one call (nearest integer of frames*out/in)."""
    if in_sr == out_sr:
        return frames
    return (2 * frames * out_sr + in_sr) // (2 * in_sr)


def resample(audio: Any, in_sr: int, out_sr: int, quality: str = "HQ") -> Any:
    """Resample ``[C, n]`` (or ``[n]``) audio from ``in_sr`` to ``out_sr`` with soxr.

    Accepts a numpy array or a torch tensor and returns the same kind (float32). The output length is
    :func:`resampled_length` of the input length.
    """
    if in_sr == out_sr:
        return audio
    is_torch = type(audio).__module__.startswith("torch")
    if is_torch:
        import torch

        device = audio.device
        array = audio.detach().to("cpu", torch.float32).numpy()
    else:
        array = np.asarray(audio, dtype=np.float32)
    if array.shape[-1] == 0:
        out = np.zeros(array.shape[:-1] + (0,), dtype=np.float32)
    elif array.ndim == 1:
        out = soxr.resample(array, in_sr, out_sr, quality=quality)
    elif array.ndim == 2:
        out = np.ascontiguousarray(soxr.resample(np.ascontiguousarray(array.T), in_sr, out_sr, quality=quality).T)
    else:
        raise ValueError(f"resample expects [C, n] or [n] audio, got shape {tuple(array.shape)}")
    out = out.astype(np.float32, copy=False)
    if is_torch:
        return torch.from_numpy(out).to(device)
    return out


def write_audio(
    path: str | os.PathLike[str],
    audio: Any,
    sample_rate: int,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write ``[C, n]`` (or ``[n]``) audio atomically: a temp file in the same folder, then ``os.replace``.

    A crash or a reader running at the same time never sees a half-written file. ``format`` defaults
    to the one implied by the extension; ``subtype`` to soundfile's default for that format
    (e.g. PCM_16 for WAV).
    """
    path = Path(path)
    if type(audio).__module__.startswith("torch"):
        audio = audio.detach().cpu().float().numpy()
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"write_audio expects [C, n] or [n] audio, got shape {tuple(array.shape)}")
    if format is None:
        format = path.suffix.lstrip(".").upper()
        if format == "OPUS":
            format, subtype = "OGG", subtype or "OPUS"
        elif format == "AIF":
            format = "AIFF"
    with atomic_path(path) as tmp:
        sf.write(soundfile_path(tmp), np.ascontiguousarray(array.T), int(sample_rate), subtype=subtype, format=format)
    return path
