"""The evaluation pipeline (Kedro's SequentialRunner over a DataCatalog) and its nodes on tiny models and a
small rendered demo set, split by data_preparation's rule.

Known inputs: the real held-out clips (ceiling) must be pitched right and the RMS-matched noise (floor)
must not; the evaluation must judge test clips only; the registration must record the autoencoder
version the diffusion model was trained on; with no floors the first evaluation promotes (no champion
yet) and says so; with floors a random tiny model is registered but not promoted, and the decision and
the report name each failed floor; re-running registers nothing new.
"""

from __future__ import annotations

import json
import math

import pytest

from pipelines.evaluation import nodes
from pipelines.evaluation.pipeline import create_pipeline
from stable_audio_ops.data.preparation.demo_notes import render_demo_notes
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.preparation.split import TEST, materialize_split, plan_split, split_dataset_config
from tests.pipelines.conftest import run_pipeline
from tests.tracking.tiny_models import use_sqlite_store, write_tiny_models

PARAMS = {
    "split": {"holdout_fraction": 0.4, "seed": 0, "max_reference_clips": 40},
    "registry": {"autoencoder_name": "t-ae", "latent_diffusion_name": "t-ld"},
    "autoencoder": {"max_clips": 6, "batch_size": 3},
    "generation": {"num_captions": 6, "steps": 2, "cfg_scale": 1.0, "sampler": None, "batch_size": 4, "seed": 7,
                   "device": "cpu"},
    "judges": {"embedder": "mel_stats", "pitch_judges": ["acf"], "crepe_model": "tiny", "calibration": ["real", "noise"],
               "kid_subsets": 10, "kid_subset_size": 50},
    "clap_model": None,
    "plots": {"spectrogram_examples": 3},
    "promotion": {"floors": {}, "autoencoder": [{"metric": "mrstft", "mode": "min"}],
                  "latent_diffusion": [{"metric": "pitch_x_inst", "mode": "max", "min_delta": 0.02},
                                       {"metric": "kid", "mode": "min"}]},
}
FLOORS = {"autoencoder": {"pitch_acc_acf": 0.9, "kid": {"max": 1e-9}},
          "latent_diffusion": {"pitch_acc_acf": 0.5}}


@pytest.fixture(scope="module")
def split_data(tmp_path_factory):
    """2 instruments x C4..G4 x 2 velocities, split by the demo rule with every pitch holding out one velocity."""
    root = tmp_path_factory.mktemp("demo")
    notes = root / "notes"
    render_demo_notes(notes, instruments=["flute", "church organ"], midi_low=60, midi_high=67, velocities=(40, 120),
                      progress=False)
    plan = plan_split(build_manifest(notes / "audio", progress=False), [notes / "audio"], every_nth_pitch=1)
    manifest = materialize_split(plan, root / "splits")
    return manifest, split_dataset_config(manifest, TEST)


def _evaluate(tmp_path, split_data, params):
    """The evaluation pipeline run by Kedro's SequentialRunner over a DataCatalog, inside one MLflow run, as
    `kedro run --pipelines=evaluation` does; returns its outputs under short names."""
    import mlflow

    manifest, test_config = split_data
    ae_path, ld_path = write_tiny_models(tmp_path / "models")
    ae_info, ld_info = {"path": str(ae_path)}, {"path": str(ld_path)}
    inputs = {"autoencoder_model": ae_info, "latent_diffusion_model": ld_info, "test_dataset_config": test_config,
              "dataset_split": manifest, "params:evaluation": params, "params:evaluation.registry": params["registry"]}
    with mlflow.start_run():
        out = run_pipeline(create_pipeline(), inputs)
    return {"manifest": manifest, "ae_reg": out["autoencoder_registration"],
            "ld_reg": out["latent_diffusion_registration"], "clips": out["evaluation_clips"],
            "ae_metrics": out["autoencoder_evaluation"], "ae_examples": out["reconstruction_examples"],
            "results": out["generation_evaluation"], "examples": out["generation_examples"],
            "promotion": out["promotion_decision"], "metrics": out["evaluation_metrics"],
            "flat": out["evaluation_mlflow_metrics"], "report": out["evaluation_report"],
            "figures": [out[name] for name in ("plot_spectrograms", "plot_metric_bars", "plot_loss_curves",
                                               "plot_comparison")]}


