"""The evaluation report opens with the noise-level verdict and embeds its figures."""

from __future__ import annotations

from stable_audio_ops.evaluation.report import build_metrics

DECISION = {"promoted": False, "reason": "not promoted: below its floors", "model": "m", "version": "2",
            "champion": None}
SPLIT = {"counts": {"train": 10, "test": 4}, "rule": "every second pitch"}
NOISE = {"n": 4.0, "pitch_acc_crepe": 0.0, "inst_acc": 0.25, "kid": 0.5}


def _report(autoencoder: dict, model: dict, figures=()) -> str:
    _, _, report = build_metrics(autoencoder, {"model": model, "real": {"n": 4.0, "inst_acc": 1.0}, "noise": NOISE},
                                 {"autoencoder": DECISION, "latent_diffusion": DECISION}, SPLIT, figures=figures)
    return report


def test_a_generator_no_better_than_noise_is_called_that_before_any_table():
    report = _report({"mrstft": 1.0, "pitch_acc_crepe": 0.9, "inst_acc": 0.8, "kid": 0.01},
                     {"n": 4.0, "pitch_acc_crepe": 0.0, "inst_acc": 0.25, "kid": 0.6})
    verdict = report.split("## Noise level", 1)[1].split("## Data", 1)[0]
    assert "- the autoencoder (its reconstructions): better than the noise reference on every judge" in verdict
    assert "**the generator (notes for held-out captions) is at noise level** on every judge" in verdict
    assert "kid 0.6 vs noise 0.5" in verdict
    assert report.index("## Noise level") < report.index("| set |")


def test_figures_are_embedded_as_relative_image_links_under_their_captions():
    figures = [("Training losses", "plots/loss_curves.png"), ("Generated vs real notes", "plots/spectrograms.png")]
    report = _report({"mrstft": 1.0}, {"n": 4.0, "inst_acc": 0.9}, figures)
    assert "### Training losses\n\n![Training losses](plots/loss_curves.png)" in report
    assert "![Generated vs real notes](plots/spectrograms.png)" in report
    assert "## Figures" not in _report({"mrstft": 1.0}, {"n": 4.0})
