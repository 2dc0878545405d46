"""`kedro run --pipelines=data_preparation,autoencoder,latent_diffusion` on tiny configs, checked through the files
and MLflow: pre-encoded latents, a DiT whose pretransform is the trained autoencoder, strict unwrap, losses, demos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from pipelines.datasets import FolderDataset, TrainingRunDataset, UnwrappedModelDataset
from stable_audio_ops.inference.generation import generate_diffusion_cond
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, read_embedded_model_config
from stable_audio_ops.serving.model_loader import load_model
from tests.pipelines.conftest import run_kedro, tiny_latent_diffusion

pytestmark = pytest.mark.slow  # every test here trains (the unit test reuses the runner's trained autoencoder)


def test_autoencoder_then_latent_diffusion(kedro_project: Path) -> None:
    tiny_latent_diffusion(kedro_project)
    (kedro_project / "data" / "01_raw" / "extra").mkdir(parents=True)  # the fixture's second raw folder
    run_kedro(kedro_project, "--pipelines=data_preparation,autoencoder,latent_diffusion")

    # pre-encoding: one latent per train clip (6 of 8: the test split is never encoded), the autoencoder's shape
    # (tiny AE: 4 channels, ratio 8)
    latents = sorted((kedro_project / "data/04_feature/latents/0").glob("*.npy"))
    assert len(latents) == 6 and np.load(latents[0]).shape == (4, 128)
    summary = json.loads((kedro_project / "data/04_feature/latents_summary.json").read_text())
    assert summary["count"] == 6 and summary["latent_std"] > 0
    md = json.loads(latents[0].with_suffix(".json").read_text())
    assert md["prompt"].startswith(("a flute", "a church organ"))

    # the unwrapped DiT embeds the config that trained it (the trained AE as pretransform) and loads strictly
    info = json.loads((kedro_project / "data/06_models/latent_diffusion_model.json").read_text())
    unwrapped = kedro_project / "data/06_models/latent_diffusion.safetensors"
    assert Path(info["path"]).resolve() == unwrapped.resolve() or (kedro_project / info["path"]) == unwrapped
    config = read_embedded_model_config(unwrapped)
    ae = read_embedded_model_config(kedro_project / "data/06_models/autoencoder.safetensors")
    assert config["model"]["pretransform"]["config"] == ae["model"]
    assert config["model"]["pretransform"]["scale"] == pytest.approx(summary["latent_std"], rel=1e-4)
    loaded = load_model(unwrapped, device="cpu")  # strict
    ae_state = load_ckpt_state_dict(kedro_project / "data/06_models/autoencoder.safetensors")
    key = "decoder.layers.0.weight_v"
    assert torch.equal(loaded.model.state_dict()[f"pretransform.model.{key}"], ae_state[key])
    audio = generate_diffusion_cond(loaded.model, steps=3, cfg_scale=3, conditioning=[
        {"prompt": "a flute playing C4, loud", "seconds_total": 1}], sample_size=1024, seed=0, progress=False)
    assert audio.shape == (1, 1, 1024) and torch.isfinite(audio).all()

    # MLflow: the DiT trained in a nested run with its loss history, demos and the exported model
    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project / 'mlflow' / 'mlflow.db'}")
    child = client.get_run(info["mlflow_run_id"])
    parent_id = child.data.tags["mlflow.parentRunId"]
    assert len(client.get_metric_history(child.info.run_id, "train/loss")) >= 3
    assert {"demos", "latent_diffusion", "configs"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    first_demo = {a.path.split("/")[-1] for a in client.list_artifacts(child.info.run_id, "demos/step_000001")}
    assert {"demo_cfg_1.wav", "demo_cfg_3.wav", "demo_melspec_left_cfg_3.png"} <= first_demo
    parent = client.get_run(parent_id)
    assert "latent_diffusion.final_loss" in parent.data.metrics
    assert "latent_diffusion.first_loss" in parent.data.metrics
    # the autoencoder's loss history stays alone in the parent run (6 steps), the DiT's in the child
    assert len(client.get_metric_history(parent_id, "train/loss")) <= 6
    assert child.info.status == "FINISHED"


def test_latent_diffusion_pipeline_over_a_data_catalog(autoencoder_run, tmp_path: Path) -> None:
    """The pipeline by Kedro's SequentialRunner on the autoencoder the runner just trained: one latent per
    train clip, a DiT config whose pretransform is that autoencoder, and an unwrapped DiT that loads."""
    from pipelines.latent_diffusion.pipeline import create_pipeline
    from tests.pipelines.conftest import REPO, run_pipeline

    params = yaml.safe_load((REPO / "conf/base/parameters_latent_diffusion.yml").read_text())["latent_diffusion"]
    params["pre_encode"].update(sample_size=1024, batch_size=4)
    params["train"].update(max_steps=4, batch_size=2, checkpoint_every=2, threads=1)
    dit = json.loads((REPO / "tests/fixtures/configs/dit_tiny.json").read_text())
    dit["training"]["demo"].update(demo_every=100, demo_steps=2, num_demos=1, demo_cfg_scales=[1])
    out = run_pipeline(create_pipeline(), {
        "autoencoder_model": autoencoder_run["autoencoder_model"], "dit_model_config": dit,
        "prepared_dataset_config": autoencoder_run["prepared_dataset_config"], "params:latent_diffusion": params},
        datasets={
            "latents": FolderDataset(str(tmp_path / "latents")),
            "latent_diffusion_training_result": TrainingRunDataset(str(tmp_path / "dit_training.json"),
                                                                   run_dir=str(tmp_path / "dit")),
            "latent_diffusion_model": UnwrappedModelDataset(str(tmp_path / "dit_model.json"),
                                                            model_filepath=str(tmp_path / "dit.safetensors"))})

    summary = out["latents_summary"]
    assert summary["count"] == autoencoder_run["dataset_split"]["counts"]["train"] == 6
    assert summary["latents_dir"] == str(tmp_path / "latents") and len(list((tmp_path / "latents").glob("*/*.npy"))) == 6
    assert summary["autoencoder"] == autoencoder_run["autoencoder_model"]["path"]
    assert Path(out["latent_diffusion_training_result"]["checkpoint_path"]).parent.parent == tmp_path / "dit"
    assert out["latent_dataset_config"]["datasets"][0]["path"] == str(tmp_path / "latents")
    config = out["latent_diffusion_model_config"]
    ae = read_embedded_model_config(autoencoder_run["autoencoder_model"]["path"])
    assert config["model"]["pretransform"]["config"] == ae["model"] and config["sample_size"] == 1024
    assert config["model"]["pretransform"]["scale"] == pytest.approx(summary["latent_std"], rel=1e-4)  # auto
    info = out["latent_diffusion_model"]
    assert info["path"] == str(tmp_path / "dit.safetensors") and out["latent_diffusion_metrics"] == {}
    loaded = load_model(info["path"], device="cpu")  # strict
    assert loaded.config == config


def test_build_model_config_takes_the_scale_from_the_parameters(autoencoder_run) -> None:
    """latent_scale: auto -> the latents' std; a number -> that number; null -> the DiT config's own."""
    from pipelines.latent_diffusion.nodes import build_model_config
    from tests.pipelines.conftest import REPO

    dit = json.loads((REPO / "tests/fixtures/configs/dit_tiny.json").read_text())
    ae_model, latents = autoencoder_run["autoencoder_model"], {"latent_std": 0.25}
    params = {"pre_encode": {"sample_size": 2048}}
    scale = {value: build_model_config(dit, ae_model, latents, {**params, "latent_scale": value})["model"]
             ["pretransform"].get("scale") for value in ("auto", 2.0, None)}
    assert scale == {"auto": 0.25, 2.0: 2.0, None: dit["model"]["pretransform"].get("scale")}
    with pytest.raises(KeyError, match="latent_diffusion.latent_scale"):
        build_model_config(dit, ae_model, latents, params)