def test_evaluation_nodes_register_judge_promote_and_report(tmp_path, monkeypatch, split_data):
    import mlflow

    use_sqlite_store(tmp_path, monkeypatch)
    run = _evaluate(tmp_path, split_data, PARAMS)
    ae_reg, ld_reg, clips, manifest = run["ae_reg"], run["ld_reg"], run["clips"], run["manifest"]
    ae_metrics, results, promotion = run["ae_metrics"], run["results"], run["promotion"]

    assert ae_reg["version"] == "1" and ae_reg["aliases"] == ["challenger"]
    assert ld_reg["autoencoder_version"] == "1" and ld_reg["autoencoder_lineage"].startswith("verified")
    # only test clips are judged: 16 of 32 (every pitch holds out one velocity), 40 % of them per instrument held out
    judged = {meta["id"] for part in clips.values() for _, _, meta in part}
    test_ids = {path.rsplit("/", 1)[-1][:-4] for path, split in manifest["files"].items() if split == TEST}
    assert judged == test_ids and len(test_ids) == manifest["counts"]["test"] == 16
    assert len(clips["heldout"]) == 6 and len(clips["reference"]) == 10

    # autoencoder judges: distances, input dependence and the generation judges on the 6 reconstructions
    assert ae_metrics["n_clips"] == 6
    assert all(math.isfinite(ae_metrics[k]) for k in ("mrstft", "mel_distance_db", "si_sdr_db", "match_accuracy",
                                                      "pitch_acc_acf", "inst_acc", "kid"))
    assert ae_metrics["collapsed"] in (0.0, 1.0) and 0.0 <= ae_metrics["match_accuracy"] <= 1.0
    # generation judges beside the calibration sets: the real ceiling is pitched, the noise floor is not
    assert set(results) == {"model", "real", "noise"}
    assert results["real"]["pitch_acc_acf"] == 1.0
    assert results["noise"]["pitch_acc_acf"] == 0.0
    assert results["real"]["kid"] < results["noise"]["kid"]
    assert results["model"]["n"] == 6

    # no floors configured: the diffusion model is promoted (no champion yet) with the reason written down;
    # the autoencoder too unless its random weights give an input-independent output, which must then be said
    assert promotion["latent_diffusion"]["promoted"] is (not ae_metrics["collapsed"])
    ae_decision = promotion["autoencoder"]
    if ae_metrics["collapsed"]:
        assert not ae_decision["promoted"] and "does not depend on its input" in ae_decision["reason"]
    else:
        assert ae_decision["promoted"] and ae_decision["reason"] == "no champion yet"
        assert promotion["latent_diffusion"]["champion"] == ld_reg["version"]
        client = mlflow.tracking.MlflowClient()
        champion = client.get_model_version_by_alias("t-ld", "champion")
        assert champion.tags["promotion_reason"] == "no champion yet"
        assert champion.tags["autoencoder_version"] == "1" and "git_commit" in champion.tags
        assert float(champion.tags["eval.pitch_x_inst"]) == pytest.approx(results["model"]["pitch_x_inst"],
                                                                          nan_ok=True)

    # metrics.json content is JSON-clean (no NaN) and mirrors the judges; the MLflow copy is flat
    metrics, flat, report = run["metrics"], run["flat"], run["report"]
    text = json.dumps(metrics, allow_nan=False)
    assert json.loads(text)["generation"]["real"]["pitch_acc_acf"] == 1.0
    assert flat["autoencoder.mrstft"]["value"] == pytest.approx(ae_metrics["mrstft"])
    assert flat["split.test"]["value"] == 16
    assert "16 clips held out" in report and "never saw" in report and "j % 1 == 0" in report
    assert "verified" in report
    for figure, name in zip(run["figures"], ("spec", "bars", "loss", "comparison"), strict=True):
        figure.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    # the comparison shows the same captions in all three columns
    ae_ids = [e["id"] for e in run["ae_examples"]]
    assert ae_ids == [e["id"] for e in run["examples"]] and len(ae_ids) == 3
    assert all(e["reconstruction"].shape == e["real"].shape for e in run["ae_examples"])

    # re-running the registration with unchanged weights adds no version and keeps the aliases
    client = mlflow.tracking.MlflowClient()
    with mlflow.start_run():
        again = nodes.register_autoencoder({"path": str(tmp_path / "models" / "autoencoder.safetensors")},
                                           PARAMS["registry"])
    assert again["version"] == "1" and again["new"] is False
    assert len(client.search_model_versions("name='t-ae'")) == 1


