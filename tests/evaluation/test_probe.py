"""Caption probe: fitted on real clips it recovers their instrument and dynamic on held-out real clips."""

from __future__ import annotations

import numpy as np
import pytest

from stable_audio_ops.evaluation.embeddings import mel_stats_embedding
from stable_audio_ops.evaluation.judge import split_reference
from stable_audio_ops.evaluation.probe import fit_caption_probe, probe_accuracy


def test_probe_on_separable_clusters_is_exact_and_unseen_labels_count_as_wrong():
    rng = np.random.default_rng(0)
    centres = {"piano": np.full(8, 3.0), "flute": np.full(8, -3.0)}
    x = np.concatenate([rng.standard_normal((20, 8)) + centres[k] for k in centres])
    y = ["piano"] * 20 + ["flute"] * 20
    probe = fit_caption_probe(x, y)
    assert probe.classes == ("flute", "piano")
    test = np.concatenate([rng.standard_normal((5, 8)) + centres[k] for k in centres])
    assert probe_accuracy(probe, test, ["piano"] * 5 + ["flute"] * 5) == 1.0
    assert probe_accuracy(probe, test, ["violin"] * 10) == 0.0


def test_probe_needs_two_labels_and_matching_lengths():
    with pytest.raises(ValueError, match="2 distinct"):
        fit_caption_probe(np.zeros((4, 3)), ["a"] * 4)
    with pytest.raises(ValueError, match="labels"):
        fit_caption_probe(np.zeros((4, 3)), ["a", "b"])


def test_probe_trained_on_real_notes_recovers_instrument_and_dynamic_of_held_out_notes(demo_clips):
    reference, heldout = split_reference(demo_clips, holdout_fraction=0.4, seed=0)
    emb_ref = mel_stats_embedding([(a, sr) for a, sr, _ in reference])
    emb_held = mel_stats_embedding([(a, sr) for a, sr, _ in heldout])
    for key in ("instrument", "dynamic"):
        probe = fit_caption_probe(emb_ref, [m[key] for _, _, m in reference])
        assert probe_accuracy(probe, emb_held, [m[key] for _, _, m in heldout]) >= 0.9, key
        # asking for the other label of every clip must score ~0: the probe follows the audio
        other = {label: next(c for c in probe.classes if c != label) for label in probe.classes}
        assert probe_accuracy(probe, emb_held, [other[m[key]] for _, _, m in heldout]) <= 0.1, key
