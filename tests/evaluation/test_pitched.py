"""The pitched-accuracy judge of unconditional models: harmonic tones on a note in range score 1, white noise ~0,
detuned or out-of-range notes 0; real and noise anchors are judged beside the generated set, with KID."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stable_audio_ops.evaluation.pitch import midi_to_hz
from stable_audio_ops.evaluation.pitched import (
    flat_metrics,
    judge_unconditional,
    nearest_note,
    pitched_accuracy,
    unconditional_report_table,
)

SR = 16000


def harmonic_tone(midi: float, seconds: float = 1.5, cents: float = 0.0) -> np.ndarray:
    """A decaying note with 6 harmonics (a plucked-string-like timbre, not a pure sine)."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = midi_to_hz(midi) * 2.0 ** (cents / 1200.0)
    wave = sum((0.6 / k) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 7))
    return (0.4 * wave * np.exp(-1.5 * t)).astype(np.float32)


def noise(seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(1.5 * SR))).astype(np.float32)


def test_nearest_note_and_cents():
    assert nearest_note(440.0) == (69.0, 0.0)
    note, off = nearest_note(midi_to_hz(60.3))
    assert note == 60.0 and off == pytest.approx(30.0)
    assert all(math.isnan(v) for v in nearest_note(float("nan")))


def test_pitched_accuracy_counts_notes_in_range_within_the_cents():
    f0s = [midi_to_hz(60), midi_to_hz(60.2), midi_to_hz(60.6), midi_to_hz(90), float("nan")]
    # ±50 cents around every semitone covers every f0: in range and estimated is pitched (60.6 is near 61)
    acc = pitched_accuracy(f0s, midi_low=48, midi_high=72)
    assert acc["accuracy"] == pytest.approx(3 / 5) and acc["no_estimate"] == pytest.approx(1 / 5)
    assert acc["out_of_range"] == pytest.approx(1 / 5) and acc["n"] == 5
    # a tighter tolerance also judges tuning: 40 cents off is no longer a note
    assert pitched_accuracy(f0s, midi_low=48, midi_high=72, cents=25.0)["accuracy"] == pytest.approx(2 / 5)


@pytest.mark.parametrize("judge", ["acf", "crepe"])
def test_real_harmonic_tones_score_one_and_white_noise_about_zero(judge):
    tones = [(harmonic_tone(m), SR) for m in (48, 55, 60, 67, 72)]
    results = judge_unconditional([(noise(s), SR) for s in range(5)], tones, midi_low=48, midi_high=72,
                                  pitch_judges=(judge,), embedder=None)
    assert results["real"][f"pitched_acc_{judge}"] == 1.0
    assert results["generated"][f"pitched_acc_{judge}"] <= 0.2  # the generated set here is noise
    assert results["noise"][f"pitched_acc_{judge}"] <= 0.2      # the noise anchor, RMS-matched to the tones
    assert "kid" not in results["real"]


def test_detuned_and_out_of_range_notes_are_not_pitched():
    detuned = [(harmonic_tone(60, cents=50.0), SR)]  # a quarter tone off: between C4 and C#4
    low = [(harmonic_tone(40), SR)]                  # E2, below the range
    for clips, cents in ((detuned, 25.0), (low, 50.0)):
        results = judge_unconditional(clips, clips, midi_low=48, midi_high=72, pitch_judges=("acf",), cents=cents,
                                      embedder=None)
        assert results["generated"]["pitched_acc_acf"] == 0.0


def test_kid_anchors_put_real_closer_than_noise_and_metrics_are_flat_and_finite():
    reference = [(harmonic_tone(m), SR) for m in range(48, 60)]
    real = [(harmonic_tone(m + 0.1), SR) for m in range(60, 72)]
    results = judge_unconditional([(noise(s), SR) for s in range(6)], real, midi_low=48, midi_high=72,
                                  pitch_judges=("acf",), reference=reference, embedder="mel_stats",
                                  kid_subsets=10, kid_subset_size=6)
    assert results["real"]["kid"] < results["noise"]["kid"]
    flat = flat_metrics(results)
    assert {"generated.pitched_acc_acf", "real.kid", "noise.kid", "generated.n"} <= set(flat)
    assert all(math.isfinite(v) for v in flat.values())
    table = unconditional_report_table(results)
    assert table.splitlines()[0].startswith("| set | n | pitched_acc_acf |") and "| noise | 12 |" in table
