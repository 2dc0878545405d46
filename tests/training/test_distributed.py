"""Two training processes on CPU (DDP over gloo) through the train CLI, as a user would start them.

Checks what a user relies on: both ranks trained (their batch counts), they ended with identical
weights, only rank 0 wrote checkpoints and talked to MLflow (one run, one value per step), and the
final checkpoint loads into a fresh training module and holds exactly those weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.distributed import read_rank_reports, state_dict_digest
from stable_audio_ops.training.factory import create_training_module_from_config
from tests.training.train_fixtures import tiny_model_config, train_cli, write_tone_dataset

pytestmark = pytest.mark.slow


def test_two_cpu_processes_train_one_model(tmp_path: Path) -> None:
    dataset = write_tone_dataset(tmp_path / "data", files=8)
    model_config = tiny_model_config(tmp_path)
    save_dir = tmp_path / "ckpt"
    db = tmp_path / "mlflow" / "mlflow.db"

    result = train_cli(
        "--model-config", str(model_config), "--dataset-config", str(dataset), "--save-dir", str(save_dir),
        "--num-gpus", "2", "--accelerator", "cpu", "--strategy", "ddp", "--batch-size", "2",
        "--num-workers", "0", "--max-steps", "6", "--checkpoint-every", "3", "--precision", "32",
        "--mlflow-tracking-uri", f"sqlite:///{db}", "--mlflow-experiment", "ddp-test", "--name", "ddp",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output and "gloo" in output
    assert output.count("final checkpoint:") == 1  # rank 0 reports; rank 1 ends quietly

    # both ranks trained every step (8 files / 2 ranks / batch 2 = 2 batches per epoch each)
    reports = read_rank_reports(save_dir / "ranks")
    assert [r["global_rank"] for r in reports] == [0, 1]
    assert all(r["world_size"] == 2 and r["batches"] == 6 and r["global_step"] == 6 for r in reports)
    assert [r["seed"] for r in reports] == [42, 43]  # seed + rank
    assert reports[0]["pid"] != reports[1]["pid"]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]  # gradients were all-reduced

    # checkpoints: written once (rank 0), atomically (no temp files left), every 3 steps + last
    names = sorted(p.name for p in save_dir.iterdir() if p.is_file())
    assert names == ["epoch=1-step=3.ckpt", "epoch=2-step=6.ckpt", "last.ckpt"]

    # the final checkpoint is a complete training state whose weights are the ranks' weights
    checkpoint = torch.load(save_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 6 and len(checkpoint["optimizer_states"]) == 2
    config = json.loads(model_config.read_text())
    assert checkpoint["model_config"] == config
    module = create_training_module_from_config(config, create_model_from_config(config))
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    assert state_dict_digest(module) == reports[0]["weights_sha256"]

    # MLflow: one run, logged by rank 0 only (one value per step, not two)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("ddp-test").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["train.num_gpus"] == "2" and run.data.params["train.strategy"] == "ddp"
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    steps = [m.step for m in losses]
    assert steps == [1, 3, 5]  # generator steps (even global steps, logged as steps done), each once
    assert len(client.get_metric_history(run.info.run_id, "train/discriminator_loss")) == 3
