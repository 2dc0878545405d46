"""The evaluation pipeline's nodes on tiny models and a small rendered demo set.

Known inputs: the real held-out clips (ceiling) must be pitched right and the RMS-matched noise (floor)
must not; the registration must record the autoencoder version the diffusion model was trained on; the
first evaluation promotes both models (no champion yet) and says so; re-running registers nothing new.
"""

from __future__ import annotations

import json
import math

import pytest

from pipelines.evaluation import nodes
from stable_audio_ops.data.demo_notes import render_demo_notes
from tests.tracking.tiny_models import use_sqlite_store, write_tiny_models

PARAMS = {
    "split": {"holdout_fraction": 0.4, "seed": 0, "max_reference_clips": 40},
    "registry": {"autoencoder_name": "t-ae", "latent_diffusion_name": "t-ld"},
    "autoencoder": {"max_clips": 6, "batch_size": 3},
    "generation": {"num_captions": 6, "steps": 2, "cfg_scale": 1.0, "batch_size": 4, "seed": 7, "device": "cpu"},
    "judges": {"embedder": "mel_stats", "pitch_judges": ["acf"], "calibration": ["real", "noise"],
               "kid_subsets": 10, "kid_subset_size": 50},
    "plots": {"spectrogram_examples": 3},
    "promotion": {"autoencoder": [{"metric": "mrstft", "mode": "min"}],
                  "latent_diffusion": [{"metric": "pitch_x_inst", "mode": "max", "min_delta": 0.02},
                                       {"metric": "kid", "mode": "min"}]},
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "notes"
    render_demo_notes(out, instruments=["flute", "church organ"], midi_low=60, midi_high=64, velocities=(40, 120),
                      progress=False)
    return out


def test_evaluation_nodes_register_judge_promote_and_report(tmp_path, monkeypatch, demo_dir):
    import mlflow

    use_sqlite_store(tmp_path, monkeypatch)
    ae_path, ld_path = write_tiny_models(tmp_path / "models")
    params = {**PARAMS, "demo_dir": str(demo_dir)}
    ae_info, ld_info = {"path": str(ae_path)}, {"path": str(ld_path)}

    with mlflow.start_run():
        ae_reg = nodes.register_autoencoder(ae_info, params["registry"])
        ld_reg = nodes.register_latent_diffusion(ld_info, ae_reg, params["registry"])
        clips = nodes.load_evaluation_clips(params)
        ae_metrics = nodes.evaluate_autoencoder(ae_info, clips, params)
        results, examples = nodes.evaluate_generation(ld_info, clips, params)
        promotion = nodes.decide_promotions(ae_reg, ld_reg, ae_metrics, results, params)
        metrics, flat, report = nodes.build_metrics(ae_metrics, results, promotion)
        figures = nodes.make_plots(examples, results, ae_info, ld_info)

    assert ae_reg["version"] == "1" and ae_reg["aliases"] == ["challenger"]
    assert ld_reg["autoencoder_version"] == "1" and ld_reg["autoencoder_lineage"].startswith("verified")
    assert len(clips["heldout"]) == 8 and len(clips["reference"]) == 12  # 40 % of 2 x 5 notes x 2 velocities

    # autoencoder judges: finite numbers on the 6 held-out clips
    assert ae_metrics["n_clips"] == 6
    assert all(math.isfinite(ae_metrics[k]) for k in ("mrstft", "mel_distance_db", "si_sdr_db"))
    # generation judges beside the calibration sets: the real ceiling is pitched, the noise floor is not
    assert set(results) == {"model", "real", "noise"}
    assert results["real"]["pitch_acc_acf"] == 1.0
    assert results["noise"]["pitch_acc_acf"] == 0.0
    assert results["real"]["kid"] < results["noise"]["kid"]
    assert results["model"]["n"] == 6

    # first evaluation: no champion -> both promoted, with the reason written down and on the version
    assert promotion["autoencoder"]["promoted"] and promotion["autoencoder"]["reason"] == "no champion yet"
    assert promotion["latent_diffusion"]["champion"] == ld_reg["version"]
    client = mlflow.tracking.MlflowClient()
    champion = client.get_model_version_by_alias("t-ld", "champion")
    assert champion.tags["promotion_reason"] == "no champion yet"
    assert champion.tags["autoencoder_version"] == "1" and "git_commit" in champion.tags
    assert float(champion.tags["eval.pitch_x_inst"]) == pytest.approx(results["model"]["pitch_x_inst"], nan_ok=True)

    # metrics.json content is JSON-clean (no NaN) and mirrors the judges; the MLflow copy is flat
    text = json.dumps(metrics, allow_nan=False)
    assert json.loads(text)["generation"]["real"]["pitch_acc_acf"] == 1.0
    assert flat["autoencoder.mrstft"]["value"] == pytest.approx(ae_metrics["mrstft"])
    assert "promoted to champion" in report and "verified" in report
    for figure, name in zip(figures, ("spec", "bars", "loss"), strict=True):
        figure.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000

    # re-running the registration with unchanged weights adds no version and keeps the aliases
    with mlflow.start_run():
        again = nodes.register_autoencoder(ae_info, params["registry"])
    assert again["version"] == "1" and again["new"] is False
    assert len(client.search_model_versions("name='t-ae'")) == 1
