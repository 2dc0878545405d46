"""The collapse detector on known cases: real notes against themselves depend on their input; one average
note for every input, or noise, does not."""

from __future__ import annotations

import numpy as np
import pytest

from stable_audio_ops.evaluation.input_dependence import (
    collapse_reason,
    collapse_threshold,
    mean_log_spectrum,
    reconstruction_input_dependence,
)

SR = 16000


def _audio(clips):
    return [np.asarray(audio, dtype=np.float32) for audio, _, _ in clips]


def test_real_clips_against_themselves_are_input_dependent(demo_clips):
    real = _audio(demo_clips)
    found = reconstruction_input_dependence(real, real, SR)
    assert found["n"] == 32 and found["match_accuracy"] == 1.0 and found["collapsed"] is False
    assert found["mean_pair_correlation"] == pytest.approx(found["reference_pair_correlation"])
    assert collapse_reason(found) is None


def test_a_slightly_noisy_reconstruction_finds_its_own_note(demo_clips):
    """A noise floor 60 dB down hides which loudness a note was played at, not which note it is."""
    real = _audio(demo_clips)
    notes = [(meta["instrument"], meta["midi"]) for _, _, meta in demo_clips]
    rng = np.random.default_rng(0)
    noisy = [x + 0.001 * rng.standard_normal(len(x)).astype(np.float32) for x in real]
    found = reconstruction_input_dependence(noisy, real, SR, groups=notes)
    assert found["groups"] == 16 and found["match_accuracy"] >= 0.9 and not found["collapsed"]
    assert found["clip_match_accuracy"] < found["match_accuracy"]  # the soft take looks like the loud one
    strict = reconstruction_input_dependence(noisy, real, SR)
    assert strict["match_accuracy"] == found["clip_match_accuracy"] and not strict["collapsed"]


def test_one_average_clip_for_every_input_is_collapsed(demo_clips):
    real = _audio(demo_clips)
    average = np.mean(np.stack(real), axis=0)
    found = reconstruction_input_dependence([average] * len(real), real, SR)
    assert found["match_accuracy"] == pytest.approx(1 / len(real))  # the one input it resembles most
    assert found["mean_pair_correlation"] == pytest.approx(1.0) and found["collapsed"] is True
    assert collapse_reason(found) == "autoencoder output does not depend on its input (match_accuracy 0.03)"
    notes = [(meta["instrument"], meta["midi"]) for _, _, meta in demo_clips]
    grouped = reconstruction_input_dependence([average] * len(real), real, SR, groups=notes)
    assert grouped["match_accuracy"] == pytest.approx(2 / len(real)) and grouped["collapsed"] is True


def test_noise_does_not_depend_on_the_input(demo_clips):
    real = _audio(demo_clips)
    rng = np.random.default_rng(1)
    noise = [0.1 * rng.standard_normal(len(x)).astype(np.float32) for x in real]
    found = reconstruction_input_dependence(noise, real, SR)
    assert found["match_accuracy"] <= collapse_threshold(len(real)) and found["collapsed"] is True


def test_collapse_reason_names_the_signal_that_fired():
    """Matches above chance but outputs alike beyond 0.98 (and beyond the inputs): the pair correlation is named."""
    alike = {"n": 10, "collapsed": True, "match_accuracy": 0.6, "mean_pair_correlation": 0.991,
             "reference_pair_correlation": 0.4}
    assert collapse_reason(alike) == ("autoencoder outputs are near-identical across inputs (pair correlation "
                                      "0.991, inputs 0.400)")
    chance = {**alike, "match_accuracy": 0.1}
    assert collapse_reason(chance) == "autoencoder output does not depend on its input (match_accuracy 0.10)"
    grouped = {**alike, "match_accuracy": 0.6, "match_groups": 2.0}  # threshold 2/2: at chance, not alike
    assert "does not depend" in collapse_reason(grouped)
    assert collapse_reason({**alike, "collapsed": False}) is None


def test_inputs_are_checked():
    x = np.zeros(SR, dtype=np.float32)
    with pytest.raises(ValueError, match="at least 2"):
        reconstruction_input_dependence([x], [x], SR)
    with pytest.raises(ValueError, match="2 reconstructions but 1"):
        reconstruction_input_dependence([x, x], [x], SR)
    with pytest.raises(ValueError, match="1 groups for 2 clips"):
        reconstruction_input_dependence([x, x], [x, x], SR, groups=["a"])
    assert mean_log_spectrum(np.ones(100)).shape == (513,)  # short clips are padded to one frame
    assert collapse_threshold(4) == 0.5 and collapse_threshold(100) == 0.2
