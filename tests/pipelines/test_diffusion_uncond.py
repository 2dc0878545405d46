"""The diffusion_uncond pipeline: registered (not in the default run), its nodes chained in order over declared
datasets, the shipped demo config building over the demo autoencoder, and a run by Kedro's SequentialRunner of
pre-encode -> train -> unwrap -> evaluate -> register on a tiny autoencoder and a tiny unconditional DiT (a few
steps): generated clips judged beside real clips and noise, finite metrics, and a registered model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import soundfile as sf
import yaml

from pipelines.datasets import FolderDataset, TrainingRunDataset, UnwrappedModelDataset
from pipelines.pipeline_registry import DEFAULT_ORDER, register_pipelines
from stable_audio_ops.config.latent_diffusion import latent_diffusion_config
from stable_audio_ops.models.checkpoints import read_embedded_model_config
from stable_audio_ops.models.factory import create_model_from_config
from tests.pipelines.conftest import REPO, run_pipeline
from tests.pipelines.test_lm import prepared_notes
from tests.tracking.tiny_models import use_sqlite_store, write_tiny_models

CONF = REPO / "conf" / "base"
TINY_UNCOND = {"model_type": "diffusion_uncond", "sample_size": 1024, "sample_rate": 16000, "audio_channels": 1,
               "model": {"type": "dit", "config": {"in_channels": 4, "patch_size": 1, "embed_dim": 64, "depth": 1,
                                                   "num_heads": 1}},
               "training": {"use_ema": True, "learning_rate": 1e-3}}


def test_diffusion_uncond_pipeline_is_registered_and_chains_latents_training_judges_registry() -> None:
    pipeline = register_pipelines()["diffusion_uncond"]
    assert "diffusion_uncond" not in DEFAULT_ORDER  # its own DVC stage and make target, not make demo's chain
    order = [n.name for n in pipeline.nodes]
    for before, after in [("pre_encode_diffusion_uncond_latents", "summarize_diffusion_uncond_latents"),
                          ("summarize_diffusion_uncond_latents", "build_diffusion_uncond_config"),
                          ("diffusion_uncond_latent_dataset_config", "train_diffusion_uncond"),
                          ("build_diffusion_uncond_config", "train_diffusion_uncond"),
                          ("train_diffusion_uncond", "unwrap_diffusion_uncond"),
                          ("unwrap_diffusion_uncond", "evaluate_diffusion_uncond"),
                          ("evaluate_diffusion_uncond", "register_diffusion_uncond")]:
        assert order.index(before) < order.index(after), (before, after)
    # it reads the autoencoder pipeline's model and data_preparation's splits, nothing else
    assert pipeline.inputs() == {"autoencoder_model", "diffusion_uncond_base_model_config", "prepared_dataset_config",
                                 "test_dataset_config", "params:diffusion_uncond"}
    catalog = {**yaml.safe_load((CONF / "catalog_diffusion_uncond.yml").read_text()),
               **yaml.safe_load((CONF / "catalog.yml").read_text())}
    assert {n for n in pipeline.datasets() if not n.startswith("params:")} <= set(catalog)
    assert catalog["diffusion_uncond_report"]["dataset"]["filepath"] == "data/08_reporting/diffusion_uncond_report.md"

    # the shipped config over the shipped autoencoder config builds: latent channels and the clip length follow it
    params = yaml.safe_load((CONF / "parameters_diffusion_uncond.yml").read_text())["diffusion_uncond"]
    ae_config = json.loads((CONF / "model_configs" / "autoencoder_demo.json").read_text())
    config = latent_diffusion_config(json.loads((CONF / "model_configs" / "diffusion_uncond_demo.json").read_text()),
                                     ae_config, sample_size=params["pre_encode"]["sample_size"], latent_scale=1.5)
    model = create_model_from_config(config)
    assert config["model_type"] == "diffusion_uncond" and "conditioning" not in config["model"]
    assert model.io_channels == ae_config["model"]["latent_dim"] and model.pretransform.scale == 1.5


def tiny_params() -> dict:
    params = yaml.safe_load((CONF / "parameters_diffusion_uncond.yml").read_text())["diffusion_uncond"]
    params["pre_encode"].update(sample_size=1024, batch_size=4)
    params["train"].update(max_steps=4, batch_size=2, checkpoint_every=4)
    params["evaluation"]["generation"].update(num_clips=3, batch_size=2, steps=3, sample_size=1024)
    params["evaluation"].update(pitch_judges=["acf"], embedder="mel_stats", kid_subsets=5, kid_subset_size=10)
    params["registry"].update(autoencoder_name="t-uncond-ae", name="t-uncond")
    return params


def test_diffusion_uncond_pipeline_trains_judges_and_registers_on_demo_notes(tmp_path: Path, monkeypatch) -> None:
    use_sqlite_store(tmp_path, monkeypatch)
    # 2 test clips of each instrument (a KID reference and a held-out one); the autoencoder pipeline's output stands
    # in as a tiny untrained autoencoder saved the way it unwraps (config embedded)
    train_config, test_config = prepared_notes(tmp_path)
    ae_path, _ = write_tiny_models(tmp_path / "models")
    out_dir = tmp_path / "out"
    out = run_pipeline(register_pipelines()["diffusion_uncond"], {
        "autoencoder_model": {"path": str(ae_path)}, "diffusion_uncond_base_model_config": TINY_UNCOND,
        "prepared_dataset_config": train_config, "test_dataset_config": test_config,
        "params:diffusion_uncond": tiny_params()}, datasets={
        "diffusion_uncond_latents": FolderDataset(str(out_dir / "latents")),
        "diffusion_uncond_training_result": TrainingRunDataset(str(out_dir / "training.json"),
                                                               run_dir=str(out_dir / "run")),
        "diffusion_uncond_model": UnwrappedModelDataset(str(out_dir / "model.json"),
                                                        str(out_dir / "diffusion_uncond.safetensors")),
        "diffusion_uncond_generated": FolderDataset(str(out_dir / "generated"))})

    # trained over the autoencoder pipeline's autoencoder, unwrapped with the config that trained
    config = out["diffusion_uncond_model_config"]
    assert config["model"]["pretransform"]["config"] == read_embedded_model_config(ae_path)["model"]
    assert len(list((out_dir / "latents").glob("*/*.npy"))) == len(list(Path(train_config["datasets"][0]["path"])
                                                                        .rglob("*.wav")))
    assert read_embedded_model_config(out_dir / "diffusion_uncond.safetensors") == config

    # the judges: generated, real and noise sets, each with pitched accuracy and KID, all finite
    results = out["diffusion_uncond_evaluation"]["results"]
    assert set(results) == {"generated", "real", "noise"} and results["generated"]["n"] == 3
    for row in results.values():
        assert {"pitched_acc_acf", "kid", "fd"} <= set(row)
        assert 0.0 <= row["pitched_acc_acf"] <= 1.0 and math.isfinite(row["kid"])
    assert results["real"]["pitched_acc_acf"] == 1.0 and results["noise"]["pitched_acc_acf"] == 0.0
    metrics = out["diffusion_uncond_evaluation_metrics"]
    assert {"generated.pitched_acc_acf", "real.pitched_acc_acf", "noise.pitched_acc_acf", "generated.kid"} <= set(metrics)
    assert all(math.isfinite(m["value"]) for m in metrics.values())
    assert out["diffusion_uncond_evaluation"]["midi_range"] == [60, 61]  # the test clips' labels
    report = out["diffusion_uncond_report"]
    assert "| generated | 3 |" in report and "| noise |" in report
    wavs = sorted((out_dir / "generated").glob("*.wav"))
    assert len(wavs) == 3 and sf.info(str(wavs[0])).frames == 1024

    # registered with its autoencoder's version and its scores as tags
    registration = out["diffusion_uncond_registration"]
    model = registration["diffusion_uncond"]
    assert model["model_type"] == "diffusion_uncond" and model["autoencoder_lineage"].startswith("verified")
    assert float(model["eval.pitched_acc_acf"]) == results["generated"]["pitched_acc_acf"]
