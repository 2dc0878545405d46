"""A clap model through the user's commands: ``sao-train`` on captioned tones (validation + retrieval demos logged
to MLflow), then ``sao-unwrap``; the export loads strictly and embeds like the trained weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.models.clap_fixtures import SAMPLE_RATE, TONES_HZ, caption, save_tiny_roberta, tiny_clap_config
from tests.training.train_fixtures import train_cli, train_env

pytestmark = pytest.mark.slow


def _captioned_tones(folder: Path) -> Path:
    """8 one-second tones with sidecar captions + an audio_dir dataset config reading them."""
    audio = folder / "audio"
    audio.mkdir(parents=True)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for i, freq in enumerate(TONES_HZ):
        sf.write(audio / f"tone{i}.wav", (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SAMPLE_RATE)
        (audio / f"tone{i}.json").write_text(json.dumps({"caption": caption(freq)}))
    config = folder / "dataset.json"
    config.write_text(json.dumps({"dataset_type": "audio_dir", "datasets": [
        {"id": "tones", "path": str(audio), "custom_metadata_module": "stable_audio_ops.data.sidecar_metadata"}]}))
    return config


def test_train_then_unwrap_a_clap_model(tmp_path):
    from mlflow.tracking import MlflowClient

    from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
    from stable_audio_ops.models.factory import create_model_from_config

    dataset = _captioned_tones(tmp_path / "data")
    config = tiny_clap_config(save_tiny_roberta(tmp_path / "roberta"))
    config["training"]["demo"] = {"demo_every": 2}
    model_config = tmp_path / "clap.json"
    model_config.write_text(json.dumps(config))
    db = tmp_path / "mlflow.db"
    result = train_cli("--model-config", str(model_config), "--dataset-config", str(dataset),
                       "--val-dataset-config", str(dataset), "--val-every", "2", "--batch-size", "4",
                       "--num-workers", "0", "--max-steps", "4", "--checkpoint-every", "4", "--precision", "32",
                       "--save-dir", "ckpts", "--logger", "mlflow", "--mlflow-tracking-uri", f"sqlite:///{db}",
                       "--name", "clap", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run = client.search_runs([client.get_experiment_by_name("stable-audio-ops").experiment_id])[0]
    metrics = run.data.metrics
    # (MLflow drops the "@" of 0.0.20's "R@1" names)
    for key in ("train/loss", "train/contrastive_loss", "train/cross_uniformity", "val/text_to_audio_R1",
                "val/audio_to_text_mean_rank", "demo/text_to_audio_R1"):
        assert key in metrics, sorted(metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "demo/text_to_audio_R1")] == [1, 3, 4]
    assert 0.0 <= metrics["val/text_to_audio_R1"] <= 1.0

    last = tmp_path / "ckpts" / "last.ckpt"
    unwrap = subprocess.run([sys.executable, "-m", "stable_audio_ops.cli.unwrap", "--model-config", str(model_config),
                             "--ckpt-path", str(last), "--name", "clap", "--output-dir", "export"],
                            cwd=tmp_path, env=train_env(), capture_output=True, text=True, timeout=120)
    assert unwrap.returncode == 0, unwrap.stdout[-2000:] + unwrap.stderr[-2000:]
    state = load_ckpt_state_dict(tmp_path / "export" / "clap.safetensors")
    wrapped = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert set(state) == {k[len("model."):] for k in wrapped if k.startswith("model.")}
    assert torch.equal(state["logit_scale_a"], wrapped["model.logit_scale_a"])
    load_state_dict_checked(create_model_from_config(config), state, strict=True)
