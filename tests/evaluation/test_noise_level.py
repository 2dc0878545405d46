"""The report's noise-level sentence: a model no better than white noise on a judge is called that, plainly."""

from __future__ import annotations

import math

from stable_audio_ops.evaluation.noise_level import at_noise_level, noise_level_line

NOISE = {"pitch_acc_crepe": 0.05, "inst_acc": 0.25, "kid": 0.8, "fd": 40.0}


def test_accuracies_at_or_below_noise_and_distances_at_or_above_it_are_noise_level():
    model = {"pitch_acc_crepe": 0.05, "inst_acc": 0.6, "kid": 0.9, "fd": 10.0}
    assert at_noise_level(model, NOISE) == {"pitch_acc_crepe": (0.05, 0.05), "kid": (0.9, 0.8)}


def test_judges_missing_or_not_finite_on_either_side_do_not_count():
    model = {"pitch_acc_crepe": math.nan, "inst_acc": 0.1, "dyn_acc": 0.0, "collapsed": True}
    assert at_noise_level(model, NOISE) == {"inst_acc": (0.1, 0.25)}


def test_the_sentence_names_the_judges_and_both_values():
    line = noise_level_line("the generator", {"pitch_acc_crepe": 0.9, "inst_acc": 0.2, "kid": 0.1, "fd": 5.0}, NOISE)
    assert line == "- **the generator is at noise level** on 1 of 4 judges: inst_acc 0.2 vs noise 0.25."
    everything = noise_level_line("the generator", {"pitch_acc_crepe": 0.0, "inst_acc": 0.2}, NOISE)
    assert "at noise level** on every judge" in everything


def test_a_model_above_noise_everywhere_and_a_missing_reference_are_said_too():
    good = noise_level_line("the autoencoder", {"pitch_acc_crepe": 0.9, "kid": 0.01}, NOISE)
    assert good == "- the autoencoder: better than the noise reference on every judge (pitch_acc_crepe, kid)."
    assert "noise level is unknown" in noise_level_line("the autoencoder", {"kid": 0.1}, None)
    assert "no judge scored both" in noise_level_line("the autoencoder", {"mrstft": 1.0}, NOISE)
