"""judge_generation on real demo notes and calibration sets: real scores high, noise scores ~0 on pitch
and far on KID, a sine has the right pitch but the wrong timbre."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stable_audio_ops.evaluation.judge import (
    calibration_sets,
    format_report,
    judge_generation,
    judge_sets,
    prepare_reference,
    split_reference,
)


@pytest.fixture(scope="module")
def calibration(demo_clips):
    reference, heldout = split_reference(demo_clips, holdout_fraction=0.4, seed=0)
    prepared = prepare_reference(reference, embedder="mel_stats")
    sets = calibration_sets(heldout, kinds=("real", "sine", "noise"), seed=0)
    results = judge_sets(sets, prepared, crepe_hop_ms=50.0, kid_subsets=20)
    return reference, heldout, results


def test_split_is_stratified_and_disjoint(demo_clips):
    reference, heldout = split_reference(demo_clips, holdout_fraction=0.4, seed=0)
    assert len(reference) + len(heldout) == len(demo_clips)
    ids_ref = {m["id"] for _, _, m in reference}
    ids_held = {m["id"] for _, _, m in heldout}
    assert not ids_ref & ids_held
    for instrument in {m["instrument"] for _, _, m in demo_clips}:
        assert any(m["instrument"] == instrument for _, _, m in heldout)
        assert any(m["instrument"] == instrument for _, _, m in reference)


def test_real_held_out_notes_are_the_ceiling(calibration):
    _, heldout, results = calibration
    real = results["real"]
    assert real["n"] == len(heldout)
    assert real["pitch_acc_crepe"] >= 0.9
    assert real["pitch_acc_acf"] >= 0.9
    assert real["inst_acc"] >= 0.9
    assert real["dyn_acc"] >= 0.8
    assert real["pitch_x_inst"] >= 0.8


def test_white_noise_is_the_floor(calibration):
    results = calibration[2]
    noise, real = results["noise"], results["real"]
    assert noise["pitch_acc_crepe"] == 0.0 and noise["pitch_acc_acf"] == 0.0
    assert noise["pitch_x_inst"] == 0.0
    assert noise["kid"] > 10 * max(real["kid"], 0.05)
    assert noise["fd"] > 5 * real["fd"]


def test_a_pure_sine_fools_pitch_but_not_kid(calibration):
    results = calibration[2]
    sine, real = results["sine"], results["real"]
    assert sine["pitch_acc_crepe"] >= 0.9 and sine["pitch_acc_acf"] >= 0.9
    assert sine["kid"] > 10 * max(real["kid"], 0.05)


def test_right_timbre_wrong_pitch_is_caught_by_pitch_and_wrong_instrument_by_the_probe(calibration):
    reference, heldout, _ = calibration
    prepared = prepare_reference(reference, embedder="mel_stats")
    shifted = [(a, sr, {**m, "midi": m["midi"] + 3}) for a, sr, m in heldout]  # ask a minor third higher
    result = judge_generation(shifted, prepared, pitch_judges=("acf",), kid_subsets=5)
    assert result["pitch_acc_acf"] == 0.0
    assert result["inst_acc"] >= 0.9  # timbre is still right
    instruments = sorted({m["instrument"] for _, _, m in heldout})
    swapped = [(a, sr, {**m, "instrument": instruments[1 - instruments.index(m["instrument"])]})
               for a, sr, m in heldout]
    result = judge_generation(swapped, prepared, pitch_judges=("acf",), kid_subsets=5)
    assert result["pitch_acc_acf"] >= 0.9
    assert result["inst_acc"] <= 0.1
    assert result["pitch_x_inst"] <= 0.1


def test_report_has_every_metric_and_costs(calibration):
    results = calibration[2]
    for row in results.values():
        for key in ("pitch_acc_crepe", "pitch_acc_acf", "kid", "kid_std", "fd", "inst_acc", "dyn_acc",
                    "pitch_x_inst", "ms_per_clip_crepe", "ms_per_clip_acf", "ms_per_clip_embed"):
            assert key in row and isinstance(row[key], float), key
        assert math.isfinite(row["kid"]) and row["ms_per_clip_crepe"] > 0
    table = format_report(results)
    assert table.splitlines()[0].startswith("| set | n | pitch_acc_crepe")
    assert sum(line.startswith("| real |") for line in table.splitlines()) == 1


def test_targets_need_midi_instrument_and_dynamic(demo_clips):
    prepared = prepare_reference(demo_clips[:8], embedder="mel_stats")
    audio, sr, _ = demo_clips[0]
    with pytest.raises(ValueError, match="missing"):
        judge_generation([(audio, sr, {"midi": 60})], prepared)
    with pytest.raises(ValueError, match="known: crepe, acf"):
        judge_generation([(audio, sr, {"midi": 60, "instrument": "flute", "dynamic": "soft"})], prepared,
                         pitch_judges=("yin",))
    with pytest.raises(ValueError, match="unknown calibration"):
        calibration_sets(demo_clips[:2], kinds=("real", "pink"))


def test_calibration_sets_keep_targets_and_level(demo_clips):
    sets = calibration_sets(demo_clips[:4], kinds=("real", "sine", "noise", "silence"))
    for kind, clips in sets.items():
        for (audio, sr, target), (real_audio, real_sr, meta) in zip(clips, demo_clips[:4], strict=True):
            assert sr == real_sr and audio.shape == real_audio.shape
            # the caption's parts, and the caption itself (what the CLAP score compares the audio with)
            assert target == {"midi": meta["midi"], "instrument": meta["instrument"], "dynamic": meta["dynamic"],
                              "prompt": meta["prompt"], "caption": meta["caption"]}
            rms, real_rms = np.sqrt(np.mean(audio**2)), np.sqrt(np.mean(real_audio**2))
            if kind == "silence":
                assert rms == 0.0
            else:
                assert rms == pytest.approx(real_rms, rel=0.05), kind
