"""Model sources the server accepts: a folder, a checkpoint file, and an MLflow registry alias."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.serving.model_loader import load_model

from .conftest import FIXTURE_MODEL, REPO


def _same_weights(a, b) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_folder_and_file_sources_load_the_same_model(tmp_path, tiny_model):
    assert tiny_model.checkpoint.name == "model.safetensors" and not tiny_model.model.training
    copy = tmp_path / "weights.safetensors"
    shutil.copy(FIXTURE_MODEL / "model.safetensors", copy)
    with pytest.raises(ConfigError, match="no model config"):
        load_model(copy)
    by_file = load_model(copy, model_config=FIXTURE_MODEL / "model_config.json", name="tiny")
    assert by_file.name == "tiny" and _same_weights(by_file, tiny_model)
    shutil.copy(FIXTURE_MODEL / "model_config.json", tmp_path / "model_config.json")
    assert _same_weights(load_model(tmp_path), tiny_model)  # folder: single *.safetensors + sibling config


def test_unservable_or_missing_sources_say_why(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")
    ae = REPO / "tests" / "fixtures" / "parity" / "ae_oobleck_vae"
    config = next(ae.glob("*config*.json"))
    weights = next(ae.glob("*.safetensors"))
    assert json.loads(config.read_text())["model_type"] == "autoencoder"
    with pytest.raises(ConfigError, match="cannot be served"):
        load_model(weights, model_config=config)
    (tmp_path / "a.safetensors").write_bytes(b"")
    (tmp_path / "b.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="several model weights"):
        load_model(tmp_path)


def test_registry_alias_is_resolved_downloaded_and_loaded(tmp_path, tiny_model, monkeypatch):
    from mlflow.tracking import MlflowClient

    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serve-test", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=experiment) as run:
        # assumed layout: model_config.json + model.safetensors at the root of the logged model folder
        mlflow.log_artifact(str(FIXTURE_MODEL / "model_config.json"), artifact_path="model")
        mlflow.log_artifact(str(FIXTURE_MODEL / "model.safetensors"), artifact_path="model")
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("tiny-dit")
    version = client.create_model_version("tiny-dit", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("tiny-dit", "champion", version.version)

    loaded = load_model("models:/tiny-dit@champion", tracking_uri=uri)
    assert loaded.name == "tiny-dit@champion"
    assert loaded.registry["version"] == str(version.version) and loaded.registry["run_id"] == run.info.run_id
    assert _same_weights(loaded, tiny_model)
    with pytest.raises(CheckpointError, match="not found in the MLflow registry"):
        load_model("models:/tiny-dit@nope", tracking_uri=uri)
    with pytest.raises(ConfigError, match="models:/NAME@alias"):
        load_model("models:/a/b/c", tracking_uri=uri)


def test_the_server_loads_a_lora_adapter_onto_its_model_from_the_flag_or_sao_adapter(tmp_path, tiny_model):
    from stable_audio_ops.models.adapters import save_adapter
    from stable_audio_ops.models.lora import LoRAConfig, apply_lora, has_lora, lora_state_dict
    from stable_audio_ops.serving.settings import ServeSettings

    trained = load_model(FIXTURE_MODEL).model
    config = LoRAConfig(rank=2, alpha=4, targets=("ff",))
    apply_lora(trained, config)
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if name.endswith("lora_B"):
                p.fill_(0.01)
    path = save_adapter(tmp_path / "adapter.safetensors", lora_state_dict(trained.state_dict()), config,
                        {"source": str(FIXTURE_MODEL), "weights_sha256": "test"})
    settings = ServeSettings.from_env({"SAO_MODEL": str(FIXTURE_MODEL), "SAO_ADAPTER": str(path)})
    assert settings.adapter == str(path)
    served = load_model(settings.model, adapter=settings.adapter)
    assert has_lora(served.model) and not has_lora(tiny_model.model)
    state = served.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in lora_state_dict(trained.state_dict()).items())