def test_versions_below_their_floors_are_registered_but_not_promoted(tmp_path, monkeypatch, split_data):
    """A random tiny autoencoder cannot reach pitch accuracy 0.9 nor a zero KID: no champion, reasons named."""
    import mlflow

    use_sqlite_store(tmp_path, monkeypatch)
    params = {**PARAMS, "promotion": {**PARAMS["promotion"], "floors": FLOORS}}
    run = _evaluate(tmp_path, split_data, params)
    ae, ld = run["promotion"]["autoencoder"], run["promotion"]["latent_diffusion"]

    assert not ae["promoted"] and not ld["promoted"]
    assert ae["reason"].startswith("not promoted: ")
    kid = run["ae_metrics"]["kid"]
    assert f"kid {kid:.2f} > ceiling" in ae["reason"] or f"kid {kid:.3g} > ceiling" in ae["reason"]
    assert any(b.startswith("pitch_acc_acf ") and "< floor 0.90" in b for b in ae["blockers"])
    # the diffusion model was trained on that autoencoder: blocked by it, whatever its own numbers
    assert any("trained on autoencoder v1, which is not promotable" in b for b in ld["blockers"])
    assert ae["floors"] == {"pitch_acc_acf": {"min": 0.9, "max": None}, "kid": {"min": None, "max": 1e-9}}

    client = mlflow.tracking.MlflowClient()
    for name in ("t-ae", "t-ld"):
        assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
        with pytest.raises(mlflow.exceptions.MlflowException):
            client.get_model_version_by_alias(name, "champion")
        assert client.get_model_version(name, "1").tags["promotion_decision"] == "not promoted"
    assert run["metrics"]["promoted"] == {"autoencoder": 0, "latent_diffusion": 0}
    assert ae["reason"] in run["report"] and ld["reason"] in run["report"]


def test_decide_promotions_promotes_a_first_version_above_its_floors_and_never_a_collapsed_autoencoder(
        tmp_path, monkeypatch):
    """The promotion node on known metrics: above the floors -> promoted (no champion yet); the same numbers
    with an input-independent autoencoder -> neither model promoted, and the decision says why."""
    import mlflow

    use_sqlite_store(tmp_path, monkeypatch)
    ae_path, ld_path = write_tiny_models(tmp_path / "models")
    params = {**PARAMS, "promotion": {**PARAMS["promotion"], "floors": {
        "autoencoder": {"pitch_acc_crepe": 0.9, "inst_acc": 0.8, "match_accuracy": 0.5},
        "latent_diffusion": {"pitch_acc_crepe": 0.5, "inst_acc": 0.5, "kid": {"max": 0.5}}}}}
    good_ae = {"mrstft": 1.0, "si_sdr_db": 5.0, "pitch_acc_crepe": 0.95, "inst_acc": 0.9, "match_accuracy": 0.9,
               "mean_pair_correlation": 0.5, "reference_pair_correlation": 0.5, "collapsed": 0.0, "n_clips": 24}
    good_ld = {"model": {"pitch_acc_crepe": 0.6, "inst_acc": 0.7, "kid": 0.1, "pitch_x_inst": 0.42}}
    with mlflow.start_run():
        ae_reg = nodes.register_autoencoder({"path": str(ae_path)}, params["registry"])
        ld_reg = nodes.register_latent_diffusion({"path": str(ld_path)}, ae_reg, params["registry"])
        collapsed = {**good_ae, "match_accuracy": 0.04, "collapsed": 1.0}
        blocked = nodes.decide_promotions(ae_reg, ld_reg, collapsed, good_ld, params)
        passed = nodes.decide_promotions(ae_reg, ld_reg, good_ae, good_ld, params)

    assert not blocked["autoencoder"]["promoted"] and not blocked["latent_diffusion"]["promoted"]
    assert blocked["autoencoder"]["reason"] == ("not promoted: match_accuracy 0.04 < floor 0.50; autoencoder output "
                                                "does not depend on its input (match_accuracy 0.04)")
    assert blocked["autoencoder"]["champion"] is None
    assert blocked["latent_diffusion"]["reason"].startswith("not promoted: trained on autoencoder v1, which is not "
                                                            "promotable (match_accuracy 0.04 < floor 0.50")
    assert passed["autoencoder"]["promoted"] and passed["autoencoder"]["reason"] == "no champion yet"
    assert passed["latent_diffusion"]["promoted"] and passed["latent_diffusion"]["blockers"] == []
    client = mlflow.tracking.MlflowClient()
    assert str(client.get_model_version_by_alias("t-ae", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("t-ld", "champion").version) == "1"
