"""audio_io: header probes, windowed reads, soxr resampling, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.data.audio_io import (
    audio_info,
    is_audio_file,
    read_audio_window,
    resample,
    resampled_length,
    write_audio,
)


def _noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((frames, channels)) * 0.2).astype(np.float32)


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def test_audio_info_reads_header(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _noise(22050, 2), 44100)
    info = audio_info(path)
    assert (info.frames, info.sample_rate, info.channels) == (22050, 44100, 2)
    assert info.duration == pytest.approx(0.5)
    assert info.format == "FLAC"


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "opus", "mp3", "aif"])
def test_window_equals_slice_of_full_decode(tmp_path, ext):
    path = write_audio(tmp_path / f"a.{ext}", _noise(30000, 2).T, 48000)
    full, _ = sf.read(path, dtype="float32", always_2d=True)
    assert audio_info(path).frames == full.shape[0]
    window = read_audio_window(path, 12345, 4000)
    assert window.shape == (2, 4000) and window.dtype == np.float32
    np.testing.assert_array_equal(window, full[12345:16345].T)


def test_window_near_and_past_end_returns_what_exists(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _noise(1000, 1), 8000)
    assert read_audio_window(path, 900, 500).shape == (1, 100)
    assert read_audio_window(path, 1000, 10).shape == (1, 0)
    assert read_audio_window(path, 0, -1).shape == (1, 1000)


def test_resample_48k_to_16k_keeps_length_and_frequency():
    sr_in, sr_out = 48000, 16000
    t = np.arange(sr_in * 2) / sr_in
    sine = np.stack([np.sin(2 * np.pi * 1000 * t)] * 2).astype(np.float32)
    out = resample(sine, sr_in, sr_out)
    assert out.shape == (2, 32000) and out.dtype == np.float32
    assert resampled_length(sine.shape[-1], sr_in, sr_out) == 32000
    assert _dominant_hz(out[0], sr_out) == pytest.approx(1000, abs=2)
    assert np.abs(out).max() == pytest.approx(1.0, abs=0.02)


def test_resample_accepts_torch_and_predicts_length():
    x = torch.randn(1, 12345) * 0.1
    y = resample(x, 44100, 16000)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert y.shape[-1] == resampled_length(12345, 44100, 16000)


def test_write_audio_roundtrip_and_atomic_overwrite(tmp_path):
    path = tmp_path / "sub" / "out.wav"
    audio = torch.rand(2, 800) * 0.5 - 0.25
    write_audio(path, audio, 8000, subtype="FLOAT")
    back, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 8000
    np.testing.assert_allclose(back.T, audio.numpy(), atol=1e-7)

    with pytest.raises(ValueError, match="subtype"):  # a failed write ...
        write_audio(path, np.zeros((2, 10)), 8000, subtype="NOT_A_SUBTYPE")
    back2, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(back2, back)  # ... and the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.wav"]  # no temp file left behind


def test_write_audio_flac_mono_from_1d(tmp_path):
    path = write_audio(tmp_path / "m.flac", np.zeros(100, dtype=np.float32), 16000)
    assert audio_info(path).channels == 1 and audio_info(path).frames == 100


def test_is_audio_file_extensions():
    assert is_audio_file("x/Song.WAV") and is_audio_file("a.aiff") and is_audio_file("a.Opus")
    assert not is_audio_file("x/.hidden.wav")
    assert not is_audio_file("notes.txt") and not is_audio_file("a.m4a")
