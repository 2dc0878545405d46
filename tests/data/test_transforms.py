"""transforms: crop planning with upstream's metadata, windowed crop == crop of the full decode, channels."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.data.audio_io import resample
from stable_audio_ops.data.transforms import (
    integrated_loudness,
    is_silence,
    pad_crop,
    phase_flip,
    plan_crop,
    read_padded_crop,
    remove_long_silence,
    set_audio_channels,
    volume_normalize,
)


def _noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((frames, channels)) * 0.2).astype(np.float32)


def test_plan_crop_start_and_random_offsets_stay_inside():
    assert plan_crop(1000, 100, 10, randomize=False).offset == 0
    rng = random.Random(0)
    offsets = {plan_crop(103, 100, 10, True, rng).offset for _ in range(400)}
    assert offsets == {0, 1, 2, 3}  # every full window, never one past the end (upstream's off-by-one)


def test_plan_crop_metadata_matches_upstream_formulas():
    plan = plan_crop(length=250, n_samples=100, sample_rate=100, randomize=False)
    assert (plan.seconds_start, plan.seconds_total) == (0, 3)  # ceil(250/100)
    assert (plan.t_start, plan.t_end) == (0.0, 0.4)
    short = plan_crop(length=50, n_samples=100, sample_rate=100)
    assert (short.offset, short.t_start, short.t_end, short.seconds_total) == (0, 0.0, 1.0, 1)


def test_pad_crop_pads_short_audio_and_masks_it():
    audio = torch.ones(2, 30)
    chunk, t0, t1, s0, total, mask = pad_crop(audio, 50, sample_rate=10)
    assert chunk.shape == (2, 50)
    assert torch.equal(chunk[:, :30], audio) and chunk[:, 30:].abs().sum() == 0
    assert mask.dtype == torch.float32 and mask[:30].sum() == 30 and mask[30:].sum() == 0
    assert (t0, t1, s0, total) == (0.0, 1.0, 0, 3)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_window_crop_at_model_rate_equals_crop_of_full_decode(tmp_path, ext):
    path = tmp_path / f"a.{ext}"
    sf.write(path, _noise(20000, 2), 16000)
    full = torch.from_numpy(sf.read(path, dtype="float32", always_2d=True)[0].T.copy())
    for seed in range(5):
        chunk, plan, mask = read_padded_crop(path, 4096, 16000, randomize=True, rng=random.Random(seed))
        assert torch.equal(chunk, full[:, plan.offset : plan.offset + 4096])
        assert mask.sum() == 4096


@pytest.mark.parametrize(("sr_in", "sr_out"), [(44100, 16000), (16000, 48000), (48000, 44100)])
def test_window_crop_with_resampling_equals_crop_of_resampled_file(tmp_path, sr_in, sr_out):
    path = tmp_path / "a.wav"
    sf.write(path, _noise(sr_in * 2, 2, seed=1), sr_in, subtype="FLOAT")
    full = resample(sf.read(path, dtype="float32", always_2d=True)[0].T.copy(), sr_in, sr_out)
    n = sr_out // 4
    for seed in range(4):
        chunk, plan, _ = read_padded_crop(path, n, sr_out, randomize=True, rng=random.Random(seed))
        assert plan.length == full.shape[-1]
        np.testing.assert_allclose(chunk.numpy(), full[:, plan.offset : plan.offset + n], atol=1e-5)


def test_window_crop_of_short_file_is_padded(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _noise(300, 1), 8000)
    chunk, plan, mask = read_padded_crop(path, 1000, 8000)
    assert chunk.shape == (1, 1000) and chunk[:, 300:].abs().sum() == 0 and chunk[:, :300].abs().sum() > 0
    assert mask[:300].all() and not mask[300:].any()
    assert plan.seconds_total == 1


def test_set_audio_channels():
    mono = torch.randn(1, 10)
    stereo = torch.stack([torch.ones(10), -torch.ones(10) * 3])
    assert torch.equal(set_audio_channels(mono, "stereo"), mono.repeat(2, 1))
    assert torch.allclose(set_audio_channels(stereo, "mono"), -torch.ones(1, 10))
    assert set_audio_channels(torch.randn(5, 10), "stereo").shape == (2, 10)
    assert set_audio_channels(torch.randn(10), 2).shape == (2, 10)
    with pytest.raises(ValueError, match="known: mono, stereo"):
        set_audio_channels(mono, "surround")


def test_phase_flip_probability():
    x = torch.ones(1, 4)
    assert torch.equal(phase_flip(x, p=1.0), -x) and torch.equal(phase_flip(x, p=0.0), x)
    rng = random.Random(0)
    flips = sum(bool(phase_flip(x, 0.5, rng)[0, 0] < 0) for _ in range(1000))
    assert 420 < flips < 580


def test_is_silence_threshold():
    assert is_silence(torch.full((2, 100), 10 ** (-70 / 20)))
    assert not is_silence(torch.full((2, 100), 10 ** (-50 / 20)))
    assert is_silence(torch.zeros(1, 10))


def test_loudness_matches_bs1770_reference_and_volume_norm_hits_target():
    t = np.arange(48000 * 2) / 48000
    sine = np.sin(2 * np.pi * 997 * t)
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
    assert integrated_loudness(np.stack([sine, 0 * sine]), 48000) == pytest.approx(-3.01, abs=0.05)
    quiet = torch.from_numpy(0.01 * np.stack([sine, sine])).float()
    for _ in range(3):
        out = volume_normalize(quiet, 48000, target_lufs=-20.0, gain_range_db=2.0)
        assert -22.05 <= integrated_loudness(out, 48000) <= -17.95
    loud = volume_normalize(quiet, 48000, target_lufs=0.0, gain_range_db=0.0)
    assert float(loud.abs().max()) == pytest.approx(0.95, abs=1e-4)  # declipped


def test_remove_long_silence_shortens_pauses():
    sr = 16000
    tone_part = torch.full((sr,), 0.5)
    audio = torch.cat([tone_part, torch.zeros(2 * sr), tone_part]).unsqueeze(0)
    out = remove_long_silence(audio, sr, (0.01, 0.5), 0.25)
    assert out.shape == (1, 2 * sr + sr // 2)
    short_pause = torch.cat([tone_part, torch.zeros(sr // 10), tone_part]).unsqueeze(0)
    assert torch.equal(remove_long_silence(short_pause, sr, (0.01, 0.5), 0.25), short_pause)
