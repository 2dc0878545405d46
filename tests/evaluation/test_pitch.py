"""Pitch judges on known inputs: a pure tone at the asked pitch is right, noise and octave-off tones are not."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from stable_audio_ops.evaluation.pitch import acf_f0, cents_error, crepe_f0, midi_to_hz, pitch_accuracy

SR = 16000


def tone(midi: float, seconds: float = 1.5, sr: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * midi_to_hz(midi) * t)).astype(np.float32)


def white_noise(seed: int, seconds: float = 1.5) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


@pytest.mark.parametrize("midi", [57, 60])  # A3, C4
def test_acf_pure_tone_is_judged_correct_and_precise(midi):
    f0 = acf_f0(tone(midi), SR)
    assert abs(cents_error(f0, midi)) < 5.0
    assert pitch_accuracy([f0], [midi])["accuracy"] == 1.0


@pytest.mark.parametrize("midi", [57, 60])
def test_crepe_tiny_pure_tone_is_judged_correct(midi):
    f0 = crepe_f0(tone(midi), SR, model="tiny", hop_ms=50)
    assert abs(cents_error(f0, midi)) < 30.0  # CREPE-tiny is biased by up to ~15 cents on sines
    assert pitch_accuracy([f0], [midi])["accuracy"] == 1.0


def test_tone_at_another_sample_rate_and_in_stereo_is_judged_at_its_pitch():
    stereo = np.stack([tone(60, sr=44100), tone(60, sr=44100)])
    assert abs(cents_error(acf_f0(stereo, 44100), 60)) < 5.0
    assert abs(cents_error(crepe_f0(stereo, 44100, hop_ms=50), 60)) < 30.0


def test_white_noise_gets_no_pitch_and_scores_zero():
    noise = [white_noise(seed) for seed in range(3)]
    for judge in (lambda x: acf_f0(x, SR), lambda x: crepe_f0(x, SR, hop_ms=50)):
        f0s = [judge(x) for x in noise]
        result = pitch_accuracy(f0s, [57, 60, 64])
        assert result["accuracy"] == 0.0
        assert result["no_estimate"] == 1.0


def test_silence_gets_no_pitch():
    silent = np.zeros(SR, dtype=np.float32)
    assert np.isnan(acf_f0(silent, SR))
    assert np.isnan(crepe_f0(silent, SR))


def test_octave_off_tone_is_wrong_and_counted_as_octave_error():
    asked = [57, 60]
    played = [tone(69), tone(48)]  # A4 for A3 (octave up), C3 for C4 (octave down)
    for judge in (lambda x: acf_f0(x, SR), lambda x: crepe_f0(x, SR, hop_ms=50)):
        result = pitch_accuracy([judge(x) for x in played], asked)
        assert result["accuracy"] == 0.0
        assert result["octave_errors"] == 1.0


def test_acf_resolves_a_detuned_tone_that_is_still_in_tolerance():
    f0 = acf_f0(tone(57.3), SR)  # 30 cents sharp
    assert abs(cents_error(f0, 57) - 30.0) < 3.0
    assert pitch_accuracy([f0], [57])["accuracy"] == 1.0
    assert pitch_accuracy([acf_f0(tone(57.6), SR)], [57])["accuracy"] == 0.0  # 60 cents: wrong note


def test_pitch_accuracy_counts_and_median_cents():
    f0s = [midi_to_hz(60), midi_to_hz(60.2), midi_to_hz(72), float("nan")]
    result = pitch_accuracy(f0s, [60, 60, 60, 60])
    assert result["accuracy"] == 0.5
    assert result["octave_errors"] == 0.25
    assert result["no_estimate"] == 0.25
    assert result["median_abs_cents"] == pytest.approx(10.0, abs=1e-6)
    assert result["n"] == 4
    with pytest.raises(ValueError, match="targets"):
        pitch_accuracy([440.0], [69, 70])


def test_crepe_rejects_an_fmin_below_its_lowest_bin():
    with pytest.raises(ValueError, match="lowest bin"):
        crepe_f0(tone(60), SR, fmin=30.0)


def test_crepe_import_does_not_leave_a_fake_torchaudio_behind():
    crepe_f0(tone(60, seconds=0.3), SR)
    assert "torchcrepe" in sys.modules
    assert not getattr(sys.modules.get("torchaudio"), "__stable_audio_ops_stub__", False)
